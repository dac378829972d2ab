//! `aver check` as CI runs it: a violated property — a server's own step check or a
//! cluster-level consequence — is a failed property with its counterexample and exit 1, never
//! a panic (exit 101).

use std::process::Command;

/// Where the counterexamples go: the test's scratch directory in the target dir, never the
/// source tree.
const OUT: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/aver-check-test");

/// Runs `aver check raft ARGS`; returns the exit code and stdout.
fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aver"))
        .args(["check", "raft", "--threads", "1"])
        .args(args)
        .output()
        .expect("aver runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().expect("exited"), stdout)
}

fn violated(stdout: &str, property: &str) -> bool {
    stdout
        .lines()
        .any(|l| l.contains(property) && l.contains("VIOLATED"))
}

/// A failed step check (RAFT-10: a vote changed within a term) is reported as a failed
/// property with its trace, exit 1.
#[test]
fn failed_step_check_is_a_failed_property_with_exit_1() {
    let (code, out) = check(&["--bug", "vote-twice", "--out", OUT]);
    assert_eq!(code, 1, "{out}");
    assert!(violated(&out, "RAFT-10 Monotonicity"), "{out}");
}

/// With the step checks off, the same bug fails by what a user loses: two leaders in one
/// term (RAFT-1), exit 1.
#[test]
fn without_step_checks_the_consequence_fails_with_exit_1() {
    let args = ["--bug", "vote-twice", "--no-step-checks", "--out", OUT];
    let (code, out) = check(&args);
    assert_eq!(code, 1, "{out}");
    assert!(violated(&out, "RAFT-1 Election Safety"), "{out}");
    assert!(!out.contains("RAFT-10"), "step checks are off: {out}");
}
