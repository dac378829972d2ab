//! The Raft invariant catalogue (`specs/invariants.md`), one plain function per ID.
//!
//! Three kinds of functions:
//! * **node** invariants look at one server ([`check_node`], [`snapshot_consistency`]);
//! * **step** invariants compare one server before and after one input ([`check_step`]) —
//!   the core runs them itself after every input;
//! * **cluster** invariants look at several servers at once ([`check_cluster`] and the
//!   functions it calls). The simulator runs them after events; the model checker evaluates
//!   each as an `always` property of the same name.
//!
//! A cluster function takes every server's latest state it knows (a crashed server's last
//! state included) and returns the first violation found.

use super::types::{Command, LogIndex, Term};
use super::{Durable, Log, NodeId, Raft, Role};
use crate::contract::Violation;

/// RAFT-1 Election Safety: at most one leader per term.
pub const ELECTION_SAFETY: &str = "RAFT-1";
/// RAFT-2 Leader Append-Only: a leader never overwrites or deletes entries in its log.
pub const LEADER_APPEND_ONLY: &str = "RAFT-2";
/// RAFT-3 Log Matching: same index and term ⇒ identical logs up to that index.
pub const LOG_MATCHING: &str = "RAFT-3";
/// RAFT-4 Leader Completeness: a committed entry is in the log of every later leader.
pub const LEADER_COMPLETENESS: &str = "RAFT-4";
/// RAFT-5 State Machine Safety: no two servers commit different entries at one index.
pub const STATE_MACHINE_SAFETY: &str = "RAFT-5";
/// RAFT-6 Current-Term Commit: a leader advances its commit index only to an entry of its own
/// term that a majority stores.
pub const CURRENT_TERM_COMMIT: &str = "RAFT-6";
/// RAFT-7 Commit Quorum: every committed entry is stored by a majority.
pub const COMMIT_QUORUM: &str = "RAFT-7";
/// RAFT-8 Snapshot Within Commit: snapshot index ≤ applied ≤ commit ≤ last index.
pub const SNAPSHOT_WITHIN_COMMIT: &str = "RAFT-8";
/// RAFT-9 Snapshot/Log Consistency: the log after the snapshot is well formed (terms never
/// decrease, start at or after the snapshot's term, never exceed the current term) and the
/// durable snapshot matches the log's base.
pub const SNAPSHOT_LOG_CONSISTENCY: &str = "RAFT-9";
/// RAFT-10 Monotonicity: term, commit index and applied index never decrease on a running
/// server, and a vote, once cast in a term, never changes.
pub const MONOTONIC: &str = "RAFT-10";

/// RAFT-11 Persisted State: what a server holds as durable equals what its storage holds after
/// folding every persist operation the server emitted (nothing is "persisted" only in memory).
pub const PERSISTED_STATE: &str = "RAFT-11";

/// The few facts about a server that the step invariants compare across one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepSummary {
    term: Term,
    voted_for: Option<NodeId>,
    leader: bool,
    commit: LogIndex,
    applied: LogIndex,
    last_index: LogIndex,
    last_term: Term,
}

impl StepSummary {
    /// Captures `node` before an input.
    pub fn of<C: Command>(node: &Raft<C>) -> StepSummary {
        StepSummary {
            term: node.term(),
            voted_for: node.voted_for(),
            leader: node.is_leader(),
            commit: node.commit_index(),
            applied: node.applied_index(),
            last_index: node.log().last_index(),
            last_term: node.log().last_term(),
        }
    }
}

