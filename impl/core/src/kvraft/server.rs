//! The kvraft server: clerk requests in, rsm submissions and ReadIndex reads out, replies
//! back to the clerk once the rsm answers.

use super::bugs::{KvBug, KvBugs};
use super::machine::{Effect, KvMachine, KvOutcome};
use super::sessions::{Lookup, SESSIONS_MAX};
use super::store::Store;
use super::types::{ClientId, ClientMsg, KvCommand, KvError, KvMsg, Reply, Request, Seq};
use crate::contract::{self, NodeId, Ready};
use crate::raft::{self, Durable, LogIndex, Raft};
use crate::rsm::{Engine, ReadMode, Refused, Rsm, RsmConfig, RsmEntry, RsmOutput};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a kvraft log entry is.
pub type KvEntry<St> = RsmEntry<KvCommand<<St as Store>::Op>>;

/// A kvraft server on Raft.
pub type RaftKvServer<St> = KvServer<St, Raft<KvEntry<St>>>;

/// The message type of a kvraft server on engine `E`.
pub type ServerMsg<St, E> =
    KvMsg<<E as Engine<KvEntry<St>>>::Msg, <St as Store>::Op, <St as Store>::Reply>;

/// Static configuration of a kvraft server.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvConfig {
    /// Snapshot when Raft's persisted state exceeds this many bytes (`None`: never).
    pub max_raft_state: Option<usize>,
    /// How Gets are made linearizable (ReadIndex by default).
    pub reads: ReadMode,
    /// Most client sessions in the dedup table.
    pub sessions_max: usize,
    /// Most requests waiting at once on a server.
    pub pending_max: usize,
    /// Seeded bugs (none for the correct service).
    pub bugs: KvBugs,
    /// Whether the rsm checks KV-3 when it snapshots (off only to show a seeded bug's
    /// consequence).
    pub step_checks: bool,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            max_raft_state: None,
            reads: ReadMode::ReadIndex,
            sessions_max: SESSIONS_MAX,
            pending_max: RsmConfig::default().pending_max,
            bugs: KvBugs::NONE,
            step_checks: true,
        }
    }
}

impl KvConfig {
    /// The rsm's configuration.
    pub fn rsm_config(&self) -> RsmConfig {
        RsmConfig {
            max_raft_state: self.max_raft_state,
            reads: self.reads,
            pending_max: self.pending_max,
            reply_before_apply: self.bugs.has(KvBug::ReplyBeforeApply),
            accept_other_entry: self.bugs.has(KvBug::AcceptOtherEntry),
            step_checks: self.step_checks,
        }
    }

    /// The Raft configuration of server `id` among `voters`, with the seeded ReadIndex bugs.
    pub fn raft_config(&self, id: NodeId, voters: Vec<NodeId>) -> raft::Config {
        let mut config = raft::Config::new(id, voters);
        config.bugs = self.bugs.raft_bugs();
        config
    }
}

/// Who waits for an answer: the clerk's address and its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Waiter {
    /// The clerk's node.
    pub from: NodeId,
    /// Its session.
    pub client: ClientId,
    /// The request's sequence number.
    pub seq: Seq,
}

/// What a server reports to observers (checkers) besides its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KvEvent {
    /// The write `(client, seq)` executed at `index` (KV-2 counts these).
    Executed {
        /// Its log index.
        index: LogIndex,
        /// The client.
        client: ClientId,
        /// Its sequence number.
        seq: Seq,
    },
    /// A retried write was answered from the dedup table: at apply time (`index` given), or at
    /// once on arrival because it had already been applied (`index` none).
    Duplicate {
        /// Where it was applied again, if it was.
        index: Option<LogIndex>,
        /// The client.
        client: ClientId,
        /// Its sequence number.
        seq: Seq,
    },
    /// The state machine was replaced by a snapshot through `index`.
    Restored {
        /// The snapshot's last index.
        index: LogIndex,
    },
}

/// The `Ready` of a kvraft server.
pub type KvReady<St, E> = Ready<
    <E as Engine<KvEntry<St>>>::Persist,
    ServerMsg<St, E>,
    KvEvent,
    <E as Engine<KvEntry<St>>>::Timer,
>;

