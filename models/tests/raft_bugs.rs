//! Every seeded bug is caught by what it breaks for a user: with the servers' own step checks
//! off (`aver check raft --bug NAME --no-step-checks`), only cluster-level properties can fail
//! — RAFT-1 Election Safety, RAFT-3 Log Matching, RAFT-4 Leader Completeness, RAFT-5 State
//! Machine Safety, RAFT-7 Commit Quorum, and the apply streams' RAFT-A1 Apply Order and
//! RAFT-A2 Apply Agreement (specs/invariants.md) — and each bug must violate one of them.
//! Rows of specs/bugs.md ("consequence found"). Run in release:
//! `cargo test -p aver-models --release --test raft_bugs -- --nocapture` prints the figures.

mod common;

use aver_core::raft::{Bug, Bugs, Message, Timer};
use aver_models::raft::{self, Limits, PROPERTIES, RaftModel, RaftModelCfg, symmetry};
use aver_models::search::{self, Options, Order, Stats};
use stateright::Expectation;
use std::time::Instant;

/// What a user loses: the properties that stay checked without the servers' step checks.
const CONSEQUENCES: [&str; 7] = [
    "RAFT-1", "RAFT-3", "RAFT-4", "RAFT-5", "RAFT-7", "RAFT-A1", "RAFT-A2",
];

const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// The model with `bug` seeded into every server and their step checks off.
fn buggy(bug: Bug, cfg: RaftModelCfg) -> RaftModel {
    RaftModelCfg {
        bugs: Bugs::only(bug),
        step_checks: false,
        ..cfg
    }
    .into_model()
}

/// Seeded random walks (≤ 60 steps) of `bug` at `cfg` without step checks, checking the
/// properties `only` names (all when empty), stop at the first violation; it must be one of
/// `expected`, and it must be a consequence. Returns (property, trace length, seconds).
fn consequence(bug: Bug, cfg: RaftModelCfg, only: &[&str], expected: &[&str]) -> (String, usize) {
    let model = buggy(bug, cfg);
    let start = Instant::now();
    let checked = |p: &raft::RaftProperty| {
        !p.step_check && (only.is_empty() || only.iter().any(|o| p.name.starts_with(o)))
    };
    let report = raft::random_walks_checking(&model, 1_000_000, 60, SEED, &checked);
    let secs = start.elapsed().as_secs_f64();
    let (p, path) = PROPERTIES
        .iter()
        .zip(&report.discoveries)
        .find(|(p, d)| p.expectation == Expectation::Always && d.is_some())
        .unwrap_or_else(|| panic!("{bug}: no violation in {} walks", report.runs));
    let len = path.as_ref().expect("found").len() - 1;
    println!(
        "{bug}: {} in {len} steps after {} walks, {secs:.2}s",
        p.name, report.runs
    );
    assert!(!p.step_check, "{bug}: {} is a step check", p.name);
    assert!(
        CONSEQUENCES
            .iter()
            .any(|c| p.name.starts_with(&format!("{c} ")))
            || p.name == "no panic",
        "{bug}: {} is not a cluster-level property",
        p.name
    );
    assert!(
        expected
            .iter()
            .any(|e| p.name.starts_with(&format!("{e} "))),
        "{bug}: expected one of {expected:?}, found {}",
        p.name
    );
    (p.name.to_string(), len)
}

