//! The sharded KV's cores as simulated nodes: node 0 is the shard controller, nodes
//! `1..=groups` are the shard groups (one server each), the rest are clerks.
//!
//! Every role is a pure core from `aver_core`; this file only carries out what they ask. A
//! group applies each proposal at once (its log is atomic: one replica), persists its state
//! machine after every applied command, and sends the message the command produced to whoever
//! proposed it; a crash loses nothing committed and a restart resumes from the disk, as a
//! Raft group that never loses a majority would. The controller is a single replica too (the
//! 2025 lab's configuration store is one kvsrv); the harness applies the administrator's
//! Join/Leave/Move to it and it answers configuration queries.

use aver_core::contract::{Core, NodeId, Ready, TimerCmd};
use aver_core::kvraft::{ClientId, Seq};
use aver_core::raft::LogIndex;
use aver_core::shardctrler::{CtrlCommand, CtrlOp, Gid, ShardCtrler};
use aver_core::shardkv::{
    Bugs, Clerk, ClerkTimer, Completed, Msg, Op, ShardKv, ShardServer, Timer,
};
use aver_sim::sim::{MS, Micros, NodeKind, TraceHash, Wire, postcard_size};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// A message on the simulated network (the core's message, wrapped so this crate can say how
/// the network treats it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Wm(pub Msg);

impl Wire for Wm {
    fn is_request(&self) -> bool {
        matches!(
            self.0,
            Msg::Request { .. } | Msg::Query { .. } | Msg::Pull { .. } | Msg::Delete { .. }
        )
    }
    fn size(&self) -> u64 {
        postcard_size(&self.0)
    }
    fn fingerprint(&self, hash: &mut TraceHash) {
        let (kind, word) = match &self.0 {
            Msg::Request { seq, .. } => (0, seq.0),
            Msg::Response { seq, .. } => (1, seq.0),
            Msg::Query { num } => (2, num.map_or(u64::MAX, |n| n.0)),
            Msg::QueryReply { config } => (3, config.num.0),
            Msg::Pull { shard, num } => (4, (num.0 << 8) | u64::from(shard.0)),
            Msg::PullReply { shard, num, .. } => (5, (num.0 << 8) | u64::from(shard.0)),
            Msg::Delete { shard, num } => (6, (num.0 << 8) | u64::from(shard.0)),
            Msg::DeleteReply { shard, num } => (7, (num.0 << 8) | u64::from(shard.0)),
        };
        hash.word((word << 3) | kind);
    }
    fn label(&self) -> &'static str {
        match self.0 {
            Msg::Request { .. } => "Request",
            Msg::Response { .. } => "Response",
            Msg::Query { .. } => "Query",
            Msg::QueryReply { .. } => "QueryReply",
            Msg::Pull { .. } => "Pull",
            Msg::PullReply { .. } => "PullReply",
            Msg::Delete { .. } => "Delete",
            Msg::DeleteReply { .. } => "DeleteReply",
        }
    }
    fn describe(&self) -> String {
        match &self.0 {
            Msg::PullReply {
                shard, num, data, ..
            } => format!(
                "PullReply {{ shard: {shard:?}, num: {num:?}, keys: {} }}",
                data.len()
            ),
            Msg::QueryReply { config } => format!("QueryReply {{ {:?} }}", config.shards),
            m => format!("{m:?}"),
        }
    }
}

/// A node's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeTimer {
    /// A group server's timer.
    Server(Timer),
    /// A clerk's retry timer.
    Clerk(ClerkTimer),
}

/// What a node writes to its disk: its whole state machine after each change.
#[derive(Clone, Debug)]
pub enum Persisted {
    /// The controller's configurations and sessions.
    Ctrl(ShardCtrler),
    /// A group's state machine and the index of its last applied command.
    Group(ShardKv, u64),
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
    /// A shard group's server.
    Group {
        /// Its applied state.
        sm: ShardKv,
        /// The rest of the server.
        server: ShardServer,
        /// Index of the last applied command.
        index: u64,
    },
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

    /// The group's applied state, if this is a group.
    pub fn group(&self) -> Option<&ShardKv> {
        match &self.role {
            Role::Group { sm, .. } => Some(sm),
            _ => None,
        }
    }

    /// The controller's state, if this is the controller.
    pub fn ctrl(&self) -> Option<&ShardCtrler> {
        match &self.role {
            Role::Ctrl { sm, .. } => Some(sm),
            _ => None,
        }
    }