/// Step invariants RAFT-10, RAFT-2 and RAFT-6 across one input of one server.
pub fn check_step<C: Command>(before: &StepSummary, after: &Raft<C>) -> Result<(), Violation> {
    let id = after.id();
    if after.term() < before.term {
        return Err(Violation::new(
            MONOTONIC,
            format!("{id} term went {} -> {}", before.term, after.term()),
        ));
    }
    if after.term() == before.term
        && before.voted_for.is_some()
        && after.voted_for() != before.voted_for
    {
        let detail = format!(
            "{id} changed its vote in {} from {:?} to {:?}",
            before.term,
            before.voted_for,
            after.voted_for()
        );
        return Err(Violation::new(MONOTONIC, detail));
    }
    if after.commit_index() < before.commit || after.applied_index() < before.applied {
        let detail = format!(
            "{id} commit {} -> {}, applied {} -> {}",
            before.commit,
            after.commit_index(),
            before.applied,
            after.applied_index()
        );
        return Err(Violation::new(MONOTONIC, detail));
    }
    if before.leader && after.is_leader() && after.term() == before.term {
        let log = after.log();
        let kept = match log.term_at(before.last_index) {
            Some(t) => t == before.last_term,
            None => before.last_index <= log.base().index, // compacted, not deleted
        };
        if log.last_index() < before.last_index || !kept {
            let detail = format!(
                "leader {id} of {} had last entry ({}, {}), now last {} with term {:?} there",
                before.term,
                before.last_index,
                before.last_term,
                log.last_index(),
                log.term_at(before.last_index)
            );
            return Err(Violation::new(LEADER_APPEND_ONLY, detail));
        }
    }
    if after.is_leader() && after.commit_index() > before.commit {
        current_term_commit(after)?;
    }
    Ok(())
}

/// RAFT-6 for a leader whose commit index just advanced.
fn current_term_commit<C: Command>(leader: &Raft<C>) -> Result<(), Violation> {
    let commit = leader.commit_index();
    let Role::Leader { progress, .. } = leader.role() else {
        return Ok(());
    };
    let term_there = leader.log().term_at(commit);
    if term_there != Some(leader.term()) {
        let detail = format!(
            "leader {} of {} committed {commit} whose entry has term {term_there:?}",
            leader.id(),
            leader.term()
        );
        return Err(Violation::new(CURRENT_TERM_COMMIT, detail));
    }
    let stored = progress.iter().filter(|p| p.match_index >= commit).count();
    if stored < leader.config().quorum() {
        let detail = format!(
            "leader {} committed {commit} stored on {stored} of {} servers",
            leader.id(),
            leader.config().voters.len()
        );
        return Err(Violation::new(CURRENT_TERM_COMMIT, detail));
    }
    Ok(())
}

/// Cheap node invariants: RAFT-8 and the O(1) part of RAFT-9. Run after every input.
pub fn check_node<C: Command>(node: &Raft<C>) -> Result<(), Violation> {
    let log = node.log();
    let (base, commit, applied, last) = (
        log.base().index,
        node.commit_index(),
        node.applied_index(),
        log.last_index(),
    );
    if !(base <= applied && applied <= commit && commit <= last) {
        let detail = format!(
            "{}: snapshot {base}, applied {applied}, commit {commit}, last {last}",
            node.id()
        );
        return Err(Violation::new(SNAPSHOT_WITHIN_COMMIT, detail));
    }
    let first_term = log.entries().first().map_or(log.base().term, |e| e.term);
    let snap_meta = node.durable().snapshot.as_ref().map(|s| s.meta);
    let snapshot_matches = snap_meta == (base.0 > 0).then_some(log.base());
    if first_term < log.base().term || log.last_term() > node.term() || !snapshot_matches {
        let detail = format!(
            "{}: base {:?}, first entry term {first_term}, last term {}, current term {}, snapshot {snap_meta:?}",
            node.id(),
            log.base(),
            log.last_term(),
            node.term()
        );
        return Err(Violation::new(SNAPSHOT_LOG_CONSISTENCY, detail));
    }
    Ok(())
}

/// RAFT-9 in full: terms in the log never decrease. O(log length).
pub fn snapshot_consistency<C: Command>(node: &Raft<C>) -> Result<(), Violation> {
    check_node(node)?;
    let log = node.log();
    let mut prev = log.base().term;
    for (k, e) in log.entries().iter().enumerate() {
        if e.term < prev {
            let index = log.first_index().0 + k as u64;
            let detail = format!(
                "{}: term {} at i{index} after term {prev}",
                node.id(),
                e.term
            );
            return Err(Violation::new(SNAPSHOT_LOG_CONSISTENCY, detail));
        }
        prev = e.term;
    }
    Ok(())
}