/// Exhaustive search (aver's engine, every reduction on, one thread so the run is
/// deterministic) for `bug` at `cfg` without step checks, stopping at the first violated
/// property; it must be one of `expected`, and a consequence. BFS gives the shortest trace.
/// The same search as `aver check raft --bug NAME --no-step-checks --dfs|--bfs --threads 1`
/// with the bounds of `cfg`. Returns (property, trace length).
fn exhaustive_consequence(
    bug: Bug,
    cfg: RaftModelCfg,
    order: Order,
    expected: &[&str],
) -> (String, usize) {
    let model = buggy(bug, cfg);
    let start = Instant::now();
    let options = Options {
        threads: 1,
        order,
        stop_at_failure: true,
        saturate: order == Order::Dfs,
    };
    let found = search::search(&model, symmetry::hooks(&model), options, &Stats::default());
    let secs = start.elapsed().as_secs_f64();
    let (p, path) = model
        .checked_properties()
        .zip(&found.discoveries)
        .filter(|(p, _)| p.expectation == Expectation::Always)
        .filter_map(|(p, d)| Some((p, d.as_ref()?)))
        .min_by_key(|(_, d)| d.len())
        .unwrap_or_else(|| panic!("{bug}: no violation in {} states", found.unique));
    let len = path.len() - 1;
    let replayed = search::replay_indices(&model, path).expect("a found path replays");
    let short = aver_models::walk::shrink(&model, &replayed, p.condition).len() - 1;
    println!(
        "{bug}: {} in {len} steps by {order:?} (shrunk: {short}) after {} states, {secs:.2}s",
        p.name, found.unique
    );
    assert!(
        CONSEQUENCES
            .iter()
            .any(|c| p.name.starts_with(&format!("{c} "))),
        "{bug}: {} is not a cluster-level property",
        p.name
    );
    assert!(
        expected
            .iter()
            .any(|e| p.name.starts_with(&format!("{e} "))),
        "{bug}: expected one of {expected:?}, found {}",
        p.name
    );
    (p.name.to_string(), len)
}

/// Bounds `terms`, `log`, no crash, no snapshots (the smallest that the bugs below need).
fn plain(terms: u64, log: u64) -> RaftModelCfg {
    RaftModelCfg {
        max_term: terms,
        max_log: log,
        max_crashes: 0,
        compaction: false,
        ..RaftModelCfg::ci()
    }
}

/// The Figure 8 scenario of the paper: a leader commits an entry of an earlier term by
/// counting replicas; a later leader overwrites it, and two servers apply different commands
/// at that index. Checked for exactly that consequence (RAFT-A2). With 3 servers it needs
/// four terms: the entry's, the rival entry's, the committing leader's and the overwriting
/// leader's, each later than the one before; crashes and snapshots are not needed.
///
/// Slow (245,045 walks, 175 s on the loaded 2-core machine), so not in CI:
/// `cargo test -p aver-models --release --test raft_bugs figure8 -- --ignored --nocapture`.
#[test]
#[ignore = "175 s of random walks; the witness below runs in CI"]
fn figure8_commit_applies_different_commands_at_one_index() {
    consequence(
        Bug::Figure8Commit,
        figure8_bounds(),
        &["RAFT-A2"],
        &["RAFT-A2"],
    );
}

fn figure8_bounds() -> RaftModelCfg {
    RaftModelCfg {
        max_term: 4,
        max_log: 1,
        max_crashes: 0,
        compaction: false,
        ..RaftModelCfg::deep()
    }
}

/// The first cluster-level consequence of figure8-commit at the same bounds: a leader
/// elected without an entry that was committed (RAFT-4), or the overwrite itself. As slow as
/// the search above (the same 245,045 walks); CI runs the witness below instead.
#[test]
#[ignore = "159 s of random walks; the witness below runs in CI"]
fn figure8_commit_breaks_the_cluster() {
    consequence(
        Bug::Figure8Commit,
        figure8_bounds(),
        &[],
        &["RAFT-4", "RAFT-5", "RAFT-A2"],
    );
}

/// Needs three terms and two-entry logs; crashes and snapshots only dilute the walks.
#[test]
fn up_to_date_by_length_loses_a_committed_entry() {
    let cfg = RaftModelCfg {
        max_crashes: 0,
        compaction: false,
        ..RaftModelCfg::deep()
    };
    consequence(
        Bug::UpToDateByLength,
        cfg,
        &[],
        &["RAFT-4", "RAFT-5", "RAFT-A2"],
    );
}

#[test]
fn vote_not_persisted_elects_two_leaders() {
    consequence(
        Bug::VoteNotPersisted,
        RaftModelCfg::deep(),
        &[],
        &["RAFT-1", "RAFT-3", "RAFT-4", "RAFT-5"],
    );
}

#[test]
fn install_old_snapshot_breaks_the_apply_stream() {
    consequence(
        Bug::InstallOldSnapshot,
        RaftModelCfg::deep(),
        &[],
        &["RAFT-A1", "RAFT-A2", "RAFT-5"],
    );
}

#[test]
fn truncate_on_match_loses_a_committed_entry() {
    consequence(
        Bug::TruncateOnMatch,
        RaftModelCfg::deep(),
        &[],
        &["RAFT-4", "RAFT-5", "RAFT-7"],
    );
}

