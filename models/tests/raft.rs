//! The Raft model's pinned numbers: one witness path per `sometimes` property, the exhaustive
//! CI configurations (state counts and every property), and the reductions checked against
//! the unreduced search. Seeded bugs (caught by their consequences) are in `raft_bugs.rs`. Run in release:
//! `cargo test -p aver-models --release`.

// States are set keys here. Their shared parts cache renamed hashes in atomics
// (`state::Hashed`), which neither `Hash` nor `Eq` reads, so the keys never change.
#![allow(clippy::mutable_key_type)]

mod common;

use aver_core::raft::{Bug, Bugs, Message, Timer};
use aver_models::raft::{self, Limits, RaftModelCfg, RaftState, symmetry};
use aver_models::search::{self, Hooks, Key, Options, Order, Stats};
use common::{Walk, exhaustive};
use stateright::Model;
use std::collections::HashSet;

// ---- witness paths ---------------------------------------------------------------------------

#[test]
fn witness_leader_elected() {
    let mut w = Walk::new(RaftModelCfg::deep());
    assert!(!w.holds("leader elected"));
    w.elect(0, 1);
    assert!(w.holds("leader elected") && w.leader(0));
    assert_eq!(w.steps, 3);
}

#[test]
fn witness_entry_committed_and_applied_by_a_follower() {
    let mut w = Walk::new(RaftModelCfg::deep());
    w.elect(0, 1).commit_one(0, 1);
    assert!(w.holds("entry committed"));
    assert_eq!(w.state.servers[0].raft.commit_index().0, 1);
    assert_eq!(w.steps, 8);
    // The next heartbeat carries the commit index; the follower applies.
    w.timeout(0, Timer::Heartbeat)
        .deliver(0, 1, "AppendEntries");
    assert!(w.holds("follower applies an entry"));
    assert_eq!(w.state.servers[1].service.len(), 1);
}

/// n0 leads term 1 and appends an entry nobody else gets; n1 wins term 2 with n2's vote and
/// replicates its own entry at the same index to n0, which must drop its own.
#[test]
fn witness_follower_truncates_a_conflicting_entry() {
    let mut w = Walk::new(RaftModelCfg::deep());
    w.elect(0, 1).propose(0);
    w.elect(1, 2).propose(1);
    // n1's probe makes n0 a follower of term 2; its answer lets n1 send the entry.
    w.deliver_where(
        1,
        0,
        "the probe",
        |m| matches!(m, Message::AppendEntries(a) if a.term.0 == 2),
    )
    .deliver(0, 1, "AppendEntriesReply")
    .deliver_where(
        1,
        0,
        "AppendEntries with the entry",
        |m| matches!(m, Message::AppendEntries(a) if !a.entries.is_empty()),
    );
    assert!(w.holds("follower truncates a conflicting entry"));
    assert_eq!(w.steps, 11);
}

/// n0 appends two entries in term 1, restarts and is elected again in term 2 with n1's
/// vote; its first probe to n1 (empty log) is rejected with the hint "my log ends at 0", and
/// it backs up two entries at once.
#[test]
fn witness_leader_backs_up_by_the_conflict_hint() {
    let mut w = Walk::new(RaftModelCfg::deep());
    w.elect(0, 1).propose(0).propose(0).crash(0).recover(0);
    w.elect(0, 1);
    w.deliver_where(
        0,
        1,
        "the probe of term 2",
        |m| matches!(m, Message::AppendEntries(a) if a.term.0 == 2),
    )
    .deliver(1, 0, "AppendEntriesReply");
    assert!(w.holds("leader backs up by the conflict hint"));
    assert_eq!(w.steps, 11);
}

/// As above, then n0 appends an entry of term 2 and commits both: the term-1 entry is
/// committed by counting the term-2 one (Figure 8's rule, done right).
#[test]
fn witness_entry_of_an_earlier_term_committed() {
    let mut w = Walk::new(RaftModelCfg::deep());
    w.elect(0, 1).propose(0).crash(0).recover(0);
    w.elect(0, 1).propose(0);
    w.deliver_where(
        0,
        1,
        "the probe of term 2",
        |m| matches!(m, Message::AppendEntries(a) if a.term.0 == 2),
    )
    .deliver(1, 0, "AppendEntriesReply")
    .deliver_where(
        0,
        1,
        "AppendEntries with both entries",
        |m| matches!(m, Message::AppendEntries(a) if a.entries.len() == 2),
    )
    .deliver_where(1, 0, "AppendEntriesReply for i2", |m| {
        matches!(m, Message::AppendEntriesReply(r)
                if matches!(r.result, aver_core::raft::AppendResult::Success { match_index }
                    if match_index.0 == 2))
    });
    assert!(w.holds("entry of an earlier term committed"));
    assert_eq!(w.state.servers[0].raft.commit_index().0, 2);
}

