//! `aver lin` as a user runs it on a hard history: a memory cap ends the search with the
//! verdict unknown, a clear message and exit 2, never an out-of-memory kill or a panic.

use std::path::PathBuf;
use std::process::Command;

fn hard(file: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../checker/testdata/hard")
        .join(file);
    assert!(
        path.is_file(),
        "the hard set is missing: {}",
        path.display()
    );
    path
}

/// Runs `aver lin FILE ARGS`; returns the exit code (`None`: killed by a signal), stdout and
/// stderr.
fn lin(file: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aver"))
        .arg("lin")
        .arg(hard(file))
        .args(args)
        .output()
        .expect("aver runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// A 20-client single-register history needs far more than 1 MiB of memo: with that cap the
/// search stops at the budget, on one thread and on two (the shared, sharded tables), and
/// says so: the verdict is unknown (exit 2), the message names --max-memory and its value.
#[test]
fn max_memory_cap_gives_unknown_with_a_clear_message_and_exit_2() {
    for threads in ["1", "2"] {
        let file = "reg-c20-o400-s1.jsonl";
        let (code, out, err) = lin(file, &["--max-memory", "1M", "--threads", threads]);
        assert_eq!(code, Some(2), "threads {threads}: exit\n{out}\n{err}");
        assert!(out.contains("unknown (out of memory)"), "{out}");
        assert!(
            out.contains("reached --max-memory (1 MiB) before a verdict"),
            "{out}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // A cap the search fits in changes nothing: a 10-client history is decided as expected.
    let (code, out, err) = lin("reg-c10-o300-s1.jsonl", &["--max-memory", "64M"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
}
