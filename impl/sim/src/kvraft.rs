//! kvraft servers and clerks as simulated nodes: the [`Wire`] glue for
//! `aver_core::kvraft`'s messages, a [`NodeKind`] for the server core
//! ([`aver_core::kvraft::RaftKvServer`]: the kvraft service on the rsm on Raft, the very core
//! the runtime runs) and one for the clerk core ([`aver_core::kvraft::Clerk`]).
//!
//! A server's disk is Raft's disk ([`RaftDisk`]), so [`crate::cluster::ClusterCheck`] checks
//! Raft's cluster invariants on the servers after every event ([`RaftHost`]). Servers and
//! clerks exchange one message type on the simulated network ([`KvNet`]); the clerk core
//! speaks only its client half, so [`KvClient`] puts its messages in that envelope and takes
//! them out (no protocol logic: a server's peer traffic never reaches a clerk).
//!
//! Timers: Raft's as in [`crate::raft`] (heartbeat 100 ms, elections 300–600 ms); the clerk's
//! `Retry` after [`CLERK_RETRY`] (the lab's clerks wait 100 ms before trying another server).

use crate::cluster::RaftHost;
use crate::raft::{ELECTION_MS_MAX, ELECTION_MS_MIN, HEARTBEAT_MS, RaftDisk};
use crate::sim::{MS, Micros, NodeKind, TraceHash, Wire, postcard_size};
use aver_core::contract::{Core, NodeId, Ready, Violation};
use aver_core::kvraft::{
    ClerkConfig, ClerkOutput, ClerkTimer, ClientId, ClientMsg, KvBugs, KvConfig, KvEntry, KvMsg,
    RaftKvServer, Store,
};
use aver_core::raft::{self, Raft};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::convert::Infallible;
use std::fmt::Debug;
use std::marker::PhantomData;

/// How long a clerk waits for an answer before it tries the next server.
pub const CLERK_RETRY: Micros = 100 * MS;

/// The message type of a kvraft cluster on Raft: Raft's between servers, requests and replies
/// between clerks and servers.
pub type KvNet<St> = KvMsg<raft::Message<KvEntry<St>>, <St as Store>::Op, <St as Store>::Reply>;

impl<C: Serialize, O: Serialize + Debug, R: Serialize + Debug> Wire
    for KvMsg<raft::Message<C>, O, R>
{
    fn is_request(&self) -> bool {
        self.is_request(raft::Message::is_request)
    }

    fn size(&self) -> u64 {
        postcard_size(self)
    }

    fn fingerprint(&self, hash: &mut TraceHash) {
        let (kind, word) = match self {
            KvMsg::Peer(m) => {
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
            KvMsg::Client(ClientMsg::Request(r)) => (7, (r.client.0 << 32) ^ r.seq.0),
            KvMsg::Client(ClientMsg::Reply(r)) => (8, (r.client.0 << 32) ^ r.seq.0),
        };
        hash.word(kind);
        hash.word(word);
    }

    fn label(&self) -> &'static str {
        match self {
            KvMsg::Peer(m) => m.kind(),
            KvMsg::Client(ClientMsg::Request(_)) => "Request",
            KvMsg::Client(ClientMsg::Reply(_)) => "Reply",
        }
    }

    fn describe(&self) -> String {
        match self {
            KvMsg::Peer(raft::Message::AppendEntries(m)) => format!(
                "AppendEntries {} prev={}/{} n={} commit={}",
                m.term,
                m.prev_log_index,
                m.prev_log_term,
                m.entries.len(),
                m.leader_commit
            ),
            KvMsg::Peer(raft::Message::InstallSnapshot(m)) => format!(
                "InstallSnapshot {} at {} ({} bytes)",
                m.term,
                m.snapshot.meta.index,
                m.snapshot.data.len()
            ),
            KvMsg::Peer(m) => m.kind().to_string(),
            KvMsg::Client(ClientMsg::Request(r)) => {
                format!("Request {} {} {:?}", r.client, r.seq, r.op)
            }
            KvMsg::Client(ClientMsg::Reply(r)) => {
                format!("Reply {} {} {:?}", r.client, r.seq, r.result)
            }
        }
    }
}

/// Raft's timers, as [`crate::raft`] draws them.
fn raft_timer_delay(timer: raft::Timer, rng: &mut ChaCha8Rng) -> Micros {
    let ms = match timer {
        raft::Timer::Heartbeat => HEARTBEAT_MS,
        raft::Timer::Election => rng.random_range(ELECTION_MS_MIN..=ELECTION_MS_MAX),
    };
    ms * MS
}

/// kvraft servers `0..n` on Raft, all voters, with one configuration.
#[derive(Clone, Debug)]
pub struct KvServerKind<St> {
    /// Number of servers.
    pub n: usize,
    /// Their configuration (`maxraftstate`, reads, seeded bugs).
    pub config: KvConfig,
    _store: PhantomData<St>,
}

