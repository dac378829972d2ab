//! The binary encoding ([`crate::codec`]) of the group's log commands and of its state (what a
//! snapshot holds).

use super::state::{Command, Shard, ShardState};
use super::types::{Op, OpReply, SessionEntry, Source};
use crate::codec::{Decode, DecodeError, Encode, Reader};
use crate::kvraft::Sessions;
use crate::shardctrler::codec::{decode_groups, decode_request, encode_groups, encode_request};
use crate::shardctrler::{Config, ConfigNum, Gid, ShardId};
use std::collections::BTreeMap;

impl Encode for Op {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::Get(k) => {
                out.push(0);
                k.encode(out);
            }
            Op::Put(k, v) => {
                out.push(1);
                k.encode(out);
                v.encode(out);
            }
            Op::Append(k, v) => {
                out.push(2);
                k.encode(out);
                v.encode(out);
            }
        }
    }
}

impl Decode for Op {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.take(1, "operation tag")?[0] {
            0 => Op::Get(String::decode(r)?),
            1 => Op::Put(String::decode(r)?, String::decode(r)?),
            2 => Op::Append(String::decode(r)?, String::decode(r)?),
            t => return Err(r.error(format!("operation: unknown tag {t}"))),
        })
    }
}

impl Encode for OpReply {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            OpReply::Ok => out.push(0),
            OpReply::Value(v) => {
                out.push(1);
                v.encode(out);
            }
            OpReply::NoKey => out.push(2),
            OpReply::WrongGroup => out.push(3),
            OpReply::WrongLeader => out.push(4),
        }
    }
}

impl Decode for OpReply {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.take(1, "reply tag")?[0] {
            0 => OpReply::Ok,
            1 => OpReply::Value(String::decode(r)?),
            2 => OpReply::NoKey,
            3 => OpReply::WrongGroup,
            4 => OpReply::WrongLeader,
            t => return Err(r.error(format!("reply: unknown tag {t}"))),
        })
    }
}

impl Encode for SessionEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_request(self.client, self.seq, out);
        self.reply.encode(out);
    }
}

impl Decode for SessionEntry {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (client, seq) = decode_request(r)?;
        Ok(SessionEntry {
            client,
            seq,
            reply: OpReply::decode(r)?,
        })
    }
}

impl Encode for Source {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut groups = BTreeMap::new();
        groups.insert(self.gid, self.servers.clone());
        encode_groups(&groups, out);
    }
}

impl Decode for Source {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let groups = decode_groups(r)?;
        let mut it = groups.into_iter();
        match (it.next(), it.next()) {
            (Some((gid, servers)), None) => Ok(Source { gid, servers }),
            _ => Err(r.error("source: expected exactly one group")),
        }
    }
}

impl Encode for ShardState {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ShardState::Serving => out.push(0),
            ShardState::Pulling(src) => {
                out.push(1);
                src.encode(out);
            }
            ShardState::Offering => out.push(2),
            ShardState::Garbage(src) => {
                out.push(3);
                src.encode(out);
            }
        }
    }
}

impl Decode for ShardState {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.take(1, "shard state tag")?[0] {
            0 => ShardState::Serving,
            1 => ShardState::Pulling(Source::decode(r)?),
            2 => ShardState::Offering,
            3 => ShardState::Garbage(Source::decode(r)?),
            t => return Err(r.error(format!("shard state: unknown tag {t}"))),
        })
    }
}

impl Encode for Command {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Op { client, seq, op } => {
                out.push(0);
                encode_request(*client, *seq, out);
                op.encode(out);
            }
            Command::Reconfigure(config) => {
                out.push(1);
                config.encode(out);
            }
            Command::InsertShard {
                shard,
                num,
                data,
                sessions,
            } => {
                out.push(2);
                shard.encode(out);
                num.encode(out);
                data.encode(out);
                sessions.encode(out);
            }
            Command::DeleteShard { shard, num } => {
                out.push(3);
                shard.encode(out);
                num.encode(out);
            }
            Command::ShardDeleted { shard, num } => {
                out.push(4);
                shard.encode(out);
                num.encode(out);
            }
        }
    }
}

impl Decode for Command {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.take(1, "command tag")?[0] {
            0 => {
                let (client, seq) = decode_request(r)?;
                Command::Op {
                    client,
                    seq,
                    op: Op::decode(r)?,
                }
            }
            1 => Command::Reconfigure(Config::decode(r)?),
            2 => Command::InsertShard {
                shard: ShardId::decode(r)?,
                num: ConfigNum::decode(r)?,
                data: BTreeMap::decode(r)?,
                sessions: Vec::decode(r)?,
            },
            3 => Command::DeleteShard {
                shard: ShardId::decode(r)?,
                num: ConfigNum::decode(r)?,
            },
            4 => Command::ShardDeleted {
                shard: ShardId::decode(r)?,
                num: ConfigNum::decode(r)?,
            },
            t => return Err(r.error(format!("command: unknown tag {t}"))),
        })
    }
}

impl Encode for Shard {
    fn encode(&self, out: &mut Vec<u8>) {
        self.state.encode(out);
        self.data.encode(out);
        self.sessions.encode(out);
    }
}

impl Decode for Shard {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let state = ShardState::decode(r)?;
        let data = BTreeMap::decode(r)?;
        let mut sessions = Sessions::default();
        sessions.decode_into(r)?;
        Ok(Shard {
            state,
            data,
            sessions,
        })
    }
}

/// The replicated part of a group's state, as a snapshot holds it.
pub(super) struct Snapshot {
    pub(super) config: Config,
    pub(super) holders: Vec<Gid>,
    pub(super) holder_servers: BTreeMap<Gid, Vec<crate::contract::NodeId>>,
    pub(super) shards: BTreeMap<ShardId, Shard>,
}

/// Encodes a group's replicated state (see [`Snapshot`]).
pub(super) fn encode_snapshot(
    config: &Config,
    holders: &[Gid],
    holder_servers: &BTreeMap<Gid, Vec<crate::contract::NodeId>>,
    shards: &BTreeMap<ShardId, Shard>,
    out: &mut Vec<u8>,
) {
    config.encode(out);
    holders.to_vec().encode(out);
    encode_groups(holder_servers, out);
    shards.encode(out);
}

/// Decodes what [`encode_snapshot`] wrote.
pub(super) fn decode_snapshot(data: &[u8]) -> Result<Snapshot, DecodeError> {
    let mut r = Reader::new(data);
    let s = Snapshot {
        config: Config::decode(&mut r)?,
        holders: Vec::decode(&mut r)?,
        holder_servers: decode_groups(&mut r)?,
        shards: BTreeMap::decode(&mut r)?,
    };
    r.finish()?;
    if s.holders.len() != s.config.shard_count() {
        return Err(r.error("group snapshot: one holder per shard expected"));
    }
    Ok(s)
}
