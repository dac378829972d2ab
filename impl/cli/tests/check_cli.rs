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

/// `--config` picks a named kv-dedup configuration: a seeded service bug searched
/// exhaustively at the two-clerk bounds fails KV-1 with exit 1 (and the Explorer command
/// names the configuration); an unknown name, `--config` for a model that takes its bounds
/// as flags, or a flag `aver check mr` does not take, is a clear error with exit 2.
#[test]
fn config_picks_a_named_kv_configuration() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_aver"))
            .args(["check", "--threads", "1", "--out", OUT])
            .args(args)
            .output()
            .expect("aver runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().expect("exited"), text)
    };
    let (code, out) = run(&[
        "kv-dedup",
        "--config",
        "ci_two_clerks",
        "--dfs",
        "--bug",
        "local-read",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(violated(&out, "KV-1 Linearizable"), "{out}");
    assert!(out.contains("--config ci_two_clerks"), "{out}");
    let (code, out) = run(&["kv-dedup", "--config", "nope"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("known: ci, ci_two_clerks, deep"), "{out}");
    let (code, out) = run(&["raft", "--config", "ci"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("--config names a configuration of kv-dedup or kv-raft"),
        "{out}"
    );
    // A flag the MapReduce model does not take is refused, never silently ignored.
    let (code, out) = run(&["mr", "--bug", "skip-reduce"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("takes no --bug skip-reduce"), "{out}");
    assert!(out.contains("aver mr check --bug NAME"), "{out}");
}

/// Behaviour limits reach figure8-commit by exhaustive search (four terms, which the
/// unrestricted search does not finish): RAFT-4 fails with exit 1, the bounds line says the
/// search is an under-approximation, the trace is shrunk, and the Explorer command rebuilds
/// the model with the limits. Limits for a model other than raft are a clear error, exit 2.
#[test]
fn behaviour_limits_reach_figure8_and_belong_to_raft() {
    let (code, out) = check(&[
        "--bug",
        "figure8-commit",
        "--no-step-checks",
        "--dfs",
        "--out",
        OUT,
        "--max-term",
        "4",
        "--max-log",
        "1",
        "--crashes",
        "0",
        "--no-compaction",
        "--max-campaigns",
        "4",
        "--max-heartbeats",
        "0",
        "--max-proposals",
        "2",
        "--one-candidate",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(violated(&out, "RAFT-4 Leader Completeness"), "{out}");
    assert!(out.contains("under-approximation"), "{out}");
    assert!(out.contains("steps shrunk"), "{out}");
    assert!(
        out.contains("--max-campaigns 4 --max-heartbeats 0 --max-proposals 2")
            && out.contains("--one-candidate --path"),
        "the Explorer command keeps the limits: {out}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_aver"))
        .args(["check", "kvsrv", "--one-candidate"])
        .output()
        .expect("aver runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("use them with `aver check raft`"), "{err}");
}

/// `ctrl-drop-dedup` cannot show in the shard model (its controller applies each script
/// operation once; no administrator retries), so `aver shard check` refuses it with exit 2 and
/// names the simulator run that catches it, instead of passing as if the bug were harmless.
#[test]
fn shard_check_refuses_a_bug_its_model_cannot_show() {
    let out = Command::new(env!("CARGO_BIN_EXE_aver"))
        .args(["shard", "check", "--bug", "ctrl-drop-dedup", "--out", OUT])
        .output()
        .expect("aver runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not in the shard model")
            && err
                .contains("aver sim shard --test recover_ctrler_5b --seed 1 --bug ctrl-drop-dedup"),
        "{err}"
    );
}
