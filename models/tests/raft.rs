//! The Raft model's pinned numbers: the exhaustive CI configuration (state count, every
//! property), one witness path per `sometimes` property, and one test per seeded bug that the
//! checker must catch. Run in release: `cargo test -p aver-models --release`.

use aver_core::raft::{Bug, Bugs, Message, Timer};
use aver_models::raft::{
    self, ModelTimer, PROPERTIES, RaftAction, RaftModel, RaftModelCfg, RaftState,
};
use stateright::actor::{ActorModelAction, Id};
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::time::Instant;

// ---- witness paths ---------------------------------------------------------------------------

/// Builds a path step by step: each step takes the first enabled action that matches.
struct Walk {
    model: RaftModel,
    state: RaftState,
    steps: usize,
}

impl Walk {
    fn new(cfg: RaftModelCfg) -> Walk {
        let model = cfg.into_model();
        let state = model.init_states().remove(0);
        Walk {
            model,
            state,
            steps: 0,
        }
    }

    fn take(&mut self, what: &str, pred: impl Fn(&RaftAction) -> bool) -> &mut Walk {
        let mut actions = Vec::new();
        self.model.actions(&self.state, &mut actions);
        let next = actions
            .into_iter()
            .filter(|a| pred(a))
            .find_map(|a| self.model.next_state(&self.state, a))
            .unwrap_or_else(|| panic!("step {}: no enabled action {what}", self.steps + 1));
        assert!(
            self.model.within_boundary(&next),
            "{what} leaves the bounds"
        );
        self.state = next;
        self.steps += 1;
        self
    }

    fn timeout(&mut self, n: usize, t: ModelTimer) -> &mut Walk {
        self.take(
            &format!("timeout n{n} {t:?}"),
            |a| matches!(a, ActorModelAction::Timeout(id, tt) if *id == Id::from(n) && *tt == t),
        )
    }

    fn deliver(&mut self, src: usize, dst: usize, kind: &str) -> &mut Walk {
        self.take(&format!("deliver {kind} n{src}→n{dst}"), |a| {
            matches!(a, ActorModelAction::Deliver { src: s, dst: d, msg }
                if *s == Id::from(src) && *d == Id::from(dst) && msg.kind() == kind)
        })
    }

    fn crash(&mut self, n: usize) -> &mut Walk {
        self.take(
            "crash",
            |a| matches!(a, ActorModelAction::Crash(id) if *id == Id::from(n)),
        )
    }

    /// n0 wins term 1 with n1's vote.
    fn elect_n0(&mut self) -> &mut Walk {
        self.timeout(0, ModelTimer::Raft(Timer::Election))
            .deliver(0, 1, "RequestVote")
            .deliver(1, 0, "RequestVoteReply")
    }

    fn deliver_where(
        &mut self,
        src: usize,
        dst: usize,
        what: &str,
        pred: impl Fn(&Message<u8>) -> bool,
    ) -> &mut Walk {
        self.take(&format!("deliver {what} n{src}→n{dst}"), |a| {
            matches!(a, ActorModelAction::Deliver { src: s, dst: d, msg }
                if *s == Id::from(src) && *d == Id::from(dst) && pred(msg))
        })
    }

    /// n0 (leader) commits one entry with n1's help: the probe sent on election is answered,
    /// then the entry is replicated.
    fn commit_one(&mut self) -> &mut Walk {
        let with_entry =
            |m: &Message<u8>| matches!(m, Message::AppendEntries(ae) if !ae.entries.is_empty());
        self.timeout(0, ModelTimer::Propose)
            .deliver(0, 1, "AppendEntries")
            .deliver(1, 0, "AppendEntriesReply")
            .deliver_where(0, 1, "AppendEntries with the entry", with_entry)
            .deliver_where(1, 0, "AppendEntriesReply for i1", |m| {
                matches!(m, Message::AppendEntriesReply(r)
                    if matches!(r.result, aver_core::raft::AppendResult::Success { match_index }
                        if match_index.0 == 1))
            })
    }