/// The buggy core also trips over its own inconsistent log (a panic, "no panic" violated) in
/// some walks; what a user loses is asked for, so only the cluster properties are checked and
/// a walk whose core panics simply ends.
#[test]
fn accept_stale_term_breaks_the_cluster() {
    consequence(
        Bug::AcceptStaleTerm,
        RaftModelCfg::deep(),
        &CONSEQUENCES,
        &CONSEQUENCES,
    );
}

#[test]
fn leader_ignores_higher_term_elects_two_leaders() {
    consequence(
        Bug::LeaderIgnoresHigherTerm,
        RaftModelCfg::deep(),
        &[],
        &["RAFT-1"],
    );
}

#[test]
fn vote_twice_elects_two_leaders() {
    consequence(Bug::VoteTwice, RaftModelCfg::deep(), &[], &["RAFT-1"]);
}

#[test]
fn commit_without_quorum_commits_what_no_majority_holds() {
    consequence(
        Bug::CommitWithoutQuorum,
        RaftModelCfg::deep(),
        &[],
        &["RAFT-7", "RAFT-4", "RAFT-5"],
    );
}

#[test]
fn keep_conflicting_breaks_log_matching() {
    consequence(
        Bug::KeepConflicting,
        RaftModelCfg::deep(),
        &[],
        &["RAFT-3", "RAFT-4", "RAFT-5", "RAFT-7", "RAFT-A2"],
    );
}

/// The paper's Figure 8 with 3 servers, step by step, without step checks: n0 leads term 1
/// and appends `a`; n1 leads term 2 (n2's vote) and appends `b` at the same index; n0 leads
/// term 3 (n2's vote), replicates `a` to n2 and — the bug — commits it by counting replicas,
/// then applies it; n1 leads term 4 (n2's vote: its last term 2 beats n2's 1), overwrites `a`
/// on n2 with `b`, commits `b` the same way and applies it. Two servers applied different
/// commands at index 1: RAFT-A2 fails (and RAFT-4 before it, when n1 won term 4).
#[test]
fn figure8_commit_witness_applies_different_commands_at_one_index() {
    let cfg = RaftModelCfg {
        bugs: Bugs::only(Bug::Figure8Commit),
        step_checks: false,
        ..figure8_bounds()
    };
    let mut w = common::Walk::new(cfg);
    let term = |t: u64| move |m: &Message<u8>| m.term().0 == t;
    let with_entry =
        |m: &Message<u8>| matches!(m, Message::AppendEntries(a) if !a.entries.is_empty());
    w.elect(0, 1).propose(0);
    w.elect(1, 2).propose(1);
    // n1's RequestVote makes n0 a follower of term 2 (n0 refuses: its log is longer); n0
    // times out and wins term 3 with n2's vote.
    w.deliver_where(1, 0, "RequestVote of term 2", term(2));
    w.timeout(0, Timer::Election);
    w.deliver_where(0, 2, "RequestVote of term 3", term(3))
        .deliver_where(2, 0, "RequestVoteReply of term 3", term(3));
    assert!(w.leader(0));
    w.deliver_where(0, 2, "the probe of term 3", term(3))
        .deliver_where(2, 0, "AppendEntriesReply of term 3", term(3))
        .deliver_where(0, 2, "AppendEntries with a", |m| {
            term(3)(m) && with_entry(m)
        })
        .deliver_where(2, 0, "AppendEntriesReply of term 3", term(3));
    assert_eq!(
        w.state.servers[0].raft.commit_index().0,
        1,
        "a committed by replicas"
    );
    assert!(w.holds("RAFT-A2 Apply Agreement"));
    // n0's RequestVote makes n1 a follower of term 3 (n1 refuses: its last term is later);
    // n1 times out, wins term 4 with n2's vote and overwrites a with b on n2.
    w.deliver_where(0, 1, "RequestVote of term 3", term(3));
    w.timeout(1, Timer::Election);
    w.deliver_where(1, 2, "RequestVote of term 4", term(4))
        .deliver_where(2, 1, "RequestVoteReply of term 4", term(4));
    assert!(w.leader(1));
    assert!(!w.holds("RAFT-4 Leader Completeness"));
    w.deliver_where(1, 2, "the probe of term 4", term(4))
        .deliver_where(2, 1, "AppendEntriesReply of term 4", term(4))
        .deliver_where(1, 2, "AppendEntries with b", |m| {
            term(4)(m) && with_entry(m)
        })
        .deliver_where(2, 1, "AppendEntriesReply of term 4", term(4));
    assert!(
        !w.holds("RAFT-A2 Apply Agreement"),
        "two commands applied at index 1"
    );
    let fault = w.state.fault.as_ref().expect("recorded");
    println!("{} steps: {}: {}", w.steps, fault.id, fault.detail);
}

