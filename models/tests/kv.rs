//! The KV models (`specs/kv.md`): at their CI configurations every property holds, every
//! `sometimes` has an example (a retry answered from the dedup table, a leader change while
//! an operation is outstanding, a restore from a snapshot holding sessions, a ReadIndex Get),
//! and the state counts are pinned — a change in them is a change in the cores or the models,
//! to be explained in the commit that makes it. Then each seeded service bug of
//! `specs/bugs.md` is found by the seeded random walks of `aver check --bug` and caught by its
//! consequence: a non-linearizable history (KV-1) or a write executed twice (KV-2); four of
//! them also by exhaustive search at the two-clerk bounds.

use aver_core::kvraft::{KvBug, KvBugs};
use aver_models::kv_dedup::{self, KvDedupCfg};
use aver_models::kv_raft::{self, KvRaftCfg};
use aver_models::walk::{self, HUNT_RUNS, HUNT_SEED, HUNT_STEPS};
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::time::Instant;

/// Unique states of `kv-dedup/ci`.
const KV_DEDUP_CI_STATES: usize = 241_889;
/// Unique states of `kv-dedup/ci_two_clerks`.
const KV_DEDUP_CI_TWO_CLERKS_STATES: usize = 805_600;
/// Unique states of `kv-raft/ci` (76,632 before a refusal of a stale AppendEntries carried
/// only the replier's term: fewer distinct refusals in flight; 71,759 before a leader passed
/// over a rejection at the follower's recorded match: its stale conflicts are dead).
const KV_RAFT_CI_STATES: usize = 65_499;

