//! Identities, commands and messages of the KV service.

use crate::codec::Encode;
use crate::contract::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A client session's identity, unique per clerk (the lab draws it at random; the drivers
/// assign them).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct ClientId(pub u64);

/// A clerk's operation number: 1 for its first operation, one more for each new one; a retry
/// keeps it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Seq(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What the log carries: a client's operation with its session and sequence number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KvCommand<O> {
    /// The client.
    pub client: ClientId,
    /// Its sequence number.
    pub seq: Seq,
    /// The operation.
    pub op: O,
}

impl<O: Encode> Encode for KvCommand<O> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.client.0.encode(out);
        self.seq.0.encode(out);
        self.op.encode(out);
    }
    fn encoded_len(&self) -> usize {
        self.client.0.encoded_len() + self.seq.0.encoded_len() + self.op.encoded_len()
    }
}

/// A clerk's request to a server.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Request<O> {
    /// The client.
    pub client: ClientId,
    /// Its sequence number.
    pub seq: Seq,
    /// The operation.
    pub op: O,
}

/// Why a server did not answer a request with a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KvError {
    /// `ErrWrongLeader`: this server does not lead (or lost leadership, or is busy); try the
    /// hinted leader or another server.
    WrongLeader {
        /// The leader this server knows of, if any.
        leader_hint: Option<NodeId>,
    },
}

/// A server's answer to a request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Reply<R> {
    /// The client.
    pub client: ClientId,
    /// The request's sequence number.
    pub seq: Seq,
    /// The store's reply, or why there is none.
    pub result: Result<R, KvError>,
}

/// What clerks and servers say to each other.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClientMsg<O, R> {
    /// Clerk to server.
    Request(Request<O>),
    /// Server to clerk.
    Reply(Reply<R>),
}

/// Every message a KV server handles: its consensus engine's, and clerks'.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KvMsg<M, O, R> {
    /// Between servers (Raft).
    Peer(M),
    /// Between a clerk and a server.
    Client(ClientMsg<O, R>),
}

impl<M, O, R> KvMsg<M, O, R> {
    /// True for requests (labrpc drops requests before the handler, replies after it).
    pub fn is_request(&self, peer_is_request: impl FnOnce(&M) -> bool) -> bool {
        match self {
            KvMsg::Peer(m) => peer_is_request(m),
            KvMsg::Client(ClientMsg::Request(_)) => true,
            KvMsg::Client(ClientMsg::Reply(_)) => false,
        }
    }
}
