//! The sharded KV's cores as simulated nodes: first the shard controller's servers (each
//! controller service three of them; a second service only where a scenario asks for a stale
//! one), then each shard group's `replicas` servers, then the clerks, then the administrators
//! (each with its own session; a controller service may have several).
//!
//! Every role is a pure core from `aver_core`; this file only carries out what they ask. A
//! group server is [`GroupReplica`] — the group's service on the rsm on Raft, the very core
//! `aver serve shardkv` runs — with its Raft state and snapshots on its disk ([`RaftDisk`]),
//! so a crash loses what was not synced and a restart replays the rest; Raft's messages stay
//! inside the group ([`Wm::Group`]). A controller server is [`CtrlReplica`] — the
//! `ShardCtrler` on the rsm on Raft, as `aver serve shardctrler` and `aver sim shardctrler`
//! run it (booted and timed by [`CtrlServerKind`], shared with that suite) — whose Raft
//! messages and administrators' requests travel as [`Wm::Ctrl`]; an administrator is the
//! controller clerk core ([`CtrlClerk`]). Everything else travels as the service's messages
//! ([`Wm::Net`]): queries go to every server of a controller and any replica answers from its
//! applied configurations.

use aver_core::contract::{Core, NodeId, Ready, TimerCmd, Violation};
use aver_core::kvraft::ClientId;
use aver_core::raft::{self, PersistOp, Raft};
use aver_core::rsm::RsmEntry;
use aver_core::shardctrler::clerk::{CtrlClerk, CtrlClerkTimer, CtrlDone};
use aver_core::shardctrler::{Gid, ShardCtrler};
use aver_core::shardkv::replica::{
    CtrlEntry, CtrlReplica, GroupEntry, GroupReplica, NetMsg, ReplicaConfig, ReplicaEvent,
    ReplicaMsg, ReplicaTimer,
};
use aver_core::shardkv::{Bugs, Clerk, ClerkTimer, Completed, Msg, Op, ShardKv, Timer};
use aver_sim::cluster::RaftHost;
use aver_sim::raft::{ELECTION_MS_MAX, ELECTION_MS_MIN, HEARTBEAT_MS, RaftDisk};
use aver_sim::shardctrler::{CTRL_CLERK_RETRY, CtrlNet, CtrlServerKind};
use aver_sim::sim::{MS, Micros, NodeKind, TraceHash, Wire, postcard_size};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::ops::Range;

/// Servers per controller service (the lab's 3).
pub const CTRL_REPLICAS: usize = 3;

/// A message on the simulated network: the service's (clerk ↔ group, anyone ↔ controller,
/// group ↔ group), Raft's between the servers of one group, or the controller's own (Raft
/// between its servers, administrators' requests and replies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Wm {
    /// The sharded KV's messages.
    Net(Msg),
    /// Raft's messages inside one group.
    Group(raft::Message<GroupEntry>),
    /// Raft's messages inside a controller service, and administration.
    Ctrl(CtrlNet),
}