#[test]
fn witness_follower_installs_a_snapshot() {
    let mut w = Walk::new(RaftModelCfg::deep());
    w.elect(0, 1).commit_one(0, 1);
    // n0 compacts its applied entry; n2 never answered the probe, so the next heartbeat
    // sends it the snapshot.
    w.compact(0)
        .timeout(0, Timer::Heartbeat)
        .deliver(0, 2, "InstallSnapshot");
    assert!(w.holds("follower installs a snapshot"));
    assert_eq!(w.steps, 11);
    let n2 = &w.state.servers[2];
    assert_eq!(
        (n2.raft.log().base().index.0, n2.raft.commit_index().0),
        (1, 1)
    );
    assert_eq!(n2.service.len(), 1);
}

#[test]
fn witness_new_leader_after_crash() {
    let mut w = Walk::new(RaftModelCfg::deep());
    w.elect(0, 1).crash(0).elect(1, 2);
    assert!(w.holds("new leader after crash") && w.leader(1));
    assert_eq!(w.steps, 7);
}

// ---- the exhaustive CI configurations --------------------------------------------------------

/// `ci`: terms ≤ 1, logs ≤ 1, snapshots, no crash.
#[test]
fn ci_config_is_exhaustive_and_safe() {
    let (found, unique) = exhaustive(RaftModelCfg::ci(), 1);
    assert_eq!(
        found,
        [
            "leader elected",
            "entry committed",
            "follower applies an entry",
            "follower installs a snapshot"
        ]
    );
    // 1,507 before main's ReadIndex fields (read_ctx, read_ack) changed message and progress
    // hashes: the unordered network is sorted by hash, so DFS meets states in another order
    // and covering keeps a different (equally complete) set.
    // 1,437 before the signature of a server (symmetry.rs) included `crashed_leading`: servers
    // are ordered by signature hash, so the DFS meets states in another order (no crash here).
    // 1,435 before messages whose deliveries have the same effect forever counted as one
    // (`merge_equivalent_messages`), 1,437 before AppendEntries a follower already holds
    // joined those classes; 1,163 before servers forgot the leader hint and leaders passed
    // over a conflict at the recorded match (stale: the follower matches there).
    assert_eq!(unique, 517);
}

/// `ci_crash`: terms ≤ 1, logs ≤ 1, one crash with recovery, no snapshots.
#[test]
fn ci_crash_config_is_exhaustive_and_safe() {
    let (found, unique) = exhaustive(RaftModelCfg::ci_crash(), 1);
    assert!(found.contains(&"follower applies an entry"), "{found:?}");
    // 6,976 before a crash forgot the server's memory (`forget_on_crash`); 3,860 before
    // `merge_equivalent_messages` classed AppendEntries a follower already holds; 2,462
    // before a crash and its recovery became one step (`restart_at_crash`), 1,110 before
    // the leader hint was forgotten and a conflict at the recorded match passed over.
    assert_eq!(unique, 233);
}

/// `ci_reelect`: terms ≤ 2, empty logs, one crash: a leader crashes and another is elected.
#[test]
fn ci_reelect_config_is_exhaustive_and_safe() {
    let (found, unique) = exhaustive(RaftModelCfg::ci_reelect(), 1);
    assert!(found.contains(&"new leader after crash"), "{found:?}");
    // 5,635 before `forget_on_crash`; 3,608 before requests that cannot matter within the
    // term bound were collected (`collect_stale_requests`, checked against the unreduced
    // search in `stale_request_collection_keeps_every_server_state`), and still 3,608 with
    // that reduction off; 2,231 before `merge_equivalent_messages`, 2,139 before the ghost
    // record of the terms led (RAFT-1 over the whole run), which tells apart runs in which
    // a term was led from runs in which it was not (with both, 5,064 without
    // `collect_stale_requests`); 2,919 before a crash and its recovery became one step
    // (`restart_at_crash`), 5,064 then without `collect_stale_requests`; 1,146 before the
    // leader hint was forgotten and a conflict at the recorded match passed over:
    assert_eq!(unique, 618);
    let keeping = RaftModelCfg {
        collect_stale_requests: false,
        ..RaftModelCfg::ci_reelect()
    };
    assert_eq!(exhaustive(keeping, 1).1, 962);
}

