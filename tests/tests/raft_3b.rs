//! Lab 3B (log replication): the 6.5840 tests (`src/raft1/raft_test.go`, 2025) on the deterministic
//! simulator, on a fixed seed. `aver sim raft --seeds N` runs them over many seeds.

/// The fixed seed of `cargo test`.
const SEED: u64 = 1;

/// `TestBasicAgree3B`: agreement at indices 1..3; appliers' same-value/in-order checks (RAFT-5).
#[test]
fn basic_agree_3b() {
    aver_tests::check("basic_agree_3b", SEED);
}

/// `TestRPCBytes3B`: ≤ 3 × payload + 50 000 bytes for ten 5000-byte commands.
#[test]
fn rpc_bytes_3b() {
    aver_tests::check("rpc_bytes_3b", SEED);
}

/// `TestFollowerFailure3B`: progress without one follower, no commit without a majority (RAFT-7).
#[test]
fn follower_failure_3b() {
    aver_tests::check("follower_failure_3b", SEED);
}

/// `TestLeaderFailure3B`: new leader after leader loss, no commit without a majority (RAFT-7).
#[test]
fn leader_failure_3b() {
    aver_tests::check("leader_failure_3b", SEED);
}

/// `TestFailAgree3B`: a rejoining follower catches up (RAFT-3 Log Matching).
#[test]
fn fail_agree_3b() {
    aver_tests::check("fail_agree_3b", SEED);
}

/// `TestFailNoAgree3B`: no commit without a majority; index reuse (RAFT-7).
#[test]
fn fail_no_agree_3b() {
    aver_tests::check("fail_no_agree_3b", SEED);
}

/// `TestConcurrentStarts3B`: concurrent Start()s in one term all commit.
#[test]
fn concurrent_starts_3b() {
    aver_tests::check("concurrent_starts_3b", SEED);
}

/// `TestRejoin3B`: a stale leader's uncommitted entries are overwritten (RAFT-3, RAFT-4).
#[test]
fn rejoin_3b() {
    aver_tests::check("rejoin_3b", SEED);
}

/// `TestBackup3B`: fast backup over divergent logs (RAFT-3, RAFT-4).
#[test]
fn backup_3b() {
    aver_tests::check("backup_3b", SEED);
}

/// `TestCount3B`: RPC budgets: election 1..=30, 10 agreements ≤ 42, 1 s idle ≤ 60.
#[test]
fn count_3b() {
    aver_tests::check("count_3b", SEED);
}
