//! # Raft, as a pure state machine
//!
//! This module is the one implementation of Raft in aver (Ongaro & Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", extended version; section numbers below refer to it).
//! It guarantees the safety properties of Figure 3 — Election Safety, Leader Append-Only, Log
//! Matching, Leader Completeness, State Machine Safety — which `specs/invariants.md` catalogues
//! as `RAFT-1`…`RAFT-5` and [`invariants`] implements as plain functions.
//!
//! ## Roles and message flow
//!
//! * **Follower** answers `RequestVote` and `AppendEntries`/`InstallSnapshot`; when its
//!   `Election` timer fires it becomes a candidate ([`election`]).
//! * **Candidate** increments its term, votes for itself (durably) and asks every peer for a
//!   vote; a majority makes it leader.
//! * **Leader** replicates its log with `AppendEntries` ([`replication`]), sends heartbeats on
//!   its `Heartbeat` timer, advances the commit index by counting replicas of entries *from its
//!   own term* (§5.4.2, Figure 8), and sends its snapshot to followers that need entries it
//!   has discarded ([`snapshot`]).
//!
//! Every message first goes through [`Raft::on_message`]'s shared term check: a higher term
//! turns any server into a follower of that term; a lower term is answered (requests) or
//! dropped (replies).
//!
//! ## Contract with the driver
//!
//! Inputs: [`Raft::new`] (start or restart from [`Durable`] state), [`Raft::on_message`],
//! [`Raft::on_timeout`], [`Raft::propose`], [`Raft::snapshot`]. After each input the driver
//! drains [`Raft::take_ready`] and carries it out in the order documented on
//! [`crate::contract::Ready`]: persist (durably) BEFORE sending. The apply stream is ordered
//! and gap-free: after a `Snapshot` at index `s` the next `Entry` has index `s + 1`.
//!
//! ## Deviations from the paper, and why
//!
//! * Replies are messages, not RPC returns; they echo what is needed to spot stale ones.
//! * No no-op entry on election: the 6.5840 tests require the first command at index 1.
//!   ReadIndex ([`read`], thesis §6.4) needs an entry of the leader's term committed before
//!   it can serve reads, so the service that reads proposes the no-op (the rsm does, in its
//!   ReadIndex mode); a server never asked to read behaves exactly as without it.
//! * Replication is pipelined per follower: after a success the leader advances `next_index`
//!   optimistically as it sends; after a rejection it probes with one message per heartbeat
//!   (the etcd `Probe`/`Replicate` idea), so an entry normally crosses the network once.
//! * Fast backtracking uses the lab's XTerm/XIndex/XLen hints.

pub mod bugs;
mod election;
pub mod invariants;
pub mod log;
pub mod message;
mod read;
pub mod rename;
mod replication;
mod snapshot;
pub mod types;

pub use bugs::{Bug, Bugs};
pub use log::{Durable, Log, PersistOp};
pub use message::{
    AppendEntries, AppendEntriesReply, AppendResult, InstallSnapshot, InstallSnapshotReply,
    Message, RequestVote, RequestVoteReply,
};
pub use read::LeaderReads;
pub use rename::Renaming;
pub use types::{
    Command, Entry, HardState, LogIndex, ReadId, ReadState, Snapshot, SnapshotMeta, Term,
};

use crate::contract::{self, NodeId, TimerCmd, Violation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Raft's named timers. The driver picks durations: a randomized election timeout, a fixed
/// heartbeat interval shorter than the smallest election timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Followers and candidates: no word from a leader for a while; start an election.
    Election,
    /// Leaders: time to send heartbeats (and retry stalled replication).
    Heartbeat,
}

/// What Raft hands to the service above it, in log order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Apply<C> {
    /// A committed entry.
    Entry {
        /// Its index.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// The command to execute.
        command: C,
    },
    /// Replace the service state with this snapshot (on restart, or sent by the leader).
    Snapshot(Snapshot),
}

/// The `Ready` type of the Raft core.
pub type RaftReady<C> = contract::Ready<PersistOp<C>, Message<C>, Apply<C>, Timer>;