impl Wire for Wm {
    fn is_request(&self) -> bool {
        match self {
            Wm::Net(m) => matches!(
                m,
                Msg::Request { .. } | Msg::Query { .. } | Msg::Pull { .. } | Msg::Delete { .. }
            ),
            Wm::Group(m) => m.is_request(),
            Wm::Ctrl(m) => m.is_request(),
        }
    }
    fn size(&self) -> u64 {
        postcard_size(self)
    }
    fn fingerprint(&self, hash: &mut TraceHash) {
        let (kind, word) = match self {
            Wm::Net(Msg::Request { seq, .. }) => (0, seq.0),
            Wm::Net(Msg::Response { seq, .. }) => (1, seq.0),
            Wm::Net(Msg::Query { num }) => (2, num.map_or(u64::MAX, |n| n.0)),
            Wm::Net(Msg::QueryReply { config }) => (3, config.num.0),
            Wm::Net(Msg::Pull { shard, num }) => (4, (num.0 << 8) | u64::from(shard.0)),
            Wm::Net(Msg::PullReply { shard, num, .. }) => (5, (num.0 << 8) | u64::from(shard.0)),
            Wm::Net(Msg::Delete { shard, num }) => (6, (num.0 << 8) | u64::from(shard.0)),
            Wm::Net(Msg::DeleteReply { shard, num }) => (7, (num.0 << 8) | u64::from(shard.0)),
            Wm::Group(m) => {
                let kind = match m {
                    raft::Message::RequestVote(_) => 8,
                    raft::Message::RequestVoteReply(_) => 9,
                    raft::Message::AppendEntries(_) => 10,
                    raft::Message::AppendEntriesReply(_) => 11,
                    raft::Message::InstallSnapshot(_) => 12,
                    raft::Message::InstallSnapshotReply(_) => 13,
                };
                (kind, m.term().0)
            }
            Wm::Ctrl(m) => {
                hash.word(14);
                return m.fingerprint(hash);
            }
        };
        hash.word((word << 4) | kind);
    }
    fn label(&self) -> &'static str {
        match self {
            Wm::Net(Msg::Request { .. }) => "Request",
            Wm::Net(Msg::Response { .. }) => "Response",
            Wm::Net(Msg::Query { .. }) => "Query",
            Wm::Net(Msg::QueryReply { .. }) => "QueryReply",
            Wm::Net(Msg::Pull { .. }) => "Pull",
            Wm::Net(Msg::PullReply { .. }) => "PullReply",
            Wm::Net(Msg::Delete { .. }) => "Delete",
            Wm::Net(Msg::DeleteReply { .. }) => "DeleteReply",
            Wm::Group(m) => m.kind(),
            Wm::Ctrl(m) => m.label(),
        }
    }
    fn describe(&self) -> String {
        match self {
            Wm::Net(Msg::PullReply {
                shard, num, data, ..
            }) => format!(
                "PullReply {{ shard: {shard:?}, num: {num:?}, keys: {} }}",
                data.len()
            ),
            Wm::Net(Msg::QueryReply { config }) => format!(
                "QueryReply {{ num: {}, {:?} }}",
                config.num.0, config.shards
            ),
            Wm::Net(m) => format!("{m:?}"),
            Wm::Group(raft::Message::AppendEntries(m)) => format!(
                "AppendEntries {} prev={}/{} n={} commit={}",
                m.term,
                m.prev_log_index,
                m.prev_log_term,
                m.entries.len(),
                m.leader_commit
            ),
            Wm::Group(raft::Message::InstallSnapshot(m)) => format!(
                "InstallSnapshot {} at {} ({} bytes)",
                m.term,
                m.snapshot.meta.index,
                m.snapshot.data.len()
            ),
            Wm::Group(m) => m.kind().to_string(),
            Wm::Ctrl(m) => format!("ctrl {}", m.describe()),
        }
    }
}

/// A node's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeTimer {
    /// A group or controller server's timer (Raft's, or a group's configuration poll and
    /// migration).
    Server(ReplicaTimer),
    /// A clerk's retry timer.
    Clerk(ClerkTimer),
    /// An administrator's retry timer.
    Admin(CtrlClerkTimer),
}

/// What a node writes to its disk.
#[derive(Clone, Debug)]
pub enum Persisted {
    /// A controller server's Raft write (hard state, log, snapshot).
    Ctrl(PersistOp<CtrlEntry>),
    /// A group server's Raft write (hard state, log, snapshot).
    Group(PersistOp<GroupEntry>),
}

/// A node's disk: a controller server's or a group server's Raft state and snapshot.
#[derive(Clone, Debug, Default)]
pub struct ShardDisk {
    /// A controller server's Raft disk (empty on other nodes).
    pub ctrl: RaftDisk<CtrlEntry>,
    /// A group server's Raft disk (empty on other nodes).
    pub raft: RaftDisk<GroupEntry>,
}

/// What a node reports: a clerk's finished operation or an administrator's.
#[derive(Clone, Debug)]
pub enum Done {
    /// A clerk's operation.
    Op(Completed),
    /// An administrator's Join, Leave, Move or Query.
    Admin(CtrlDone),
}

