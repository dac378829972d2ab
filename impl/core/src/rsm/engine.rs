//! What the rsm needs from consensus, as a trait: Raft implements it, and so does the model
//! checker's abstract atomic log (which stands in for Raft when the service logic above it is
//! what is being checked).

use crate::codec::{Encode, varint_len};
use crate::contract::{NodeId, Ready, Violation};
use crate::raft::{
    self, Apply, Command, Durable, LogIndex, NotLeader, Raft, ReadId, ReadState, Term,
};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

/// A replicated log that a state machine is driven by: propose commands, get committed ones
/// back in order (as `Ready::apply`), snapshot, and ReadIndex.
pub trait Engine<C>: Clone + Debug + Eq + Hash {
    /// Storage operations.
    type Persist: Clone + Debug + Eq + Hash;
    /// Messages between servers.
    type Msg: Clone + Debug + Eq + Hash;
    /// Timer names.
    type Timer: Copy + Debug + Eq + Hash;

    /// A message from another server arrived.
    fn on_message(&mut self, from: NodeId, msg: Self::Msg);
    /// A timer fired.
    fn on_timeout(&mut self, timer: Self::Timer);
    /// Appends `command` if leading; returns the index and term it will have if it commits.
    fn propose(&mut self, command: C) -> Result<(LogIndex, Term), NotLeader>;
    /// Starts a ReadIndex read (see [`Raft::read_index`]).
    fn read_index(&mut self, id: ReadId) -> Result<(), NotLeader>;
    /// The service captured its state through `index` in `data`: compact.
    fn snapshot(&mut self, index: LogIndex, data: Arc<[u8]>) -> bool;
    /// Drains outputs: persist, messages, committed entries and snapshots, timers.
    fn take_ready(&mut self) -> Ready<Self::Persist, Self::Msg, Apply<C>, Self::Timer>;
    /// Drains confirmed reads.
    fn take_read_states(&mut self) -> Vec<ReadState>;
    /// Current term.
    fn term(&self) -> Term;
    /// True if this server believes it leads its term.
    fn is_leader(&self) -> bool;
    /// The leader of the current term, when known.
    fn leader_hint(&self) -> Option<NodeId>;
    /// Bytes of persisted consensus state besides the snapshot (the lab's `PersistBytes`).
    fn state_size(&self) -> usize;
    /// A violation the engine's own checks recorded.
    fn violation(&self) -> Option<&Violation>;
    /// Whether `msg` may only leave once every write emitted before it is durable (see
    /// [`crate::contract::Core::must_follow_writes`]; the default: every message).
    fn must_follow_writes(&self, _msg: &Self::Msg) -> bool {
        true
    }
}

/// The size of Raft's persisted state without the snapshot, in the [`crate::codec`] encoding
/// a server writes: hard state, log base, and each entry's term and command. This is the
/// lab's `persister.RaftStateSize()`, which `maxraftstate` bounds.
pub fn raft_state_size<C: Encode + Clone>(durable: &Durable<C>) -> usize {
    let hard = &durable.hard;
    let base = durable.log.base();
    let entries = durable.log.entries();
    let head = varint_len(hard.term.0)
        + hard.voted_for.map_or(1, |v| 1 + varint_len(u64::from(v.0)))
        + varint_len(base.index.0)
        + varint_len(base.term.0)
        + varint_len(entries.len() as u64);
    head + entries
        .iter()
        .map(|e| varint_len(e.term.0) + e.command.encoded_len())
        .sum::<usize>()
}

impl<C: Command + Encode> Engine<C> for Raft<C> {
    type Persist = raft::PersistOp<C>;
    type Msg = raft::Message<C>;
    type Timer = raft::Timer;

    fn on_message(&mut self, from: NodeId, msg: Self::Msg) {
        Raft::on_message(self, from, msg)
    }
    fn on_timeout(&mut self, timer: Self::Timer) {
        Raft::on_timeout(self, timer)
    }
    fn propose(&mut self, command: C) -> Result<(LogIndex, Term), NotLeader> {
        Raft::propose(self, command)
    }
    fn read_index(&mut self, id: ReadId) -> Result<(), NotLeader> {
        Raft::read_index(self, id)
    }
    fn snapshot(&mut self, index: LogIndex, data: Arc<[u8]>) -> bool {
        Raft::snapshot(self, index, data)
    }
    fn take_ready(&mut self) -> Ready<Self::Persist, Self::Msg, Apply<C>, Self::Timer> {
        Raft::take_ready(self)
    }
    fn take_read_states(&mut self) -> Vec<ReadState> {
        Raft::take_read_states(self)
    }
    fn term(&self) -> Term {
        Raft::term(self)
    }
    fn is_leader(&self) -> bool {
        Raft::is_leader(self)
    }
    fn leader_hint(&self) -> Option<NodeId> {
        Raft::leader_hint(self)
    }
    fn must_follow_writes(&self, msg: &Self::Msg) -> bool {
        Raft::must_follow_writes(self, msg)
    }
    fn state_size(&self) -> usize {
        raft_state_size(self.durable())
    }
    fn violation(&self) -> Option<&Violation> {
        Raft::violation(self)
    }
}
