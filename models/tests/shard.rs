//! The shard model's pinned numbers: both exhaustive CI configurations (state counts, every
//! property holds, every `sometimes` property has an example), one test per seeded bug that
//! the checker must catch by a property stating what a user loses (SHARD-1/2/3/L), and the
//! model's own history checker on hand-made histories. Run in release:
//! `cargo test -p aver-models --release --test shard`.

use aver_core::shardkv::{Bug, Bugs, Op, OpReply};
use aver_models::shard::{self, CONSEQUENCES, History, PROPERTIES, ShardModel, ShardModelCfg};
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::time::Instant;

/// Exhaustive DFS of one CI configuration: every property holds or has its example, and the
/// unique state count is the pinned one (a change to the state space shows up here).
fn check_ci(name: &str, cfg: ShardModelCfg, unique_pinned: usize) {
    let model = cfg.into_model();
    let start = Instant::now();
    let checker = model.clone().checker().threads(2).spawn_dfs().join();
    eprintln!(
        "shard/{name}: unique={} total={} depth={} in {:.1}s",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        start.elapsed().as_secs_f64()
    );
    for p in PROPERTIES {
        let found = checker.discoveries().contains_key(p.name);
        match p.expectation {
            Expectation::Always => assert!(!found, "shard/{name}: {} violated", p.name),
            _ => assert!(found, "shard/{name}: no example of `{}`", p.name),
        }
    }
    assert_eq!(checker.unique_state_count(), unique_pinned, "shard/{name}");
}

#[test]
fn ci_holds_every_property() {
    check_ci("ci", ShardModelCfg::ci(), 196_082);
}

#[test]
fn ci_multi_holds_every_property() {
    check_ci("ci_multi", ShardModelCfg::ci_multi(), 146_668);
}

/// Searches `cfg` with `bug` seeded until a property that states what a user loses fails;
/// asserts it is one of `expected`, and that the shrunk counterexample still replays to it.
fn caught(cfg: ShardModelCfg, bug: Bug, expected: &[&str]) {
    let cfg = ShardModelCfg {
        bugs: Bugs::only(bug),
        ..cfg
    };
    let model: ShardModel = cfg.into_model();
    let start = Instant::now();
    let checker = model
        .clone()
        .checker()
        .threads(2)
        .finish_when(HasDiscoveries::AnyOf(CONSEQUENCES.into_iter().collect()))
        .spawn_dfs()
        .join();
    let found: Vec<&str> = CONSEQUENCES
        .into_iter()
        .filter(|p| checker.discoveries().contains_key(p))
        .collect();
    assert!(
        found.iter().any(|p| expected.contains(p)),
        "{bug}: expected one of {expected:?} to fail, found {found:?}"
    );
    for p in found {
        let path = checker.discoveries()[p].clone().into_vec();
        let short = shard::shrink(&model, &path, p);
        let last = &short.last().expect("a path").0;
        assert!(
            shard::violation(last, shard::property_id(p)).is_some(),
            "{bug}: the shrunk trace no longer violates {p}"
        );
        eprintln!(
            "{bug}: {p} in {} steps (shrunk from {}), {:.2}s",
            short.len() - 1,
            path.len() - 1,
            start.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn bug_serve_before_arrival_is_caught() {
    caught(
        ShardModelCfg::ci(),
        Bug::ServeBeforeArrival,
        &["SHARD-1 Single Owner", "SHARD-2 No Lost Write"],
    );
}

#[test]
fn bug_drop_dedup_is_caught() {
    caught(
        ShardModelCfg::ci(),
        Bug::DropDedup,
        &["SHARD-3 At Most Once Across Moves", "SHARD-L Linearizable"],
    );
}

#[test]
fn bug_delete_before_confirm_is_caught() {
    caught(
        ShardModelCfg::ci(),
        Bug::DeleteBeforeConfirm,
        &["SHARD-2 No Lost Write"],
    );
}

#[test]
fn bug_configs_out_of_order_is_caught() {
    caught(
        ShardModelCfg::ci(),
        Bug::ConfigsOutOfOrder,
        &["SHARD-1 Single Owner", "SHARD-2 No Lost Write"],
    );
}

#[test]
fn bug_rebalance_differs_is_caught() {
    caught(
        ShardModelCfg::ci_multi(),
        Bug::RebalanceDiffers,
        &["SHARD-1 Single Owner", "SHARD-2 No Lost Write"],
    );
}

// ---- the history checker ---------------------------------------------------------------------

fn append(k: &str, v: &str) -> Op {
    Op::Append(k.into(), v.into())
}

fn get(k: &str) -> Op {
    Op::Get(k.into())
}

#[test]
fn history_accepts_concurrent_orders_and_rejects_stale_reads() {
    // Clerk 1 appends "a" and returns; clerk 2, invoked afterwards, must see it.
    let mut h = History::default();
    h.invoke(0, 0, append("k", "a"));
    h.ret(0, 0, OpReply::Ok);
    h.invoke(1, 0, get("k"));
    h.ret(1, 0, OpReply::NoKey);
    assert!(
        !h.linearizable(),
        "a read after an acknowledged append missed it"
    );

    // The same read, concurrent with the append, may see either state.
    let mut h = History::default();
    h.invoke(0, 0, append("k", "a"));
    h.invoke(1, 0, get("k"));
    h.ret(1, 0, OpReply::NoKey);
    h.ret(0, 0, OpReply::Ok);
    assert!(h.linearizable());

    // A pending append may have taken effect...
    let mut h = History::default();
    h.invoke(0, 0, append("k", "a"));
    h.invoke(1, 0, get("k"));
    h.ret(1, 0, OpReply::Value("a".into()));
    assert!(h.linearizable());

    // ...but only once.
    let mut h = History::default();
    h.invoke(0, 0, append("k", "a"));
    h.invoke(1, 0, get("k"));
    h.ret(1, 0, OpReply::Value("aa".into()));
    assert!(!h.linearizable());

    // Two appends seen in an order that contradicts real time.
    let mut h = History::default();
    h.invoke(0, 0, append("k", "a"));
    h.ret(0, 0, OpReply::Ok);
    h.invoke(1, 0, append("k", "b"));
    h.ret(1, 0, OpReply::Ok);
    h.invoke(0, 1, get("k"));
    h.ret(0, 1, OpReply::Value("ba".into()));
    assert!(!h.linearizable());
}

/// A sanity check on the model's construction, cheap enough to run first.
#[test]
fn initial_state_holds_every_safety_property() {
    let model = ShardModelCfg::ci().into_model();
    let init = &model.init_states()[0];
    for p in PROPERTIES {
        if matches!(p.expectation, Expectation::Always) {
            assert!((p.condition)(&model, init), "{} fails initially", p.name);
        }
    }
}