/// RAFT-11: `node`'s durable state equals `storage`, the driver's fold of its persist ops.
pub fn persisted_state<C: Command>(node: &Raft<C>, storage: &Durable<C>) -> Result<(), Violation> {
    let held = node.durable();
    if held == storage {
        return Ok(());
    }
    let what = if held.hard != storage.hard {
        format!(
            "hard state {:?} in memory, {:?} on disk",
            held.hard, storage.hard
        )
    } else if held.log != storage.log {
        format!(
            "log ends at ({}, {}) in memory, ({}, {}) on disk",
            held.log.last_index(),
            held.log.last_term(),
            storage.log.last_index(),
            storage.log.last_term()
        )
    } else {
        "snapshots differ".to_string()
    };
    Err(Violation::new(
        PERSISTED_STATE,
        format!("{}: {what}", node.id()),
    ))
}

/// RAFT-1: no two servers lead the same term.
pub fn election_safety<C: Command>(nodes: &[&Raft<C>]) -> Result<(), Violation> {
    for (k, a) in nodes.iter().enumerate() {
        for b in &nodes[k + 1..] {
            if a.is_leader() && b.is_leader() && a.term() == b.term() {
                let detail = format!("{} and {} both lead {}", a.id(), b.id(), a.term());
                return Err(Violation::new(ELECTION_SAFETY, detail));
            }
        }
    }
    Ok(())
}

/// The common range of two logs: indices where both know the term (base or held entry).
fn common_range<C: Command>(a: &Raft<C>, b: &Raft<C>) -> (LogIndex, LogIndex) {
    let lo = a.log().base().index.max(b.log().base().index);
    let hi = a.log().last_index().min(b.log().last_index());
    (lo, hi)
}

/// Compares the entries of `a` and `b` at `(lo, hi]` plus the term at `lo`; returns the first
/// index where they differ. Both logs must hold `(lo, hi]` (see [`common_range`]).
fn first_difference<C: Command>(
    a: &Raft<C>,
    b: &Raft<C>,
    lo: LogIndex,
    hi: LogIndex,
) -> Option<LogIndex> {
    if lo > hi {
        return None;
    }
    if a.log().term_at(lo) != b.log().term_at(lo) {
        return Some(lo);
    }
    // Whole-slice comparison first: the common case is equality, and it is a tight loop.
    let len = (hi.0 - lo.0) as usize;
    let (xs, ys) = (
        a.log().entries_from(lo.next(), len),
        b.log().entries_from(lo.next(), len),
    );
    if xs == ys {
        return None;
    }
    let k = xs
        .iter()
        .zip(ys)
        .position(|(x, y)| x != y)
        .unwrap_or(xs.len().min(ys.len()));
    Some(LogIndex(lo.0 + 1 + k as u64))
}

/// RAFT-3: if two logs hold an entry with the same index and term, they are identical up to it.
pub fn log_matching<C: Command>(nodes: &[&Raft<C>]) -> Result<(), Violation> {
    for (k, a) in nodes.iter().enumerate() {
        for b in &nodes[k + 1..] {
            let (lo, hi) = common_range(a, b);
            // Highest index in the common range where the terms agree.
            let mut top = hi;
            while top > lo && a.log().term_at(top) != b.log().term_at(top) {
                top = top.prev();
            }
            if top < lo || a.log().term_at(top) != b.log().term_at(top) {
                continue;
            }
            if let Some(i) = first_difference(a, b, lo, top) {
                let detail = format!(
                    "{} and {} agree on the term at {top} but differ at {i}",
                    a.id(),
                    b.id()
                );
                return Err(Violation::new(LOG_MATCHING, detail));
            }
        }
    }
    Ok(())
}

/// RAFT-5: servers agree on every index both have committed.
pub fn state_machine_safety<C: Command>(nodes: &[&Raft<C>]) -> Result<(), Violation> {
    for (k, a) in nodes.iter().enumerate() {
        for b in &nodes[k + 1..] {
            let (lo, hi) = common_range(a, b);
            let hi = hi.min(a.commit_index()).min(b.commit_index());
            if let Some(i) = first_difference(a, b, lo, hi) {
                let detail = format!(
                    "{} and {} committed different entries at {i}",
                    a.id(),
                    b.id()
                );
                return Err(Violation::new(STATE_MACHINE_SAFETY, detail));
            }
        }
    }
    Ok(())
}

