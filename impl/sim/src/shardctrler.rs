//! The shard controller as a Raft group on the simulator: a [`NodeKind`] for the controller
//! server core ([`CtrlReplica`]: the [`aver_core::shardctrler::ShardCtrler`] on the rsm on
//! Raft, the very core the runtime runs) and one for the controller clerk core
//! ([`CtrlClerk`]), with the [`Wire`] glue for their messages ([`CtrlNet`]).
//!
//! A server's disk is Raft's disk ([`RaftDisk`]), so [`crate::cluster::ClusterCheck`] checks
//! Raft's cluster invariants on the servers after every event ([`RaftHost`]). The clerk core
//! speaks only the controller's client messages ([`NetMsg`]); [`CtrlClient`] puts them in the
//! servers' envelope and takes them out (no protocol logic).
//!
//! Timers: Raft's as in [`crate::raft`]; the clerk's `Retry` after [`CTRL_CLERK_RETRY`].

use crate::cluster::RaftHost;
use crate::raft::{ELECTION_MS_MAX, ELECTION_MS_MIN, HEARTBEAT_MS, RaftDisk};
use crate::sim::{MS, Micros, NodeKind, TraceHash, Wire, postcard_size};
use aver_core::contract::{Core, NodeId, Ready, Violation};
use aver_core::kvraft::ClientId;
use aver_core::raft::{self, Raft};
use aver_core::shardctrler::CtrlCommand;
use aver_core::shardctrler::clerk::{CtrlClerk, CtrlClerkTimer, CtrlDone};
use aver_core::shardkv::replica::{
    CtrlEntry, CtrlReplica, NetMsg, ReplicaConfig, ReplicaEvent, ReplicaMsg, ReplicaTimer,
};
use aver_core::shardkv::{Bugs, Msg};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::convert::Infallible;

/// How long a controller clerk waits for an answer before it tries the next server.
pub const CTRL_CLERK_RETRY: Micros = 100 * MS;

/// The controller group's message type: Raft's between servers, [`NetMsg`] with clerks.
pub type CtrlNet = ReplicaMsg<CtrlCommand>;

impl Wire for ReplicaMsg<CtrlCommand> {
    fn is_request(&self) -> bool {
        match self {
            ReplicaMsg::Peer(m) => m.is_request(),
            ReplicaMsg::Net(NetMsg::AdminReply { .. }) => false,
            ReplicaMsg::Net(NetMsg::Shard(m)) => !matches!(m, Msg::QueryReply { .. }),
            ReplicaMsg::Net(NetMsg::Admin { .. }) => true,
        }
    }

    fn size(&self) -> u64 {
        postcard_size(self)
    }

    fn fingerprint(&self, hash: &mut TraceHash) {
        let (kind, word) = match self {
            ReplicaMsg::Peer(m) => {
                let kind = match m {
                    raft::Message::RequestVote(_) => 1,
                    raft::Message::RequestVoteReply(_) => 2,
                    raft::Message::AppendEntries(_) => 3,
                    raft::Message::AppendEntriesReply(_) => 4,
                    raft::Message::InstallSnapshot(_) => 5,
                    raft::Message::InstallSnapshotReply(_) => 6,
                };
                (kind, m.term().0)
            }
            ReplicaMsg::Net(NetMsg::Admin { client, seq, .. }) => (7, (client.0 << 32) ^ seq.0),
            ReplicaMsg::Net(NetMsg::AdminReply { client, seq, .. }) => {
                (8, (client.0 << 32) ^ seq.0)
            }
            ReplicaMsg::Net(NetMsg::Shard(_)) => (9, 0),
        };
        hash.word(kind);
        hash.word(word);
    }

    fn label(&self) -> &'static str {
        match self {
            ReplicaMsg::Peer(m) => m.kind(),
            ReplicaMsg::Net(NetMsg::Admin { .. }) => "Admin",
            ReplicaMsg::Net(NetMsg::AdminReply { .. }) => "AdminReply",
            ReplicaMsg::Net(NetMsg::Shard(_)) => "Shard",
        }
    }

    fn describe(&self) -> String {
        match self {
            ReplicaMsg::Peer(raft::Message::AppendEntries(m)) => format!(
                "AppendEntries {} prev={}/{} n={} commit={}",
                m.term,
                m.prev_log_index,
                m.prev_log_term,
                m.entries.len(),
                m.leader_commit
            ),
            ReplicaMsg::Peer(raft::Message::InstallSnapshot(m)) => format!(
                "InstallSnapshot {} at {} ({} bytes)",
                m.term,
                m.snapshot.meta.index,
                m.snapshot.data.len()
            ),
            ReplicaMsg::Peer(m) => m.kind().to_string(),
            ReplicaMsg::Net(NetMsg::Admin { client, seq, op }) => {
                format!("Admin {client} {seq} {op:?}")
            }
            ReplicaMsg::Net(NetMsg::AdminReply {
                client,
                seq,
                result,
            }) => match result {
                Ok(r) => format!("AdminReply {client} {seq} {r:?}"),
                Err(hint) => format!("AdminReply {client} {seq} not leader (hint {hint:?})"),
            },
            ReplicaMsg::Net(NetMsg::Shard(m)) => format!("{m:?}"),
        }
    }
}

