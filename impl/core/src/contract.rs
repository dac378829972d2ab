//! The contract between a pure core and whatever drives it.
//!
//! A driver feeds one input at a time (`on_message`, `on_timeout`, or a core-specific request
//! such as `propose`), then drains the outputs with [`Core::take_ready`] and carries them out
//! **in this order**:
//!
//! 1. `persist`: write every operation and make it durable (fsync) — **BEFORE** any message of
//!    the same `Ready` is sent. A message may promise something (a vote, an acknowledged
//!    entry) that is only true once the write is durable.
//! 2. `messages`: send them (any order, any may be lost).
//! 3. `apply`: hand committed entries / snapshots to the service, in order.
//! 4. `timers`: set or cancel named timers; the driver chooses the actual duration.
//!
//! The driver must drain after every input; a core may assert that its buffer is empty when
//! an input arrives.
//!
//! A core may relax duty 1 for outputs that promise nothing about its own disk
//! ([`Core::must_follow_writes`], [`Core::applies_follow_writes`]): a driver that writes in
//! the background may let those leave before the writes are durable. A driver that syncs
//! before sending, as the duty list says, satisfies both readings.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identity of a node (server) in a cluster. Configuration decides which ids exist; the cores
/// never compute ids from indices.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A command to the driver's timer service. Timers are named; setting a timer that is already
/// set restarts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimerCmd<T> {
    /// Start (or restart) the named timer with a duration of the driver's choosing.
    Set(T),
    /// Stop the named timer if it is running.
    Cancel(T),
}

/// Everything a core asks of the world after one input. See the module docs for the order in
/// which a driver must carry it out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ready<P, M, A, T> {
    /// Storage operations. MUST be durable BEFORE any of `messages` is sent.
    pub persist: Vec<P>,
    /// Messages to send, as `(destination, message)`.
    pub messages: Vec<(NodeId, M)>,
    /// Output for the service above the core (committed entries, snapshots, replies), in order.
    pub apply: Vec<A>,
    /// Timer commands, in order.
    pub timers: Vec<TimerCmd<T>>,
}

impl<P, M, A, T> Default for Ready<P, M, A, T> {
    fn default() -> Self {
        Ready {
            persist: Vec::new(),
            messages: Vec::new(),
            apply: Vec::new(),
            timers: Vec::new(),
        }
    }
}

impl<P, M, A, T> Ready<P, M, A, T> {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.messages.is_empty()
            && self.apply.is_empty()
            && self.timers.is_empty()
    }
}

/// A violated invariant: the catalogue ID (see `specs/invariants.md`) and what was seen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    /// Catalogue ID, e.g. `"RAFT-1"`.
    pub id: &'static str,
    /// Human-readable detail: which nodes, terms, indices.
    pub detail: String,
}

impl Violation {
    /// Builds a violation of invariant `id`.
    pub fn new(id: &'static str, detail: impl Into<String>) -> Self {
        Violation {
            id,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.id, self.detail)
    }
}

impl std::error::Error for Violation {}

/// The generic face of a core, so that one per-node driver runs every protocol.
pub trait Core {
    /// Storage operation type.
    type Persist;
    /// Message type exchanged between nodes.
    type Msg;
    /// Output type for the service (applies, replies).
    type Apply;
    /// Timer name type.
    type Timer: Copy;

    /// A message arrived from `from`.
    fn on_message(&mut self, from: NodeId, msg: Self::Msg);
    /// The named timer fired.
    fn on_timeout(&mut self, timer: Self::Timer);
    /// Drains the outputs accumulated since the last call.
    fn take_ready(&mut self) -> Ready<Self::Persist, Self::Msg, Self::Apply, Self::Timer>;
    /// Whether `msg` may only be sent once every write emitted before it is durable (the
    /// default: every message). A core may exempt messages that promise nothing about its
    /// own disk; a driver may then send them while the writes are still in flight.
    fn must_follow_writes(&self, _msg: &Self::Msg) -> bool {
        true
    }
    /// Whether applies may only be handed over once every write emitted before them is
    /// durable (the default: yes).
    fn applies_follow_writes(&self) -> bool {
        true
    }
}