/// Static configuration of one server.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Config {
    /// This server.
    pub id: NodeId,
    /// Every voting member, this server included, sorted. At most 64.
    pub voters: Vec<NodeId>,
    /// The most entries one AppendEntries carries (a limit on message size and on the work
    /// one message causes).
    pub entries_per_message_max: usize,
    /// Seeded bugs (see [`bugs`]); empty for a correct server.
    pub bugs: Bugs,
    /// Whether the server checks its step and node invariants (RAFT-2, 6, 8, 9, 10) after
    /// every input and records the first violation in [`Raft::violation`]. On by default;
    /// off only to show that cluster-level properties catch a seeded bug by its
    /// consequence (`aver check raft --no-step-checks`).
    pub step_checks: bool,
    /// When a leader counts its own copy of a new entry towards a majority. `false` (the
    /// paper's Figure 2, and the default): at once — so every output after a write, the
    /// leader's AppendEntries included, must wait for that write to be durable. `true`
    /// (thesis §10.2.1): only once the driver reports it durable with
    /// [`Raft::on_persisted`]; then the leader's AppendEntries and InstallSnapshot, and every
    /// apply, need not wait for this server's own writes ([`Raft::must_follow_writes`],
    /// [`Raft::applies_follow_writes`]): the leader writes its log in parallel with
    /// replicating it, and one fsync instead of two lies on the path of a commit.
    pub leader_counts_durable_only: bool,
}

impl Config {
    /// The correct protocol for server `id` of `voters`, with default limits.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Config {
        let mut voters = voters;
        voters.sort();
        voters.dedup();
        assert!(
            voters.contains(&id),
            "{id} is not among the voters {voters:?}"
        );
        assert!(voters.len() <= 64, "at most 64 voters");
        Config {
            id,
            voters,
            entries_per_message_max: 64,
            bugs: Bugs::NONE,
            step_checks: true,
            leader_counts_durable_only: false,
        }
    }

    /// Votes (or replicas) needed for a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    fn position(&self, id: NodeId) -> Option<usize> {
        self.voters.binary_search(&id).ok()
    }
}

/// The role a server plays in its current term, with the data only that role needs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Passive: answers leaders and candidates.
    Follower,
    /// Campaigning in the current term.
    Candidate {
        /// Voters that granted their vote, as a bitset over `Config::voters` positions.
        votes: u64,
    },
    /// Leading the current term.
    Leader {
        /// Replication progress, one entry per position in `Config::voters` (own entry too).
        progress: Vec<Progress>,
        /// ReadIndex requests waiting for confirmation (empty unless the service reads).
        reads: LeaderReads,
    },
}

/// Kind of role, without its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleKind {
    /// See [`Role::Follower`].
    Follower,
    /// See [`Role::Candidate`].
    Candidate,
    /// See [`Role::Leader`].
    Leader,
}

/// What a leader knows about one follower's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Progress {
    /// Highest index known to match the leader's log.
    pub match_index: LogIndex,
    /// Next index to send.
    pub next_index: LogIndex,
    /// `true`: the follower accepted recently; send new entries eagerly and advance
    /// `next_index` optimistically. `false`: probing; one message per heartbeat or reply.
    pub replicating: bool,
    /// Probing and a probe is outstanding: wait for its reply or the next heartbeat.
    pub paused: bool,
    /// Highest ReadIndex round (`read_ctx`) the follower has answered in this term.
    pub read_ack: u64,
}

/// `propose` was refused: this server does not lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NotLeader {
    /// The leader this server last heard from in its current term, if any.
    pub leader_hint: Option<NodeId>,
    /// This server's term.
    pub term: Term,
}

/// One Raft server. `Clone + Eq + Hash + Debug` so the model checker can store it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Raft<C> {
    config: Arc<Config>,
    /// Persistent state; changed only via [`Raft::persist`].
    durable: Durable<C>,
    role: Role,
    /// Leader of the current term, when known.
    leader: Option<NodeId>,
    /// Highest index known committed. Invariant: `base ≤ commit ≤ last_index`.
    commit: LogIndex,
    /// Highest index handed to the apply stream. Invariant: `base ≤ applied ≤ commit`.
    applied: LogIndex,
    /// The first invariant violation this server's own step checks found. Every driver reads
    /// it after each input and reports it as a failed property with its trace.
    violation: Option<Violation>,
    /// Outputs not yet drained.
    ready: RaftReady<C>,
    /// Confirmed reads not yet drained ([`Raft::take_read_states`]).
    read_states: Vec<ReadState>,
}