/// One node's role and state.
#[derive(Debug)]
pub enum Role {
    /// A controller server on Raft.
    Ctrl(Box<CtrlReplica>),
    /// A shard group's server on Raft.
    Group(Box<GroupReplica>),
    /// A clerk.
    Clerk(Clerk),
    /// An administrator (a controller clerk).
    Admin(CtrlClerk),
}

/// A simulated node of the sharded KV.
#[derive(Debug)]
pub struct Node {
    /// Its role.
    pub role: Role,
    ready: Ready<Persisted, Wm, Done, NodeTimer>,
}

impl Node {
    /// A clerk starts `op`.
    pub fn invoke(&mut self, op: Op) {
        let Role::Clerk(c) = &mut self.role else {
            panic!("operations go to clerks");
        };
        c.invoke(op);
        self.drain_clerk();
    }

    /// An administrator starts `op`; false if it has one in flight.
    pub fn admin(&mut self, op: aver_core::shardctrler::CtrlOp) -> bool {
        let Role::Admin(a) = &mut self.role else {
            panic!("administration goes to administrators");
        };
        let started = a.invoke(op).is_ok();
        self.drain_admin();
        started
    }

    /// The group server, if this is one.
    pub fn replica(&self) -> Option<&GroupReplica> {
        match &self.role {
            Role::Group(r) => Some(r),
            _ => None,
        }
    }

    /// The group server's applied state, if this is a group server.
    pub fn group(&self) -> Option<&ShardKv> {
        self.replica().map(|r| r.rsm().machine())
    }

    /// The controller server, if this is one.
    pub fn ctrl_replica(&self) -> Option<&CtrlReplica> {
        match &self.role {
            Role::Ctrl(r) => Some(r),
            _ => None,
        }
    }

    /// The controller server's applied state, if this is a controller server.
    pub fn ctrl(&self) -> Option<&ShardCtrler> {
        self.ctrl_replica().map(|r| r.rsm().machine())
    }

    /// A group or controller server's Raft term and whether it believes it leads.
    pub fn raft_role(&self) -> Option<(raft::Term, bool)> {
        match &self.role {
            Role::Group(r) => Some((r.raft().term(), r.raft().is_leader())),
            Role::Ctrl(r) => Some((r.raft().term(), r.raft().is_leader())),
            _ => None,
        }
    }

    /// Moves a server's outputs into ours, in the simulator's message type.
    fn drain_server(&mut self) {
        match &mut self.role {
            Role::Group(r) => drain_replica(r.as_mut(), &mut self.ready, Persisted::Group, |m| {
                match m {
                    ReplicaMsg::Peer(m) => Some(Wm::Group(m)),
                    ReplicaMsg::Net(NetMsg::Shard(m)) => Some(Wm::Net(m)),
                    // A group server speaks no administration.
                    ReplicaMsg::Net(_) => None,
                }
            }),
            Role::Ctrl(r) => drain_replica(r.as_mut(), &mut self.ready, Persisted::Ctrl, |m| {
                Some(match m {
                    ReplicaMsg::Net(NetMsg::Shard(m)) => Wm::Net(m),
                    m => Wm::Ctrl(m),
                })
            }),
            _ => {}
        }
    }

    fn drain_clerk(&mut self) {
        let Role::Clerk(c) = &mut self.role else {
            return;
        };
        let r = c.take_ready();
        let sends = r.messages.into_iter().map(|(to, m)| (to, Wm::Net(m)));
        self.ready.messages.extend(sends);
        self.ready
            .apply
            .extend(r.completed.into_iter().map(Done::Op));
        let timers = r.timers.into_iter().map(|t| map_timer(t, NodeTimer::Clerk));
        self.ready.timers.extend(timers);
    }

