//! The sharded deployment's servers as node services: a shard group's server
//! ([`GroupService`], the core [`GroupReplica`]) and a shard controller's server
//! ([`CtrlService`], the core [`CtrlReplica`]). Each runs on the same event loop, storage and
//! links as a kvraft node; what they say to anyone outside their Raft group travels as
//! [`NetMsg`] in [`Request::Msg`] and [`Reply::Msg`] frames — on the sessions clients open
//! to them, and on the connections a group opens to the controller and to other groups
//! ([`crate::node::Remotes`]). A message addressed to a session goes back on that session;
//! any other goes to the node of that id in the directory.

use crate::node::SESSION_ID_BASE;
use crate::node::service::{ClientInput, Route, Service, raft_delay};
use crate::node::{NodeError, NodeOptions};
use crate::wire::{Reply, Request};
use aver_core::contract::{NodeId, Violation};
use aver_core::raft::{self, Durable, LogIndex, Message, Raft, Term};
use aver_core::shardctrler::CtrlReply;
use aver_core::shardctrler::{CtrlCommand, Gid};
use aver_core::shardkv::replica::{
    CtrlEntry, CtrlReplica, GroupEntry, GroupReplica, NetMsg, ReplicaConfig, ReplicaEvent,
    ReplicaMsg, ReplicaTimer,
};
use aver_core::shardkv::{Command, Msg, ShardState, Timer};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// How often a group's leader asks the controller for the next configuration (the lab: about
/// every 100 ms).
pub const POLL_CONFIG: Duration = Duration::from_millis(100);
/// How often a group resends `Pull` and `Delete` for migrations in progress.
pub const MIGRATE: Duration = Duration::from_millis(50);

const TIMERS: &[ReplicaTimer] = &[
    ReplicaTimer::Raft(raft::Timer::Election),
    ReplicaTimer::Raft(raft::Timer::Heartbeat),
    ReplicaTimer::Shard(Timer::PollConfig),
    ReplicaTimer::Shard(Timer::Migrate),
];

fn replica_config(opts: &NodeOptions) -> ReplicaConfig {
    ReplicaConfig {
        max_raft_state: (opts.snapshot_log_bytes > 0).then_some(opts.snapshot_log_bytes as usize),
        pending_max: opts.waiters_max,
    }
}

fn delay(timer: ReplicaTimer, opts: &NodeOptions, rng: &mut ChaCha8Rng) -> Duration {
    match timer {
        ReplicaTimer::Raft(t) => raft_delay(t, opts, rng),
        ReplicaTimer::Shard(Timer::PollConfig) => POLL_CONFIG,
        ReplicaTimer::Shard(Timer::Migrate) => MIGRATE,
    }
}

fn request<C>(request: Request<NetMsg>) -> ClientInput<ReplicaMsg<C>> {
    match request {
        Request::Msg(m) => ClientInput::Msg(ReplicaMsg::Net(m)),
        Request::Status { id } => ClientInput::Status { id },
        Request::Kv(_) => ClientInput::Ignore,
    }
}

fn remote_reply<C>(reply: Reply<NetMsg>) -> Option<ReplicaMsg<C>> {
    match reply {
        Reply::Msg(m) => Some(ReplicaMsg::Net(m)),
        _ => None,
    }
}

/// True if `m` reports an operation's result to its client.
fn acknowledges(m: &NetMsg) -> bool {
    match m {
        NetMsg::Shard(Msg::Response { reply, .. }) => reply.is_final(),
        NetMsg::AdminReply { result, .. } => matches!(result, Ok(CtrlReply::Done(_))),
        _ => false,
    }
}

fn route<C>(to: NodeId, msg: ReplicaMsg<C>) -> Route<RsmEntryOf<C>, NetMsg, NetMsg> {
    match msg {
        ReplicaMsg::Peer(m) => Route::Peer(m),
        ReplicaMsg::Net(m) if to.0 >= SESSION_ID_BASE => Route::Client {
            acked: acknowledges(&m),
            reply: Reply::Msg(m),
        },
        ReplicaMsg::Net(m) => Route::Remote(Request::Msg(m)),
    }
}