impl<C: Command> Raft<C> {
    /// Starts a server from its durable state (`Durable::default()` for a brand-new one).
    /// The first `Ready` sets the election timer and, if there is a snapshot, applies it.
    pub fn new(config: Config, durable: Durable<C>) -> Raft<C> {
        let base = durable.log.base();
        assert_eq!(
            durable.snapshot.as_ref().map(|s| s.meta),
            (base.index.0 > 0).then_some(base),
            "durable snapshot must match the log's base"
        );
        let mut raft = Raft {
            config: Arc::new(config),
            durable,
            role: Role::Follower,
            leader: None,
            commit: base.index,
            applied: base.index,
            violation: None,
            ready: RaftReady::default(),
            read_states: Vec::new(),
        };
        if let Some(s) = &raft.durable.snapshot {
            raft.ready.apply.push(Apply::Snapshot(s.clone()));
        }
        raft.ready.timers.push(TimerCmd::Set(Timer::Election));
        raft.check_after_input(&raft.summary());
        raft
    }

    // ---- inputs ---------------------------------------------------------------------------

    /// A message from `from` arrived.
    pub fn on_message(&mut self, from: NodeId, msg: Message<C>) {
        let before = self.summary();
        if self.config.position(from).is_some() && from != self.config.id {
            self.step(from, msg);
        }
        self.check_after_input(&before);
    }

    /// The named timer fired.
    pub fn on_timeout(&mut self, timer: Timer) {
        let before = self.summary();
        match timer {
            Timer::Election => self.on_election_timeout(),
            Timer::Heartbeat => self.on_heartbeat_timeout(),
        }
        self.check_after_input(&before);
    }

    /// Start agreement on `command` (the lab's `Start`). On a leader, returns the index and
    /// term the entry will have if it commits; it may never commit.
    pub fn propose(&mut self, command: C) -> Result<(LogIndex, Term), NotLeader> {
        let before = self.summary();
        let result = self.propose_entry(command);
        self.check_after_input(&before);
        result
    }

    /// The service has captured its state through `index` (which it has applied) in `data`:
    /// compact the log. Returns `false` (and does nothing) if `index` is not applied yet or is
    /// already covered by a snapshot.
    pub fn snapshot(&mut self, index: LogIndex, data: Arc<[u8]>) -> bool {
        let before = self.summary();
        let taken = self.take_snapshot(index, data);
        self.check_after_input(&before);
        taken
    }

    /// Asks for a linearizable read (ReadIndex, thesis §6.4). On a leader, records the read
    /// with the current commit index as its read index and starts a round of AppendEntries
    /// whose replies confirm that a quorum still recognises this term. The read is released by
    /// [`Raft::take_read_states`] once a quorum has confirmed and `applied ≥ read index`.
    /// A leader that has not yet committed an entry of its own term does not know the latest
    /// commit index: it holds the read until it has (the service should propose a no-op on
    /// election). A read dies with the leadership: if this server stops leading, the read is
    /// never released and the service must give up on it when the term changes.
    pub fn read_index(&mut self, id: ReadId) -> Result<(), NotLeader> {
        let before = self.summary();
        let result = self.start_read(id);
        self.check_after_input(&before);
        result
    }

    /// The driver reports that this server's log is durable through `index`, whose entry has
    /// `term`. With `Config::leader_counts_durable_only`, a leader now counts its own copy of
    /// the entries up to `index` (if its log still holds that entry) and may commit; otherwise
    /// this input changes nothing.
    pub fn on_persisted(&mut self, index: LogIndex, term: Term) {
        let before = self.summary();
        self.count_own_durable(index, term);
        self.check_after_input(&before);
    }

    /// Whether `msg`, which this server emitted, may only leave once every write this server
    /// emitted before it is durable. True for every message, except — with
    /// `Config::leader_counts_durable_only` — a leader's AppendEntries and InstallSnapshot:
    /// they promise nothing about the leader's own disk, and the commit index they carry
    /// counts the leader's copy only once it is durable.
    pub fn must_follow_writes(&self, msg: &Message<C>) -> bool {
        let independent = matches!(msg, Message::AppendEntries(_) | Message::InstallSnapshot(_));
        !(self.config.leader_counts_durable_only && independent)
    }

    /// Whether applies may only be handed to the service once every write emitted before them
    /// is durable. False with `Config::leader_counts_durable_only`: every entry applied is then
    /// committed on a majority of durable copies without counting this server's pending
    /// writes (a follower's own copy is not needed for what it applies locally, and its
    /// later writes stay ordered behind the earlier ones).
    pub fn applies_follow_writes(&self) -> bool {
        !self.config.leader_counts_durable_only
    }