    fn drain_admin(&mut self) {
        let Role::Admin(a) = &mut self.role else {
            return;
        };
        let r = a.take_ready();
        let sends = r.messages.into_iter();
        self.ready
            .messages
            .extend(sends.map(|(to, m)| (to, Wm::Ctrl(ReplicaMsg::Net(m)))));
        self.ready
            .apply
            .extend(r.apply.into_iter().map(Done::Admin));
        let timers = r.timers.into_iter().map(|t| map_timer(t, NodeTimer::Admin));
        self.ready.timers.extend(timers);
    }
}

/// Moves a group or controller server's outputs into `ready`: its writes through `persist`,
/// its messages through `wire` (`None`: not sent), its timers as server timers. Its
/// `apply` only reports snapshot restores, which the harness does not need.
fn drain_replica<R, C>(
    server: &mut R,
    ready: &mut Ready<Persisted, Wm, Done, NodeTimer>,
    persist: fn(PersistOp<RsmEntry<C>>) -> Persisted,
    wire: fn(ReplicaMsg<C>) -> Option<Wm>,
) where
    R: Core<
            Persist = PersistOp<RsmEntry<C>>,
            Msg = ReplicaMsg<C>,
            Apply = ReplicaEvent,
            Timer = ReplicaTimer,
        >,
{
    let out = server.take_ready();
    ready.persist.extend(out.persist.into_iter().map(persist));
    let sends = (out.messages.into_iter()).filter_map(|(to, m)| Some((to, wire(m)?)));
    ready.messages.extend(sends);
    let timers = out.timers.into_iter();
    ready
        .timers
        .extend(timers.map(|t| map_timer(t, NodeTimer::Server)));
}

fn map_timer<T>(t: TimerCmd<T>, f: impl Fn(T) -> NodeTimer) -> TimerCmd<NodeTimer> {
    match t {
        TimerCmd::Set(t) => TimerCmd::Set(f(t)),
        TimerCmd::Cancel(t) => TimerCmd::Cancel(f(t)),
    }
}

impl Core for Node {
    type Persist = Persisted;
    type Msg = Wm;
    type Apply = Done;
    type Timer = NodeTimer;

    fn on_message(&mut self, from: NodeId, msg: Wm) {
        match (&mut self.role, msg) {
            (Role::Ctrl(r), Wm::Net(m)) => {
                r.on_message(from, ReplicaMsg::Net(NetMsg::Shard(m)));
                self.drain_server();
            }
            (Role::Ctrl(r), Wm::Ctrl(m)) => {
                r.on_message(from, m);
                self.drain_server();
            }
            (Role::Group(r), Wm::Group(m)) => {
                r.on_message(from, ReplicaMsg::Peer(m));
                self.drain_server();
            }
            (Role::Group(r), Wm::Net(m)) => {
                r.on_message(from, ReplicaMsg::Net(NetMsg::Shard(m)));
                self.drain_server();
            }
            (Role::Clerk(c), Wm::Net(m)) => {
                c.on_message(from, m);
                self.drain_clerk();
            }
            (Role::Admin(a), Wm::Ctrl(ReplicaMsg::Net(m))) => {
                a.on_message(from, m);
                self.drain_admin();
            }
            _ => {}
        }
    }

    fn on_timeout(&mut self, timer: NodeTimer) {
        match (&mut self.role, timer) {
            (Role::Group(r), NodeTimer::Server(t)) => {
                r.on_timeout(t);
                self.drain_server();
            }
            (Role::Ctrl(r), NodeTimer::Server(t)) => {
                r.on_timeout(t);
                self.drain_server();
            }
            (Role::Clerk(c), NodeTimer::Clerk(t)) => {
                c.on_timeout(t);
                self.drain_clerk();
            }
            (Role::Admin(a), NodeTimer::Admin(t)) => {
                a.on_timeout(t);
                self.drain_admin();
            }
            _ => {}
        }
    }

    fn take_ready(&mut self) -> Ready<Persisted, Wm, Done, NodeTimer> {
        std::mem::take(&mut self.ready)
    }

    fn must_follow_writes(&self, msg: &Wm) -> bool {
        match (&self.role, msg) {
            (Role::Group(r), Wm::Group(m)) => r.raft().must_follow_writes(m),
            (Role::Ctrl(r), Wm::Ctrl(ReplicaMsg::Peer(m))) => r.raft().must_follow_writes(m),
            _ => true,
        }
    }
}