    /// Applies what the server proposed (its log is atomic), persists, sends the messages the
    /// applied commands produced and the server's own, sets its timers.
    fn drain_server(&mut self) {
        let Role::Group { sm, server, index } = &mut self.role else {
            return;
        };
        let r = server.take_ready();
        for p in &r.propose {
            *index += 1;
            if let (Some(m), Some(to)) = (sm.apply(LogIndex(*index), &p.command), p.reply_to) {
                self.ready.messages.push((to, Wm(m)));
            }
        }
        if !r.propose.is_empty() {
            self.ready
                .persist
                .push(Persisted::Group(sm.clone(), *index));
        }
        let sends = r.messages.into_iter().map(|(to, m)| (to, Wm(m)));
        self.ready.messages.extend(sends);
        let timers = r
            .timers
            .into_iter()
            .map(|t| map_timer(t, NodeTimer::Server));
        self.ready.timers.extend(timers);
    }

    fn drain_clerk(&mut self) {
        let Role::Clerk(c) = &mut self.role else {
            return;
        };
        let r = c.take_ready();
        let sends = r.messages.into_iter().map(|(to, m)| (to, Wm(m)));
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

    fn on_message(&mut self, from: NodeId, Wm(msg): Wm) {
        match &mut self.role {
            Role::Ctrl { sm, .. } => {
                if let Msg::Query { num } = msg {
                    let config = sm.query(num).clone();
                    self.ready
                        .messages
                        .push((from, Wm(Msg::QueryReply { config })));
                }
            }
            Role::Group { sm, server, .. } => {
                server.on_message(sm, from, msg);
                self.drain_server();
            }
            Role::Clerk(c) => {
                c.on_message(from, msg);
                self.drain_clerk();
            }
        }
    }

    fn on_timeout(&mut self, timer: NodeTimer) {
        match (&mut self.role, timer) {
            (Role::Group { sm, server, .. }, NodeTimer::Server(t)) => {
                server.on_timeout(sm, t);
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
}

/// The cluster's shape: the controller, `gids.len()` groups, then clerks.
#[derive(Clone, Debug)]
pub struct ShardKind {
    /// Number of shards.
    pub shards: usize,
    /// Group `i` (node `i + 1`) has gid `gids[i]`.
    pub gids: Vec<Gid>,
    /// Seeded bugs, in every group.
    pub bugs: Bugs,
}

impl ShardKind {
    /// The node of group `g` (by index).
    pub fn group_node(&self, g: usize) -> usize {
        g + 1
    }

    /// The first clerk's node.
    pub fn first_clerk(&self) -> usize {
        self.gids.len() + 1
    }
}

impl NodeKind for ShardKind {
    type Core = Node;
    type Disk = Option<Persisted>;

    fn boot(&self, node: usize, disk: &Option<Persisted>) -> Node {
        let ctrl = vec![NodeId(0)];
        let role = match disk {
            Some(Persisted::Ctrl(sm)) => Role::Ctrl {
                admin: sm.sessions().get(ClientId(0)).map_or(0, |s| s.seq.0),
                sm: sm.clone(),
            },
            Some(Persisted::Group(sm, index)) => Role::Group {
                sm: sm.clone(),
                server: ShardServer::new(ctrl),
                index: *index,
            },
            None if node == 0 => Role::Ctrl {
                sm: ShardCtrler::new(self.shards),
                admin: 0,
            },
            None if node < self.first_clerk() => Role::Group {
                sm: ShardKv::new(self.gids[node - 1], self.shards, self.bugs),
                server: ShardServer::new(ctrl),
                index: 0,
            },
            None => Role::Clerk(Clerk::new(ClientId(node as u64), ctrl)),
        };
        let mut n = Node {
            role,
            ready: Ready::default(),
        };
        n.drain_server();
        n
    }

    fn write(&self, disk: &mut Option<Persisted>, op: &Persisted) {
        *disk = Some(op.clone());
    }

    fn timer_delay(&self, timer: NodeTimer, rng: &mut ChaCha8Rng) -> Micros {
        match timer {
            // The handout: poll the controller about every 100 ms.
            NodeTimer::Server(Timer::PollConfig) => rng.random_range(80..=120) * MS,
            NodeTimer::Server(Timer::Migrate) => rng.random_range(40..=60) * MS,
            NodeTimer::Clerk(ClerkTimer::Retry) => rng.random_range(80..=120) * MS,
        }
    }

    fn timer_code(&self, timer: NodeTimer) -> u64 {
        match timer {
            NodeTimer::Server(Timer::PollConfig) => 0,
            NodeTimer::Server(Timer::Migrate) => 1,
            NodeTimer::Clerk(ClerkTimer::Retry) => 2,
        }
    }
}