// ---- every seeded bug by exhaustive search -----------------------------------------------------
//
// Random walks find a bug by luck; these searches are complete: at the bounds given, every
// interleaving is explored until the first violated cluster-level property, so a bug that
// breaks nothing a user can see at those bounds would make the test fail. BFS where it is
// cheap, so the trace is the shortest there is (rows of specs/bugs.md, "exhaustive").

#[test]
fn exhaustive_vote_not_persisted_elects_two_leaders() {
    exhaustive_consequence(
        Bug::VoteNotPersisted,
        RaftModelCfg::ci_reelect(),
        Order::Bfs,
        &["RAFT-1"],
    );
}

#[test]
fn exhaustive_leader_ignores_higher_term_elects_two_leaders() {
    exhaustive_consequence(
        Bug::LeaderIgnoresHigherTerm,
        RaftModelCfg::ci_reelect(),
        Order::Bfs,
        &["RAFT-1"],
    );
}

#[test]
fn exhaustive_vote_twice_elects_two_leaders() {
    exhaustive_consequence(
        Bug::VoteTwice,
        RaftModelCfg::ci_reelect(),
        Order::Bfs,
        &["RAFT-1"],
    );
}

#[test]
fn exhaustive_truncate_on_match_loses_a_committed_entry() {
    exhaustive_consequence(
        Bug::TruncateOnMatch,
        RaftModelCfg::ci_crash(),
        Order::Bfs,
        &["RAFT-4", "RAFT-5", "RAFT-7"],
    );
}

#[test]
fn exhaustive_commit_without_quorum_commits_what_no_majority_holds() {
    exhaustive_consequence(
        Bug::CommitWithoutQuorum,
        RaftModelCfg::ci_crash(),
        Order::Bfs,
        &["RAFT-7", "RAFT-4", "RAFT-5"],
    );
}

#[test]
fn exhaustive_accept_stale_term_breaks_the_cluster() {
    exhaustive_consequence(
        Bug::AcceptStaleTerm,
        plain(2, 1),
        Order::Bfs,
        &["RAFT-4", "RAFT-5", "RAFT-7"],
    );
}

#[test]
fn exhaustive_keep_conflicting_breaks_the_cluster() {
    exhaustive_consequence(
        Bug::KeepConflicting,
        plain(2, 1),
        Order::Bfs,
        &["RAFT-3", "RAFT-4", "RAFT-5", "RAFT-7", "RAFT-A2"],
    );
}

#[test]
fn exhaustive_install_old_snapshot_breaks_the_apply_stream() {
    let cfg = RaftModelCfg {
        compaction: true,
        ..plain(1, 2)
    };
    // DFS: BFS gives the shortest trace (16 steps, `--bfs`) but keeps 187,350 states.
    exhaustive_consequence(
        Bug::InstallOldSnapshot,
        cfg,
        Order::Dfs,
        &["RAFT-A1", "RAFT-A2", "RAFT-5"],
    );
}

/// `base` with behaviour limits (an under-approximation: every run explored is a run of
/// `base`, so a violation found is real): at most `campaigns` election timeouts and
/// `proposals` proposals in a run, no heartbeat timeout (leaders still send AppendEntries when
/// elected, appending or answered), and campaigns that never overlap. The two bugs below
/// need several elections but few messages; without limits their searches at these bounds
/// did not finish (specs/bugs.md).
fn limited(base: RaftModelCfg, campaigns: u8, proposals: u8) -> RaftModelCfg {
    RaftModelCfg {
        limits: Limits {
            campaigns: Some(campaigns),
            heartbeats: Some(0),
            proposals: Some(proposals),
            one_candidate: true,
        },
        ..base
    }
}

