//! The sharded deployment's servers as Raft-replicated cores: a shard group's server
//! ([`GroupReplica`]: [`ShardServer`] over [`ShardKv`] on the rsm on Raft) and a controller
//! server ([`CtrlReplica`]: [`ShardCtrler`] on the rsm on Raft). The real runtime runs one of
//! them per process; the simulator (`aver sim shard`) runs the same group servers.
//!
//! Both speak [`NetMsg`] to everyone outside their own Raft group (clerks, the controller,
//! other groups, administrators) and Raft's messages to their own group ([`ReplicaMsg`]).
//!
//! Protocol decisions here, and why they are safe:
//!
//! * A group's proposals go to its rsm; one that cannot be proposed (this server does not
//!   lead, or too many wait) or that fails later (leadership lost, another entry took its
//!   index) is answered `WrongLeader` if a clerk asked for it, and dropped otherwise: the
//!   group's own timers propose reconfigurations and migrations again, idempotently.
//! * Only a group's leader acts on its `PollConfig` and `Migrate` timers: a follower's
//!   proposals would be refused anyway. Any replica answers `Pull` from its applied state
//!   ([`ShardServer`]: an offered shard is frozen, so every replica in configuration `n`
//!   answers the same).
//! * A controller replica answers a group's `Query` from its applied state: configurations
//!   never change once made, so a lagging replica answers with an older configuration, never
//!   a wrong one (the asker takes the newest answer). An administrator's `Query` must be
//!   linearizable (it must see every completed `Join`): a configuration applied here is
//!   answered at once, the latest one is read by ReadIndex on the leader. `Join`, `Leave` and `Move` go through the log with
//!   the administrator's session and sequence number, deduplicated by the controller's
//!   session table, and are answered only from their own entry (the rsm checks its term).
//! * Both rsms use ReadIndex mode: a new leader commits an entry of its term at once, so
//!   entries of earlier terms commit without waiting for the next request; the controller
//!   also serves administrators' latest-configuration queries by ReadIndex.

use super::bugs::Bugs;
use super::server::{ShardServer, Timer};
use super::state::{Command, ShardKv};
use super::types::{Msg, OpReply};
use crate::contract::{self, NodeId, Ready, TimerCmd, Violation};
use crate::kvraft::{ClientId, Seq};
use crate::raft::{self, Durable, LogIndex, PersistOp, Raft};
use crate::rsm::{ReadMode, Rsm, RsmConfig, RsmEntry, RsmOutput};
use crate::shardctrler::{ConfigNum, CtrlCommand, CtrlOp, CtrlReply, Gid, ShardCtrler};
use serde::{Deserialize, Serialize};

/// What travels between a server and anyone outside its Raft group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NetMsg {
    /// The sharded KV's messages: clerk ↔ group, anyone ↔ controller, group ↔ group.
    Shard(Msg),
    /// Administrator → controller: `Join`, `Leave` or `Move` (a `Query` goes as
    /// [`Msg::Query`]), request `seq` of session `client`.
    Admin {
        /// The administrator's session.
        client: ClientId,
        /// Its request number (a retry keeps it).
        seq: Seq,
        /// The operation.
        op: CtrlOp,
    },
    /// Controller → administrator: the answer to request `seq`, or `Err(leader hint)` if
    /// this server cannot order it (try another).
    AdminReply {
        /// The session.
        client: ClientId,
        /// The request answered.
        seq: Seq,
        /// The controller's reply, or the leader this server knows of.
        result: Result<CtrlReply, Option<NodeId>>,
    },
}

/// Every message a replica takes or emits: Raft's within its group, [`NetMsg`] outside.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReplicaMsg<C> {
    /// Between the servers of one Raft group.
    Peer(raft::Message<RsmEntry<C>>),
    /// With clerks, administrators, the controller, other groups.
    Net(NetMsg),
}

/// A replica's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReplicaTimer {
    /// Raft's election and heartbeat timers.
    Raft(raft::Timer),
    /// A group server's configuration poll and migration timers.
    Shard(Timer),
}

/// What a replica reports besides its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReplicaEvent {
    /// The state machine was replaced by a snapshot through `index`.
    Restored {
        /// The snapshot's last index.
        index: LogIndex,
    },
}

/// Static configuration of a replica's rsm.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaConfig {
    /// Snapshot once Raft's state exceeds this many bytes (`None`: never).
    pub max_raft_state: Option<usize>,
    /// Most submissions waiting at once.
    pub pending_max: usize,
}

impl ReplicaConfig {
    fn rsm(&self) -> RsmConfig {
        RsmConfig {
            max_raft_state: self.max_raft_state,
            reads: ReadMode::ReadIndex,
            pending_max: self.pending_max,
            ..RsmConfig::default()
        }
    }
}

