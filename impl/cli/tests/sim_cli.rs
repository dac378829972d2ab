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

/// Runs `aver sim ARGS`; returns the exit code and stdout.
fn sim(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aver"))
        .arg("sim")
        .args(args)
        .output()
        .expect("aver runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().expect("exited"), stdout)
}

/// With a broken core (the seeded Figure 8 bug, persist1_3c), each failure prints as it
/// happens — before the final table — with its seed and the command that replays it.
#[test]
fn failures_print_as_they_happen_before_the_table() {
    let args = [
        "raft",
        "--test",
        "persist1_3c",
        "--seeds",
        "2",
        "--bug",
        "figure8-commit",
    ];
    let (code, out) = sim(&args);
    assert_eq!(code, 1, "{out}");
    let table = out.find("\ntest ").expect("the final table");
    let live = &out[..table];
    let fails: Vec<(usize, &str)> = live.match_indices("FAIL persist1_3c seed=").collect();
    assert!(
        !fails.is_empty(),
        "a failure printed before the table: {out}"
    );
    for (at, _) in fails {
        let text = &live[at..];
        let seed = text["FAIL persist1_3c seed=".len()..]
            .split_whitespace()
            .next()
            .unwrap();
        let replay = text
            .lines()
            .find(|l| l.trim_start().starts_with("replay:"))
            .unwrap();
        assert!(
            replay.ends_with(&format!("--seed {seed} --bug figure8-commit")),
            "{replay}"
        );
    }
}

/// `--json` lists every run with its verdict, virtual time, events and wall time.
#[test]
fn json_lists_each_run() {
    let (code, s) = sim_json(&["--test", "basic_agree_3b", "--seeds", "2"]);
    assert_eq!(code, 0, "{s}");
    let runs = s["runs_detail"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{s}");
    for (r, seed) in runs.iter().zip([1, 2]) {
        assert_eq!(r["test"], "basic_agree_3b");
        assert_eq!(r["seed"], seed);
        assert_eq!(r["verdict"], "pass");
        assert!(r["virtual_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["events"].as_u64().unwrap() > 0, "{r}");
        assert!(r["wall_s"].as_f64().is_some(), "{r}");
    }
}

/// The shard suite: `--json` and `--events-max` too — a run over its budget fails with its
/// seed, and the replay command carries the budget.
#[test]
fn shard_run_over_its_budget_fails_in_json_with_seed_and_replay() {
    let out = Command::new(env!("CARGO_BIN_EXE_aver"))
        .args(["sim", "shard", "--test", "static_shards_5a", "--seed", "3"])
        .args(["--events-max", "300", "--json"])
        .output()
        .expect("aver runs");
    let s: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON summary");
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert_eq!(s["suite"], "shard");
    assert_eq!(s["runs_detail"][0]["verdict"], "fail", "{s}");
    let f = &s["failed"][0];
    assert_eq!(f["seed"], 3);
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("event budget exceeded"),
        "{f}"
    );
    let replay = f["replay"].as_str().unwrap();
    assert!(replay.ends_with("--seed 3 --events-max 300"), "{replay}");
}

/// A failed history check (kvsrv1 with the clerk bug `no-errmaybe`: a retransmitted Put
/// answered `ErrVersion` is reported as `ErrVersion` although its first copy was applied, so
/// the history is not linearizable) names its history file in `--json`, and the file exists.
#[test]
fn json_failure_names_the_history_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_aver"))
        .args([
            "sim",
            "kv",
            "--test",
            "kvsrv1_put_concurrent_unreliable",
            "--seed",
            "1",
        ])
        .args(["--bug", "no-errmaybe", "--json"])
        .output()
        .expect("aver runs");
    let s: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON summary");
    assert_eq!(out.status.code(), Some(1), "{s}");
    let f = &s["failed"][0];
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .starts_with("not linearizable"),
        "{f}"
    );
    let file = f["history_file"].as_str().expect("a history file");
    assert!(std::path::Path::new(file).is_file(), "{file}");
}