/// Three terms and two-entry logs (no crash, no snapshots) with three campaigns and three
/// proposals: n0 leads term 1 with two entries only it holds; n1 leads term 2 and commits its
/// entry with n2; n0 wins term 3 with n2's vote — its log is longer, and the bug compares
/// lengths, not last terms — without the committed entry (RAFT-4).
/// `aver check raft --bug up-to-date-by-length --no-step-checks --dfs --threads 1 --max-term 3
/// --max-log 2 --crashes 0 --no-compaction --max-campaigns 3 --max-heartbeats 0
/// --max-proposals 3 --one-candidate`.
#[test]
fn exhaustive_up_to_date_by_length_loses_a_committed_entry() {
    exhaustive_consequence(
        Bug::UpToDateByLength,
        limited(plain(3, 2), 3, 3),
        Order::Dfs,
        &["RAFT-4", "RAFT-5", "RAFT-A2"],
    );
}

/// figure8-commit without behaviour limits: the complete search at four terms and one-entry
/// logs (no crash, no snapshots) also reaches it — RAFT-4 after 399,996 states, 60 s of CPU
/// (specs/bugs.md) — too long for CI, where the limited search below runs.
/// `aver check raft --bug figure8-commit --no-step-checks --dfs --threads 1 --max-term 4
/// --max-log 1 --crashes 0 --no-compaction`.
#[test]
#[ignore = "60 s of CPU; the limited search below runs in CI"]
fn exhaustive_figure8_commit_without_limits_breaks_the_cluster() {
    exhaustive_consequence(
        Bug::Figure8Commit,
        plain(4, 1),
        Order::Dfs,
        &["RAFT-4", "RAFT-5", "RAFT-A2"],
    );
}

/// Four terms, one-entry logs (no crash, no snapshots), four campaigns and two proposals, as
/// in the paper's Figure 8; searched to the end (every run within the bounds and limits), so
/// that besides the first consequence (RAFT-4: a leader elected without the entry committed
/// by counting) the paper's outcome is found too: two servers apply different commands at
/// index 1 (RAFT-A2). `aver check raft --bug figure8-commit --no-step-checks --dfs --threads 1
/// --max-term 4 --max-log 1 --crashes 0 --no-compaction --max-campaigns 4 --max-heartbeats 0
/// --max-proposals 2 --one-candidate` stops at the first (RAFT-4); `aver bench check` with
/// the same flags runs to the end.
#[test]
fn exhaustive_figure8_commit_applies_different_commands_at_one_index() {
    let model = buggy(Bug::Figure8Commit, limited(plain(4, 1), 4, 2));
    let start = Instant::now();
    let options = Options {
        threads: 1,
        order: Order::Dfs,
        stop_at_failure: false,
        saturate: true,
    };
    let found = search::search(&model, symmetry::hooks(&model), options, &Stats::default());
    let secs = start.elapsed().as_secs_f64();
    assert!(found.complete);
    let mut violated = Vec::new();
    for (p, d) in model.checked_properties().zip(&found.discoveries) {
        let Some(d) = d.as_ref().filter(|_| p.expectation == Expectation::Always) else {
            continue;
        };
        let path = search::replay_indices(&model, d).expect("a found path replays");
        let short = aver_models::walk::shrink(&model, &path, p.condition);
        let last = &short.last().expect("non-empty").0;
        assert!(!(p.condition)(&model, last), "the shrunk trace still fails");
        println!(
            "figure8-commit: {} in {} steps by DFS (shrunk: {}), {} states, {secs:.2}s",
            p.name,
            d.len() - 1,
            short.len() - 1,
            found.unique
        );
        if p.name.starts_with("RAFT-A2 ") {
            let fault = last.fault.as_ref().expect("recorded");
            println!("  {}: {}", fault.id, fault.detail);
        }
        violated.push(p.name);
    }
    for v in &violated {
        assert!(
            CONSEQUENCES.iter().any(|c| v.starts_with(&format!("{c} "))),
            "{v} is not a cluster-level property"
        );
    }
    for want in ["RAFT-4 ", "RAFT-A2 "] {
        assert!(
            violated.iter().any(|v| v.starts_with(want)),
            "{want}not violated: {violated:?}"
        );
    }
}
