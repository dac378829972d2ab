//! Keys, operations, replies and the messages of the sharded KV service.

use crate::contract::NodeId;
use crate::kvraft::{ClientId, Seq, Sessions};
use crate::shardctrler::{Config, ConfigNum, ShardId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A key.
pub type Key = String;
/// A value.
pub type Value = String;

/// The shard of `key` among `shards` shards: its first byte modulo the shard count (the lab's
/// `key2shard`; the empty key is in shard 0).
pub fn key2shard(key: &str, shards: usize) -> ShardId {
    assert!(shards > 0, "at least one shard");
    let first = key.as_bytes().first().copied().unwrap_or(0);
    ShardId((usize::from(first) % shards) as u32)
}

/// A client operation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Read a key.
    Get(Key),
    /// Set a key.
    Put(Key, Value),
    /// Append to a key's value (a missing key counts as empty).
    Append(Key, Value),
}

impl Op {
    /// The key the operation reads or writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Get(k) | Op::Put(k, _) | Op::Append(k, _) => k,
        }
    }

    /// True for Put and Append (the operations that must take effect at most once).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get(_))
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Get(k) => write!(f, "get({k})"),
            Op::Put(k, v) => write!(f, "put({k},{v:?})"),
            Op::Append(k, v) => write!(f, "append({k},{v:?})"),
        }
    }
}

/// A server's answer to a client operation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OpReply {
    /// A Put or Append took effect.
    Ok,
    /// A Get found this value.
    Value(Value),
    /// A Get found no value.
    NoKey,
    /// This group does not serve the key's shard now (not its owner, or the data has not
    /// arrived yet): ask the controller for the latest configuration and retry.
    WrongGroup,
    /// This server cannot order the operation (not its group's leader): try another server.
    WrongLeader,
}

impl OpReply {
    /// True if the operation completed (the clerk is done with it).
    pub fn is_final(&self) -> bool {
        matches!(self, OpReply::Ok | OpReply::Value(_) | OpReply::NoKey)
    }
}

impl fmt::Display for OpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpReply::Ok => write!(f, "ok"),
            OpReply::Value(v) => write!(f, "{v:?}"),
            OpReply::NoKey => write!(f, "no-key"),
            OpReply::WrongGroup => write!(f, "wrong-group"),
            OpReply::WrongLeader => write!(f, "wrong-leader"),
        }
    }
}

/// The data of one shard: its key/value pairs.
pub type ShardData = BTreeMap<Key, Value>;

/// One client's session as it travels with a migrating shard: its latest write to the shard
/// and the reply that write got.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionEntry {
    /// The client.
    pub client: ClientId,
    /// Its latest write's sequence number.
    pub seq: Seq,
    /// That write's reply.
    pub reply: OpReply,
}

/// A shard's session table in the form it travels in (ordered by client).
pub fn export_sessions(sessions: &Sessions<OpReply>) -> Vec<SessionEntry> {
    sessions
        .iter()
        .map(|(client, s)| SessionEntry {
            client,
            seq: s.seq,
            reply: s.reply.clone(),
        })
        .collect()
}

/// Every message of the sharded KV: clerk ↔ group, anyone ↔ controller (configuration
/// reads), group ↔ group (migration).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Msg {
    /// Clerk → group: perform `op` (request `seq` of `client`).
    Request {
        /// The clerk.
        client: ClientId,
        /// Its request number.
        seq: Seq,
        /// The operation.
        op: Op,
    },
    /// Group → clerk: the answer to request `seq` of `client`.
    Response {
        /// The clerk.
        client: ClientId,
        /// The request answered.
        seq: Seq,
        /// The answer.
        reply: OpReply,
    },
    /// → controller: read configuration `num` (`None`: the latest). Any controller replica
    /// answers from what it has applied: configurations never change once made, so a lagging
    /// replica answers with an older configuration, never a wrong one.
    Query {
        /// The configuration wanted.
        num: Option<ConfigNum>,
    },
    /// Controller → asker: configuration `num` if it has it, else its latest.
    QueryReply {
        /// The configuration.
        config: Config,
    },
    /// New owner → previous holder: send shard `shard` as it stands when configuration `num`
    /// took it away from you.
    Pull {
        /// The shard.
        shard: ShardId,
        /// The configuration that moves it.
        num: ConfigNum,
    },
    /// Previous holder → new owner: the shard's data and its duplicate-detection table.
    PullReply {
        /// The shard.
        shard: ShardId,
        /// The configuration that moves it.
        num: ConfigNum,
        /// Its key/value pairs.
        data: ShardData,
        /// Its sessions: retries of requests it executed must not execute again.
        sessions: Vec<SessionEntry>,
    },
    /// New owner → previous holder: I hold shard `shard` of configuration `num`; delete yours.
    Delete {
        /// The shard.
        shard: ShardId,
        /// The configuration that moved it.
        num: ConfigNum,
    },
    /// Previous holder → new owner: deleted (or already gone).
    DeleteReply {
        /// The shard.
        shard: ShardId,
        /// The configuration that moved it.
        num: ConfigNum,
    },
}

/// Where a migrating shard comes from: the group that held it, and that group's servers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Source {
    /// The previous holder.
    pub gid: crate::shardctrler::Gid,
    /// Its servers (from the last configuration that listed it).
    pub servers: Vec<NodeId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key2shard_is_first_byte_modulo() {
        assert_eq!(key2shard("", 10), ShardId(0));
        assert_eq!(key2shard("0", 10), ShardId(8)); // b'0' = 48
        assert_eq!(key2shard("9abc", 10), ShardId(7));
        assert_eq!(key2shard("a", 2), ShardId(1));
    }
}
