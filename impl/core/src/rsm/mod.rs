//! # The replicated state machine (rsm), as a pure composite core
//!
//! An [`Rsm`] is one server of a replicated service: a consensus [`Engine`] (Raft, or the
//! model checker's abstract log) and the service's [`StateMachine`] above it. It is the
//! 6.5840 `rsm` package (Lab 4A) written as a state machine instead of goroutines and
//! channels: where the lab's `Submit` blocks, ours returns the index the command was given and
//! the answer arrives later in the apply stream, tagged with what the caller passed in.
//!
//! ## What it guarantees
//!
//! * **A submission is answered only from its own entry.** [`Rsm::submit`] proposes the
//!   command and remembers `(index, term)`. When the entry at `index` is applied, the caller
//!   gets [`RsmOutput::Done`] with the state machine's output *only if that entry has the term
//!   the proposal returned* — by Log Matching, `(index, term)` names one entry, so it is ours.
//!   Any other outcome is [`RsmOutput::Failed`] (the lab's `ErrWrongLeader`): a different
//!   entry at the index, the index swallowed by a snapshot, or — checked after every input —
//!   this server no longer leading the term it proposed in. A leader cut off in a minority
//!   keeps its submissions open until it hears of the new term (the lab allows it; its
//!   `TestLeaderPartition4A` requires they then fail promptly).
//! * **Reads** either go through the log as commands ([`ReadMode::Log`]) or use ReadIndex
//!   ([`ReadMode::ReadIndex`], [`Rsm::read`]): the engine confirms leadership with a quorum and
//!   waits until the read index is applied; the query then runs on the local state machine.
//!   ReadIndex needs an entry of the leader's term committed, so in that mode the rsm
//!   proposes a no-op entry as soon as its server becomes leader.
//! * **Snapshots.** After applying, if the engine's persisted state exceeds
//!   `max_raft_state` bytes, the rsm snapshots the state machine at its applied index. A
//!   snapshot from the engine (on restart, or sent by a leader) replaces the state machine.
//!
//! ## Contract
//!
//! Inputs: [`Rsm::new`] (start or restart around an engine built from durable state),
//! [`Rsm::on_message`], [`Rsm::on_timeout`], [`Rsm::submit`], [`Rsm::read`] and
//! [`Rsm::engine_input`] (any other engine input, e.g. a model checker's abstract log
//! events). After each, drain [`Rsm::take_ready`]: the engine's persist ops, messages and
//! timers, and the rsm's own outputs ([`RsmOutput`]) as `apply`, in the order of
//! [`crate::contract::Ready`].

mod engine;

pub use engine::{Engine, RaftStateSize, raft_state_size};

use crate::codec::{DecodeError, Encode};
use crate::contract::{NodeId, Ready, Violation};
use crate::raft::{Apply, LogIndex, NotLeader, ReadId, Term};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

/// The service above the log: deterministic, so replicas that apply the same commands agree.
pub trait StateMachine: Clone + Debug + Eq + Hash {
    /// What the log carries.
    type Command: Clone + Debug + Eq + Ord + Hash + Encode + 'static;
    /// A read-only request (served by ReadIndex).
    type Query: Clone + Debug + Eq + Hash;
    /// The answer to a command or a query.
    type Output: Clone + Debug + Eq + Hash;

    /// Executes the command at log index `index`.
    fn apply(&mut self, index: LogIndex, command: &Self::Command) -> Self::Output;
    /// Answers a read-only request from the current state.
    fn query(&self, query: &Self::Query) -> Self::Output;
    /// Encodes the whole state (what a snapshot holds).
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a decoded snapshot.
    fn restore(&mut self, data: &[u8]) -> Result<(), DecodeError>;
}

/// An entry of the rsm's log: a service command, or the no-op a new leader proposes so that
/// an entry of its term commits (ReadIndex needs one).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RsmEntry<C> {
    /// Commits nothing for the service; applied as nothing.
    NoOp,
    /// A service command.
    Command(C),
}

