//! Lab 4's rsm tests (`src/kvraft1/rsm/rsm_test.go`, 2025) on the deterministic simulator, on
//! seed 1: the rsm core on Raft above the lab's counter, Raft's cluster invariants after every
//! event. `aver sim rsm --seeds N` runs them over many seeds.

/// `TestBasic4A`: 10 sequential increments; Raft's cluster invariants (RAFT-*).
#[test]
fn rsm_basic_4a() {
    aver_tests::check("rsm_basic_4a", 1);
}

/// `TestConcurrent4A`: 50 concurrent increments.
#[test]
fn rsm_concurrent_4a() {
    aver_tests::check("rsm_concurrent_4a", 1);
}

/// `TestLeaderFailure4A`: progress with the leader cut off.
#[test]
fn rsm_leader_failure_4a() {
    aver_tests::check("rsm_leader_failure_4a", 1);
}

/// `TestLeaderPartition4A`: a minority leader's submissions fail after healing, never execute.
#[test]
fn rsm_leader_partition_4a() {
    aver_tests::check("rsm_leader_partition_4a", 1);
}

/// `TestRestartReplay4A`: state rebuilt by replaying the log.
#[test]
fn rsm_restart_replay_4a() {
    aver_tests::check("rsm_restart_replay_4a", 1);
}

/// `TestShutdown4A`: submissions return once the servers are shut down.
#[test]
fn rsm_shutdown_4a() {
    aver_tests::check("rsm_shutdown_4a", 1);
}

/// `TestRestartSubmit4A`: submissions before a restart are not confused with new ones.
#[test]
fn rsm_restart_submit_4a() {
    aver_tests::check("rsm_restart_submit_4a", 1);
}

/// `TestSnapshot4C`: persisted Raft state ≤ 2 × maxraftstate; restore from snapshot.
#[test]
fn rsm_snapshot_4c() {
    aver_tests::check("rsm_snapshot_4c", 1);
}