    /// Drains the outputs accumulated since the last call.
    pub fn take_ready(&mut self) -> RaftReady<C> {
        std::mem::take(&mut self.ready)
    }

    /// Drains the reads confirmed since the last call (see [`Raft::read_index`]), in the order
    /// they were confirmed. Each one's index is at most the applied index of every `Ready`
    /// drained so far: a service that carries out the `Ready`'s applies first can serve the
    /// read at once. Always empty for a server that is never asked to read.
    pub fn take_read_states(&mut self) -> Vec<ReadState> {
        std::mem::take(&mut self.read_states)
    }

    // ---- queries --------------------------------------------------------------------------

    /// This server's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Current term.
    pub fn term(&self) -> Term {
        self.durable.hard.term
    }
    /// Vote cast in the current term.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.durable.hard.voted_for
    }
    /// True if this server believes it leads its current term.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }
    /// The role and its data.
    pub fn role(&self) -> &Role {
        &self.role
    }
    /// The kind of role.
    pub fn role_kind(&self) -> RoleKind {
        match self.role {
            Role::Follower => RoleKind::Follower,
            Role::Candidate { .. } => RoleKind::Candidate,
            Role::Leader { .. } => RoleKind::Leader,
        }
    }
    /// Leader of the current term, when known.
    pub fn leader_hint(&self) -> Option<NodeId> {
        self.leader
    }
    /// Forgets the leader of the current term (as if it were not known). The hint only
    /// answers a client that asked a server that does not lead (`NotLeader`); no protocol
    /// decision reads it. A model checker whose clients ask only leaders calls this after
    /// every input, so that states that differ only in whom a follower last heard from are
    /// one state.
    pub fn forget_leader_hint(&mut self) {
        self.leader = None;
    }
    /// Commit index.
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }
    /// Index of the last entry handed to the apply stream.
    pub fn applied_index(&self) -> LogIndex {
        self.applied
    }
    /// The log.
    pub fn log(&self) -> &Log<C> {
        &self.durable.log
    }
    /// Everything this server believes it has persisted.
    pub fn durable(&self) -> &Durable<C> {
        &self.durable
    }
    /// The first invariant violation this server's own step checks recorded, if any. Drivers
    /// read it after every input (see `Config::step_checks`).
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// True only if delivering `msg` from `from` to this server is a no-op now and in every
    /// state this server can reach from here, a restart from its durable state included. A
    /// model checker may then forget the message: it can never have an effect.
    ///
    /// Conservative; it holds for:
    /// * messages [`Raft::on_message`] never looks at (from a non-voter or from itself);
    /// * a *reply* of a lower term: [`Raft::step`] drops stale replies under every seeded bug,
    ///   and the term never decreases, since it is persisted before it is used (a restart
    ///   reads it back);
    /// * a `RequestVoteReply` of the current term unless this server is a candidate in that
    ///   term that has not yet counted a vote it grants: becoming a candidate increments the
    ///   term, so a server is a candidate of a given term at most once (a restart makes it a
    ///   follower), and votes are only ever added while it stays one;
    /// * an `AppendEntriesReply` or `InstallSnapshotReply` of the current term to a
    ///   follower: only a leader handles them, and a follower of a term never leads it (only
    ///   a candidate becomes leader, and becoming one increments the term; a restart makes a
    ///   follower of the same term).
    ///
    /// * an [`AppendResult::StaleTerm`] reply of the current term (with no read round): it
    ///   answers an earlier term's request, and `on_append_entries_reply` passes over it;
    /// * an `AppendEntriesReply` of the current term to its leader that rejects an index at
    ///   or below the follower's recorded match and acknowledges no newer read round: the
    ///   leader passes over such a conflict, and while it leads the term the recorded match
    ///   and read acknowledgment only grow (after, it never leads the term again).
    ///
    /// Requests are never ignored (a stale one is answered), nor are other replies of the
    /// current term.
    ///
    /// Callers must only rely on this when the server's disk holds exactly
    /// [`Raft::durable`] (a seeded bug such as `vote-not-persisted` breaks that).
    pub fn ignores_forever(&self, from: NodeId, msg: &Message<C>) -> bool {
        if self.config.position(from).is_none() || from == self.config.id {
            return true;
        }
        if msg.is_request() {
            return false;
        }
        let term = msg.term();
        if term != self.term() {
            return term < self.term();
        }
        match (msg, &self.role) {
            (Message::RequestVoteReply(m), Role::Candidate { votes }) => {
                let counted = self
                    .config
                    .position(from)
                    .is_some_and(|pos| votes & (1 << pos) != 0);
                !m.granted || counted
            }
            (Message::RequestVoteReply(_), _) => true,
            (Message::AppendEntriesReply(_) | Message::InstallSnapshotReply(_), Role::Follower) => {
                true
            }
            (Message::AppendEntriesReply(m), _) if m.result == AppendResult::StaleTerm => {
                m.read_ctx == 0
            }
            (Message::AppendEntriesReply(m), Role::Leader { progress, .. }) => {
                let Some(p) = self.config.position(from).and_then(|pos| progress.get(pos)) else {
                    return false;
                };
                matches!(m.result, AppendResult::Conflict { rejected_index, .. }
                    if rejected_index <= p.match_index)
                    && m.read_ctx <= p.read_ack
            }
            _ => false,
        }
    }

    /// True if the request `msg`, from `sender` (its current state) to this server, has
    /// no effect in any state whose terms stay at or below `bound`: delivering it, now or
    /// later, changes neither server and brings only a reply the sender ignores. A model
    /// with a term bound may drop such a request as it drops what [`Raft::ignores_forever`]
    /// names. Two cases, read off the handlers:
    ///
    /// * **A stale request whose sender cannot be moved by the answer.** Its term is below
    ///   this server's, and terms never fall, so this server will always refuse it unchanged
    ///   (`on_request_vote` grants only in the current term, `reject_stale_append`, the stale
    ///   branch of `on_install_snapshot`) and answer at its own term, at most `bound`. The
    ///   sender is at `bound` already, so the answer is never news of a higher term; and at
    ///   its own term the sender ignores a refused vote (`on_request_vote_reply`), an
    ///   InstallSnapshot reply with `match_index` 0 (`on_install_snapshot_reply`), and —
    ///   unless it leads — an AppendEntries reply (`on_append_entries_reply`). A follower at
    ///   `bound` never leads again: it would have to campaign, which takes its term past
    ///   `bound`. So a RequestVote or InstallSnapshot qualifies, and an AppendEntries whose
    ///   sender follows (a server that is down restarts as a follower).
    /// * **A RequestVote at `bound` to a server that voted for another at `bound`.** Its vote
    ///   for the term is durable and its term cannot move past `bound`, so it refuses,
    ///   unchanged, in every later state, and the refusal is ignored (above).
    ///
    /// Once true it stays true while both servers stay within `bound` (terms and votes at
    /// `bound` are final, and a follower at `bound` stays one). Always false when either
    /// server runs a seeded bug that changes this handling ([`Bugs::keep_stale_handling`]).
    /// As for [`Raft::ignores_forever`], callers must only rely on it when both servers'
    /// disks hold exactly [`Raft::durable`].
    pub fn request_moot_within(&self, sender: &Raft<C>, msg: &Message<C>, bound: Term) -> bool {
        let handled =
            self.config.bugs.keep_stale_handling() && sender.config.bugs.keep_stale_handling();
        if !handled || !msg.is_request() || sender.term() != bound {
            return false;
        }
        let term = msg.term();
        if term < self.term() {
            return match msg {
                Message::RequestVote(_) | Message::InstallSnapshot(_) => true,
                Message::AppendEntries(_) => matches!(sender.role(), Role::Follower),
                _ => false,
            };
        }
        matches!(msg, Message::RequestVote(_))
            && term == bound
            && self.term() == bound
            && self.voted_for().is_some_and(|v| v != sender.config.id)
    }

    /// The class of deliveries that have the same effect as delivering `msg` from `from` to
    /// this server, now and in every state this server can reach (a restart from its durable
    /// state included), or `None` if this method does not place it. Two messages of one class
    /// can stand for each other: a model checker may treat them as one (for `HeldAppend`,
    /// under the condition below). `may_lead(t)` must say whether this server could still be elected
    /// in term `t` (see [`may_lead`]). Read off the handlers, under the correct protocol:
    ///
    /// * [`DeliveryClass::StaleRequest`]: a request of a term below this server's. Terms
    ///   never fall, so it stays stale, and it is refused without a change: a RequestVote
    ///   with `RequestVoteReply { term, granted: false }` (`on_request_vote` grants only in
    ///   the current term), an AppendEntries with [`AppendResult::StaleTerm`]
    ///   (`reject_stale_append`), an InstallSnapshot with `match_index` 0 (the stale branch
    ///   of `on_install_snapshot`). The answer depends on this server's term alone, never
    ///   on the request, so the requests of one kind from one sender are alike.
    /// * [`DeliveryClass::TermNotice`]: an AppendEntries or InstallSnapshot reply, or a
    ///   refused vote, of a term `t` that this server will never lead. Of a term below this
    ///   server's it is ignored (`step` drops stale replies). Otherwise it at most moves this
    ///   server to `t` as a follower with no leader (`step`, which names a leader only for
    ///   AppendEntries and InstallSnapshot), and is then ignored: only a leader of `t` reads
    ///   such replies (`on_append_entries_reply`, `on_install_snapshot_reply`) and a refused
    ///   vote counts for nothing (`on_request_vote_reply`). Sender and content do not matter.
    /// * [`DeliveryClass::HeldAppend`]: an AppendEntries of this server's term from one
    ///   sender whose entries this server already holds, by where it ends, the commit index
    ///   it can bring and its read round (see `held_append`). Unlike the others, it stays a
    ///   class only **while no second server leads the term** (Election Safety): a caller
    ///   must check that over the whole history, so that the first run breaking it is found
    ///   before anything it could hide.
    /// * [`DeliveryClass::StaleAck`]: to a leader, a success of its term from one follower
    ///   (with one read round) reporting no more than the match it has recorded (see
    ///   `stale_ack`).
    ///
    /// `None` when this server runs any seeded bug: bugs change exactly this handling.
    /// Callers must only rely on it when the disk holds exactly [`Raft::durable`].
    pub fn delivery_class(
        &self,
        from: NodeId,
        msg: &Message<C>,
        may_lead: impl FnOnce(Term) -> bool,
    ) -> Option<DeliveryClass> {
        if self.config.bugs != Bugs::NONE {
            return None;
        }
        let term = msg.term();
        let kind = match msg {
            Message::RequestVote(_) => Some(0),
            Message::AppendEntries(_) => Some(1),
            Message::InstallSnapshot(_) => Some(2),
            _ => None,
        };
        if let Some(kind) = kind {
            if term < self.term() {
                return Some(DeliveryClass::StaleRequest(from, kind));
            }
            return match msg {
                Message::AppendEntries(m) => self.held_append(from, m),
                _ => None,
            };
        }
        if let Some(class) = self.stale_ack(from, msg) {
            return Some(class);
        }
        let notice = match msg {
            Message::RequestVoteReply(m) => !m.granted,
            _ => true,
        };
        (notice && !may_lead(term)).then_some(DeliveryClass::TermNotice(term))
    }

    /// The [`DeliveryClass::HeldAppend`] of `m`, if it is one: an AppendEntries of this
    /// server's term, to a follower or candidate, whose entries beyond this server's snapshot
    /// it holds exactly and whose previous entry (unless under the snapshot) it holds with
    /// the same term. Delivered, it changes no entry (`store_entries` skips held entries; a
    /// request that ends under the snapshot is answered at once), takes `from` as leader,
    /// moves the commit index to `max(commit, min(leader_commit, end))` (none when it ends
    /// under the snapshot, which depends on `end` alone), and answers `Success { end }` with
    /// its read round: a function of `(from, end, min(leader_commit, end), read_ctx)`. It
    /// stays one while no second server leads the term: only the term's leader sends
    /// AppendEntries of it, from a log that only grows while it leads, so no entry it sends
    /// conflicts with a held one; a restart keeps the log (and starts from a lower commit
    /// index, which `min(leader_commit, end)` still decides); a snapshot of the term's
    /// leader, or of this server, keeps the entries after it.
    fn held_append(&self, from: NodeId, m: &AppendEntries<C>) -> Option<DeliveryClass> {
        if m.term != self.term() || self.is_leader() {
            return None;
        }
        let log = &self.durable.log;
        let base = log.base().index;
        if m.prev_log_index >= base && log.term_at(m.prev_log_index) != Some(m.prev_log_term) {
            return None;
        }
        let held = m.entries.iter().enumerate().all(|(k, e)| {
            let index = LogIndex(m.prev_log_index.0 + 1 + k as u64);
            index <= base || log.entry(index) == Some(e)
        });
        let end = LogIndex(m.prev_log_index.0 + m.entries.len() as u64);
        held.then_some(DeliveryClass::HeldAppend {
            from,
            end,
            commit: m.leader_commit.min(end),
            read_ctx: m.read_ctx,
        })
    }

    /// The [`DeliveryClass::StaleAck`] of `msg`, if it is one: to this server, leading the
    /// reply's term, a success reporting a match no greater than the one recorded for
    /// `from`. `on_follower_matched` then leaves the match and next index as they are and
    /// does only what any such reply does (replicating, unpaused, a commit check, an append
    /// if `from` is behind), and an AppendEntries reply also acknowledges its read round; the
    /// recorded match only grows while this server leads the term, and after that it ignores
    /// replies of the term.
    fn stale_ack(&self, from: NodeId, msg: &Message<C>) -> Option<DeliveryClass> {
        let Role::Leader { progress, .. } = &self.role else {
            return None;
        };
        let recorded = progress.get(self.config.position(from)?)?.match_index;
        let (reported, round) = match msg {
            Message::AppendEntriesReply(m) if m.term == self.term() => match m.result {
                AppendResult::Success { match_index } => (match_index, Some(m.read_ctx)),
                _ => return None,
            },
            Message::InstallSnapshotReply(m) if m.term == self.term() && m.match_index.0 > 0 => {
                (m.match_index, None)
            }
            _ => return None,
        };
        (reported <= recorded).then_some(DeliveryClass::StaleAck(from, round))
    }

    // ---- shared step ----------------------------------------------------------------------

    /// The term check every message goes through (§5.1), then dispatch by message.
    fn step(&mut self, from: NodeId, msg: Message<C>) {
        let term = msg.term();
        if term > self.term() {
            let ignore = self.config.bugs.has(Bug::LeaderIgnoresHigherTerm)
                && self.is_leader()
                && !msg.is_request();
            if ignore {
                // Seeded bug: adopt the term but keep leading it, unelected.
                self.set_hard_state(HardState {
                    term,
                    voted_for: None,
                });
            } else {
                let leader = match msg {
                    Message::AppendEntries(_) | Message::InstallSnapshot(_) => Some(from),
                    _ => None,
                };
                self.become_follower(term, leader);
            }
        }
        let stale = term < self.term();
        match msg {
            Message::RequestVote(m) => self.on_request_vote(from, m),
            Message::RequestVoteReply(m) if !stale => self.on_request_vote_reply(from, m),
            Message::AppendEntries(m) => {
                if stale && !self.config.bugs.has(Bug::AcceptStaleTerm) {
                    self.reject_stale_append(from);
                } else {
                    self.on_append_entries(from, m);
                }
            }
            Message::AppendEntriesReply(m) if !stale => self.on_append_entries_reply(from, m),
            Message::InstallSnapshot(m) => self.on_install_snapshot(from, m),
            Message::InstallSnapshotReply(m) if !stale => self.on_install_snapshot_reply(from, m),
            _ => {} // a stale reply: its sender has moved on; so have we.
        }
    }

    /// Becomes a follower of `term` (which may be the current one).
    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let was_leader = self.is_leader();
        if term > self.term() {
            self.set_hard_state(HardState {
                term,
                voted_for: None,
            });
        }
        self.role = Role::Follower;
        self.leader = leader;
        if was_leader {
            self.ready.timers.push(TimerCmd::Cancel(Timer::Heartbeat));
            self.ready.timers.push(TimerCmd::Set(Timer::Election));
        }
    }

    /// Changes durable state: applies `op` to our copy and emits it for the driver.
    fn persist(&mut self, op: PersistOp<C>) {
        self.durable.apply(&op);
        self.ready.persist.push(op);
    }

    /// Persists a new hard state. Several changes in one input (step down to a new term, then
    /// vote in it) become one write: only the last hard state of a `Ready` matters.
    fn set_hard_state(&mut self, hard: HardState) {
        if hard == self.durable.hard {
            return;
        }
        if let Some(PersistOp::HardState(pending)) = self.ready.persist.last_mut() {
            *pending = hard;
            self.durable.hard = hard;
            return;
        }
        self.persist(PersistOp::HardState(hard));
    }

    fn send(&mut self, to: NodeId, msg: Message<C>) {
        debug_assert_ne!(to, self.config.id);
        self.ready.messages.push((to, msg));
    }

    /// Hands newly committed entries to the apply stream, in order.
    fn apply_committed(&mut self) {
        while self.applied < self.commit {
            let index = self.applied.next();
            let entry = self
                .durable
                .log
                .entry(index)
                .expect("committed entry must be held");
            let (term, command) = (entry.term, entry.command.clone());
            self.ready.apply.push(Apply::Entry {
                index,
                term,
                command,
            });
            self.applied = index;
        }
    }

    /// Every voter but this server.
    fn peers(&self) -> Vec<NodeId> {
        self.config
            .voters
            .iter()
            .copied()
            .filter(|&p| p != self.config.id)
            .collect()
    }

    // ---- self-checks ----------------------------------------------------------------------

    fn summary(&self) -> invariants::StepSummary {
        invariants::StepSummary::of(self)
    }

    /// Finishes every input: releases the reads that became confirmed, then re-checks the
    /// cheap local invariants and records the first violation. It does not panic: a driver turns it into a failed property with a
    /// counterexample (the model checker, the simulator) or stops the node with a clear error
    /// (the runtime), so a bug — seeded or real — always ends in a trace.
    fn check_after_input(&mut self, before: &invariants::StepSummary) {
        self.release_reads();
        if !self.config.step_checks || self.violation.is_some() {
            return;
        }
        let result =
            invariants::check_step(before, self).and_then(|()| invariants::check_node(self));
        if let Err(v) = result {
            self.violation = Some(Violation::new(
                v.id,
                format!("{} (term {}): {}", self.config.id, self.term().0, v.detail),
            ));
        }
    }
}

