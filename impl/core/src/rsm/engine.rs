//! What the rsm needs from consensus, as a trait: Raft implements it, and so does the model
//! checker's abstract atomic log (which stands in for Raft when the service logic above it is
//! what is being checked).

use crate::codec::{Encode, varint_len};
use crate::contract::{NodeId, Ready, Violation};
use crate::raft::{
    self, Apply, Command, Durable, HardState, LogIndex, NotLeader, PersistOp, Raft, ReadId,
    ReadState, SnapshotMeta, Term,
};
use std::collections::VecDeque;
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
    /// Bytes of persisted consensus state besides the snapshot (the lab's `PersistBytes`),
    /// measured afresh (for Raft: a walk over the whole log).
    fn state_size(&self) -> usize;
    /// What the rsm keeps to know [`Engine::state_size`] without measuring afresh after
    /// every apply: built once by [`Engine::measure`], then updated by [`Engine::track`] with
    /// every persist op the engine emits.
    type Size: Clone + Debug + Eq + Hash;
    /// Measures the engine's state as it is now (once, when the rsm starts).
    fn measure(&self) -> Self::Size;
    /// Updates `size` with one persist op the engine emitted (ops in the order emitted).
    fn track(size: &mut Self::Size, op: &Self::Persist);
    /// [`Engine::state_size`] from `size`, kept up to date since [`Engine::measure`].
    fn tracked_size(&self, size: &Self::Size) -> usize;
    /// A violation the engine's own checks recorded.
    fn violation(&self) -> Option<&Violation>;
    /// Whether `msg` may only leave once every write emitted before it is durable (see
    /// [`crate::contract::Core::must_follow_writes`]; the default: every message).
    fn must_follow_writes(&self, _msg: &Self::Msg) -> bool {
        true
    }
    /// Whether what the engine applies may only reach the service once every write emitted
    /// before it is durable (see [`crate::contract::Core::applies_follow_writes`]; the
    /// default: yes).
    fn applies_follow_writes(&self) -> bool {
        true
    }
}

/// The size of Raft's persisted state without the snapshot, in the [`crate::codec`] encoding
/// a server writes: hard state, log base, and each entry's term and command. This is the
/// lab's `persister.RaftStateSize()`, which `maxraftstate` bounds.
pub fn raft_state_size<C: Encode + Clone>(durable: &Durable<C>) -> usize {
    let entries = durable.log.entries();
    head_size(&durable.hard, durable.log.base(), entries.len())
        + entries.iter().map(entry_size).sum::<usize>()
}

/// [`raft_state_size`] kept up to date op by op: [`RaftStateSize::apply`] mirrors
/// [`Durable::apply`], at a cost proportional to the entries an op adds or removes (so O(1)
/// per entry over a server's life), where `raft_state_size` walks the whole log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RaftStateSize {
    hard: HardState,
    base: SnapshotMeta,
    /// Term and encoded size (term and command) of each entry after `base`, oldest first.
    entries: VecDeque<(Term, usize)>,
    /// Sum of the sizes in `entries`.
    entry_bytes: usize,
}

impl RaftStateSize {
    /// Measures `durable` (one walk over its log).
    pub fn of<C: Encode + Clone>(durable: &Durable<C>) -> Self {
        let entries: VecDeque<(Term, usize)> = durable
            .log
            .entries()
            .iter()
            .map(|e| (e.term, entry_size(e)))
            .collect();
        RaftStateSize {
            hard: durable.hard,
            base: durable.log.base(),
            entry_bytes: entries.iter().map(|&(_, n)| n).sum(),
            entries,
        }
    }

    /// The size of the state after `op`, as [`Durable::apply`] changes it.
    pub fn apply<C: Encode>(&mut self, op: &PersistOp<C>) {
        match op {
            PersistOp::HardState(h) => self.hard = *h,
            PersistOp::Truncate(index) => {
                let keep = index.0.saturating_sub(self.base.index.0 + 1) as usize;
                while self.entries.len() > keep {
                    let (_, n) = self.entries.pop_back().expect("len > keep");
                    self.entry_bytes -= n;
                }
            }
            PersistOp::Append { entries, .. } => {
                for e in entries {
                    let n = entry_size(e);
                    self.entries.push_back((e.term, n));
                    self.entry_bytes += n;
                }
            }
            PersistOp::Snapshot(s) => self.compact(s.meta),
        }
    }

    /// As `Log::compact`: keeps the suffix after `meta` if the log holds `meta`'s entry with
    /// its term, else drops every entry.
    fn compact(&mut self, meta: SnapshotMeta) {
        let held = meta.index >= self.base.index && self.term_at(meta.index) == Some(meta.term);
        let drop = if held {
            (meta.index.0 - self.base.index.0) as usize
        } else {
            self.entries.len()
        };
        for (_, n) in self.entries.drain(..drop) {
            self.entry_bytes -= n;
        }
        self.base = meta;
    }

    fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base.index {
            return Some(self.base.term);
        }
        let k = index.0.checked_sub(self.base.index.0 + 1)?;
        self.entries.get(k as usize).map(|&(t, _)| t)
    }

    /// The bytes, equal to [`raft_state_size`] of the durable state this tracks.
    pub fn bytes(&self) -> usize {
        head_size(&self.hard, self.base, self.entries.len()) + self.entry_bytes
    }
}

fn head_size(hard: &HardState, base: SnapshotMeta, entries: usize) -> usize {
    varint_len(hard.term.0)
        + hard.voted_for.map_or(1, |v| 1 + varint_len(u64::from(v.0)))
        + varint_len(base.index.0)
        + varint_len(base.term.0)
        + varint_len(entries as u64)
}

fn entry_size<C: Encode>(e: &raft::Entry<C>) -> usize {
    varint_len(e.term.0) + e.command.encoded_len()
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
    fn applies_follow_writes(&self) -> bool {
        Raft::applies_follow_writes(self)
    }
    fn state_size(&self) -> usize {
        raft_state_size(self.durable())
    }
    type Size = RaftStateSize;
    fn measure(&self) -> RaftStateSize {
        RaftStateSize::of(self.durable())
    }
    fn track(size: &mut RaftStateSize, op: &Self::Persist) {
        size.apply(op);
    }
    fn tracked_size(&self, size: &RaftStateSize) -> usize {
        size.bytes()
    }
    fn violation(&self) -> Option<&Violation> {
        Raft::violation(self)
    }
}
