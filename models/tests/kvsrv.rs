//! The kvsrv and lock models' pinned numbers: each CI configuration's state count with every
//! property holding and every `sometimes` example found; each seeded bug caught by what it
//! breaks (a non-linearizable history, two clients in the lock); the network assumptions of
//! the `ErrMaybe` rule shown necessary; and the reductions checked against the unreduced
//! search. Run in release: `cargo test -p aver-models --release --test kvsrv`.

use aver_core::kvsrv::{Bug, Bugs};
use aver_models::kvsrv::{KvNetwork, KvsrvModel, KvsrvModelCfg, KvsrvState, Workload};
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::collections::{HashSet, VecDeque};

/// Exhaustive DFS; returns the unique state count and the names of the properties with a
/// discovery (a counterexample for `always`, an example for `sometimes`).
fn exhaust(cfg: KvsrvModelCfg) -> (usize, Vec<&'static str>) {
    let model = cfg.into_model();
    let checker = model.checker().threads(2).spawn_dfs().join();
    let found = checker.discoveries().into_keys().collect();
    (checker.unique_state_count(), found)
}

/// Asserts every `always` property holds and every reachable `sometimes` has an example.
fn assert_all_good(cfg: &KvsrvModelCfg, found: &[&str]) {
    for p in cfg.properties() {
        let seen = found.contains(&p.name);
        match p.expectation {
            Expectation::Always => assert!(!seen, "{} violated", p.name),
            _ if cfg.can_reach(p.name) => assert!(seen, "no example of {}", p.name),
            _ => {}
        }
    }
}

fn pinned(cfg: KvsrvModelCfg, states: usize) {
    let (unique, found) = exhaust(cfg.clone());
    assert_all_good(&cfg, &found);
    assert_eq!(
        unique, states,
        "the state space changed: update the pinned count if intended"
    );
}

/// KVSRV-2, KVSRV-1 on two clerks racing to create a key.
#[test]
fn kvsrv_ci_pinned() {
    pinned(KvsrvModelCfg::kv_ci(), 2_382);
}

/// KVSRV-2, KVSRV-1 on three clerks.
#[test]
fn kvsrv_three_pinned() {
    pinned(KvsrvModelCfg::kv_three(), 151_160);
}

/// LOCK-1, LOCK-2 with two clients, two rounds each.
#[test]
fn lock_ci_pinned() {
    pinned(KvsrvModelCfg::lock_ci(), 30_872);
}

/// LOCK-1, LOCK-2 with three clients.
#[test]
fn lock_three_pinned() {
    pinned(KvsrvModelCfg::lock_three(), 286_700);
}

/// BFS until `property` is violated (other violations on the way do not stop it); returns
/// the counterexample's length, or `None` if the whole space holds it.
fn hunt(cfg: KvsrvModelCfg, property: &'static str) -> Option<usize> {
    let checker = cfg
        .into_model()
        .checker()
        .threads(2)
        .finish_when(HasDiscoveries::AnyOf([property].into()))
        .spawn_bfs()
        .join();
    checker
        .discoveries()
        .remove(property)
        .map(|path| path.into_actions().len())
}

fn with_bug(cfg: KvsrvModelCfg, bug: Bug) -> KvsrvModelCfg {
    KvsrvModelCfg {
        bugs: Bugs::only(bug),
        ..cfg
    }
}

fn assert_caught(cfg: KvsrvModelCfg, property: &'static str) {
    let bugs = cfg.bugs.list();
    let steps = hunt(cfg, property);
    assert!(steps.is_some(), "{bugs:?}: expected {property} violated");
}

/// Clerk bugs break linearizability (KVSRV-2) of two clerks' history; lock bugs and the
/// clerk's `errmaybe-as-ok` let two clients into the lock (LOCK-1).
#[test]
fn seeded_bugs_are_caught_by_their_consequence() {
    assert_caught(
        with_bug(KvsrvModelCfg::kv_ci(), Bug::ErrMaybeAsOk),
        "KVSRV-2 Linearizable",
    );
    assert_caught(
        with_bug(KvsrvModelCfg::kv_ci(), Bug::NoErrMaybe),
        "KVSRV-2 Linearizable",
    );
    for bug in [
        Bug::ErrMaybeAsOk,
        Bug::AcquireMaybeAsHeld,
        Bug::ReleaseWithoutOwnership,
        Bug::SharedLockId,
    ] {
        assert_caught(
            with_bug(KvsrvModelCfg::lock_ci(), bug),
            "LOCK-1 Mutual Exclusion",
        );
    }
}

/// The `ErrMaybe` rule is sound only if a clerk retransmits once the previous copy is
/// resolved, and each send reaches the server at most once: with a blind put of version 1,
/// breaking either gives a non-linearizable history from the correct cores.
#[test]
fn errmaybe_rule_needs_its_network_assumptions() {
    let (_, found) = exhaust(KvsrvModelCfg::blind_put(KvNetwork::Rpc));
    assert!(!found.contains(&"KVSRV-2 Linearizable"));
    for network in [KvNetwork::Async, KvNetwork::Duplicating] {
        let found = hunt(KvsrvModelCfg::blind_put(network), "KVSRV-2 Linearizable");
        assert!(
            found.is_some(),
            "{network}: expected a non-linearizable history"
        );
    }
}

/// Every state reachable within the bounds (breadth-first, no property checks).
fn reachable(model: &KvsrvModel) -> HashSet<KvsrvState> {
    let mut seen: HashSet<KvsrvState> = model.init_states().into_iter().collect();
    let mut queue: VecDeque<KvsrvState> = seen.iter().cloned().collect();
    let mut actions = Vec::new();
    while let Some(s) = queue.pop_front() {
        actions.clear();
        model.actions(&s, &mut actions);
        for a in actions.drain(..) {
            let Some(next) = model.next_state(&s, a) else {
                continue;
            };
            if model.within_boundary(&next) && seen.insert(next.clone()) {
                queue.push_back(next);
            }
        }
    }
    seen
}

/// The reductions (dead replies removed, operations renumbered) lose no behaviour: the
/// reduced search reaches exactly the unreduced states, projected through the reduction; for
/// the lock, whose unreduced search must bound operation numbers, every projected state is
/// reached by the reduced search.
#[test]
fn reductions_keep_the_reachable_states() {
    for (cfg, exact) in [
        (KvsrvModelCfg::kv_ci(), true),
        (KvsrvModelCfg::blind_put(KvNetwork::Async), true),
        (
            KvsrvModelCfg {
                workload: Workload::Lock {
                    clients: 2,
                    rounds: 1,
                },
                ..KvsrvModelCfg::lock_ci()
            },
            false,
        ),
    ] {
        let reduced = reachable(&cfg.clone().into_model());
        let unreduced_model = KvsrvModelCfg {
            reduce: false,
            ..cfg.clone()
        }
        .into_model();
        let unreduced = reachable(&unreduced_model);
        let projected: HashSet<KvsrvState> = unreduced
            .into_iter()
            .map(|mut s| {
                KvsrvModel::reduce(&mut s);
                s
            })
            .collect();
        assert!(
            projected.is_subset(&reduced),
            "{:?}: a projected state the reduced search misses",
            cfg.workload
        );
        if exact {
            assert_eq!(projected, reduced, "{:?}", cfg.workload);
        }
    }
}
