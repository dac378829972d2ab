//! Lab 4's kvraft1 tests (`src/kvraft1/kvraft_test.go`, 4B and 4C, 2025) on the
//! deterministic simulator, on seed 1: the kvraft server and clerk cores on Raft; Raft's
//! cluster invariants (RAFT-*) and KV-2 At-Most-Once after every event, every history checked
//! for linearizability (KV-1), and the lab's thresholds. `aver sim kvraft --seeds N` runs them
//! over many seeds.

/// `TestBasic4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_basic_4b() {
    aver_tests::check("kvraft_basic_4b", 1);
}

/// `TestSpeed4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_speed_4b() {
    aver_tests::check("kvraft_speed_4b", 1);
}

/// `TestConcurrent4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_concurrent_4b() {
    aver_tests::check("kvraft_concurrent_4b", 1);
}

/// `TestUnreliable4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_unreliable_4b() {
    aver_tests::check("kvraft_unreliable_4b", 1);
}

/// `TestOnePartition4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_one_partition_4b() {
    aver_tests::check("kvraft_one_partition_4b", 1);
}

/// `TestManyPartitionsOneClient4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_many_partitions_one_client_4b() {
    aver_tests::check("kvraft_many_partitions_one_client_4b", 1);
}

/// `TestManyPartitionsManyClients4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_many_partitions_many_clients_4b() {
    aver_tests::check("kvraft_many_partitions_many_clients_4b", 1);
}

/// `TestPersistOneClient4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_persist_one_client_4b() {
    aver_tests::check("kvraft_persist_one_client_4b", 1);
}

/// `TestPersistConcurrent4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_persist_concurrent_4b() {
    aver_tests::check("kvraft_persist_concurrent_4b", 1);
}

/// `TestPersistConcurrentUnreliable4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_persist_concurrent_unreliable_4b() {
    aver_tests::check("kvraft_persist_concurrent_unreliable_4b", 1);
}

/// `TestPersistPartition4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_persist_partition_4b() {
    aver_tests::check("kvraft_persist_partition_4b", 1);
}

/// `TestPersistPartitionUnreliable4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_persist_partition_unreliable_4b() {
    aver_tests::check("kvraft_persist_partition_unreliable_4b", 1);
}

/// `TestPersistPartitionUnreliableLinearizable4B`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_persist_partition_unreliable_linearizable_4b() {
    aver_tests::check("kvraft_persist_partition_unreliable_linearizable_4b", 1);
}

/// `TestSnapshotRPC4C`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_snapshot_rpc_4c() {
    aver_tests::check("kvraft_snapshot_rpc_4c", 1);
}

/// `TestSnapshotSize4C`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_snapshot_size_4c() {
    aver_tests::check("kvraft_snapshot_size_4c", 1);
}

/// `TestSpeed4C`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_speed_4c() {
    aver_tests::check("kvraft_speed_4c", 1);
}

/// `TestSnapshotRecover4C`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_snapshot_recover_4c() {
    aver_tests::check("kvraft_snapshot_recover_4c", 1);
}

/// `TestSnapshotRecoverManyClients4C`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_snapshot_recover_many_clients_4c() {
    aver_tests::check("kvraft_snapshot_recover_many_clients_4c", 1);
}

/// `TestSnapshotUnreliable4C`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_snapshot_unreliable_4c() {
    aver_tests::check("kvraft_snapshot_unreliable_4c", 1);
}

/// `TestSnapshotUnreliableRecover4C`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_snapshot_unreliable_recover_4c() {
    aver_tests::check("kvraft_snapshot_unreliable_recover_4c", 1);
}

/// `TestSnapshotUnreliableRecoverConcurrentPartition4C`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_snapshot_unreliable_recover_concurrent_partition_4c() {
    aver_tests::check(
        "kvraft_snapshot_unreliable_recover_concurrent_partition_4c",
        1,
    );
}

/// `TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable4C`: KV-1, KV-2, RAFT-*, and the lab's own checks.
#[test]
fn kvraft_snapshot_unreliable_recover_concurrent_partition_linearizable_4c() {
    aver_tests::check(
        "kvraft_snapshot_unreliable_recover_concurrent_partition_linearizable_4c",
        1,
    );
}
