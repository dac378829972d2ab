//! The model's properties: every safety invariant of the catalogue as an `always` property,
//! evaluated by the function the simulator uses, and `sometimes` properties that keep the
//! model from passing vacuously.

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
    /// The condition, evaluated on every reachable state.
    pub condition: fn(&RaftModel, &RaftState) -> bool,
}

fn nodes(state: &RaftState) -> Vec<&Raft<Cmd>> {
    state.actor_states.iter().map(|s| &s.raft).collect()
}

/// The first recorded step violation among the servers, if any.
fn recorded<'a>(state: &'a RaftState, id: &str) -> Option<&'a Violation> {
    state
        .actor_states
        .iter()
        .filter_map(|s| s.raft.violation())
        .find(|v| v.id == id)
}

/// `id` holds in `state`: no server recorded a violation of it and `check` finds none.
fn holds(state: &RaftState, id: &str, check: fn(&[&Raft<Cmd>]) -> Result<(), Violation>) -> bool {
    if recorded(state, id).is_some() {
        return false;
    }
    match check(&nodes(state)) {
        Ok(()) => true,
        Err(v) => v.id != id,
    }
}

fn per_node(nodes: &[&Raft<Cmd>]) -> Result<(), Violation> {
    nodes
        .iter()
        .try_for_each(|n| invariants::snapshot_consistency(n))
}

fn nothing(_: &[&Raft<Cmd>]) -> Result<(), Violation> {
    Ok(())
}

/// Every property, in catalogue order: the safety invariants, then the reachability checks.
pub const PROPERTIES: &[RaftProperty] = &[
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-1 Election Safety",
        condition: |_, s| holds(s, invariants::ELECTION_SAFETY, invariants::election_safety),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-2 Leader Append-Only",
        condition: |_, s| holds(s, invariants::LEADER_APPEND_ONLY, nothing),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-3 Log Matching",
        condition: |_, s| holds(s, invariants::LOG_MATCHING, invariants::log_matching),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-4 Leader Completeness",
        condition: |_, s| {
            holds(
                s,
                invariants::LEADER_COMPLETENESS,
                invariants::leader_completeness,
            )
        },
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-5 State Machine Safety",
        condition: |_, s| {
            holds(
                s,
                invariants::STATE_MACHINE_SAFETY,
                invariants::state_machine_safety,
            )
        },
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-6 Current-Term Commit",
        condition: |_, s| holds(s, invariants::CURRENT_TERM_COMMIT, nothing),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-7 Commit Quorum",
        condition: |_, s| holds(s, invariants::COMMIT_QUORUM, invariants::commit_quorum),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-8 Snapshot Within Commit",
        condition: |_, s| holds(s, invariants::SNAPSHOT_WITHIN_COMMIT, per_node),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-9 Snapshot/Log Consistency",
        condition: |_, s| holds(s, invariants::SNAPSHOT_LOG_CONSISTENCY, per_node),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-10 Monotonicity",
        condition: |_, s| holds(s, invariants::MONOTONIC, nothing),
    },
    RaftProperty {
        expectation: Expectation::Sometimes,
        name: "leader elected",
        condition: |_, s| s.actor_states.iter().any(|n| n.raft.is_leader()),
    },
    RaftProperty {
        expectation: Expectation::Sometimes,
        name: "entry committed",
        condition: |_, s| {
            s.actor_states
                .iter()
                .any(|n| n.raft.commit_index() > LogIndex(0))
        },
    },
    RaftProperty {
        expectation: Expectation::Sometimes,
        name: "snapshot installed",
        condition: |_, s| s.actor_states.iter().any(|n| n.installed_snapshot),
    },
    RaftProperty {
        expectation: Expectation::Sometimes,
        name: "new leader after crash",
        condition: |_, s| new_leader_after_crash(s),
    },
];

/// A crashed server was leading when it went down, and a running server leads a later term.
fn new_leader_after_crash(s: &RaftState) -> bool {
    let crashed_leader_term = s
        .actor_states
        .iter()
        .zip(&s.crashed)
        .filter(|(n, crashed)| **crashed && n.raft.is_leader())
        .map(|(n, _)| n.raft.term())
        .min();
    let Some(old) = crashed_leader_term else {
        return false;
    };
    s.actor_states
        .iter()
        .zip(&s.crashed)
        .any(|(n, crashed)| !*crashed && n.raft.is_leader() && n.raft.term() > old)
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
