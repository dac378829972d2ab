//! Lab 3A (leader election): the 6.5840 tests (`src/raft1/raft_test.go`, 2025) on the deterministic
//! simulator, on a fixed seed. `aver sim raft --seeds N` runs them over many seeds.

/// The fixed seed of `cargo test`.
const SEED: u64 = 1;

/// `TestInitialElection3A`: a leader within 5 s; terms agree and hold; RAFT-1 (Election Safety).
#[test]
fn initial_election_3a() {
    aver_tests::check("initial_election_3a", SEED);
}

/// `TestReElection3A`: re-election after leader loss, none without a majority; RAFT-1.
#[test]
fn re_election_3a() {
    aver_tests::check("re_election_3a", SEED);
}

/// `TestManyElections3A`: 7 servers, 9 rounds of 3 random disconnections; RAFT-1.
#[test]
fn many_elections_3a() {
    aver_tests::check("many_elections_3a", SEED);
}