/// `ci_crash_snapshots`: terms ≤ 1, logs ≤ 1, one crash, snapshots: restart from a snapshot.
#[test]
fn ci_crash_snapshots_config_is_exhaustive_and_safe() {
    let (found, unique) = exhaustive(RaftModelCfg::ci_crash_snapshots(), 1);
    assert!(found.contains(&"follower installs a snapshot"), "{found:?}");
    // 38,177 before `forget_on_crash`; 20,374 before `merge_equivalent_messages`, 20,375
    // before AppendEntries a follower already holds joined its classes; 11,172 before a
    // crash and its recovery became one step (`restart_at_crash`), 4,935 before the leader
    // hint was forgotten and a conflict at the recorded match passed over.
    assert_eq!(unique, 700);
}

/// `ci_terms2`: a leader change with log entries (terms ≤ 2, logs ≤ 1, one crash): a
/// follower truncates a conflicting entry, and every safety property holds exhaustively
/// (under half a second of CPU).
#[test]
fn ci_terms2_config_is_exhaustive_and_safe() {
    let (found, unique) = exhaustive(RaftModelCfg::ci_terms2(), 1);
    assert!(
        found.contains(&"follower truncates a conflicting entry"),
        "{found:?}"
    );
    assert!(found.contains(&"new leader after crash"), "{found:?}");
    // 325,441 before `forget_on_crash`; 187,861 before `collect_stale_requests` (the same
    // search with `--keep-stale-requests` still keeps 187,861); 74,462 before
    // `merge_equivalent_messages`, 51,134 before it classed AppendEntries a follower holds;
    // 45,043 before a crash and its recovery became one step (`restart_at_crash`); 19,191
    // before the leader hint was forgotten (8,543 after), and a conflict at the recorded
    // match passed over.
    assert_eq!(unique, 6_393);
}

/// `ci_terms2_snapshots`: `ci_terms2` with snapshots (terms ≤ 2, logs ≤ 1, one crash): a
/// follower installs a snapshot and truncates a conflicting entry in the same search, and
/// every safety property holds exhaustively (about a second of CPU).
#[test]
fn ci_terms2_snapshots_config_is_exhaustive_and_safe() {
    let (found, unique) = exhaustive(RaftModelCfg::ci_terms2_snapshots(), 1);
    for p in [
        "follower truncates a conflicting entry",
        "follower installs a snapshot",
        "new leader after crash",
    ] {
        assert!(found.contains(&p), "{p}: {found:?}");
    }
    // 340,774 before `merge_equivalent_messages`, 215,471 before it classed AppendEntries a
    // follower already holds; 172,387 before a crash and its recovery became one step
    // (`restart_at_crash`); 76,194 before the leader hint was forgotten (33,908 after), and
    // a conflict at the recorded match passed over.
    assert_eq!(unique, 19_701);
}

/// The deep target: terms ≤ 2, logs ≤ 2, snapshots, one crash. Every kind of progress has an
/// example and every safety property holds exhaustively (1,603,774 states kept by two
/// threads, about 90 s wall and 175 s of CPU). `aver check` runs it; so does this test, for
/// nightly runs: `cargo test -p aver-models --release --test raft terms2_logs2 -- --ignored
/// --nocapture`.
#[test]
#[ignore = "175 s of CPU; aver check runs this configuration"]
fn terms2_logs2_config_is_exhaustive_and_safe() {
    let (found, unique) = exhaustive(RaftModelCfg::terms2_logs2(), 2);
    for p in [
        "follower truncates a conflicting entry",
        "leader backs up by the conflict hint",
        "entry of an earlier term committed",
        "follower installs a snapshot",
        "new leader after crash",
    ] {
        assert!(found.contains(&p), "{p}: {found:?}");
    }
    println!("{unique} states kept");
}

// ---- reductions against the unreduced search -------------------------------------------------

