//! The sharded KV's cores as simulated nodes: node 0 is the shard controller, then each shard
//! group's `replicas` servers (group `g`'s replica `r` is node `1 + g · replicas + r`), then
//! the clerks.
//!
//! Every role is a pure core from `aver_core`; this file only carries out what they ask. A
//! group server is [`GroupReplica`] — the group's service on the rsm on Raft, the very core
//! `aver serve shardkv` runs — with its Raft state and snapshots on its disk ([`RaftDisk`]),
//! so a crash loses what was not synced and a restart replays the rest; Raft's messages stay
//! inside the group ([`Wm::Group`]) and everything else travels as the service's messages
//! ([`Wm::Net`]). The controller is a single replica (the 2025 lab's configuration store is
//! one kvsrv); the harness applies the administrator's Join/Leave/Move to it and it answers
//! configuration queries.

use aver_core::contract::{Core, NodeId, Ready, TimerCmd, Violation};
use aver_core::kvraft::{ClientId, Seq};
use aver_core::raft::{self, LogIndex, PersistOp, Raft};
use aver_core::shardctrler::{CtrlCommand, CtrlOp, Gid, ShardCtrler};
use aver_core::shardkv::replica::{
    GroupEntry, GroupReplica, NetMsg, ReplicaConfig, ReplicaMsg, ReplicaTimer,
};
use aver_core::shardkv::{Bugs, Clerk, ClerkTimer, Completed, Msg, Op, ShardKv, Timer};
use aver_sim::cluster::RaftHost;
use aver_sim::raft::{ELECTION_MS_MAX, ELECTION_MS_MIN, HEARTBEAT_MS, RaftDisk};
use aver_sim::sim::{MS, Micros, NodeKind, TraceHash, Wire, postcard_size};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::ops::Range;

/// A message on the simulated network: the service's (clerk ↔ group, anyone ↔ controller,
/// group ↔ group), or Raft's between the servers of one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Wm {
    /// The sharded KV's messages.
    Net(Msg),
    /// Raft's messages inside one group.
    Group(raft::Message<GroupEntry>),
}

impl Wire for Wm {
    fn is_request(&self) -> bool {
        match self {
            Wm::Net(m) => matches!(
                m,
                Msg::Request { .. } | Msg::Query { .. } | Msg::Pull { .. } | Msg::Delete { .. }
            ),
            Wm::Group(m) => m.is_request(),
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
            Wm::Net(Msg::QueryReply { config }) => format!("QueryReply {{ {:?} }}", config.shards),
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
        }
    }
}

/// A node's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeTimer {
    /// A group server's timer (Raft's, or the service's configuration poll and migration).
    Server(ReplicaTimer),
    /// A clerk's retry timer.
    Clerk(ClerkTimer),
}

/// What a node writes to its disk.
#[derive(Clone, Debug)]
pub enum Persisted {
    /// The controller's configurations and sessions (its whole state).
    Ctrl(ShardCtrler),
    /// A group server's Raft write (hard state, log, snapshot).
    Group(PersistOp<GroupEntry>),
}

/// A node's disk: the controller's state, or a group server's Raft state and snapshot.
#[derive(Clone, Debug, Default)]
pub struct ShardDisk {
    /// The controller's state (node 0 only).
    pub ctrl: Option<ShardCtrler>,
    /// A group server's Raft disk (empty on other nodes).
    pub raft: RaftDisk<GroupEntry>,
}

/// One node's role and state.
#[derive(Debug)]
pub enum Role {
    /// The controller; `admin` counts the administrator's requests.
    Ctrl {
        /// Its state machine.
        sm: ShardCtrler,
        /// Requests applied so far (the administrator's sequence numbers).
        admin: u64,
    },
    /// A shard group's server on Raft.
    Group(Box<GroupReplica>),
    /// A clerk.
    Clerk(Clerk),
}

/// A simulated node of the sharded KV.
#[derive(Debug)]
pub struct Node {
    /// Its role.
    pub role: Role,
    ready: Ready<Persisted, Wm, Completed, NodeTimer>,
}

impl Node {
    /// The administrator's request `op`, applied by the controller (node 0).
    pub fn admin(&mut self, op: CtrlOp) {
        let Role::Ctrl { sm, admin } = &mut self.role else {
            panic!("administrative requests go to the controller");
        };
        *admin += 1;
        let cmd = CtrlCommand {
            client: ClientId(0),
            seq: Seq(*admin),
            op,
        };
        sm.apply(LogIndex(*admin), &cmd);
        self.ready.persist.push(Persisted::Ctrl(sm.clone()));
    }

