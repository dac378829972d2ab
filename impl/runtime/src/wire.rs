//! What travels in frames: the handshake, messages between nodes, client requests and
//! replies. Postcard is not self-describing, so variants are only ever **appended** and the
//! handshake carries [`PROTOCOL_VERSION`].
//!
//! Every connection starts with a [`Hello`] from the side that connected, answered by a
//! [`Welcome`]. A node refuses (with the reason, then closes) a hello with the wrong magic or
//! version, another cluster's id, a peer id that is not a member or is its own, or a peer
//! that addressed another node. Only then do larger frames flow.

use aver_core::contract::NodeId;
use aver_core::kvraft;
use aver_core::raft::Message;
use serde::{Deserialize, Serialize};
use std::fmt;

/// First bytes of every hello.
pub const MAGIC: [u8; 4] = *b"AVER";
/// Wire protocol version; a node refuses any other.
pub const PROTOCOL_VERSION: u16 = 2;

/// Identifies a cluster, so that a node never talks to a member of another cluster that
/// happens to listen on a configured address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterId(pub u64);

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for ClusterId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        u64::from_str_radix(s, 16)
            .map(ClusterId)
            .map_err(|e| format!("cluster id `{s}` is not up to 16 hex digits: {e}"))
    }
}

/// Who is connecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Endpoint {
    /// A member node.
    Peer(NodeId),
    /// A client.
    Client,
}

/// The first frame on every connection, from the side that connected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The cluster the sender belongs to (or, for a client, wants).
    pub cluster: ClusterId,
    /// Who is connecting.
    pub from: Endpoint,
    /// The node the sender means to reach (a peer must name it; `None` for any node).
    pub to: Option<NodeId>,
}

impl Hello {
    /// A hello from `from` for node `to` of `cluster`.
    pub fn new(cluster: ClusterId, from: Endpoint, to: Option<NodeId>) -> Hello {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            cluster,
            from,
            to,
        }
    }
}

/// The answer to a [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Welcome {
    /// Accepted by node `node`.
    Accepted {
        /// The accepting node.
        node: NodeId,
    },
    /// Refused; the connection closes after this frame.
    Refused {
        /// Why.
        reason: String,
    },
}

/// A frame between two member nodes after the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame<C> {
    /// A Raft message.
    Raft(Message<C>),
    /// Nothing to say: sent on an idle link so that the other side can tell a live peer from
    /// a dead connection (a crashed machine sends no FIN).
    Ping,
}

/// A frame from a client after the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request<Op> {
    /// A clerk's request for the kvraft server core (answered by [`Reply::Kv`] unless the
    /// server has nothing to say, e.g. for a request its clerk has moved past).
    Kv(kvraft::Request<Op>),
    /// Report this node's state. Answered by [`Reply::Status`].
    Status {
        /// Echoed in the reply.
        id: u64,
    },
    /// A message for the node's service core (the sharded deployment's servers, which talk
    /// to clerks, administrators and each other this way; answered by [`Reply::Msg`]s).
    Msg(Op),
}

/// A frame from a node to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply<R> {
    /// The kvraft server core's reply to a clerk.
    Kv(kvraft::Reply<R>),
    /// This node's state.
    Status {
        /// The request's id.
        id: u64,
        /// The state.
        status: NodeStatus,
    },
    /// The request could not be read; the node closes the connection after this.
    Error {
        /// What was wrong.
        what: String,
    },
    /// A message from the node's service core to whoever opened the connection.
    Msg(R),
}

/// A node's state, for `aver cluster status` and benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node.
    pub id: NodeId,
    /// `follower`, `candidate` or `leader`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Index of the snapshot the log rests on.
    pub snapshot_index: u64,
    /// Index of the last log entry.
    pub last_index: u64,
    /// Bytes of the log since the last snapshot.
    pub log_bytes: u64,
    /// fsyncs (files and directories) so far.
    pub fsyncs: u64,
    /// Group commits so far.
    pub commits: u64,
    /// Replies with a result sent to clerks so far (acknowledged operations).
    pub acked_ops: u64,
    /// Malformed frames received (bad length, checksum or encoding).
    pub malformed_frames: u64,
    /// Handshakes refused (foreign cluster, unknown peer, bad version).
    pub refused_handshakes: u64,
    /// Messages to peers dropped because their queue was full.
    pub dropped_messages: u64,
    /// The service's own state in one line (a shard group: its configuration and shards).
    pub detail: String,
}