/// Every state reachable within the bounds, by plain BFS over exact states (no reduction of
/// the engine's, none of the model's but what `cfg` keeps on).
fn reachable(cfg: &RaftModelCfg) -> Vec<RaftState> {
    let model = cfg.clone().into_model();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut queue: std::collections::VecDeque<RaftState> = model.init_states().into();
    let mut actions = Vec::new();
    while let Some(s) = queue.pop_front() {
        if !seen.insert(s.clone()) {
            continue;
        }
        actions.clear();
        model.actions(&s, &mut actions);
        for a in actions.drain(..) {
            if let Some(n) = model.next_state(&s, a).filter(|n| model.within_boundary(n)) {
                queue.push_back(n);
            }
        }
        out.push(s);
    }
    out
}

/// The states the engine keeps (expands) with `cfg`'s reductions.
fn explored(cfg: &RaftModelCfg) -> (Vec<RaftState>, search::Found) {
    let model = cfg.clone().into_model();
    let kept = std::sync::Mutex::new(Vec::new());
    let record = |s: &RaftState| kept.lock().unwrap().push(s.clone());
    let base = symmetry::hooks(&model);
    let hooks = Hooks {
        key: base.key,
        pool_growth: base.pool_growth,
        on_state: Some(&record),
    };
    let options = Options {
        threads: 1,
        order: Order::Dfs,
        stop_at_failure: false,
        saturate: true,
    };
    let found = search::search(&model, hooks, options, &Stats::default());
    (kept.into_inner().unwrap(), found)
}

/// What the properties look at: the servers (cores, disks, timers, services, up or down) and
/// the apply record — everything but the messages in flight — named canonically.
fn canonical_servers(s: &RaftState) -> u64 {
    symmetry::canonical(s, true).1.core
}

/// The engine's verdicts: which properties have a discovery in a complete search.
fn verdicts(cfg: &RaftModelCfg, found: &search::Found) -> Vec<(&'static str, bool)> {
    assert!(found.complete);
    let model = cfg.clone().into_model();
    model
        .properties()
        .iter()
        .zip(&found.discoveries)
        .map(|(p, d)| (p.name, d.is_some()))
        .collect()
}

/// Every permutation of `0..n`.
fn permutations(n: u32) -> Vec<Vec<u32>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for at in 0..=p.len() {
            let mut q = p.clone();
            q.insert(at, n - 1);
            out.push(q);
        }
    }
    out
}

fn small_configs() -> Vec<RaftModelCfg> {
    let base = RaftModelCfg {
        max_log: 1,
        compaction: false,
        ..RaftModelCfg::ci()
    };
    vec![
        base.clone(),
        RaftModelCfg {
            max_term: 2,
            max_log: 0,
            ..base.clone()
        },
        RaftModelCfg {
            max_log: 0,
            max_crashes: 1,
            ..base.clone()
        },
        RaftModelCfg {
            max_log: 0,
            max_crashes: 1,
            bugs: Bugs::only(Bug::VoteNotPersisted),
            ..base.clone()
        },
        RaftModelCfg {
            servers: 2,
            max_term: 2,
            max_crashes: 1,
            compaction: true,
            ..base.clone()
        },
    ]
}

/// Symmetry reduction keeps one state per renaming class and loses none: the canonical forms
/// of every reachable state are exactly the canonical forms of the states it keeps, and every
/// property has the same verdict (compared exhaustively on small configurations, with a crash
/// and a seeded bug whose disks differ from memory).
#[test]
fn symmetry_keeps_every_state_up_to_renaming() {
    for cfg in small_configs() {
        let plain = RaftModelCfg {
            symmetry: false,
            covering: false,
            ..cfg.clone()
        };
        let all = reachable(&plain);
        let reduced_cfg = RaftModelCfg {
            covering: false,
            ..cfg.clone()
        };
        let (kept, found) = explored(&reduced_cfg);
        let canon = |s: &RaftState| raft::state::stable_hash(&symmetry::representative(s));
        let want: HashSet<u64> = all.iter().map(canon).collect();
        let got: HashSet<u64> = kept.iter().map(canon).collect();
        println!(
            "{cfg:?}: {} states, {} classes, {} kept",
            all.len(),
            want.len(),
            kept.len()
        );
        assert_eq!(got, want, "the same states up to renaming");
        assert_eq!(kept.len(), want.len(), "one state per class");
        // And each class is exactly the renamings of the state kept for it: renaming the kept
        // states every way gives back every reachable state, and nothing else.
        let perms = permutations(cfg.servers as u32);
        let renamings: HashSet<RaftState> = kept
            .iter()
            .flat_map(|k| perms.iter().map(|p| symmetry::renamed(k, p)))
            .collect();
        let reachable: HashSet<RaftState> = all.iter().cloned().collect();
        assert!(renamings == reachable, "the classes are the renamings");
        assert!(kept.len() < all.len(), "symmetry merges states");
        assert_eq!(
            verdicts(&cfg, &found),
            verdicts(&plain, &explored(&plain).1)
        );
    }
}

