//! The older shardctrler tests (`src/shardctrler/test_test.go`, 2024) on a Raft-replicated
//! controller (3 servers) on the deterministic simulator, on seed 1: Raft's cluster
//! invariants after every event, the lab's checks, every controller operation's history
//! checked with the `shardctrler` model, SHARD-5 over the replicas at the end.
//! `aver sim shardctrler --seeds N [--extra]` runs them over many seeds.

use aver_core::shardkv::{Bug, Bugs};
use aver_tests::shardctrler::lab::seed_bugs;

/// `TestBasic`: leave/join, historical queries with each server shut down, move, concurrent
/// leave/join, minimal transfers (SHARD-5, SHARD-6, the history).
#[test]
fn ctrl_basic() {
    aver_tests::check("ctrl_basic", 1);
}

/// `TestMulti`: multi-group join/leave, concurrent multi join/leave, minimal transfers, the
/// same configuration after the leader is shut down.
#[test]
fn ctrl_multi() {
    aver_tests::check("ctrl_multi", 1);
}

/// `TestMinimalAgain`: a join or leave moves only the shards it must, at most 4.
#[test]
fn ctrl_minimal_again() {
    aver_tests::check("ctrl_minimal_again", 1);
}

/// Beyond the lab: random operations on an unreliable network with partitions, crashes and
/// snapshots; the history must fit one controller.
#[test]
fn ctrl_unreliable_chaos() {
    aver_tests::check("ctrl_unreliable_chaos", 1);
}

/// The seeded bug `rebalance-differs` (replicas break rebalancing ties differently): in
/// TestBasic's historical queries, replicas answer one configuration number with different
/// assignments, which no single controller could — the history is not linearizable.
#[test]
fn rebalance_differs_is_caught_by_the_history() {
    seed_bugs(Bugs::only(Bug::RebalanceDiffers));
    let scenario = aver_tests::find("ctrl_basic").expect("registered");
    let outcome = aver_tests::run_one(scenario, 1);
    seed_bugs(Bugs::NONE);
    let failure = outcome.expect_err("rebalance-differs must be caught");
    assert!(
        failure.message.contains("not linearizable"),
        "caught, but not by the history: {failure}"
    );
    assert!(
        failure.replay.contains("--bug rebalance-differs"),
        "{failure}"
    );
}
