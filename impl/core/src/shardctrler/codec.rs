//! The binary encoding ([`crate::codec`]) of the controller's commands, replies and state:
//! what its log entries and snapshots hold.

use super::{Config, ConfigNum, CtrlCommand, CtrlError, CtrlOp, CtrlReply, Gid, ShardId};
use crate::codec::{Decode, DecodeError, Encode, Reader};
use crate::contract::NodeId;
use crate::kvraft::{ClientId, Seq};
use std::collections::{BTreeMap, BTreeSet};

macro_rules! newtype_codec {
    ($t:ident, $inner:ty, $what:literal) => {
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                u64::from(self.0).encode(out);
            }
        }
        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let v = r.varint($what)?;
                <$inner>::try_from(v)
                    .map($t)
                    .map_err(|_| r.error(format!("{}: {v} out of range", $what)))
            }
        }
    };
}

newtype_codec!(Gid, u32, "gid");
newtype_codec!(ConfigNum, u64, "config number");
newtype_codec!(ShardId, u32, "shard");

/// Servers of a group: node ids as varints.
fn encode_servers(servers: &[NodeId], out: &mut Vec<u8>) {
    servers
        .iter()
        .map(|n| u64::from(n.0))
        .collect::<Vec<u64>>()
        .encode(out);
}

fn decode_servers(r: &mut Reader<'_>) -> Result<Vec<NodeId>, DecodeError> {
    let ids = Vec::<u64>::decode(r)?;
    ids.into_iter()
        .map(|v| {
            u32::try_from(v)
                .map(NodeId)
                .map_err(|_| r.error(format!("node id {v} out of range")))
        })
        .collect()
}

/// A group map (gid → servers), in gid order.
pub(crate) fn encode_groups(groups: &BTreeMap<Gid, Vec<NodeId>>, out: &mut Vec<u8>) {
    crate::codec::put_varint(out, groups.len() as u64);
    for (g, servers) in groups {
        g.encode(out);
        encode_servers(servers, out);
    }
}

pub(crate) fn decode_groups(r: &mut Reader<'_>) -> Result<BTreeMap<Gid, Vec<NodeId>>, DecodeError> {
    let n = r.len("group count")?;
    let mut groups = BTreeMap::new();
    for _ in 0..n {
        let g = Gid::decode(r)?;
        if groups.last_key_value().is_some_and(|(last, _)| *last >= g) {
            return Err(r.error("groups: gids out of order or repeated"));
        }
        groups.insert(g, decode_servers(r)?);
    }
    Ok(groups)
}

/// A client id and sequence number.
pub(crate) fn encode_request(client: ClientId, seq: Seq, out: &mut Vec<u8>) {
    client.0.encode(out);
    seq.0.encode(out);
}

pub(crate) fn decode_request(r: &mut Reader<'_>) -> Result<(ClientId, Seq), DecodeError> {
    Ok((
        ClientId(r.varint("client id")?),
        Seq(r.varint("sequence number")?),
    ))
}

impl Encode for Config {
    fn encode(&self, out: &mut Vec<u8>) {
        self.num.encode(out);
        self.shards.encode(out);
        encode_groups(&self.groups, out);
    }
}

impl Decode for Config {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Config {
            num: ConfigNum::decode(r)?,
            shards: Vec::decode(r)?,
            groups: decode_groups(r)?,
        })
    }
}

impl Encode for CtrlOp {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            CtrlOp::Join(groups) => {
                out.push(0);
                encode_groups(groups, out);
            }
            CtrlOp::Leave(gids) => {
                out.push(1);
                gids.iter().copied().collect::<Vec<Gid>>().encode(out);
            }
            CtrlOp::Move { shard, gid } => {
                out.push(2);
                shard.encode(out);
                gid.encode(out);
            }
            CtrlOp::Query(num) => {
                out.push(3);
                num.encode(out);
            }
        }
    }
}

impl Decode for CtrlOp {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.take(1, "controller op tag")?[0] {
            0 => CtrlOp::Join(decode_groups(r)?),
            1 => CtrlOp::Leave(Vec::<Gid>::decode(r)?.into_iter().collect::<BTreeSet<_>>()),
            2 => CtrlOp::Move {
                shard: ShardId::decode(r)?,
                gid: Gid::decode(r)?,
            },
            3 => CtrlOp::Query(Option::decode(r)?),
            t => return Err(r.error(format!("controller op: unknown tag {t}"))),
        })
    }
}

impl Encode for CtrlCommand {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_request(self.client, self.seq, out);
        self.op.encode(out);
    }
}

impl Decode for CtrlCommand {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (client, seq) = decode_request(r)?;
        Ok(CtrlCommand {
            client,
            seq,
            op: CtrlOp::decode(r)?,
        })
    }
}

impl Encode for CtrlError {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            CtrlError::NoGroups => out.push(0),
            CtrlError::ReservedGid => out.push(1),
            CtrlError::AlreadyMember(g) => {
                out.push(2);
                g.encode(out);
            }
            CtrlError::NotMember(g) => {
                out.push(3);
                g.encode(out);
            }
            CtrlError::NoServers(g) => {
                out.push(4);
                g.encode(out);
            }
            CtrlError::ServerInUse { server, gid } => {
                out.push(5);
                u64::from(server.0).encode(out);
                gid.encode(out);
            }
            CtrlError::NoSuchShard(s) => {
                out.push(6);
                s.encode(out);
            }
        }
    }
}

impl Decode for CtrlError {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.take(1, "controller error tag")?[0] {
            0 => CtrlError::NoGroups,
            1 => CtrlError::ReservedGid,
            2 => CtrlError::AlreadyMember(Gid::decode(r)?),
            3 => CtrlError::NotMember(Gid::decode(r)?),
            4 => CtrlError::NoServers(Gid::decode(r)?),
            5 => {
                let v = r.varint("server")?;
                let server = u32::try_from(v)
                    .map(NodeId)
                    .map_err(|_| r.error(format!("node id {v} out of range")))?;
                CtrlError::ServerInUse {
                    server,
                    gid: Gid::decode(r)?,
                }
            }
            6 => CtrlError::NoSuchShard(ShardId::decode(r)?),
            t => return Err(r.error(format!("controller error: unknown tag {t}"))),
        })
    }
}

impl Encode for CtrlReply {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            CtrlReply::Done(n) => {
                out.push(0);
                n.encode(out);
            }
            CtrlReply::Config(c) => {
                out.push(1);
                c.encode(out);
            }
            CtrlReply::Err(e) => {
                out.push(2);
                e.encode(out);
            }
            CtrlReply::Stale => out.push(3),
        }
    }
}

impl Decode for CtrlReply {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.take(1, "controller reply tag")?[0] {
            0 => CtrlReply::Done(ConfigNum::decode(r)?),
            1 => CtrlReply::Config(Config::decode(r)?),
            2 => CtrlReply::Err(CtrlError::decode(r)?),
            3 => CtrlReply::Stale,
            t => return Err(r.error(format!("controller reply: unknown tag {t}"))),
        })
    }
}