type RsmEntryOf<C> = aver_core::rsm::RsmEntry<C>;

/// A shard group's server: group `gid` over `shards` shards, the controller's servers `ctrl`.
#[derive(Clone, Debug)]
pub struct GroupService {
    /// The group.
    pub gid: Gid,
    /// Number of shards.
    pub shards: usize,
    /// The controller's servers (their addresses are in the node's directory).
    pub ctrl: Vec<NodeId>,
}

impl Service for GroupService {
    type Entry = GroupEntry;
    type Msg = ReplicaMsg<Command>;
    type Event = ReplicaEvent;
    type Timer = ReplicaTimer;
    type Core = GroupReplica;
    type ClientOp = NetMsg;
    type ClientReply = NetMsg;
    const TIMERS: &'static [ReplicaTimer] = TIMERS;

    fn build(
        &self,
        opts: &NodeOptions,
        config: raft::Config,
        durable: Durable<GroupEntry>,
    ) -> Result<GroupReplica, NodeError> {
        if self.ctrl.is_empty() {
            return Err(NodeError::Config(
                "a shard group needs the controller".into(),
            ));
        }
        let who = (self.gid, self.shards, self.ctrl.clone());
        Ok(GroupReplica::new(
            &replica_config(opts),
            config,
            durable,
            who,
        ))
    }
    fn raft(core: &GroupReplica) -> &Raft<GroupEntry> {
        core.raft()
    }
    fn applied(core: &GroupReplica) -> LogIndex {
        core.rsm().applied_index()
    }
    fn violation(core: &GroupReplica) -> Option<Violation> {
        core.violation().cloned()
    }
    fn on_persisted(core: &mut GroupReplica, index: LogIndex, term: Term) {
        core.engine_input(|raft| raft.on_persisted(index, term))
    }
    fn peer(msg: Message<GroupEntry>) -> ReplicaMsg<Command> {
        ReplicaMsg::Peer(msg)
    }
    fn into_peer(msg: ReplicaMsg<Command>) -> Result<Message<GroupEntry>, ReplicaMsg<Command>> {
        match msg {
            ReplicaMsg::Peer(msg) => Ok(msg),
            other => Err(other),
        }
    }
    fn as_peer_mut(msg: &mut ReplicaMsg<Command>) -> Option<&mut Message<GroupEntry>> {
        match msg {
            ReplicaMsg::Peer(msg) => Some(msg),
            _ => None,
        }
    }
    fn request(r: Request<NetMsg>) -> ClientInput<ReplicaMsg<Command>> {
        request(r)
    }
    fn remote_reply(r: Reply<NetMsg>) -> Option<ReplicaMsg<Command>> {
        remote_reply(r)
    }
    fn route(to: NodeId, msg: ReplicaMsg<Command>) -> Route<GroupEntry, NetMsg, NetMsg> {
        route(to, msg)
    }
    fn timer_delay(timer: ReplicaTimer, opts: &NodeOptions, rng: &mut ChaCha8Rng) -> Duration {
        delay(timer, opts, rng)
    }
    fn restored(event: &ReplicaEvent) -> Option<LogIndex> {
        let ReplicaEvent::Restored { index } = event;
        Some(*index)
    }
    fn detail(core: &GroupReplica) -> String {
        group_detail(core)
    }
}

/// `gid 1 cfg 4: serving s0 s3, pulling s5, offering s7` (the group's applied state).
fn group_detail(core: &GroupReplica) -> String {
    let sm = core.rsm().machine();
    let mut by_state: [(&str, Vec<String>); 4] = [
        ("serving", vec![]),
        ("pulling", vec![]),
        ("offering", vec![]),
        ("deleting at source", vec![]),
    ];
    for (shard, s) in sm.shards() {
        let i = match s.state {
            ShardState::Serving => 0,
            ShardState::Pulling(_) => 1,
            ShardState::Offering => 2,
            ShardState::Garbage(_) => 3,
        };
        by_state[i].1.push(format!("{}:{}", shard.0, s.data.len()));
    }
    let parts: Vec<String> = by_state
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, v)| format!("{name} {}", v.join(" ")))
        .collect();
    let shards = if parts.is_empty() {
        "no shards".to_string()
    } else {
        parts.join(", ")
    };
    format!(
        "gid {} cfg {}: {shards} (shard:keys)",
        sm.gid().0,
        sm.num().0
    )
}