impl<C: Command> contract::Core for Raft<C> {
    type Persist = PersistOp<C>;
    type Msg = Message<C>;
    type Apply = Apply<C>;
    type Timer = Timer;

    fn on_message(&mut self, from: NodeId, msg: Message<C>) {
        Raft::on_message(self, from, msg)
    }
    fn on_timeout(&mut self, timer: Timer) {
        Raft::on_timeout(self, timer)
    }
    fn take_ready(&mut self) -> RaftReady<C> {
        Raft::take_ready(self)
    }
    fn must_follow_writes(&self, msg: &Message<C>) -> bool {
        Raft::must_follow_writes(self, msg)
    }
    fn applies_follow_writes(&self) -> bool {
        Raft::applies_follow_writes(self)
    }
}

/// What [`Raft::delivery_class`] groups deliveries by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryClass {
    /// A request from this sender, of one kind (0 RequestVote, 1 AppendEntries, 2
    /// InstallSnapshot), of a term below the receiver's.
    StaleRequest(NodeId, u8),
    /// A reply that can only tell the receiver of this term.
    TermNotice(Term),
    /// A success from this follower that the leader already knows of, with this read round
    /// (`None` for an InstallSnapshot reply, which carries none).
    StaleAck(NodeId, Option<u64>),
    /// An AppendEntries of the receiver's term whose entries it already holds.
    HeldAppend {
        /// The sender (the term's leader).
        from: NodeId,
        /// `prev_log_index + entries.len()`.
        end: LogIndex,
        /// `min(leader_commit, end)`: the commit index it can bring.
        commit: LogIndex,
        /// The read round it carries.
        read_ctx: u64,
    },
}