/// Covering (with saturation) keeps states whose servers cover every reachable state's: the
/// servers of every reachable state, up to renaming, are exactly those of the kept states,
/// and every property has the same verdict.
#[test]
fn covering_keeps_every_server_state() {
    for cfg in small_configs() {
        let plain = RaftModelCfg {
            covering: false,
            ..cfg.clone()
        };
        let all = reachable(&plain);
        let (kept, found) = explored(&cfg);
        let want: HashSet<u64> = all.iter().map(canonical_servers).collect();
        let got: HashSet<u64> = kept.iter().map(canonical_servers).collect();
        println!(
            "{cfg:?}: {} states, {} server states, {} kept",
            all.len(),
            want.len(),
            kept.len()
        );
        assert_eq!(got, want, "the same server states");
        assert!(kept.len() * 4 < all.len(), "covering reduces");
        assert_eq!(
            verdicts(&cfg, &found),
            verdicts(&plain, &explored(&plain).1)
        );
    }
}

/// The behaviour limits (`aver check raft --max-campaigns N --max-heartbeats N
/// --max-proposals N --one-candidate`) only cut runs: every state reachable with them is, but
/// for the budgets it spent, reachable without them — so a violation found with limits is a
/// violation of the unrestricted model — and they do cut (fewer states). The engine's
/// reductions stay exact under them: the servers of the states it keeps (symmetry, covering)
/// are, up to renaming, those of every reachable state, and the verdicts are those of the
/// unreduced search.
#[test]
fn limits_only_cut_runs_and_the_reductions_stay_exact() {
    let limits = Limits {
        campaigns: Some(2),
        heartbeats: Some(1),
        proposals: Some(1),
        one_candidate: true,
    };
    for cfg in small_configs() {
        let plain = RaftModelCfg {
            symmetry: false,
            covering: false,
            ..cfg.clone()
        };
        let unlimited: HashSet<RaftState> = reachable(&plain).into_iter().collect();
        let limited_plain = RaftModelCfg {
            limits,
            ..plain.clone()
        };
        let all = reachable(&limited_plain);
        let mut cut = HashSet::new();
        for s in &all {
            assert!(
                s.spent.campaigns <= 2 && s.spent.heartbeats <= 1 && s.spent.proposals <= 1,
                "within the budgets: {:?}",
                s.spent
            );
            let mut t = s.clone();
            t.spent = raft::state::Spent::default();
            assert!(
                unlimited.contains(&t),
                "{cfg:?}: a state reachable only with limits"
            );
            cut.insert(t);
        }
        println!(
            "{cfg:?}: {} states, {} with limits ({} without the budgets)",
            unlimited.len(),
            all.len(),
            cut.len()
        );
        assert!(cut.len() < unlimited.len(), "the limits cut runs");
        let limited = RaftModelCfg { limits, ..cfg };
        let (kept, found) = explored(&limited);
        let want: HashSet<u64> = all.iter().map(canonical_servers).collect();
        let got: HashSet<u64> = kept.iter().map(canonical_servers).collect();
        assert_eq!(got, want, "the same server states up to renaming");
        assert_eq!(
            verdicts(&limited, &found),
            verdicts(&limited_plain, &explored(&limited_plain).1)
        );
    }
}

/// A collection of messages (`with` on, `without` off, no other reduction) merges states but
/// reaches exactly the same server states and apply streams.
fn assert_collection_keeps_server_states(
    cfg: &RaftModelCfg,
    with: &RaftModelCfg,
    without: &RaftModelCfg,
) {
    let (with, without) = (reachable(with), reachable(without));
    let servers = |s: &RaftState| raft::state::stable_hash(&(&s.servers, &s.applied));
    let a: HashSet<u64> = with.iter().map(servers).collect();
    let b: HashSet<u64> = without.iter().map(servers).collect();
    println!(
        "{cfg:?}: {} states with collection, {} without",
        with.len(),
        without.len()
    );
    assert!(with.len() < without.len(), "collection merges states");
    assert_eq!(a, b, "the same server states");
}