impl<St> KvServerKind<St> {
    /// `n` servers with `config`.
    pub fn new(n: usize, config: KvConfig) -> Self {
        KvServerKind {
            n,
            config,
            _store: PhantomData,
        }
    }
}

impl<St: Store> NodeKind for KvServerKind<St> {
    type Core = RaftKvServer<St>;
    type Disk = RaftDisk<KvEntry<St>>;

    fn boot(&self, node: usize, disk: &Self::Disk) -> Self::Core {
        let voters = (0..self.n as u32).map(NodeId).collect();
        let durable = disk.durable().clone();
        RaftKvServer::start(self.config.clone(), NodeId(node as u32), voters, durable)
    }

    fn write(&self, disk: &mut Self::Disk, op: &raft::PersistOp<KvEntry<St>>) {
        disk.write(op);
    }

    fn timer_delay(&self, timer: raft::Timer, rng: &mut ChaCha8Rng) -> Micros {
        raft_timer_delay(timer, rng)
    }

    fn timer_code(&self, timer: raft::Timer) -> u64 {
        match timer {
            raft::Timer::Election => 0,
            raft::Timer::Heartbeat => 1,
        }
    }

    fn violation<'a>(&self, core: &'a Self::Core) -> Option<&'a Violation> {
        core.violation()
    }
}

impl<St: Store> RaftHost for KvServerKind<St> {
    type Command = KvEntry<St>;
    fn raft<'a>(&self, _node: usize, core: &'a Self::Core) -> Option<&'a Raft<KvEntry<St>>> {
        Some(core.engine())
    }
    fn raft_disk<'a>(&self, _node: usize, disk: &'a Self::Disk) -> Option<&'a Self::Disk> {
        Some(disk)
    }
}

/// A kvraft clerk on the cluster's network: the clerk core, its messages in the cluster's
/// envelope.
#[derive(Clone, Debug)]
pub struct KvClient<St: Store> {
    /// The clerk core.
    pub clerk: aver_core::kvraft::Clerk<St>,
}

impl<St: Store> Core for KvClient<St> {
    type Persist = Infallible;
    type Msg = KvNet<St>;
    type Apply = ClerkOutput<St::Reply>;
    type Timer = ClerkTimer;

    fn on_message(&mut self, from: NodeId, msg: KvNet<St>) {
        if let KvMsg::Client(m) = msg {
            self.clerk.on_message(from, m);
        }
    }

    fn on_timeout(&mut self, timer: ClerkTimer) {
        self.clerk.on_timeout(timer);
    }

    fn take_ready(&mut self) -> Ready<Infallible, KvNet<St>, ClerkOutput<St::Reply>, ClerkTimer> {
        let r = self.clerk.take_ready();
        Ready {
            persist: r.persist,
            messages: r
                .messages
                .into_iter()
                .map(|(to, m)| (to, KvMsg::Client(m)))
                .collect(),
            apply: r.apply,
            timers: r.timers,
        }
    }
}

/// Clerks: node `i` (after the servers) is clerk `ClientId(i)`, trying the servers
/// `servers[i - first]` in order (the lab's `MakeClerkTo`: a clerk may know only some).
#[derive(Clone, Debug)]
pub struct KvClerkKind<St> {
    /// Index of the first clerk node.
    pub first: usize,
    /// Per clerk, the servers it knows.
    pub servers: Vec<Vec<NodeId>>,
    /// Seeded bugs (the clerk's own: `clerk-reuses-seq`).
    pub bugs: KvBugs,
    _store: PhantomData<St>,
}

impl<St> KvClerkKind<St> {
    /// Clerks from node `first` on, each knowing its list of servers.
    pub fn new(first: usize, servers: Vec<Vec<NodeId>>, bugs: KvBugs) -> Self {
        KvClerkKind {
            first,
            servers,
            bugs,
            _store: PhantomData,
        }
    }
}

impl<St: Store> NodeKind for KvClerkKind<St> {
    type Core = KvClient<St>;
    type Disk = ();

    fn boot(&self, node: usize, _disk: &()) -> KvClient<St> {
        let clerk = aver_core::kvraft::Clerk::new(ClerkConfig {
            client: ClientId(node as u64),
            servers: self.servers[node - self.first].clone(),
            bugs: self.bugs,
        });
        KvClient { clerk }
    }

    fn write(&self, _disk: &mut (), op: &Infallible) {
        match *op {}
    }

    fn timer_delay(&self, _timer: ClerkTimer, _rng: &mut ChaCha8Rng) -> Micros {
        CLERK_RETRY
    }

    fn timer_code(&self, _timer: ClerkTimer) -> u64 {
        0
    }
}