impl<C: Encode> Encode for RsmEntry<C> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            RsmEntry::NoOp => out.push(0),
            RsmEntry::Command(c) => {
                out.push(1);
                c.encode(out);
            }
        }
    }
    fn encoded_len(&self) -> usize {
        match self {
            RsmEntry::NoOp => 1,
            RsmEntry::Command(c) => 1 + c.encoded_len(),
        }
    }
}

/// How reads are made linearizable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReadMode {
    /// Reads are commands in the log (the lab's suggestion: simple, one log entry per read).
    Log,
    /// ReadIndex: reads confirm leadership with a quorum and wait for the read index to be
    /// applied; no log entry per read. New leaders propose a no-op.
    ReadIndex,
}

/// Static configuration of one rsm server.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RsmConfig {
    /// Snapshot once the engine's persisted state exceeds this many bytes (`None`: never,
    /// the lab's `maxraftstate = -1`).
    pub max_raft_state: Option<usize>,
    /// How reads work.
    pub reads: ReadMode,
    /// Most submissions and reads waiting at once; beyond, requests are refused as busy.
    pub pending_max: usize,
    /// Seeded bug: answer a submission at once with the output of applying it to the current
    /// state, before its entry is committed and applied at its index.
    pub reply_before_apply: bool,
    /// Seeded bug: answer a submission with the output of whatever entry is applied at its
    /// index, even one of another term (after a leader change).
    pub accept_other_entry: bool,
    /// Whether the rsm checks KV-3 (a snapshot restores to the state it captured) whenever it
    /// snapshots. Off only to show that a seeded bug is caught by its consequence.
    pub step_checks: bool,
}

impl Default for RsmConfig {
    fn default() -> Self {
        RsmConfig {
            max_raft_state: None,
            reads: ReadMode::Log,
            pending_max: 1 << 16,
            reply_before_apply: false,
            accept_other_entry: false,
            step_checks: true,
        }
    }
}

/// What the rsm hands to the layer above it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RsmOutput<T, O> {
    /// The entry at `index` was applied with this output (every entry, on every server).
    Applied {
        /// Its index.
        index: LogIndex,
        /// The state machine's output.
        output: O,
    },
    /// A submission or read tagged `tag` completed with `output`.
    Done {
        /// The caller's tag.
        tag: T,
        /// The state machine's output.
        output: O,
    },
    /// A submission or read tagged `tag` will never complete here (the lab's
    /// `ErrWrongLeader`): leadership was lost, another entry took its index, or a snapshot
    /// covered it. The command may still have been applied; retry it (deduplicated).
    Failed {
        /// The caller's tag.
        tag: T,
    },
    /// The state machine was replaced by a snapshot covering entries through `index`.
    Restored {
        /// The snapshot's last index.
        index: LogIndex,
    },
}

/// Why a submission or read was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refused {
    /// This server does not lead; try `leader_hint` (when known) or another.
    NotLeader {
        /// The leader this server knows of in its term.
        leader_hint: Option<NodeId>,
    },
    /// Too many requests are waiting here (`pending_max`); try again later.
    Busy,
}

impl From<NotLeader> for Refused {
    fn from(e: NotLeader) -> Self {
        Refused::NotLeader {
            leader_hint: e.leader_hint,
        }
    }
}

/// A submission waiting for its index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Pending<T> {
    term: Term,
    tag: T,
}

/// A ReadIndex read waiting for confirmation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PendingRead<T, Q> {
    term: Term,
    tag: T,
    query: Q,
}

/// The `Ready` of an rsm.
pub type RsmReady<S, E, T> = Ready<
    <E as Engine<RsmEntry<<S as StateMachine>::Command>>>::Persist,
    <E as Engine<RsmEntry<<S as StateMachine>::Command>>>::Msg,
    RsmOutput<T, <S as StateMachine>::Output>,
    <E as Engine<RsmEntry<<S as StateMachine>::Command>>>::Timer,
>;

/// The `Ready` of the engine under an rsm.
type EngineReady<S, E> = Ready<
    <E as Engine<RsmEntry<<S as StateMachine>::Command>>>::Persist,
    <E as Engine<RsmEntry<<S as StateMachine>::Command>>>::Msg,
    Apply<RsmEntry<<S as StateMachine>::Command>>,
    <E as Engine<RsmEntry<<S as StateMachine>::Command>>>::Timer,
