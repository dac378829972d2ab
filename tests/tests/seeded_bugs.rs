//! The simulator's checkers catch a seeded bug in a lab scenario, and the failure names the
//! command that replays it.

use aver_core::raft::{Bug, Bugs};

/// A leader that keeps leading after seeing a higher term is caught by Election Safety.
#[test]
fn checkers_catch_a_seeded_bug() {
    aver_sim::raft::seed_bugs(Bugs::only(Bug::LeaderIgnoresHigherTerm));
    let outcome = aver_tests::run_one(aver_tests::find("re_election_3a").unwrap(), 1);
    aver_sim::raft::seed_bugs(Bugs::NONE);
    let failure = outcome.expect_err("the seeded bug went unnoticed");
    assert!(failure.replay().contains("--test re_election_3a --seed 1"));
}