/// Dead-message collection merges states but reaches exactly the same server states.
#[test]
fn dead_message_collection_keeps_every_server_state() {
    for cfg in small_configs().into_iter().skip(1) {
        let plain = RaftModelCfg {
            symmetry: false,
            covering: false,
            ..cfg.clone()
        };
        let without = RaftModelCfg {
            collect_dead_messages: false,
            ..plain.clone()
        };
        assert_collection_keeps_server_states(&cfg, &plain, &without);
    }
}

/// Collecting requests that can have no effect within the term bound (stale requests from
/// a server at the bound, RequestVotes at the bound to a server that voted for another)
/// merges states but reaches exactly the same server states, with the same verdicts: on the
/// small configurations with two terms (one with a crash and snapshots) and on two terms
/// under a seeded bug the reduction stays on for (leader-ignores-higher-term, whose two
/// leaders of one term the search must still find), each compared with the unreduced search.
#[test]
fn stale_request_collection_keeps_every_server_state() {
    let mut cfgs: Vec<RaftModelCfg> = small_configs()
        .into_iter()
        .filter(|c| c.max_term >= 2)
        .collect();
    cfgs.push(RaftModelCfg {
        bugs: Bugs::only(Bug::LeaderIgnoresHigherTerm),
        ..cfgs[0].clone()
    });
    for cfg in cfgs {
        let plain = RaftModelCfg {
            symmetry: false,
            covering: false,
            ..cfg.clone()
        };
        let keeping = RaftModelCfg {
            collect_stale_requests: false,
            ..plain.clone()
        };
        assert_collection_keeps_server_states(&cfg, &plain, &keeping);
        let reduced = verdicts(&cfg, &explored(&cfg).1);
        let unreduced = RaftModelCfg {
            collect_stale_requests: false,
            ..cfg.clone()
        };
        assert_eq!(reduced, verdicts(&unreduced, &explored(&unreduced).1));
        if cfg.bugs != Bugs::NONE {
            assert!(reduced.contains(&("RAFT-1 Election Safety", true)));
        }
    }
}

/// Counting messages whose deliveries have the same effect forever as one
/// (`merge_equivalent_messages`: stale requests of one kind from one sender, replies that
/// can only announce a term their receiver will never lead, acknowledgments a leader already
/// has) merges states but reaches exactly the same server states, up to renaming, with the
/// same verdicts: on the small configurations with two terms (one with a crash and
/// snapshots) and on `ci_terms2` (three servers, two terms, an entry, a crash), each
/// compared with the same search keeping every message distinct. (A configuration may keep
/// a few more states merging: skipping a class's other members changes the order in which
/// the DFS meets states, and with it what covering keeps; in all they are fewer.)
#[test]
fn equivalent_message_merging_keeps_every_server_state() {
    let mut totals = (0, 0);
    let mut cfgs: Vec<RaftModelCfg> = small_configs()
        .into_iter()
        .filter(|c| c.max_term >= 2 && c.bugs == Bugs::NONE)
        .collect();
    cfgs.push(RaftModelCfg::ci_terms2());
    for cfg in cfgs {
        let keeping = RaftModelCfg {
            merge_equivalent_messages: false,
            ..cfg.clone()
        };
        let servers = |kept: &[RaftState]| -> HashSet<u64> {
            kept.iter()
                .map(|s| {
                    // Named by the servers alone (the least core), whatever the pool.
                    let r = symmetry::canonical(s, true).0;
                    raft::state::stable_hash(&(&r.servers, &r.applied))
                })
                .collect()
        };
        let (merged, found) = explored(&cfg);
        let (distinct, found_keeping) = explored(&keeping);
        println!(
            "{cfg:?}: {} states merging, {} keeping",
            merged.len(),
            distinct.len()
        );
        totals = (totals.0 + merged.len(), totals.1 + distinct.len());
        let (a, b) = (servers(&merged), servers(&distinct));
        let (only_merged, only_keeping) = (a.difference(&b).count(), b.difference(&a).count());
        assert_eq!(
            (only_merged, only_keeping),
            (0, 0),
            "the same server states"
        );
        assert_eq!(verdicts(&cfg, &found), verdicts(&keeping, &found_keeping));
    }
    assert!(totals.0 < totals.1, "merging merges states: {totals:?}");
}