/// A group's log entry.
pub type GroupEntry = RsmEntry<Command>;
/// A controller's log entry.
pub type CtrlEntry = RsmEntry<CtrlCommand>;
/// A replica's `Ready`.
pub type ReplicaReady<C> = Ready<PersistOp<RsmEntry<C>>, ReplicaMsg<C>, ReplicaEvent, ReplicaTimer>;

/// Who waits for a group proposal's answer: the sender, and the clerk request if it was one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupTag {
    reply_to: Option<NodeId>,
    request: Option<(ClientId, Seq)>,
}

/// One server of a shard group on Raft.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupReplica {
    rsm: Rsm<ShardKv, Raft<GroupEntry>, GroupTag>,
    server: ShardServer,
    ready: ReplicaReady<Command>,
}

impl GroupReplica {
    /// Starts (or restarts from `durable`) a server of group `gid` over `shards` shards, with
    /// Raft configured by `raft` and the controller at `ctrl`.
    pub fn new(
        config: &ReplicaConfig,
        raft: raft::Config,
        durable: Durable<GroupEntry>,
        who: (Gid, usize, Vec<NodeId>),
    ) -> GroupReplica {
        GroupReplica::with_bugs(config, raft, durable, who, Bugs::NONE)
    }

    /// [`GroupReplica::new`] with `bugs` seeded into its state machine (the simulator's
    /// seeded-bug runs).
    pub fn with_bugs(
        config: &ReplicaConfig,
        raft: raft::Config,
        durable: Durable<GroupEntry>,
        (gid, shards, ctrl): (Gid, usize, Vec<NodeId>),
        bugs: Bugs,
    ) -> GroupReplica {
        let machine = ShardKv::new(gid, shards, bugs);
        let rsm = Rsm::new(config.rsm(), Raft::new(raft, durable), machine);
        let mut r = GroupReplica {
            rsm,
            server: ShardServer::new(ctrl),
            ready: Ready::default(),
        };
        r.pump();
        r
    }

    /// The rsm (Raft and the applied state).
    pub fn rsm(&self) -> &Rsm<ShardKv, Raft<GroupEntry>, GroupTag> {
        &self.rsm
    }

    /// Raft.
    pub fn raft(&self) -> &Raft<GroupEntry> {
        self.rsm.engine()
    }

    /// The first violation the rsm or Raft recorded.
    pub fn violation(&self) -> Option<&Violation> {
        self.rsm.violation()
    }

    /// Any other input to Raft (`on_persisted`).
    pub fn engine_input<R>(&mut self, f: impl FnOnce(&mut Raft<GroupEntry>) -> R) -> R {
        let r = self.rsm.engine_input(f);
        self.pump();
        r
    }

    /// Submits the server's proposals, then moves every output into ours.
    fn pump(&mut self) {
        loop {
            let r = self.server.take_ready();
            let idle = r.propose.is_empty() && r.messages.is_empty() && r.timers.is_empty();
            for p in r.propose {
                let request = match &p.command {
                    Command::Op { client, seq, .. } => Some((*client, *seq)),
                    _ => None,
                };
                let tag = GroupTag {
                    reply_to: p.reply_to,
                    request,
                };
                if self.rsm.submit(tag, p.command).is_err() {
                    self.wrong_leader(tag);
                }
            }
            let sends = r.messages.into_iter();
            let net = sends.map(|(to, m)| (to, ReplicaMsg::Net(NetMsg::Shard(m))));
            self.ready.messages.extend(net);
            let timers = r
                .timers
                .into_iter()
                .map(|t| map_timer(t, ReplicaTimer::Shard));
            self.ready.timers.extend(timers);
            self.take_rsm();
            if idle {
                return;
            }
        }
    }

    fn take_rsm(&mut self) {
        let ready = self.rsm.take_ready();
        self.ready.persist.extend(ready.persist);
        let peers = ready.messages.into_iter();
        self.ready
            .messages
            .extend(peers.map(|(to, m)| (to, ReplicaMsg::Peer(m))));
        let timers = ready.timers.into_iter();
        self.ready
            .timers
            .extend(timers.map(|t| map_timer(t, ReplicaTimer::Raft)));
        for out in ready.apply {
            match out {
                RsmOutput::Applied { .. } => {}
                RsmOutput::Done { tag, output } => {
                    if let (Some(to), Some(m)) = (tag.reply_to, output) {
                        self.send(to, m);
                    }
                }
                RsmOutput::Failed { tag } => self.wrong_leader(tag),
                RsmOutput::Restored { index } => {
                    self.ready.apply.push(ReplicaEvent::Restored { index })
                }
            }
        }
    }