    fn holds(&self, name: &str) -> bool {
        let p = PROPERTIES.iter().find(|p| p.name == name).unwrap();
        (p.condition)(&self.model, &self.state)
    }
}

fn leader(state: &RaftState, n: usize) -> bool {
    state.actor_states[n].raft.is_leader()
}

#[test]
fn witness_leader_elected() {
    let mut w = Walk::new(RaftModelCfg::deep());
    assert!(!w.holds("leader elected"));
    w.elect_n0();
    assert!(w.holds("leader elected") && leader(&w.state, 0));
    assert_eq!(w.steps, 3);
}

#[test]
fn witness_entry_committed() {
    let mut w = Walk::new(RaftModelCfg::deep());
    w.elect_n0().commit_one();
    assert!(w.holds("entry committed"));
    assert_eq!(w.state.actor_states[0].raft.commit_index().0, 1);
    assert_eq!(w.steps, 8);
}

#[test]
fn witness_snapshot_installed() {
    let mut w = Walk::new(RaftModelCfg::deep());
    w.elect_n0().commit_one();
    // n0 compacts its applied entry; n2 never answered the probe, so the next heartbeat
    // sends it the snapshot.
    w.timeout(0, ModelTimer::Compact)
        .timeout(0, ModelTimer::Raft(Timer::Heartbeat))
        .deliver(0, 2, "InstallSnapshot");
    assert!(w.holds("snapshot installed"));
    assert_eq!(w.steps, 11);
    let n2 = &w.state.actor_states[2].raft;
    assert_eq!((n2.log().base().index.0, n2.commit_index().0), (1, 1));
}

#[test]
fn witness_new_leader_after_crash() {
    let mut w = Walk::new(RaftModelCfg::deep());
    w.elect_n0().crash(0);
    w.timeout(1, ModelTimer::Raft(Timer::Election))
        .deliver(1, 2, "RequestVote")
        .deliver(2, 1, "RequestVoteReply");
    assert!(w.holds("new leader after crash") && leader(&w.state, 1));
    assert_eq!(w.steps, 7);
}

// ---- the exhaustive CI configuration ---------------------------------------------------------

/// Runs `cfg` exhaustively (DFS) and asserts that no safety property has a counterexample and
/// that every `sometimes` property the bounds can reach has an example. Returns those examples
/// as `(property, path length)` and the unique state count. With one thread both are
/// deterministic, so tests pin them: a change means the state space changed — review why
/// before updating a number.
fn exhaustive(cfg: RaftModelCfg, threads: usize) -> (Vec<(&'static str, usize)>, usize) {
    let start = Instant::now();
    let checker = cfg
        .clone()
        .into_model()
        .checker()
        .threads(threads)
        .spawn_dfs()
        .join();
    println!(
        "{cfg:?}: unique={} total={} depth={} in {:.1}s",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        start.elapsed().as_secs_f64()
    );
    for name in raft::safety_properties() {
        checker.assert_no_discovery(name);
    }
    let mut found = Vec::new();
    for p in PROPERTIES {
        if matches!(p.expectation, Expectation::Sometimes) && cfg.can_reach(p.name) {
            let path = checker.discovery(p.name).expect(p.name);
            found.push((p.name, path.into_actions().len()));
        }
    }
    (found, checker.unique_state_count())
}

/// `ci`: terms ≤ 1, logs ≤ 1, snapshots, no crash. "New leader after crash" needs a crash and
/// a second term (see `ci_reelect` and the witness at the deep bounds).
#[test]
fn ci_config_is_exhaustive_and_safe() {
    let (found, unique) = exhaustive(RaftModelCfg::ci(), 1);
    let expected = [
        ("leader elected", 5),
        ("entry committed", 11),
        ("snapshot installed", 14),
    ];
    assert_eq!(found, expected);
    assert_eq!(unique, 232_988);
}

/// `ci_crash`: as `ci` with one crash and recovery at a time, without snapshots.
#[test]
fn ci_crash_config_is_exhaustive_and_safe() {
    let (found, unique) = exhaustive(RaftModelCfg::ci_crash(), 1);
    assert_eq!(found, [("leader elected", 4), ("entry committed", 15)]);
    assert_eq!(unique, 366_876);
}

/// `ci_reelect`: two terms of elections (no entries) with one crash: reaches a new leader after
/// a crash exhaustively.
#[test]
fn ci_reelect_config_is_exhaustive_and_safe() {
    let (found, unique) = exhaustive(RaftModelCfg::ci_reelect(), 1);
    assert_eq!(
        found,
        [("leader elected", 4), ("new leader after crash", 17)]
    );
    assert_eq!(unique, 237_032);
}

/// `ci_crash_snapshots`: crashes and snapshots together. Two threads keep it near 45 s, so the
/// discovery paths are not pinned (thread interleaving picks them), only that they exist; the
/// unique count of a complete search does not depend on threads.
#[test]
fn ci_crash_snapshots_config_is_exhaustive_and_safe() {
    let (found, unique) = exhaustive(RaftModelCfg::ci_crash_snapshots(), 2);
    let names: Vec<_> = found.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["leader elected", "entry committed", "snapshot installed"]
    );
    assert_eq!(unique, 3_304_512);
}

