//! `aver sim` as CI runs it: a failure of any kind exits 1 and is reported with its seed and
//! replay command, in the table and in `--json`; a passing run exits 0.

use serde_json::Value;
use std::process::Command;

/// Runs `aver sim raft ARGS --json`; returns the exit code and the parsed summary.
fn sim_json(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_aver"))
        .args(["sim", "raft", "--json"])
        .args(args)
        .output()
        .expect("aver runs");
    let summary = serde_json::from_slice(&out.stdout).expect("stdout is one JSON summary");
    (out.status.code().expect("exited"), summary)
}

/// A passing run: exit 0, no failures, one scenario row.
#[test]
fn passing_run_exits_0_with_a_json_summary() {
    let (code, s) = sim_json(&["--test", "basic_agree_3b", "--seed", "1"]);
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["failures"], 0);
    assert_eq!(s["scenarios"][0]["test"], "basic_agree_3b");
    assert_eq!(s["scenarios"][0]["runs"], 1);
}

/// A server's failed step check (RAFT-6 under the seeded Figure 8 bug) is a failure with its
/// seed and a replay command that seeds the same bug: exit 1, never a panic.
#[test]
fn failed_step_check_exits_1_with_seed_and_replay() {
    let args = [
        "--test",
        "persist1_3c",
        "--seed",
        "1",
        "--bug",
        "figure8-commit",
    ];
    let (code, s) = sim_json(&args);
    assert_eq!(code, 1, "{s}");
    let f = &s["failed"][0];
    assert_eq!(f["seed"], 1);
    assert!(f["message"].as_str().unwrap().contains("RAFT-6"), "{f}");
    let replay = f["replay"].as_str().unwrap();
    assert!(
        replay.ends_with("--test persist1_3c --seed 1 --bug figure8-commit"),
        "{replay}"
    );
}

/// A run over its event budget is a failure with its seed, and the replay command carries
/// the same budget.
#[test]
fn exceeded_event_budget_exits_1_with_seed_and_replay() {
    let args = [
        "--test",
        "reliable_churn_3c",
        "--seed",
        "4",
        "--events-max",
        "2000",
    ];
    let (code, s) = sim_json(&args);
    assert_eq!(code, 1, "{s}");
    let f = &s["failed"][0];
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .starts_with("event budget exceeded")
    );
    let replay = f["replay"].as_str().unwrap();
    assert!(replay.ends_with("--seed 4 --events-max 2000"), "{replay}");
}