    fn wrong_leader(&mut self, tag: GroupTag) {
        if let (Some(to), Some((client, seq))) = (tag.reply_to, tag.request) {
            let reply = OpReply::WrongLeader;
            self.send(to, Msg::Response { client, seq, reply });
        }
    }

    fn send(&mut self, to: NodeId, m: Msg) {
        self.ready
            .messages
            .push((to, ReplicaMsg::Net(NetMsg::Shard(m))));
    }
}

impl contract::Core for GroupReplica {
    type Persist = PersistOp<GroupEntry>;
    type Msg = ReplicaMsg<Command>;
    type Apply = ReplicaEvent;
    type Timer = ReplicaTimer;

    fn on_message(&mut self, from: NodeId, msg: Self::Msg) {
        match msg {
            ReplicaMsg::Peer(m) => self.rsm.on_message(from, m),
            ReplicaMsg::Net(NetMsg::Shard(m)) => {
                self.server.on_message(self.rsm.machine(), from, m)
            }
            ReplicaMsg::Net(_) => {} // administration is the controller's
        }
        self.pump();
    }

    fn on_timeout(&mut self, timer: ReplicaTimer) {
        match timer {
            ReplicaTimer::Raft(t) => self.rsm.on_timeout(t),
            // Only the leader can propose what these timers lead to; the others keep them
            // armed for when they lead.
            ReplicaTimer::Shard(t) if self.rsm.engine().is_leader() => {
                self.server.on_timeout(self.rsm.machine(), t)
            }
            ReplicaTimer::Shard(t) => self.ready.timers.push(TimerCmd::Set(timer_of(t))),
        }
        self.pump();
    }

    fn take_ready(&mut self) -> ReplicaReady<Command> {
        std::mem::take(&mut self.ready)
    }

    fn must_follow_writes(&self, msg: &Self::Msg) -> bool {
        match msg {
            ReplicaMsg::Peer(m) => self.rsm.engine().must_follow_writes(m),
            ReplicaMsg::Net(_) => true,
        }
    }
}

fn timer_of(t: Timer) -> ReplicaTimer {
    ReplicaTimer::Shard(t)
}

fn map_timer<T>(t: TimerCmd<T>, f: impl Fn(T) -> ReplicaTimer) -> TimerCmd<ReplicaTimer> {
    match t {
        TimerCmd::Set(t) => TimerCmd::Set(f(t)),
        TimerCmd::Cancel(t) => TimerCmd::Cancel(f(t)),
    }
}

/// Who waits for a controller proposal's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtrlTag {
    from: NodeId,
    client: ClientId,
    seq: Seq,
}

/// One server of the shard controller on Raft.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CtrlReplica {
    rsm: Rsm<ShardCtrler, Raft<CtrlEntry>, CtrlTag>,
    ready: ReplicaReady<CtrlCommand>,
}

impl CtrlReplica {
    /// Starts (or restarts from `durable`) a controller server over `shards` shards.
    pub fn new(
        config: &ReplicaConfig,
        raft: raft::Config,
        durable: Durable<CtrlEntry>,
        shards: usize,
    ) -> CtrlReplica {
        CtrlReplica::with_machine(config, raft, durable, ShardCtrler::new(shards))
    }

    /// [`CtrlReplica::new`] with seeded bugs: with `rebalance-differs`, this replica breaks
    /// rebalancing ties in an order of its own (its node id picks it), so replicas applying
    /// the same log hold different configurations; with `ctrl-drop-dedup`, it applies every
    /// committed copy of a retried `Join`, `Leave` or `Move`.
    pub fn with_bugs(
        config: &ReplicaConfig,
        raft: raft::Config,
        durable: Durable<CtrlEntry>,
        (shards, bugs): (usize, Bugs),
    ) -> CtrlReplica {
        let machine = ShardCtrler::with_bugs(shards, bugs, raft.id.0);
        CtrlReplica::with_machine(config, raft, durable, machine)
    }

    fn with_machine(
        config: &ReplicaConfig,
        raft: raft::Config,
        durable: Durable<CtrlEntry>,
        machine: ShardCtrler,
    ) -> CtrlReplica {
        let rsm = Rsm::new(config.rsm(), Raft::new(raft, durable), machine);
        let mut r = CtrlReplica {
            rsm,
            ready: Ready::default(),
        };
        r.take_rsm();
        r
    }

    /// The rsm (Raft and the applied configurations).
    pub fn rsm(&self) -> &Rsm<ShardCtrler, Raft<CtrlEntry>, CtrlTag> {
        &self.rsm
    }

    /// Raft.
    pub fn raft(&self) -> &Raft<CtrlEntry> {
        self.rsm.engine()
    }

