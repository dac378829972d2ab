//! Lab 3C (persistence): the 6.5840 tests (`src/raft1/raft_test.go`, 2025) on the deterministic
//! simulator, on a fixed seed. `aver sim raft --seeds N` runs them over many seeds.

/// The fixed seed of `cargo test`.
const SEED: u64 = 1;

/// `TestPersist13C`: state survives crashes (durable before send).
#[test]
fn persist1_3c() {
    aver_tests::check("persist1_3c", SEED);
}

/// `TestPersist23C`: majorities crash and restart; votes and logs persisted.
#[test]
fn persist2_3c() {
    aver_tests::check("persist2_3c", SEED);
}

/// `TestPersist33C`: partition plus crash; survivors persisted.
#[test]
fn persist3_3c() {
    aver_tests::check("persist3_3c", SEED);
}

/// `TestFigure83C`: 1000 iterations of leader crashes; Figure 8 (RAFT-4, RAFT-5).
#[test]
fn figure8_3c() {
    aver_tests::check("figure8_3c", SEED);
}

/// `TestUnreliableAgree3C`: concurrent agreements on an unreliable network.
#[test]
fn unreliable_agree_3c() {
    aver_tests::check("unreliable_agree_3c", SEED);
}

/// `TestFigure8Unreliable3C`: 1000 iterations, unreliable, long reordering (RAFT-5).
#[test]
fn figure8_unreliable_3c() {
    aver_tests::check("figure8_unreliable_3c", SEED);
}

/// `TestReliableChurn3C`: churn: every value seen committed stays committed (RAFT-5).
#[test]
fn reliable_churn_3c() {
    aver_tests::check("reliable_churn_3c", SEED);
}

/// `TestUnreliableChurn3C`: churn on an unreliable network (RAFT-5).
#[test]
fn unreliable_churn_3c() {
    aver_tests::check("unreliable_churn_3c", SEED);
}

/// Not a lab test: Figure 8 with crashes between a write and its sync (durable before send).
#[test]
fn figure8_torn_writes() {
    aver_tests::check("figure8_torn_writes", SEED);
}
