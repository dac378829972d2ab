//! Protocol quantities as newtypes, and the records Raft stores.

use crate::contract::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A Raft term. Term 0 exists only before the first election.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Term(pub u64);

/// A position in the replicated log. The first entry has index 1; index 0 is "before the log".
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

impl LogIndex {
    /// The next index.
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }
    /// The previous index (saturating at 0).
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

/// What a Raft log carries. Blanket-implemented for every suitable type; `Ord` is needed
/// because Stateright orders messages.
pub trait Command: Clone + fmt::Debug + Eq + Ord + std::hash::Hash + 'static {}
impl<T: Clone + fmt::Debug + Eq + Ord + std::hash::Hash + 'static> Command for T {}

/// One log entry. Its index is implied by its position.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry<C> {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The service's command.
    pub command: C,
}

/// The persistent part of a server's election state (Figure 2: currentTerm, votedFor).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct HardState {
    /// Latest term the server has seen.
    pub term: Term,
    /// Candidate that received this server's vote in `term`, if any.
    pub voted_for: Option<NodeId>,
}

/// The last entry a snapshot covers. `(0, 0)` means "no snapshot".
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct SnapshotMeta {
    /// Index of the last entry the snapshot replaces.
    pub index: LogIndex,
    /// Term of that entry.
    pub term: Term,
}

/// A service snapshot: the state after applying every entry up to `meta.index`. The bytes are
/// the service's own encoding; Raft never looks inside. Shared (`Arc`) so that cloning a
/// server's state — which the model checker does at every step — stays cheap.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The service state, opaque to Raft.
    pub data: Arc<[u8]>,
}

/// Names one ReadIndex request of the service (see `Raft::read_index`). Chosen by the service;
/// Raft only hands it back.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct ReadId(pub u64);

/// A confirmed read (etcd's `ReadState`): when it was released, this server led its term with
/// a quorum's confirmation after the read was asked for, and had applied at least `index`, the
/// commit index at the time of the request. Serving the read from the state machine now is
/// linearizable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReadState {
    /// The service's name for the read.
    pub id: ReadId,
    /// The read index: every write acknowledged before the read began is at or below it.
    pub index: LogIndex,
}