    /// A clerk starts `op`.
    pub fn invoke(&mut self, op: Op) {
        let Role::Clerk(c) = &mut self.role else {
            panic!("operations go to clerks");
        };
        c.invoke(op);
        self.drain_clerk();
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

    /// The controller's state, if this is the controller.
    pub fn ctrl(&self) -> Option<&ShardCtrler> {
        match &self.role {
            Role::Ctrl { sm, .. } => Some(sm),
            _ => None,
        }
    }

    /// Moves the group server's outputs into ours, in the simulator's message type.
    fn drain_server(&mut self) {
        let Role::Group(r) = &mut self.role else {
            return;
        };
        let out = r.take_ready();
        self.ready
            .persist
            .extend(out.persist.into_iter().map(Persisted::Group));
        let sends = out.messages.into_iter().filter_map(|(to, m)| match m {
            ReplicaMsg::Peer(m) => Some((to, Wm::Group(m))),
            ReplicaMsg::Net(NetMsg::Shard(m)) => Some((to, Wm::Net(m))),
            // A group server speaks no administration.
            ReplicaMsg::Net(_) => None,
        });
        self.ready.messages.extend(sends);
        let timers = out
            .timers
            .into_iter()
            .map(|t| map_timer(t, NodeTimer::Server));
        self.ready.timers.extend(timers);
        // `out.apply` only reports snapshot restores, which the harness does not need.
    }

    fn drain_clerk(&mut self) {
        let Role::Clerk(c) = &mut self.role else {
            return;
        };
        let r = c.take_ready();
        let sends = r.messages.into_iter().map(|(to, m)| (to, Wm::Net(m)));
        self.ready.messages.extend(sends);
        self.ready.apply.extend(r.completed);
        let timers = r.timers.into_iter().map(|t| map_timer(t, NodeTimer::Clerk));
        self.ready.timers.extend(timers);
    }
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
    type Apply = Completed;
    type Timer = NodeTimer;

    fn on_message(&mut self, from: NodeId, msg: Wm) {
        match (&mut self.role, msg) {
            (Role::Ctrl { sm, .. }, Wm::Net(Msg::Query { num })) => {
                let config = sm.query(num).clone();
                self.ready
                    .messages
                    .push((from, Wm::Net(Msg::QueryReply { config })));
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
            _ => {}
        }
    }

    fn on_timeout(&mut self, timer: NodeTimer) {
        match (&mut self.role, timer) {
            (Role::Group(r), NodeTimer::Server(t)) => {
                r.on_timeout(t);
                self.drain_server();
            }
            (Role::Clerk(c), NodeTimer::Clerk(t)) => {
                c.on_timeout(t);
                self.drain_clerk();
            }
            _ => {}
        }
    }

    fn take_ready(&mut self) -> Ready<Persisted, Wm, Completed, NodeTimer> {
        std::mem::take(&mut self.ready)
    }

    fn must_follow_writes(&self, msg: &Wm) -> bool {
        match (&self.role, msg) {
            (Role::Group(r), Wm::Group(m)) => r.raft().must_follow_writes(m),
            _ => true,
        }
    }
}

/// The cluster's shape: the controller, `gids.len()` groups of `replicas` servers, then
/// clerks.
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
    /// Seeded bugs, in every group.
    pub bugs: Bugs,
}

impl ShardKind {
    /// The nodes of group `g`'s servers.
    pub fn group_nodes(&self, g: usize) -> Range<usize> {
        let first = 1 + g * self.replicas;
        first..first + self.replicas
    }

    /// The group (by index) node `node` serves in, if it is a group server.
    pub fn group_of(&self, node: usize) -> Option<usize> {
        (node >= 1 && node < self.first_clerk()).then(|| (node - 1) / self.replicas)
    }

    /// The first clerk's node.
    pub fn first_clerk(&self) -> usize {
        1 + self.gids.len() * self.replicas
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
        let who = (self.gids[g], self.shards, vec![NodeId(0)]);
        GroupReplica::with_bugs(&self.replica_config(), raft, durable, who, self.bugs)
    }
}

impl NodeKind for ShardKind {
    type Core = Node;
    type Disk = ShardDisk;

    fn boot(&self, node: usize, disk: &ShardDisk) -> Node {
        let role = if node == 0 {
            match &disk.ctrl {
                Some(sm) => Role::Ctrl {
                    admin: sm.sessions().get(ClientId(0)).map_or(0, |s| s.seq.0),
                    sm: sm.clone(),
                },
                None => Role::Ctrl {
                    sm: ShardCtrler::new(self.shards),
                    admin: 0,
                },
            }
        } else if node < self.first_clerk() {
            Role::Group(Box::new(self.boot_server(node, disk)))
        } else {
            Role::Clerk(Clerk::new(ClientId(node as u64), vec![NodeId(0)]))
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
            Persisted::Ctrl(sm) => disk.ctrl = Some(sm.clone()),
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
        }
    }

    fn violation<'a>(&self, core: &'a Node) -> Option<&'a Violation> {
        core.replica().and_then(|r| r.violation())
    }
}

impl RaftHost for ShardKind {
    type Command = GroupEntry;
    fn raft<'a>(&self, _node: usize, core: &'a Node) -> Option<&'a Raft<GroupEntry>> {
        core.replica().map(|r| r.raft())
    }
    fn raft_disk<'a>(&self, node: usize, disk: &'a ShardDisk) -> Option<&'a RaftDisk<GroupEntry>> {
        self.group_of(node).map(|_| &disk.raft)
    }
}