/// One kvraft server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvServer<St: Store, E: Engine<KvEntry<St>>> {
    config: Arc<KvConfig>,
    rsm: Rsm<KvMachine<St>, E, Waiter>,
    ready: KvReady<St, E>,
}

impl<St: Store> RaftKvServer<St> {
    /// Starts (or restarts) server `id` of `voters` on Raft from its durable state.
    pub fn start(
        config: KvConfig,
        id: NodeId,
        voters: Vec<NodeId>,
        durable: Durable<KvEntry<St>>,
    ) -> Self {
        let raft = Raft::new(config.raft_config(id, voters), durable);
        KvServer::new(config, raft)
    }
}

impl<St: Store, E: Engine<KvEntry<St>>> KvServer<St, E> {
    /// Starts around `engine` (built from durable state).
    pub fn new(config: KvConfig, engine: E) -> Self {
        let machine = KvMachine::new(
            config.sessions_max,
            config.bugs.has(KvBug::DedupNotInSnapshot),
        );
        let rsm = Rsm::new(config.rsm_config(), engine, machine);
        let mut server = KvServer {
            config: Arc::new(config),
            rsm,
            ready: Ready::default(),
        };
        server.pump();
        server
    }

    // ---- inputs ---------------------------------------------------------------------------

    /// A message arrived: from a peer server (for Raft) or from a clerk.
    pub fn on_message(&mut self, from: NodeId, msg: ServerMsg<St, E>) {
        match msg {
            KvMsg::Peer(m) => self.rsm.on_message(from, m),
            KvMsg::Client(ClientMsg::Request(r)) => self.on_request(from, r),
            KvMsg::Client(ClientMsg::Reply(_)) => {} // servers do not take replies
        }
        self.pump();
    }

    /// An engine timer fired.
    pub fn on_timeout(&mut self, timer: E::Timer) {
        self.rsm.on_timeout(timer);
        self.pump();
    }

    /// Any other input to the engine (a model checker's abstract log events).
    pub fn engine_input<R>(&mut self, f: impl FnOnce(&mut E) -> R) -> R {
        let r = self.rsm.engine_input(f);
        self.pump();
        r
    }

    /// Drains the outputs accumulated since the last call.
    pub fn take_ready(&mut self) -> KvReady<St, E> {
        std::mem::take(&mut self.ready)
    }

    // ---- queries --------------------------------------------------------------------------

    /// The rsm (engine, state machine).
    pub fn rsm(&self) -> &Rsm<KvMachine<St>, E, Waiter> {
        &self.rsm
    }
    /// The consensus engine.
    pub fn engine(&self) -> &E {
        self.rsm.engine()
    }
    /// The state machine.
    pub fn machine(&self) -> &KvMachine<St> {
        self.rsm.machine()
    }
    /// The configuration.
    pub fn config(&self) -> &KvConfig {
        &self.config
    }
    /// The first violation this server's checks recorded (rsm or engine).
    pub fn violation(&self) -> Option<&contract::Violation> {
        self.rsm.violation()
    }

    // ---- requests -------------------------------------------------------------------------

    fn on_request(&mut self, from: NodeId, r: Request<St::Op>) {
        let waiter = Waiter {
            from,
            client: r.client,
            seq: r.seq,
        };
        if !self.rsm.engine().is_leader() {
            let leader_hint = self.rsm.engine().leader_hint();
            return self.reply(waiter, Err(KvError::WrongLeader { leader_hint }));
        }
        if St::is_read(&r.op) {
            return self.on_read(waiter, r.op);
        }
        match self.rsm.machine().sessions().lookup(r.client, r.seq) {
            Lookup::Duplicate(reply) => {
                // Already applied: its reply is a committed fact, safe to give again.
                let reply = reply.clone();
                self.ready.apply.push(KvEvent::Duplicate {
                    index: None,
                    client: r.client,
                    seq: r.seq,
                });
                self.reply(waiter, Ok(reply));
            }
            Lookup::Stale => {} // the clerk has moved on
            Lookup::New => {
                let command = KvCommand {
                    client: r.client,
                    seq: r.seq,
                    op: r.op,
                };
                if let Err(refused) = self.rsm.submit(waiter, command) {
                    self.refuse(waiter, refused);
                }
            }
        }
    }