/// A reduction of the model is exact: with it (`cfg`, no reduction of the engine's) and without
/// it (`off(cfg)`), the reachable states are the same once each side is mapped (`on_side` for
/// the states with it, `off_side` for those without, which gets the model without it), and
/// every property has the same verdict (with the engine's reductions on both sides). Returns
/// the states reached with it, and how many were reached without it.
fn assert_reduction_exact(
    cfg: &RaftModelCfg,
    off: impl Fn(RaftModelCfg) -> RaftModelCfg,
    on_side: impl Fn(&RaftState) -> RaftState,
    off_side: impl Fn(&raft::RaftModel, &RaftState) -> RaftState,
    what: &str,
) -> (Vec<RaftState>, usize) {
    let plain = RaftModelCfg {
        symmetry: false,
        covering: false,
        ..cfg.clone()
    };
    let plain_off = off(plain.clone());
    let model_off = plain_off.clone().into_model();
    let with = reachable(&plain);
    let without = reachable(&plain_off);
    let a: HashSet<RaftState> = with.iter().map(&on_side).collect();
    let b: HashSet<RaftState> = without.iter().map(|s| off_side(&model_off, s)).collect();
    println!(
        "{cfg:?}: {} states with {what}, {} without",
        with.len(),
        without.len()
    );
    let (only_a, only_b) = (a.difference(&b).count(), b.difference(&a).count());
    assert_eq!((only_a, only_b), (0, 0), "the same states, {what} aside");
    let cfg_off = off(cfg.clone());
    assert_eq!(
        verdicts(cfg, &explored(cfg).1),
        verdicts(&cfg_off, &explored(&cfg_off).1)
    );
    (with, without.len())
}

/// `s` with every server's `crashed_leading` ghost cleared.
fn unflagged(s: &RaftState) -> RaftState {
    let mut s = s.clone();
    for server in &mut s.servers {
        if server.crashed_leading {
            let mut up = (***server).clone();
            up.crashed_leading = false;
            *server = std::sync::Arc::new(raft::state::Hashed::new(up));
        }
    }
    s
}

/// Forgetting a crashed server's memory at the crash merges states but loses none: the
/// reachable states without the reduction, each with its down servers' memory forgotten, are
/// exactly the reachable states with it, and every property has the same verdict (small
/// configurations with a crash, one with a seeded bug whose disk differs from memory).
#[test]
fn forgetting_on_crash_keeps_every_state_up_to_lost_memory() {
    for cfg in small_configs().into_iter().filter(|c| c.max_crashes > 0) {
        // Forgetting is about down servers, so crash and recovery are two steps here.
        let cfg = RaftModelCfg {
            restart_at_crash: false,
            ..cfg
        };
        let (with, without) = assert_reduction_exact(
            &cfg,
            |c| RaftModelCfg {
                forget_on_crash: false,
                ..c
            },
            RaftState::clone,
            |model, s| model.forgotten(s),
            "a crashed server's memory forgotten",
        );
        assert!(with.len() < without, "forgetting merges states");
    }
}

/// Restarting a server at its crash, in one step, merges states but loses none: the
/// reachable states with crash and recovery as two steps, each with its down servers
/// restarted, are exactly the reachable states with one `Restart` step — up to the ghost
/// `crashed_leading`, which marks a restarted leader until its next step with the reduction
/// and a down one without — and every property has the same verdict (small configurations
/// with a crash, one with a seeded bug whose disk differs from memory, one with two servers
/// and snapshots).
#[test]
fn restarting_at_crash_keeps_every_state_up_to_downtime() {
    for cfg in small_configs().into_iter().filter(|c| c.max_crashes > 0) {
        let (with, without) = assert_reduction_exact(
            &cfg,
            |c| RaftModelCfg {
                restart_at_crash: false,
                ..c
            },
            unflagged,
            |model, s| unflagged(&model.restarted(s)),
            "a crash and its recovery as one step",
        );
        assert!(with.iter().all(|s| s.down() == 0), "no server is ever down");
        assert!(with.len() < without, "restarting merges states");
    }
}