/// Controller servers `0..n` on Raft, all voters.
#[derive(Clone, Debug)]
pub struct CtrlServerKind {
    /// Number of servers.
    pub n: usize,
    /// Number of shards.
    pub shards: usize,
    /// The rsm's configuration (`maxraftstate`).
    pub config: ReplicaConfig,
    /// Seeded bugs (`rebalance-differs`).
    pub bugs: Bugs,
}

impl CtrlServerKind {
    /// Server `node` of a controller whose servers are nodes `first..first + n`, started (or
    /// restarted) from `disk`. A simulation that runs the controller beside other nodes (the
    /// shard suites) boots its controller servers with this.
    pub fn boot_at(&self, first: usize, node: usize, disk: &RaftDisk<CtrlEntry>) -> CtrlReplica {
        let voters = (first..first + self.n).map(|i| NodeId(i as u32)).collect();
        let raft = raft::Config::new(NodeId(node as u32), voters);
        let durable = disk.durable().clone();
        CtrlReplica::with_bugs(&self.config, raft, durable, (self.shards, self.bugs))
    }
}

impl NodeKind for CtrlServerKind {
    type Core = CtrlReplica;
    type Disk = RaftDisk<CtrlEntry>;

    fn boot(&self, node: usize, disk: &Self::Disk) -> CtrlReplica {
        self.boot_at(0, node, disk)
    }

    fn write(&self, disk: &mut Self::Disk, op: &raft::PersistOp<CtrlEntry>) {
        disk.write(op);
    }

    fn timer_delay(&self, timer: ReplicaTimer, rng: &mut ChaCha8Rng) -> Micros {
        let ms = match timer {
            ReplicaTimer::Raft(raft::Timer::Heartbeat) => HEARTBEAT_MS,
            ReplicaTimer::Raft(raft::Timer::Election) => {
                rng.random_range(ELECTION_MS_MIN..=ELECTION_MS_MAX)
            }
            // A controller server sets no shard timers.
            ReplicaTimer::Shard(_) => HEARTBEAT_MS,
        };
        ms * MS
    }

    fn timer_code(&self, timer: ReplicaTimer) -> u64 {
        match timer {
            ReplicaTimer::Raft(raft::Timer::Election) => 0,
            ReplicaTimer::Raft(raft::Timer::Heartbeat) => 1,
            ReplicaTimer::Shard(_) => 2,
        }
    }

    fn violation<'a>(&self, core: &'a CtrlReplica) -> Option<&'a Violation> {
        core.violation()
    }
}

impl RaftHost for CtrlServerKind {
    type Command = CtrlEntry;
    fn raft<'a>(&self, _node: usize, core: &'a CtrlReplica) -> Option<&'a Raft<CtrlEntry>> {
        Some(core.raft())
    }
    fn raft_disk<'a>(&self, _node: usize, disk: &'a Self::Disk) -> Option<&'a Self::Disk> {
        Some(disk)
    }
}

/// A controller clerk on the controller's network.
#[derive(Clone, Debug)]
pub struct CtrlClient {
    /// The clerk core.
    pub clerk: CtrlClerk,
}

impl Core for CtrlClient {
    type Persist = Infallible;
    type Msg = CtrlNet;
    type Apply = CtrlDone;
    type Timer = CtrlClerkTimer;

    fn on_message(&mut self, from: NodeId, msg: CtrlNet) {
        if let ReplicaMsg::Net(m) = msg {
            self.clerk.on_message(from, m);
        }
    }

    fn on_timeout(&mut self, timer: CtrlClerkTimer) {
        self.clerk.on_timeout(timer);
    }

    fn take_ready(&mut self) -> Ready<Infallible, CtrlNet, CtrlDone, CtrlClerkTimer> {
        let r = self.clerk.take_ready();
        Ready {
            persist: r.persist,
            messages: r
                .messages
                .into_iter()
                .map(|(to, m)| (to, ReplicaMsg::Net(m)))
                .collect(),
            apply: r.apply,
            timers: r.timers,
        }
    }
}

/// Clerks: node `i` (after the `servers` controller servers) is clerk session `ClientId(i)`,
/// knowing every server.
#[derive(Clone, Debug)]
pub struct CtrlClerkKind {
    /// Number of controller servers (nodes `0..servers`).
    pub servers: usize,
}

impl NodeKind for CtrlClerkKind {
    type Core = CtrlClient;
    type Disk = ();

    fn boot(&self, node: usize, _disk: &()) -> CtrlClient {
        let servers = (0..self.servers as u32).map(NodeId).collect();
        CtrlClient {
            clerk: CtrlClerk::new(ClientId(node as u64), servers),
        }
    }

    fn write(&self, _disk: &mut (), op: &Infallible) {
        match *op {}
    }

    fn timer_delay(&self, _timer: CtrlClerkTimer, _rng: &mut ChaCha8Rng) -> Micros {
        CTRL_CLERK_RETRY
    }

    fn timer_code(&self, _timer: CtrlClerkTimer) -> u64 {
        0
    }
}

/// A replica's event is only `Restored` (a snapshot replaced its state); harnesses ignore it.
pub type CtrlEvent = ReplicaEvent;