/// The cluster's shape: `ctrls` controller services of [`CTRL_REPLICAS`] servers,
/// `gids.len()` groups of `replicas` servers, `clerk_ctrl.len()` clerks, `admin_ctrl.len()`
/// administrators (at least one per controller service).
#[derive(Clone, Debug)]
pub struct ShardKind {
    /// Number of shards.
    pub shards: usize,
    /// Group `g` has gid `gids[g]`.
    pub gids: Vec<Gid>,
    /// Servers per group.
    pub replicas: usize,
    /// The groups' `maxraftstate` (`None`: never snapshot).
    pub max_raft_state: Option<usize>,
    /// Seeded bugs, in every group and every controller server.
    pub bugs: Bugs,
    /// The controller servers (the same for every service; service `s` is nodes
    /// `s · CTRL_REPLICAS ..`). Groups ask service 0.
    pub ctrl: CtrlServerKind,
    /// Controller services.
    pub ctrls: usize,
    /// Clerk `c` asks controller service `clerk_ctrl[c]` for configurations.
    pub clerk_ctrl: Vec<usize>,
    /// Administrator `a` (its own session) administers controller service `admin_ctrl[a]`.
    pub admin_ctrl: Vec<usize>,
}

impl ShardKind {
    /// The nodes of controller service `s`'s servers.
    pub fn ctrl_nodes(&self, s: usize) -> Range<usize> {
        s * CTRL_REPLICAS..(s + 1) * CTRL_REPLICAS
    }

    /// The controller service node `node` serves in, if it is a controller server.
    pub fn ctrl_of(&self, node: usize) -> Option<usize> {
        (node < self.ctrls * CTRL_REPLICAS).then_some(node / CTRL_REPLICAS)
    }

    /// The nodes of group `g`'s servers.
    pub fn group_nodes(&self, g: usize) -> Range<usize> {
        let first = self.ctrls * CTRL_REPLICAS + g * self.replicas;
        first..first + self.replicas
    }

    /// The group (by index) node `node` serves in, if it is a group server.
    pub fn group_of(&self, node: usize) -> Option<usize> {
        let first = self.ctrls * CTRL_REPLICAS;
        (node >= first && node < self.first_clerk()).then(|| (node - first) / self.replicas)
    }

    /// Every group server's node.
    pub fn group_servers(&self) -> Range<usize> {
        self.ctrls * CTRL_REPLICAS..self.first_clerk()
    }

    /// The first clerk's node.
    pub fn first_clerk(&self) -> usize {
        self.ctrls * CTRL_REPLICAS + self.gids.len() * self.replicas
    }

    /// Administrator `a`'s node.
    pub fn admin_node(&self, a: usize) -> usize {
        self.first_clerk() + self.clerk_ctrl.len() + a
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.admin_node(self.admin_ctrl.len())
    }

    fn ctrl_ids(&self, s: usize) -> Vec<NodeId> {
        self.ctrl_nodes(s).map(|i| NodeId(i as u32)).collect()
    }

    fn replica_config(&self) -> ReplicaConfig {
        ReplicaConfig {
            max_raft_state: self.max_raft_state,
            pending_max: 1_000,
        }
    }

    fn boot_server(&self, node: usize, disk: &ShardDisk) -> GroupReplica {
        let g = self.group_of(node).expect("a group server");
        let voters = self.group_nodes(g).map(|i| NodeId(i as u32)).collect();
        let raft = raft::Config::new(NodeId(node as u32), voters);
        let durable = disk.raft.durable().clone();
        let who = (self.gids[g], self.shards, self.ctrl_ids(0));
        GroupReplica::with_bugs(&self.replica_config(), raft, durable, who, self.bugs)
    }
}

impl NodeKind for ShardKind {
    type Core = Node;
    type Disk = ShardDisk;