    fn on_read(&mut self, waiter: Waiter, op: St::Op) {
        if self.config.bugs.has(KvBug::LocalRead) {
            // Seeded bug: a server that believes it leads answers from its own state.
            let reply = self.rsm.machine().store().read(&op);
            return self.reply(waiter, Ok(reply));
        }
        let result = match self.config.reads {
            ReadMode::ReadIndex => self.rsm.read(waiter, op),
            ReadMode::Log => {
                let command = KvCommand {
                    client: waiter.client,
                    seq: waiter.seq,
                    op,
                };
                self.rsm.submit(waiter, command).map(|_| ())
            }
        };
        if let Err(refused) = result {
            self.refuse(waiter, refused);
        }
    }

    fn refuse(&mut self, waiter: Waiter, refused: Refused) {
        let leader_hint = match refused {
            Refused::NotLeader { leader_hint } => leader_hint,
            Refused::Busy => None,
        };
        self.reply(waiter, Err(KvError::WrongLeader { leader_hint }));
    }

    fn reply(&mut self, w: Waiter, result: Result<St::Reply, KvError>) {
        let reply = Reply {
            client: w.client,
            seq: w.seq,
            result,
        };
        self.ready
            .messages
            .push((w.from, KvMsg::Client(ClientMsg::Reply(reply))));
    }

    // ---- outputs --------------------------------------------------------------------------

    /// Moves the rsm's outputs into ours: engine traffic as is, answers as replies.
    fn pump(&mut self) {
        let ready = self.rsm.take_ready();
        self.ready.persist.extend(ready.persist);
        self.ready.messages.extend(
            ready
                .messages
                .into_iter()
                .map(|(to, m)| (to, KvMsg::Peer(m))),
        );
        for out in ready.apply {
            self.on_rsm_output(out);
        }
        self.ready.timers.extend(ready.timers);
    }

    fn on_rsm_output(&mut self, out: RsmOutput<Waiter, KvOutcome<St::Reply>>) {
        match out {
            RsmOutput::Applied { index, output } => {
                let Some((client, seq)) = output.id else {
                    return;
                };
                match output.effect {
                    Effect::Executed => {
                        self.ready
                            .apply
                            .push(KvEvent::Executed { index, client, seq })
                    }
                    Effect::Duplicate => self.ready.apply.push(KvEvent::Duplicate {
                        index: Some(index),
                        client,
                        seq,
                    }),
                    Effect::Read | Effect::Stale => {}
                }
            }
            RsmOutput::Done { tag, output } => {
                // A stale write has no reply: its clerk already waits for a newer operation.
                if let Some(reply) = output.reply {
                    self.reply(tag, Ok(reply));
                }
            }
            RsmOutput::Failed { tag } => {
                let leader_hint = self.rsm.engine().leader_hint();
                self.reply(tag, Err(KvError::WrongLeader { leader_hint }));
            }
            RsmOutput::Restored { index } => self.ready.apply.push(KvEvent::Restored { index }),
        }
    }
}

impl<St: Store, E: Engine<KvEntry<St>>> contract::Core for KvServer<St, E> {
    type Persist = E::Persist;
    type Msg = ServerMsg<St, E>;
    type Apply = KvEvent;
    type Timer = E::Timer;

    fn on_message(&mut self, from: NodeId, msg: Self::Msg) {
        KvServer::on_message(self, from, msg)
    }
    fn on_timeout(&mut self, timer: E::Timer) {
        KvServer::on_timeout(self, timer)
    }
    fn take_ready(&mut self) -> KvReady<St, E> {
        KvServer::take_ready(self)
    }
    /// Engine traffic as the engine says. A reply to a clerk reports what was applied (or
    /// that this server cannot serve it), never this server's own pending writes, so it waits
    /// for them exactly when applies do: not when the engine applies only entries committed
    /// on a majority of durable copies (Raft with `leader_counts_durable_only`), since the
    /// entry a reply acknowledges then survives this server losing its unsynced writes.
    fn must_follow_writes(&self, msg: &Self::Msg) -> bool {
        match msg {
            KvMsg::Peer(m) => self.rsm.engine().must_follow_writes(m),
            KvMsg::Client(_) => self.rsm.engine().applies_follow_writes(),
        }
    }
}