/// Forgetting the leader hint merges states but loses none: the reachable states keeping it,
/// each with every hint forgotten, are exactly the reachable states forgetting it, and every
/// property has the same verdict (every small configuration: the hint is set by elections,
/// AppendEntries, snapshots and restarts). Up to the ghost `crashed_leading` too: it lasts
/// until the restarted server's next step that changes it, and a step that only learns a
/// leader changes nothing once the hint is forgotten.
#[test]
fn forgetting_the_leader_hint_keeps_every_state_up_to_the_hint() {
    let forgotten = |s: &RaftState| {
        let mut s = unflagged(s);
        for server in &mut s.servers {
            let mut up = (***server).clone();
            up.raft.forget_leader_hint();
            *server = std::sync::Arc::new(raft::state::Hashed::new(up));
        }
        s
    };
    let mut totals = (0, 0);
    for cfg in small_configs() {
        let (with, without) = assert_reduction_exact(
            &cfg,
            |c| RaftModelCfg {
                forget_leader_hint: false,
                ..c
            },
            forgotten,
            |_, s| forgotten(s),
            "the leader hint forgotten",
        );
        // One term and no crash: every follower that hears from the leader also learns
        // something else, so there is nothing to merge there; the others merge.
        totals = (totals.0 + with.len(), totals.1 + without);
    }
    assert!(totals.0 < totals.1, "forgetting merges states: {totals:?}");
}

/// The canonical key assembled from cached renamed hashes (`symmetry::canonical_key`, what
/// the search uses) is bit for bit the key of the canonical representative built by renaming
/// whole states (`symmetry::canonical`), on every reachable state of the small configurations
/// (with and without covering's split key; a crash, with and without a down interval, a
/// seeded bug whose disk differs, two
/// servers) and along a walk at the deep bounds with snapshots and a crash.
#[test]
fn assembled_keys_equal_renamed_states_keys() {
    let mut states = Vec::new();
    for cfg in small_configs() {
        // Down servers too: crash and recovery as two steps where there are crashes.
        let variants: &[bool] = if cfg.max_crashes > 0 {
            &[true, false]
        } else {
            &[true]
        };
        for &restart_at_crash in variants {
            states.extend(reachable(&RaftModelCfg {
                symmetry: false,
                covering: false,
                restart_at_crash,
                ..cfg.clone()
            }));
        }
    }
    // A down server too: crash and recovery as two steps.
    let mut w = Walk::new(RaftModelCfg {
        restart_at_crash: false,
        ..RaftModelCfg::deep()
    });
    w.elect(0, 1).commit_one(0, 1).compact(0).crash(2);
    assert!(w.state.servers[2].down);
    states.push(w.state.clone());
    for s in &states {
        for covering in [false, true] {
            let want = symmetry::canonical(s, covering).1;
            // Twice: the second time every renamed hash comes from the cache.
            assert_eq!(symmetry::canonical_key(s, covering), want, "{s:?}");
            assert_eq!(symmetry::canonical_key(s, covering), want, "{s:?}");
        }
    }
    assert!(states.len() > 10_000, "{} states", states.len());
}

/// Keys never mix a state's naming: renaming a state by any permutation gives the same key.
#[test]
fn keys_are_invariant_under_renaming() {
    let cfg = RaftModelCfg {
        restart_at_crash: false,
        ..RaftModelCfg::deep()
    };
    let model = cfg.clone().into_model();
    let mut w = Walk::new(cfg);
    w.elect(0, 1).commit_one(0, 1).compact(0).crash(2);
    let key: Key = symmetry::key(&model, &w.state);
    for perm in [[1, 2, 0], [2, 1, 0], [0, 2, 1], [1, 0, 2], [2, 0, 1]] {
        let renamed = symmetry::renamed(&w.state, &perm);
        assert_ne!(renamed, w.state);
        assert_eq!(symmetry::key(&model, &renamed), key, "{perm:?}");
    }
}

/// A correct core survives random walks at the deep bounds (3 servers, terms ≤ 3, logs ≤ 2,
/// one crash, snapshots) with every property checked at every step. The nightly run is 100,000
/// walks: `aver check raft --max-term 3 --max-log 2 --crashes 1 --simulate 100000`.
#[test]
fn correct_core_survives_random_walks_at_the_deep_bounds() {
    let model = RaftModelCfg::deep().into_model();
    let report = raft::random_walks(&model, 3_000, 80, 0x5EED);
    for (p, d) in raft::PROPERTIES.iter().zip(&report.discoveries) {
        if p.expectation == stateright::Expectation::Always {
            assert!(
                d.is_none(),
                "{} violated: {:?}",
                p.name,
                d.as_ref().map(|d| d.len())
            );
        }
    }
    assert_eq!(report.runs, 3_000);
}
