//! The model's properties: every safety invariant of the catalogue as an `always` property,
//! evaluated by the function the simulator uses; the apply stream's agreement; and
//! `sometimes` properties, one for every kind of progress a correct core makes, so that a
//! core which silently stops doing one of them fails instead of passing vacuously.

use super::state::{Events, PANIC};
use super::{Cmd, RaftModel, RaftState};
use aver_core::Violation;
use aver_core::raft::invariants;
use aver_core::raft::{LogIndex, Raft};
use stateright::Expectation;

/// One property of the model: its expectation, name and condition.
pub struct RaftProperty {
    /// `Always` for safety, `Sometimes` for reachability.
    pub expectation: Expectation,
    /// The catalogue ID and name, e.g. `"RAFT-1 Election Safety"`.
    pub name: &'static str,
    /// A server's own check (a step or node invariant), not a cluster-level consequence: not
    /// checked when the servers' step checks are off.
    pub step_check: bool,
    /// The condition, evaluated on every reachable state.
    pub condition: fn(&RaftModel, &RaftState) -> bool,
}

/// The first recorded step violation among the servers, if any.
fn recorded<'a>(state: &'a RaftState, id: &str) -> Option<&'a Violation> {
    state
        .servers
        .iter()
        .filter_map(|s| s.raft.violation())
        .find(|v| v.id == id)
}

/// `id` holds in `state`: no server recorded a violation of it and `check` finds none.
fn holds(state: &RaftState, id: &str, check: fn(&[&Raft<Cmd>]) -> Result<(), Violation>) -> bool {
    if recorded(state, id).is_some() {
        return false;
    }
    match check(&state.rafts()) {
        Ok(()) => true,
        Err(v) => v.id != id,
    }
}

/// No fault with `id` (an apply-stream violation or a panic) was recorded.
fn no_fault(state: &RaftState, id: &str) -> bool {
    state.fault.as_ref().is_none_or(|f| f.id != id)
}

fn per_node(nodes: &[&Raft<Cmd>]) -> Result<(), Violation> {
    nodes
        .iter()
        .try_for_each(|n| invariants::snapshot_consistency(n))
}

fn nothing(_: &[&Raft<Cmd>]) -> Result<(), Violation> {
    Ok(())
}

const fn always(
    name: &'static str,
    step_check: bool,
    condition: fn(&RaftModel, &RaftState) -> bool,
) -> RaftProperty {
    RaftProperty {
        expectation: Expectation::Always,
        name,
        step_check,
        condition,
    }
}

const fn sometimes(
    name: &'static str,
    condition: fn(&RaftModel, &RaftState) -> bool,
) -> RaftProperty {
    RaftProperty {
        expectation: Expectation::Sometimes,
        name,
        step_check: false,
        condition,
    }
}

/// Every property, in catalogue order: the safety invariants, then the progress checks.
pub const PROPERTIES: &[RaftProperty] = &[
    always("RAFT-1 Election Safety", false, |_, s| {
        holds(s, invariants::ELECTION_SAFETY, invariants::election_safety)
            && no_fault(s, invariants::ELECTION_SAFETY)
    }),
    always("RAFT-2 Leader Append-Only", true, |_, s| {
        holds(s, invariants::LEADER_APPEND_ONLY, nothing)
    }),
    always("RAFT-3 Log Matching", false, |_, s| {
        holds(s, invariants::LOG_MATCHING, invariants::log_matching)
    }),
    always("RAFT-4 Leader Completeness", false, |_, s| {
        holds(
            s,
            invariants::LEADER_COMPLETENESS,
            invariants::leader_completeness,
        )
    }),
    always("RAFT-5 State Machine Safety", false, |_, s| {
        holds(
            s,
            invariants::STATE_MACHINE_SAFETY,
            invariants::state_machine_safety,
        )
    }),
    always("RAFT-6 Current-Term Commit", true, |_, s| {
        holds(s, invariants::CURRENT_TERM_COMMIT, nothing)
    }),
    always("RAFT-7 Commit Quorum", false, |_, s| {
        holds(s, invariants::COMMIT_QUORUM, invariants::commit_quorum)
    }),
    always("RAFT-8 Snapshot Within Commit", true, |_, s| {
        holds(s, invariants::SNAPSHOT_WITHIN_COMMIT, per_node)
    }),
    always("RAFT-9 Snapshot/Log Consistency", true, |_, s| {
        holds(s, invariants::SNAPSHOT_LOG_CONSISTENCY, per_node)
    }),
    always("RAFT-10 Monotonicity", true, |_, s| {
        holds(s, invariants::MONOTONIC, nothing)
    }),
    always("RAFT-A1 Apply Order", false, |_, s| no_fault(s, "RAFT-A1")),
    always("RAFT-A2 Apply Agreement", false, |_, s| {
        no_fault(s, "RAFT-A2")
    }),
    always("no panic", false, |_, s| no_fault(s, PANIC)),
    sometimes("leader elected", |_, s| {
        s.servers.iter().any(|n| n.raft.is_leader())
    }),
    sometimes("entry committed", |_, s| {
        s.servers
            .iter()
            .any(|n| n.raft.commit_index() > LogIndex(0))
    }),
    sometimes("follower applies an entry", |_, s| {
        s.events.has(Events::FOLLOWER_APPLIED)
    }),
    sometimes("follower truncates a conflicting entry", |_, s| {
        s.events.has(Events::TRUNCATED)
    }),
    sometimes("leader backs up by the conflict hint", |_, s| {
        s.events.has(Events::HINT_BACKUP)
    }),
    sometimes("entry of an earlier term committed", |_, s| {
        s.events.has(Events::OLDER_TERM_COMMITTED)
    }),
    sometimes("follower installs a snapshot", |_, s| {
        s.events.has(Events::SNAPSHOT_INSTALLED)
    }),
    sometimes("new leader after crash", |_, s| new_leader_after_crash(s)),
];

/// A crashed server was leading when it went down, and a running server leads a later term.
fn new_leader_after_crash(s: &RaftState) -> bool {
    let crashed_leader_term = s
        .servers
        .iter()
        .filter(|n| n.crashed_leading)
        .map(|n| n.raft.term())
        .min();
    let Some(old) = crashed_leader_term else {
        return false;
    };
    s.servers
        .iter()
        .any(|n| !n.down && n.raft.is_leader() && n.raft.term() > old)
}

/// The names of the `always` properties.
pub fn safety_properties() -> impl Iterator<Item = &'static str> {
    PROPERTIES
        .iter()
        .filter(|p| matches!(p.expectation, Expectation::Always))
        .map(|p| p.name)
}

/// The property whose name starts with `id` (e.g. `"RAFT-7"`).
pub fn property_named(id: &str) -> Option<&'static str> {
    PROPERTIES
        .iter()
        .map(|p| p.name)
        .find(|n| n.split(' ').next() == Some(id) || *n == id)
}