/// RAFT-4: every leader holds every entry that a server in a term no later than the leader's
/// has committed. (Such an entry was committed in a term ≤ the leader's, so the leader must
/// have it.)
pub fn leader_completeness<C: Command>(nodes: &[&Raft<C>]) -> Result<(), Violation> {
    for leader in nodes.iter().filter(|n| n.is_leader()) {
        for n in nodes
            .iter()
            .filter(|n| n.term() <= leader.term() && n.id() != leader.id())
        {
            let commit = n.commit_index();
            if commit > leader.log().last_index() {
                let detail = format!(
                    "leader {} of {} ends at {} but {} committed {commit}",
                    leader.id(),
                    leader.term(),
                    leader.log().last_index(),
                    n.id()
                );
                return Err(Violation::new(LEADER_COMPLETENESS, detail));
            }
            let lo = n.log().base().index.max(leader.log().base().index);
            if let Some(i) = first_difference(n, leader, lo, commit) {
                let detail = format!(
                    "leader {} of {} differs at {i} from {}'s committed entry",
                    leader.id(),
                    leader.term(),
                    n.id()
                );
                return Err(Violation::new(LEADER_COMPLETENESS, detail));
            }
        }
    }
    Ok(())
}

/// RAFT-7: the highest entry any server has committed is stored (same term) by a majority —
/// or covered by their snapshots. `nodes` must be the whole cluster, and each server's log
/// in memory is taken as what it stores (see [`commit_quorum_stored`] to read disks instead).
pub fn commit_quorum<C: Command>(nodes: &[&Raft<C>]) -> Result<(), Violation> {
    let Some(first) = nodes.first() else {
        return Ok(());
    };
    let claims: Vec<CommitClaim> = nodes.iter().map(|n| CommitClaim::of(n)).collect();
    let stores: Vec<&Log<C>> = nodes.iter().map(|n| n.log()).collect();
    commit_quorum_stored(&claims, &stores, first.config().quorum())
}

/// A server's claim that the entry at `index`, of `term`, is committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitClaim {
    /// Who claims it.
    pub by: NodeId,
    /// The committed index.
    pub index: LogIndex,
    /// The term of the entry there, as the claimant's log holds it.
    pub term: Option<Term>,
}

impl CommitClaim {
    /// `node`'s claim: its commit index and the term its log holds there.
    pub fn of<C: Command>(node: &Raft<C>) -> CommitClaim {
        let index = node.commit_index();
        CommitClaim {
            by: node.id(),
            index,
            term: node.log().term_at(index),
        }
    }
}

/// RAFT-7 over storage: every claim is stored (same term at that index, or covered by the
/// snapshot) by at least `quorum` of `stores`, the logs each server of the whole cluster
/// holds durably. A driver that can crash servers passes the claims of running and crashed
/// servers (a crashed server's last commit index still happened) and each server's *disk*,
/// not the log it last had in memory.
pub fn commit_quorum_stored<C: Command>(
    claims: &[CommitClaim],
    stores: &[&Log<C>],
    quorum: usize,
) -> Result<(), Violation> {
    for claim in claims.iter().filter(|c| c.index > LogIndex(0)) {
        let index = claim.index;
        let stored = stores
            .iter()
            .filter(|log| index <= log.base().index || log.term_at(index) == claim.term)
            .count();
        if stored < quorum {
            let detail = format!(
                "{} committed {index} (term {:?}) but only {stored} of {} servers store it",
                claim.by,
                claim.term,
                stores.len()
            );
            return Err(Violation::new(COMMIT_QUORUM, detail));
        }
    }
    Ok(())
}

/// Every cluster invariant, plus the full node invariants and any violation a server's own
/// step checks recorded. O(servers² × log length): the model checker runs it on every state;
/// the simulator on a schedule.
pub fn check_cluster<C: Command>(nodes: &[&Raft<C>]) -> Result<(), Violation> {
    for n in nodes {
        if let Some(v) = n.violation() {
            return Err(v.clone());
        }
        snapshot_consistency(n)?;
    }
    election_safety(nodes)?;
    log_matching(nodes)?;
    state_machine_safety(nodes)?;
    leader_completeness(nodes)?;
    commit_quorum(nodes)?;
    Ok(())
}