    fn boot(&self, node: usize, disk: &ShardDisk) -> Node {
        let role = if let Some(s) = self.ctrl_of(node) {
            let first = self.ctrl_nodes(s).start;
            Role::Ctrl(Box::new(self.ctrl.boot_at(first, node, &disk.ctrl)))
        } else if node < self.first_clerk() {
            Role::Group(Box::new(self.boot_server(node, disk)))
        } else if let Some(&s) = self.clerk_ctrl.get(node - self.first_clerk()) {
            Role::Clerk(Clerk::new(ClientId(node as u64), self.ctrl_ids(s)))
        } else {
            let s = self.admin_ctrl[node - self.admin_node(0)];
            Role::Admin(CtrlClerk::new(ClientId(node as u64), self.ctrl_ids(s)))
        };
        let mut n = Node {
            role,
            ready: Ready::default(),
        };
        n.drain_server();
        n
    }

    fn write(&self, disk: &mut ShardDisk, op: &Persisted) {
        match op {
            Persisted::Ctrl(op) => disk.ctrl.write(op),
            Persisted::Group(op) => disk.raft.write(op),
        }
    }

    fn timer_delay(&self, timer: NodeTimer, rng: &mut ChaCha8Rng) -> Micros {
        let ms = match timer {
            NodeTimer::Server(ReplicaTimer::Raft(raft::Timer::Heartbeat)) => HEARTBEAT_MS,
            NodeTimer::Server(ReplicaTimer::Raft(raft::Timer::Election)) => {
                rng.random_range(ELECTION_MS_MIN..=ELECTION_MS_MAX)
            }
            // The handout: poll the controller about every 100 ms.
            NodeTimer::Server(ReplicaTimer::Shard(Timer::PollConfig)) => rng.random_range(80..=120),
            NodeTimer::Server(ReplicaTimer::Shard(Timer::Migrate)) => rng.random_range(40..=60),
            NodeTimer::Clerk(ClerkTimer::Retry) => rng.random_range(80..=120),
            NodeTimer::Admin(_) => return CTRL_CLERK_RETRY,
        };
        ms * MS
    }

    fn timer_code(&self, timer: NodeTimer) -> u64 {
        match timer {
            NodeTimer::Server(ReplicaTimer::Shard(Timer::PollConfig)) => 0,
            NodeTimer::Server(ReplicaTimer::Shard(Timer::Migrate)) => 1,
            NodeTimer::Clerk(ClerkTimer::Retry) => 2,
            NodeTimer::Server(ReplicaTimer::Raft(raft::Timer::Election)) => 3,
            NodeTimer::Server(ReplicaTimer::Raft(raft::Timer::Heartbeat)) => 4,
            NodeTimer::Admin(_) => 5,
        }
    }

    fn violation<'a>(&self, core: &'a Node) -> Option<&'a Violation> {
        match &core.role {
            Role::Group(r) => r.violation(),
            Role::Ctrl(r) => r.violation(),
            _ => None,
        }
    }
}

/// Selects the controller services' Raft clusters ([`RaftHost`] of [`CtrlEntry`]); the
/// default selects the groups'.
#[derive(Clone, Copy, Debug)]
pub struct CtrlRaft;

impl RaftHost for ShardKind {
    type Command = GroupEntry;
    fn raft<'a>(&self, _node: usize, core: &'a Node) -> Option<&'a Raft<GroupEntry>> {
        core.replica().map(|r| r.raft())
    }
    fn raft_disk<'a>(&self, node: usize, disk: &'a ShardDisk) -> Option<&'a RaftDisk<GroupEntry>> {
        self.group_of(node).map(|_| &disk.raft)
    }
}

impl RaftHost<CtrlRaft> for ShardKind {
    type Command = CtrlEntry;
    fn raft<'a>(&self, _node: usize, core: &'a Node) -> Option<&'a Raft<CtrlEntry>> {
        core.ctrl_replica().map(|r| r.raft())
    }
    fn raft_disk<'a>(&self, node: usize, disk: &'a ShardDisk) -> Option<&'a RaftDisk<CtrlEntry>> {
        self.ctrl_of(node).map(|_| &disk.ctrl)
    }
}