    /// The first violation the rsm or Raft recorded.
    pub fn violation(&self) -> Option<&Violation> {
        self.rsm.violation()
    }

    /// Any other input to Raft (`on_persisted`).
    pub fn engine_input<R>(&mut self, f: impl FnOnce(&mut Raft<CtrlEntry>) -> R) -> R {
        let r = self.rsm.engine_input(f);
        self.take_rsm();
        r
    }

    fn on_net(&mut self, from: NodeId, msg: NetMsg) {
        match msg {
            NetMsg::Shard(Msg::Query { num }) => {
                let config = self.rsm.machine().query(num).clone();
                self.send(from, NetMsg::Shard(Msg::QueryReply { config }));
            }
            NetMsg::Admin { client, seq, op } => {
                let tag = CtrlTag { from, client, seq };
                if let CtrlOp::Query(num) = op {
                    return self.admin_query(tag, num);
                }
                let command = CtrlCommand { client, seq, op };
                if self.rsm.submit(tag, command).is_err() {
                    let hint = self.rsm.engine().leader_hint();
                    self.answer(tag, Err(hint));
                }
            }
            NetMsg::Shard(_) | NetMsg::AdminReply { .. } => {}
        }
    }

    /// An administrator's `Query`: a configuration this replica has applied is answered at
    /// once (configurations never change once made, and one that was applied was committed,
    /// so the answer is the one a linearizable controller gives); the latest configuration,
    /// or one not applied here yet, is read by ReadIndex on the leader, so that it reflects
    /// every `Join`, `Leave` and `Move` that completed before the query began.
    fn admin_query(&mut self, tag: CtrlTag, num: Option<ConfigNum>) {
        let configs = self.rsm.machine().configs();
        if let Some(config) = num.and_then(|n| configs.get(n.0 as usize)) {
            let reply = CtrlReply::Config(config.clone());
            return self.answer(tag, Ok(reply));
        }
        if self.rsm.read(tag, num).is_err() {
            let hint = self.rsm.engine().leader_hint();
            self.answer(tag, Err(hint));
        }
    }

    fn take_rsm(&mut self) {
        let ready = self.rsm.take_ready();
        self.ready.persist.extend(ready.persist);
        let peers = ready.messages.into_iter();
        self.ready
            .messages
            .extend(peers.map(|(to, m)| (to, ReplicaMsg::Peer(m))));
        let timers = ready.timers.into_iter();
        self.ready
            .timers
            .extend(timers.map(|t| map_timer(t, ReplicaTimer::Raft)));
        for out in ready.apply {
            match out {
                RsmOutput::Applied { .. } => {}
                // A stale copy of a request is not answered: its client has moved on.
                RsmOutput::Done {
                    output: CtrlReply::Stale,
                    ..
                } => {}
                RsmOutput::Done { tag, output } => self.answer(tag, Ok(output)),
                RsmOutput::Failed { tag } => {
                    let hint = self.rsm.engine().leader_hint();
                    self.answer(tag, Err(hint));
                }
                RsmOutput::Restored { index } => {
                    self.ready.apply.push(ReplicaEvent::Restored { index })
                }
            }
        }
    }

    fn answer(&mut self, tag: CtrlTag, result: Result<CtrlReply, Option<NodeId>>) {
        let CtrlTag { from, client, seq } = tag;
        self.send(
            from,
            NetMsg::AdminReply {
                client,
                seq,
                result,
            },
        );
    }

    fn send(&mut self, to: NodeId, m: NetMsg) {
        self.ready.messages.push((to, ReplicaMsg::Net(m)));
    }
}

impl contract::Core for CtrlReplica {
    type Persist = PersistOp<CtrlEntry>;
    type Msg = ReplicaMsg<CtrlCommand>;
    type Apply = ReplicaEvent;
    type Timer = ReplicaTimer;

    fn on_message(&mut self, from: NodeId, msg: Self::Msg) {
        match msg {
            ReplicaMsg::Peer(m) => self.rsm.on_message(from, m),
            ReplicaMsg::Net(m) => self.on_net(from, m),
        }
        self.take_rsm();
    }

    fn on_timeout(&mut self, timer: ReplicaTimer) {
        if let ReplicaTimer::Raft(t) = timer {
            self.rsm.on_timeout(t);
        }
        self.take_rsm();
    }

    fn take_ready(&mut self) -> ReplicaReady<CtrlCommand> {
        std::mem::take(&mut self.ready)
    }

    fn must_follow_writes(&self, msg: &Self::Msg) -> bool {
        match msg {
            ReplicaMsg::Peer(m) => self.rsm.engine().must_follow_writes(m),
            ReplicaMsg::Net(_) => true,
        }
    }
}