/// A shard controller's server over `shards` shards.
#[derive(Clone, Debug)]
pub struct CtrlService {
    /// Number of shards.
    pub shards: usize,
}

impl Service for CtrlService {
    type Entry = CtrlEntry;
    type Msg = ReplicaMsg<CtrlCommand>;
    type Event = ReplicaEvent;
    type Timer = ReplicaTimer;
    type Core = CtrlReplica;
    type ClientOp = NetMsg;
    type ClientReply = NetMsg;
    const TIMERS: &'static [ReplicaTimer] = &[
        ReplicaTimer::Raft(raft::Timer::Election),
        ReplicaTimer::Raft(raft::Timer::Heartbeat),
    ];

    fn build(
        &self,
        opts: &NodeOptions,
        config: raft::Config,
        durable: Durable<CtrlEntry>,
    ) -> Result<CtrlReplica, NodeError> {
        let cfg = replica_config(opts);
        Ok(CtrlReplica::new(&cfg, config, durable, self.shards))
    }
    fn raft(core: &CtrlReplica) -> &Raft<CtrlEntry> {
        core.raft()
    }
    fn applied(core: &CtrlReplica) -> LogIndex {
        core.rsm().applied_index()
    }
    fn violation(core: &CtrlReplica) -> Option<Violation> {
        core.violation().cloned()
    }
    fn on_persisted(core: &mut CtrlReplica, index: LogIndex, term: Term) {
        core.engine_input(|raft| raft.on_persisted(index, term))
    }
    fn peer(msg: Message<CtrlEntry>) -> ReplicaMsg<CtrlCommand> {
        ReplicaMsg::Peer(msg)
    }
    fn into_peer(
        msg: ReplicaMsg<CtrlCommand>,
    ) -> Result<Message<CtrlEntry>, ReplicaMsg<CtrlCommand>> {
        match msg {
            ReplicaMsg::Peer(msg) => Ok(msg),
            other => Err(other),
        }
    }
    fn as_peer_mut(msg: &mut ReplicaMsg<CtrlCommand>) -> Option<&mut Message<CtrlEntry>> {
        match msg {
            ReplicaMsg::Peer(msg) => Some(msg),
            _ => None,
        }
    }
    fn request(r: Request<NetMsg>) -> ClientInput<ReplicaMsg<CtrlCommand>> {
        request(r)
    }
    fn remote_reply(r: Reply<NetMsg>) -> Option<ReplicaMsg<CtrlCommand>> {
        remote_reply(r)
    }
    fn route(to: NodeId, msg: ReplicaMsg<CtrlCommand>) -> Route<CtrlEntry, NetMsg, NetMsg> {
        route(to, msg)
    }
    fn timer_delay(timer: ReplicaTimer, opts: &NodeOptions, rng: &mut ChaCha8Rng) -> Duration {
        delay(timer, opts, rng)
    }
    fn restored(event: &ReplicaEvent) -> Option<LogIndex> {
        let ReplicaEvent::Restored { index } = event;
        Some(*index)
    }
    fn detail(core: &CtrlReplica) -> String {
        let latest = core.rsm().machine().latest();
        let owners: Vec<String> = latest.shards.iter().map(|g| g.0.to_string()).collect();
        let groups: Vec<String> = latest.groups.keys().map(|g| g.0.to_string()).collect();
        format!(
            "cfg {}: groups [{}], shard owners [{}]",
            latest.num.0,
            groups.join(" "),
            owners.join(" ")
        )
    }
}