/// Whether `candidate` could still lead `term`, given every server of the cluster as it is
/// and `grant_in_flight(voter)`: a vote `voter` granted
/// `candidate` in `term` may still arrive. False only if `candidate` is not leading `term`
/// and fewer than a quorum of servers could ever give it a vote there: a server could if its
/// term is below `term`, if it is in `term` and voted for nobody or for `candidate`, if its
/// grant may still arrive, or if `candidate`, a candidate of `term`, has counted it. Each
/// of these can only stop holding (terms never fall, a vote in a term is durable and final,
/// a server in a later term grants nothing in `term`), so once false it stays false. Under
/// the correct protocol only; callers check for bugs as [`Raft::delivery_class`] does.
pub fn may_lead<C: Command>(
    cluster: &[&Raft<C>],
    candidate: NodeId,
    term: Term,
    grant_in_flight: impl Fn(NodeId) -> bool,
) -> bool {
    let Some(me) = cluster.iter().find(|r| r.id() == candidate) else {
        return false;
    };
    let counted = match me.role() {
        Role::Leader { .. } if me.term() == term => return true,
        Role::Candidate { votes } if me.term() == term => *votes,
        _ => 0,
    };
    let could_grant = cluster
        .iter()
        .filter(|r| {
            r.term() < term
                || r.term() == term && r.voted_for().is_none_or(|v| v == candidate)
                || me
                    .config
                    .position(r.id())
                    .is_some_and(|p| counted & (1 << p) != 0)
                || grant_in_flight(r.id())
        })
        .count();
    could_grant >= me.config.quorum()
}

#[cfg(test)]
mod tests;
