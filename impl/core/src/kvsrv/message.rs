//! The messages between clerks and the server: one request per attempt, one reply per request
//! that reaches the server.

use super::store::{GetResult, PutResult, Version};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A clerk's operation number: it names the operation, not the attempt, so every copy of a
/// retransmitted request carries the same `Seq` and a reply is matched to the operation it
/// answers. A clerk never reuses one.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A kvsrv message. The server answers every request to its sender, echoing `seq`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Message {
    /// `KVServer.Get`.
    Get {
        /// The clerk's operation.
        seq: Seq,
        /// The key.
        key: String,
    },
    /// `KVServer.Put`.
    Put {
        /// The clerk's operation.
        seq: Seq,
        /// The key.
        key: String,
        /// The new value.
        value: String,
        /// The version the clerk expects the key to have.
        version: Version,
    },
    /// The server's answer to a `Get`.
    GetReply {
        /// The operation answered.
        seq: Seq,
        /// What the server read.
        result: GetResult,
    },
    /// The server's answer to a `Put`.
    PutReply {
        /// The operation answered.
        seq: Seq,
        /// What the server did.
        result: PutResult,
    },
}

impl Message {
    /// True for requests (clerk → server).
    pub fn is_request(&self) -> bool {
        matches!(self, Message::Get { .. } | Message::Put { .. })
    }

    /// The operation the message belongs to.
    pub fn seq(&self) -> Seq {
        match self {
            Message::Get { seq, .. }
            | Message::Put { seq, .. }
            | Message::GetReply { seq, .. }
            | Message::PutReply { seq, .. } => *seq,
        }
    }

    /// The same message for operation `seq`.
    pub fn with_seq(mut self, new: Seq) -> Message {
        match &mut self {
            Message::Get { seq, .. }
            | Message::Put { seq, .. }
            | Message::GetReply { seq, .. }
            | Message::PutReply { seq, .. } => *seq = new,
        }
        self
    }

    /// A short name of the kind (`Get`, `Put`, `GetReply`, `PutReply`).
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Get { .. } => "Get",
            Message::Put { .. } => "Put",
            Message::GetReply { .. } => "GetReply",
            Message::PutReply { .. } => "PutReply",
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Get { seq, key } => write!(f, "Get{seq}({key:?})"),
            Message::Put {
                seq,
                key,
                value,
                version,
            } => write!(f, "Put{seq}({key:?}, {value:?}, {version})"),
            Message::GetReply { seq, result } => write!(f, "GetReply{seq}({result})"),
            Message::PutReply { seq, result } => write!(f, "PutReply{seq}({result})"),
        }
    }
}