/// DFS over `model`: the unique state count, and each property with whether it was
/// discovered.
fn dfs<M>(model: M, label: &str) -> (usize, Vec<(&'static str, Expectation, bool)>)
where
    M: Model + Send + Sync + 'static,
    M::State: Clone + PartialEq + std::fmt::Debug + std::hash::Hash + Send + Sync,
    M::Action: Clone + PartialEq + std::fmt::Debug + Send + Sync,
{
    let props: Vec<_> = model
        .properties()
        .iter()
        .map(|p| (p.name, p.expectation.clone()))
        .collect();
    let start = Instant::now();
    let checker = model.checker().spawn_dfs().join();
    println!(
        "{label}: unique={} states={} depth={} in {:.2}s",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        start.elapsed().as_secs_f64()
    );
    let d = checker.discoveries();
    let found = props
        .into_iter()
        .map(|(n, e)| (n, e, d.contains_key(n)))
        .collect();
    (checker.unique_state_count(), found)
}

/// Every `always` holds; every `sometimes` that `reachable` says the bounds allow has an
/// example.
fn assert_verdicts(found: &[(&'static str, Expectation, bool)], reachable: impl Fn(&str) -> bool) {
    for (name, expectation, discovered) in found {
        match expectation {
            Expectation::Always => assert!(!discovered, "{name} violated"),
            Expectation::Sometimes if reachable(name) => {
                assert!(discovered, "no example of `{name}`")
            }
            _ => {}
        }
    }
}

/// KV-1..KV-4 exhaustively on one of the dedup model's CI configurations, at its pinned
/// unique state count.
fn dedup_configuration_holds(name: &str, pinned: usize) {
    let (_, cfg) = KvDedupCfg::ci_all()
        .into_iter()
        .find(|(n, _)| *n == name)
        .expect("a CI configuration of kv-dedup");
    let reach = cfg.clone();
    let (unique, found) = dfs(cfg.into_model(), &format!("kv-dedup/{name}"));
    assert_verdicts(&found, |p| reach.can_reach(p));
    assert_eq!(
        unique, pinned,
        "kv-dedup/{name}: unique state count changed"
    );
}

/// The dedup model's one-clerk CI configuration (the service over an abstract atomic log:
/// duplicating network, a leader change, snapshots, a restart).
#[test]
fn kv_dedup_ci_configuration_holds() {
    dedup_configuration_holds("ci", KV_DEDUP_CI_STATES);
    assert_eq!(kv_dedup::PROPERTIES.len(), 8);
    assert_eq!(
        KvDedupCfg::ci_all().len(),
        2,
        "a new configuration needs a pinned test"
    );
}

/// The two-clerk CI configuration: a Put and a concurrent Get of another clerk, both
/// retrying over the duplicating network through a leader change, a snapshot and a restart.
#[test]
fn kv_dedup_ci_two_clerks_configuration_holds() {
    dedup_configuration_holds("ci_two_clerks", KV_DEDUP_CI_TWO_CLERKS_STATES);
}

/// KV-1..KV-4 and RAFT-1..10 exhaustively on the composed Raft+kvraft CI configuration (a
/// leader change under a client retry, a ReadIndex Get).
#[test]
fn kv_raft_ci_configuration_holds() {
    for (name, cfg) in KvRaftCfg::ci_all() {
        let pinned = match name {
            "ci" => KV_RAFT_CI_STATES,
            other => panic!("no pinned count for kv-raft/{other}"),
        };
        let reach = cfg.clone();
        let (unique, found) = dfs(cfg.into_model(), &format!("kv-raft/{name}"));
        assert_verdicts(&found, |p| reach.can_reach(p));
        assert_eq!(unique, pinned, "kv-raft/{name}: unique state count changed");
    }
    assert_eq!(kv_raft::PROPERTIES.len(), 9);
}

/// The hunt `aver check <model> --bug <bug>` runs: the first violated property and the
/// shrunk counterexample's length.
fn hunt<M>(model: &M) -> Option<(&'static str, usize)>
where
    M: Model,
    M::State: Clone + PartialEq,
    M::Action: Clone + PartialEq,
{
    let start = Instant::now();
    let w = walk::random_walks(model, HUNT_RUNS, HUNT_STEPS, HUNT_SEED);
    let found = w.violation().map(|(name, path)| (name, path.len() - 1));
    println!(
        "runs={} states={} in {:.2}s: {found:?}",
        w.runs,
        w.states,
        start.elapsed().as_secs_f64()
    );
    found
}

/// `bug` seeded into the dedup model is caught by `property` (a consequence a user sees).
fn dedup_catches(bug: KvBug, property: &str) {
    let cfg = KvDedupCfg {
        bugs: KvBugs::only(bug),
        consequences_only: true,
        ..KvDedupCfg::deep()
    };
    let found = hunt(&cfg.into_model());
    assert_eq!(found.map(|f| f.0), Some(property), "{bug}");
}

/// `bug` seeded into the composed model is caught by `property`.
fn kv_raft_catches(bug: KvBug, property: &str) {
    let found = hunt(&KvRaftCfg::hunt(KvBugs::only(bug)).into_model());
    assert_eq!(found.map(|f| f.0), Some(property), "{bug}");
}

/// Snapshots without the dedup table: a restarted server re-executes a retried write.
#[test]
fn seeded_bug_dedup_not_in_snapshot_is_caught_by_kv2() {
    dedup_catches(KvBug::DedupNotInSnapshot, "KV-2 At-Most-Once");
}

/// Answering at proposal time: a reply for a write that is later lost.
#[test]
fn seeded_bug_reply_before_apply_is_caught_by_kv1() {
    dedup_catches(KvBug::ReplyBeforeApply, "KV-1 Linearizable");
}

/// Taking another term's entry at the index as success: an acknowledged write never ran.
#[test]
fn seeded_bug_accept_other_entry_is_caught_by_kv1() {
    dedup_catches(KvBug::AcceptOtherEntry, "KV-1 Linearizable");
}

/// Get from a deposed leader's local state: a stale read.
#[test]
fn seeded_bug_local_read_is_caught_by_kv1() {
    dedup_catches(KvBug::LocalRead, "KV-1 Linearizable");
}

/// A clerk reusing its sequence number: the new write is answered with the old reply.
#[test]
fn seeded_bug_clerk_reuses_seq_is_caught_by_kv1() {
    dedup_catches(KvBug::ClerkReusesSeq, "KV-1 Linearizable");
}

/// ReadIndex without the quorum round, on the real Raft core: a deposed leader's stale read.
#[test]
fn seeded_bug_read_without_quorum_is_caught_by_kv1() {
    kv_raft_catches(KvBug::ReadWithoutQuorum, "KV-1 Linearizable");
}

/// ReadIndex before the leader's first commit of its term: a read that misses a write
/// committed by the previous leader.
#[test]
fn seeded_bug_read_before_term_commit_is_caught_by_kv1() {
    kv_raft_catches(KvBug::ReadBeforeTermCommit, "KV-1 Linearizable");
}

/// The service bugs a two-clerk history can show, found by EXHAUSTIVE search at the
/// `ci_two_clerks` bounds (DFS to the first violation, consequences only), each by the
/// property that states what the user loses. (`clerk-reuses-seq` needs a clerk with two
/// operations and a reader, beyond these bounds: the random-walk test above finds it.)
#[test]
fn seeded_bugs_found_exhaustively_at_two_clerk_bounds() {
    let cases = [
        (KvBug::DedupNotInSnapshot, "KV-2 At-Most-Once"),
        (KvBug::ReplyBeforeApply, "KV-1 Linearizable"),
        (KvBug::AcceptOtherEntry, "KV-1 Linearizable"),
        (KvBug::LocalRead, "KV-1 Linearizable"),
    ];
    for (bug, property) in cases {
        let cfg = KvDedupCfg {
            bugs: KvBugs::only(bug),
            consequences_only: true,
            ..KvDedupCfg::ci_two_clerks()
        };
        let start = Instant::now();
        let checker = cfg
            .into_model()
            .checker()
            .finish_when(HasDiscoveries::AnyFailures)
            .spawn_dfs()
            .join();
        let violated: Vec<&str> = checker
            .discoveries()
            .into_keys()
            .filter(|name| name.starts_with("KV-"))
            .collect();
        println!(
            "{bug}: {violated:?} after {} states in {:.2}s",
            checker.unique_state_count(),
            start.elapsed().as_secs_f64()
        );
        assert_eq!(violated, [property], "{bug}");
    }
}