>;

/// One server of a replicated state machine. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rsm<S, E, T>
where
    S: StateMachine,
    E: Engine<RsmEntry<S::Command>>,
    T: Clone + Debug + Eq + Hash,
{
    config: Arc<RsmConfig>,
    engine: E,
    machine: S,
    /// Index of the last entry applied to `machine` (or of the snapshot it was restored from).
    applied: LogIndex,
    /// Submissions by the index they were given.
    pending: BTreeMap<LogIndex, Pending<T>>,
    /// ReadIndex reads by the id given to the engine.
    reads: BTreeMap<ReadId, PendingRead<T, S::Query>>,
    /// The term in which this server last proposed its leader no-op.
    noop_term: Term,
    /// The engine's persisted size, updated with each persist op it emits.
    size: E::Size,
    violation: Option<Violation>,
    ready: RsmReady<S, E, T>,
}

impl<S, E, T> Rsm<S, E, T>
where
    S: StateMachine,
    E: Engine<RsmEntry<S::Command>>,
    T: Clone + Debug + Eq + Hash,
{
    /// Starts (or restarts) around `engine`, which was built from the durable state; `machine`
    /// is the empty state machine. A snapshot the engine applies at start replaces it.
    /// `engine` must not have stepped yet: its persisted size is measured here, and every
    /// persist op it emits from now on is counted.
    pub fn new(config: RsmConfig, engine: E, machine: S) -> Self {
        let mut rsm = Rsm {
            config: Arc::new(config),
            size: engine.measure(),
            engine,
            machine,
            applied: LogIndex(0),
            pending: BTreeMap::new(),
            reads: BTreeMap::new(),
            noop_term: Term(0),
            violation: None,
            ready: Ready::default(),
        };
        rsm.finish_input();
        rsm
    }

    // ---- inputs ---------------------------------------------------------------------------

    /// A message for the engine arrived.
    pub fn on_message(&mut self, from: NodeId, msg: E::Msg) {
        self.engine_input(|e| e.on_message(from, msg));
    }

    /// An engine timer fired.
    pub fn on_timeout(&mut self, timer: E::Timer) {
        self.engine_input(|e| e.on_timeout(timer));
    }

    /// Any other input to the engine (for engines with inputs of their own).
    pub fn engine_input<R>(&mut self, f: impl FnOnce(&mut E) -> R) -> R {
        let result = f(&mut self.engine);
        self.finish_input();
        result
    }

    /// Submits `command`; the answer comes as [`RsmOutput::Done`] or [`RsmOutput::Failed`]
    /// with `tag`. Returns the index and term the entry was given.
    pub fn submit(&mut self, tag: T, command: S::Command) -> Result<(LogIndex, Term), Refused> {
        let result = self.start_submit(tag, command);
        self.finish_input();
        result
    }

    /// A linearizable read by ReadIndex (only in [`ReadMode::ReadIndex`]); the answer comes
    /// as [`RsmOutput::Done`] (the query's output) or [`RsmOutput::Failed`] with `tag`.
    pub fn read(&mut self, tag: T, query: S::Query) -> Result<(), Refused> {
        assert_eq!(
            self.config.reads,
            ReadMode::ReadIndex,
            "read() needs ReadIndex"
        );
        let result = self.start_read(tag, query);
        self.finish_input();
        result
    }

    /// Drains the outputs accumulated since the last call.
    pub fn take_ready(&mut self) -> RsmReady<S, E, T> {
        std::mem::take(&mut self.ready)
    }

    // ---- queries --------------------------------------------------------------------------

    /// The consensus engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }
    /// The state machine.
    pub fn machine(&self) -> &S {
        &self.machine
    }
    /// The configuration.
    pub fn config(&self) -> &RsmConfig {
        &self.config
    }
    /// Index of the last entry the state machine reflects.
    pub fn applied_index(&self) -> LogIndex {
        self.applied
    }
    /// Number of submissions and reads waiting.
    pub fn waiting(&self) -> usize {
        self.pending.len() + self.reads.len()
    }
    /// The engine's persisted state in bytes besides the snapshot, as counted from its persist
    /// ops (equal to `engine().state_size()`, without walking the log).
    pub fn state_size(&self) -> usize {
        self.engine.tracked_size(&self.size)
    }
    /// The first violation this server's checks (or its engine's) recorded.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref().or_else(|| self.engine.violation())
    }

    // ---- internals ------------------------------------------------------------------------

    fn has_room(&self) -> bool {
        self.waiting() < self.config.pending_max
    }

    fn start_submit(&mut self, tag: T, command: S::Command) -> Result<(LogIndex, Term), Refused> {
        if !self.engine.is_leader() {
            let leader_hint = self.engine.leader_hint();
            return Err(Refused::NotLeader { leader_hint });
        }
        if !self.has_room() {
            return Err(Refused::Busy);
        }
        let speculative = self
            .config
            .reply_before_apply
            .then(|| self.machine.clone().apply(self.applied.next(), &command));
        let (index, term) = self.engine.propose(RsmEntry::Command(command))?;
        match speculative {
            // Seeded bug: the answer leaves before the entry is even committed.
            Some(output) => self.ready.apply.push(RsmOutput::Done { tag, output }),
            None => {
                let old = self.pending.insert(index, Pending { term, tag });
                if let Some(old) = old {
                    // The engine reused an index we still waited on: that entry is gone.
                    self.ready.apply.push(RsmOutput::Failed { tag: old.tag });
                }
            }
        }
        Ok((index, term))
    }

    fn start_read(&mut self, tag: T, query: S::Query) -> Result<(), Refused> {
        if !self.engine.is_leader() {
            let leader_hint = self.engine.leader_hint();
            return Err(Refused::NotLeader { leader_hint });
        }
        if !self.has_room() {
            return Err(Refused::Busy);
        }
        // The smallest free id: ids of failed reads are never released by the engine (it
        // forgets them with its leadership), so reuse is safe and keeps states canonical.
        let id = (0..)
            .map(ReadId)
            .find(|id| !self.reads.contains_key(id))
            .expect("fewer than 2^64 reads");
        self.engine.read_index(id)?;
        let term = self.engine.term();
        self.reads.insert(id, PendingRead { term, tag, query });
        Ok(())
    }

    /// Carries out what the engine produced, then: answers confirmed reads, fails what can no
    /// longer complete, proposes the leader no-op, snapshots if the log grew too large —
    /// repeated until the engine is quiet (a one-server cluster commits a proposal at once).
    fn finish_input(&mut self) {
        loop {
            let ready = self.engine.take_ready();
            let quiet = ready.is_empty();
            let applied_any = self.take_engine_ready(ready);
            self.serve_reads();
            self.fail_lost();
            let proposed = self.maybe_propose_noop();
            let snapshotted = applied_any && self.maybe_snapshot();
            if quiet && !proposed && !snapshotted {
                break;
            }
        }
    }

    /// Moves persist ops, messages and timers into our `Ready`; applies entries and snapshots
    /// to the state machine. Returns true if anything was applied.
    fn take_engine_ready(&mut self, ready: EngineReady<S, E>) -> bool {
        for op in &ready.persist {
            E::track(&mut self.size, op);
        }
        self.ready.persist.extend(ready.persist);
        self.ready.messages.extend(ready.messages);
        let applied_any = !ready.apply.is_empty();
        for a in ready.apply {
            match a {
                Apply::Entry {
                    index,
                    term,
                    command,
                } => self.apply_entry(index, term, command),
                Apply::Snapshot(s) => self.restore(s.meta.index, &s.data),
            }
        }
        self.ready.timers.extend(ready.timers);
        applied_any
    }

    fn apply_entry(&mut self, index: LogIndex, term: Term, entry: RsmEntry<S::Command>) {
        debug_assert_eq!(index, self.applied.next(), "applies arrive in order");
        self.applied = index;
        let pending = self.pending.remove(&index);
        let RsmEntry::Command(command) = entry else {
            if let Some(p) = pending {
                self.ready.apply.push(RsmOutput::Failed { tag: p.tag });
            }
            return;
        };
        let output = self.machine.apply(index, &command);
        self.ready.apply.push(RsmOutput::Applied {
            index,
            output: output.clone(),
        });
        if let Some(p) = pending {
            let ours = p.term == term || self.config.accept_other_entry;
            self.ready.apply.push(if ours {
                RsmOutput::Done { tag: p.tag, output }
            } else {
                RsmOutput::Failed { tag: p.tag }
            });
        }
    }

    fn restore(&mut self, index: LogIndex, data: &[u8]) {
        if let Err(e) = self.machine.restore(data) {
            self.record(Violation::new(
                KV_SNAPSHOT_FAITHFUL,
                format!("snapshot through {index} does not decode: {e}"),
            ));
        }
        self.applied = index;
        // Submissions the snapshot covers can no longer be matched to their entries.
        let rest = self.pending.split_off(&index.next());
        for (_, p) in std::mem::replace(&mut self.pending, rest) {
            self.ready.apply.push(RsmOutput::Failed { tag: p.tag });
        }
        self.ready.apply.push(RsmOutput::Restored { index });
    }

    fn serve_reads(&mut self) {
        for state in self.engine.take_read_states() {
            let Some(read) = self.reads.remove(&state.id) else {
                continue;
            };
            debug_assert!(state.index <= self.applied, "released reads are applied");
            let output = self.machine.query(&read.query);
            self.ready.apply.push(RsmOutput::Done {
                tag: read.tag,
                output,
            });
        }
    }

    /// Fails every submission and read made in a term this server no longer leads.
    fn fail_lost(&mut self) {
        let (leader, term) = (self.engine.is_leader(), self.engine.term());
        let lost = |t: Term| !leader || t != term;
        if self.pending.values().any(|p| lost(p.term)) {
            let (gone, kept): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|(_, p)| lost(p.term));
            self.pending = kept;
            for (_, p) in gone {
                self.ready.apply.push(RsmOutput::Failed { tag: p.tag });
            }
        }
        if self.reads.values().any(|r| lost(r.term)) {
            let (gone, kept): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.reads)
                .into_iter()
                .partition(|(_, r)| lost(r.term));
            self.reads = kept;
            for (_, r) in gone {
                self.ready.apply.push(RsmOutput::Failed { tag: r.tag });
            }
        }
    }

    /// With ReadIndex, a new leader proposes a no-op at once so that an entry of its term
    /// commits (until then it cannot know the commit index, and reads wait).
    fn maybe_propose_noop(&mut self) -> bool {
        let term = self.engine.term();
        if self.config.reads != ReadMode::ReadIndex
            || !self.engine.is_leader()
            || self.noop_term == term
        {
            return false;
        }
        self.noop_term = term;
        self.engine.propose(RsmEntry::NoOp).is_ok()
    }

    /// Snapshots at the applied index once the persisted log exceeds `max_raft_state`.
    fn maybe_snapshot(&mut self) -> bool {
        let Some(max) = self.config.max_raft_state else {
            return false;
        };
        if self.engine.tracked_size(&self.size) <= max {
            return false;
        }
        let data = self.machine.snapshot();
        if self.config.step_checks {
            self.check_snapshot(&data);
        }
        self.engine.snapshot(self.applied, Arc::from(data))
    }

    /// KV-3: the snapshot restores to exactly the state it captured.
    fn check_snapshot(&mut self, data: &[u8]) {
        let mut restored = self.machine.clone();
        let faithful = restored.restore(data).is_ok() && restored == self.machine;
        if !faithful {
            let detail = format!(
                "the snapshot at {} does not restore the state it captured",
                self.applied
            );
            self.record(Violation::new(KV_SNAPSHOT_FAITHFUL, detail));
        }
    }

    fn record(&mut self, v: Violation) {
        if self.violation.is_none() {
            self.violation = Some(v);
        }
    }
}

/// KV-3 Snapshot Faithful: restoring a snapshot yields exactly the state machine it captured,
/// sessions (the dedup table) included. See `specs/invariants.md`.
pub const KV_SNAPSHOT_FAITHFUL: &str = "KV-3";

#[cfg(test)]
mod tests;