// ---- dead-message collection -----------------------------------------------------------------

fn hash_of(value: &impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Everything of a state but the network — what the servers are, hold on disk, have armed,
/// and whether they are down — hashed.
fn actors_of(s: &RaftState) -> u64 {
    hash_of(&(
        &s.actor_states,
        &s.actor_storages,
        &s.timers_set,
        &s.crashed,
    ))
}

/// Every state reachable within the bounds (plain BFS over 64-bit fingerprints): how many,
/// and their [`actors_of`].
fn reachable_actors(model: &RaftModel) -> (usize, std::collections::HashSet<u64>) {
    use std::collections::{HashSet, VecDeque};
    let mut seen = HashSet::new();
    let mut projected = HashSet::new();
    let mut queue: VecDeque<RaftState> = VecDeque::new();
    for s in model.init_states() {
        if seen.insert(hash_of(&s)) {
            queue.push_back(s);
        }
    }
    let mut actions = Vec::new();
    while let Some(s) = queue.pop_front() {
        projected.insert(actors_of(&s));
        actions.clear();
        model.actions(&s, &mut actions);
        for a in actions.drain(..) {
            let next = model.next_state(&s, a);
            if let Some(n) = next.filter(|n| model.within_boundary(n) && seen.insert(hash_of(n))) {
                queue.push_back(n);
            }
        }
    }
    (seen.len(), projected)
}

/// Collecting dead messages merges states but reaches exactly the same actor states (servers,
/// disks, timers, crashes): compared exhaustively on small configurations, with and without a
/// crash and a seeded bug that makes a disk differ.
#[test]
fn dead_message_collection_preserves_actor_states() {
    let small = RaftModelCfg {
        max_log: 0,
        compaction: false,
        ..RaftModelCfg::ci_crash()
    };
    let cfgs = [
        small.clone(),
        RaftModelCfg {
            max_crashes: 0,
            max_log: 1,
            ..small.clone()
        },
        RaftModelCfg {
            bugs: Bugs::only(Bug::VoteNotPersisted),
            ..small.clone()
        },
    ];
    for cfg in cfgs {
        let with = reachable_actors(&cfg.clone().into_model());
        let without = reachable_actors(
            &RaftModelCfg {
                collect_dead_messages: false,
                ..cfg.clone()
            }
            .into_model(),
        );
        println!(
            "{cfg:?}: {} states with collection, {} without, {} actor states",
            with.0,
            without.0,
            with.1.len()
        );
        assert!(with.0 < without.0, "collection merges states");
        assert!(with.1 == without.1, "the same actor states are reachable");
    }
}

// ---- seeded bugs -----------------------------------------------------------------------------

/// Random walks (60 steps each, fixed seed) at `cfg` with `bug` seeded must violate
/// `expected`; returns (trace length, seconds).
fn catches(bug: Bug, cfg: RaftModelCfg, expected: &str) -> (usize, f64) {
    let cfg = RaftModelCfg {
        bugs: Bugs::only(bug),
        ..cfg
    };
    let model: RaftModel = cfg.into_model();
    let start = Instant::now();
    let report = raft::random_walks(&model, 1_000_000, 60, 0x9E37_79B9_7F4A_7C15);
    let secs = start.elapsed().as_secs_f64();
    let found: Vec<_> = PROPERTIES
        .iter()
        .zip(&report.discoveries)
        .filter(|(p, d)| matches!(p.expectation, Expectation::Always) && d.is_some())
        .map(|(p, d)| (p.name, d.as_ref().unwrap().len() - 1))
        .collect();
    println!("{bug}: {found:?} after {} walks, {secs:.2}s", report.runs);
    let (_, len) = found
        .iter()
        .find(|(n, _)| n.starts_with(expected))
        .unwrap_or_else(|| panic!("{bug}: expected {expected}, found {found:?}"));
    (*len, secs)
}

#[test]
fn bug_figure8_commit() {
    catches(Bug::Figure8Commit, RaftModelCfg::deep(), "RAFT-6");
}

/// Needs three terms and two-entry logs; crashes and snapshots only dilute the walks.
#[test]
fn bug_up_to_date_by_length() {
    let cfg = RaftModelCfg {
        max_crashes: 0,
        compaction: false,
        ..RaftModelCfg::deep()
    };
    catches(Bug::UpToDateByLength, cfg, "RAFT-4");
}

#[test]
fn bug_vote_not_persisted() {
    catches(Bug::VoteNotPersisted, RaftModelCfg::deep(), "RAFT-1");
}

/// Needs a leader to compact, a follower to catch up past the snapshot, and the stale
/// InstallSnapshot redelivered.
#[test]
fn bug_install_old_snapshot() {
    catches(Bug::InstallOldSnapshot, RaftModelCfg::deep(), "RAFT-10");
}

/// The walks now meet RAFT-4 first (the follower that lost a committed entry is elected);
/// exhaustive BFS (below) still finds the RAFT-7 trace.
#[test]
fn bug_truncate_on_match() {
    catches(Bug::TruncateOnMatch, RaftModelCfg::deep(), "RAFT-4");
}

#[test]
fn bug_accept_stale_term() {
    catches(Bug::AcceptStaleTerm, RaftModelCfg::deep(), "RAFT-2");
}

#[test]
fn bug_leader_ignores_higher_term() {
    catches(Bug::LeaderIgnoresHigherTerm, RaftModelCfg::deep(), "RAFT-1");
}

#[test]
fn bug_vote_twice() {
    catches(Bug::VoteTwice, RaftModelCfg::deep(), "RAFT-10");
}

#[test]
fn bug_commit_without_quorum() {
    catches(Bug::CommitWithoutQuorum, RaftModelCfg::deep(), "RAFT-6");
}

#[test]
fn bug_keep_conflicting() {
    catches(Bug::KeepConflicting, RaftModelCfg::deep(), "RAFT-7");
}

/// Shallow bugs are also found by exhaustive BFS at small bounds (terms ≤ 2, one crash, no
/// snapshots), with short traces.
#[test]
fn bugs_found_by_exhaustive_bfs() {
    for (bug, expected) in [
        (Bug::VoteNotPersisted, "RAFT-1"),
        (Bug::TruncateOnMatch, "RAFT-7"),
        (Bug::LeaderIgnoresHigherTerm, "RAFT-1"),
        (Bug::VoteTwice, "RAFT-10"),
    ] {
        let cfg = RaftModelCfg {
            max_term: 2,
            max_crashes: 1,
            compaction: false,
            bugs: Bugs::only(bug),
            ..RaftModelCfg::ci()
        };
        let checker = cfg
            .into_model()
            .checker()
            .threads(1)
            .finish_when(HasDiscoveries::AnyFailures)
            .spawn_bfs()
            .join();
        let name = raft::property_named(expected).unwrap();
        let path = checker
            .discovery(name)
            .unwrap_or_else(|| panic!("{bug}: no {name}"));
        println!("{bug}: {name} in {} steps (BFS)", path.into_actions().len());
    }
}
