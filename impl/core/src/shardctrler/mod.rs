//! # The shard controller, as a pure state machine
//!
//! The controller decides which replica group serves which shard. It keeps a numbered sequence
//! of [`Config`]urations: configuration 0 has no groups and leaves every shard unassigned
//! ([`Gid::NONE`]); every successful `Join`, `Leave` or `Move` appends configuration `n + 1`.
//! `Query(n)` returns configuration `n`, or the latest one for `None` or a number not yet
//! reached.
//!
//! [`ShardCtrler`] is the deterministic state machine that sits on the replicated log (the
//! same on every replica: it reads no clock, no randomness and iterates only ordered maps);
//! each committed [`CtrlCommand`] is applied with [`ShardCtrler::apply`] and yields a
//! [`CtrlReply`]; it implements [`StateMachine`], so it runs on the [`crate::rsm`] like the KV
//! service. Requests carry a client id and sequence number and are deduplicated (the KV
//! service's session table, [`crate::kvraft::Sessions`]), so a retried `Join` does not
//! create a second configuration.
//!
//! `Join` and `Leave` rebalance with [`rebalance::rebalance`]: balanced (max − min ≤ 1), every
//! shard assigned whenever a group exists, and no move that balance does not need. `Move`
//! assigns one shard by hand (a later `Join` or `Leave` may undo it).
//!
//! Deviation from the lab, and why: a `Join` of a group that is already a member, a `Leave` or
//! `Move` naming a group that is not, a `Move` of a shard that does not exist, or a server
//! listed in two groups, is refused with a [`CtrlError`] and creates no configuration (the lab
//! leaves these undefined; the 2025 lab treats a re-join as an error too).
//!
//! Invariants (`specs/invariants.md`): SHARD-5 Config Agreement ([`invariants::config_agreement`])
//! and SHARD-6 Balanced Configs ([`invariants::balanced`]).

pub mod clerk;
pub(crate) mod codec;
pub mod invariants;
pub mod rebalance;

use crate::codec::{Decode, DecodeError, Encode, Reader};
use crate::contract::NodeId;
use crate::kvraft::{ClientId, Lookup, Seq, Sessions};
use crate::raft::LogIndex;
use crate::rsm::StateMachine;
use crate::shardkv::{Bug, Bugs};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The lab's number of shards (`NShards`).
pub const SHARDS_DEFAULT: usize = 10;

/// The largest number of shards a controller accepts (a limit on configuration size).
pub const SHARDS_MAX: usize = 1024;

/// A replica group's id. [`Gid::NONE`] (0) means "no group".
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Gid(pub u32);

impl Gid {
    /// No group: the holder of every shard in configuration 0.
    pub const NONE: Gid = Gid(0);
}

/// A configuration number; configuration 0 is the initial one.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct ConfigNum(pub u64);

impl ConfigNum {
    /// The next configuration number.
    pub fn next(self) -> ConfigNum {
        ConfigNum(self.0 + 1)
    }
}

/// A shard number, `0..shards`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct ShardId(pub u32);

impl ShardId {
    /// As an index into [`Config::shards`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Gid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

impl fmt::Display for ConfigNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cfg{}", self.0)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// One configuration: which group serves each shard, and the servers of each group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Config {
    /// Its number.
    pub num: ConfigNum,
    /// `shards[s]` serves shard `s` ([`Gid::NONE`]: nobody).
    pub shards: Vec<Gid>,
    /// Every member group and its servers.
    pub groups: BTreeMap<Gid, Vec<NodeId>>,
}

impl Config {
    /// Configuration 0: no groups, every one of `shards` shards unassigned.
    pub fn initial(shards: usize) -> Config {
        Config {
            num: ConfigNum(0),
            shards: vec![Gid::NONE; shards],
            groups: BTreeMap::new(),
        }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The group that serves `shard` ([`Gid::NONE`] if none, or if there is no such shard).
    pub fn owner(&self, shard: ShardId) -> Gid {
        self.shards.get(shard.index()).copied().unwrap_or(Gid::NONE)
    }

    /// The servers of `gid` (empty if it is not a member).
    pub fn servers(&self, gid: Gid) -> &[NodeId] {
        self.groups.get(&gid).map_or(&[], |s| s.as_slice())
    }

    /// Every shard id.
    pub fn shard_ids(&self) -> impl Iterator<Item = ShardId> + use<> {
        (0..self.shards.len() as u32).map(ShardId)
    }
}

/// An operation on the controller.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CtrlOp {
    /// Add groups (gid → servers) and rebalance.
    Join(BTreeMap<Gid, Vec<NodeId>>),
    /// Remove groups and rebalance their shards over the others.
    Leave(BTreeSet<Gid>),
    /// Assign one shard to one member group.
    Move {
        /// The shard.
        shard: ShardId,
        /// Its new group.
        gid: Gid,
    },
    /// Read configuration `n` (`None`, or a number not yet reached: the latest).
    Query(Option<ConfigNum>),
}

/// Why the controller refused an operation. A refused operation creates no configuration.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CtrlError {
    /// `Join` or `Leave` named no group.
    NoGroups,
    /// Group 0 is reserved for "no group".
    ReservedGid,
    /// `Join` of a group that is already a member.
    AlreadyMember(Gid),
    /// `Leave` or `Move` naming a group that is not a member.
    NotMember(Gid),
    /// `Join` of a group without servers.
    NoServers(Gid),
    /// A server listed for two groups (members or joining together).
    ServerInUse {
        /// The server.
        server: NodeId,
        /// The group that already lists it.
        gid: Gid,
    },
    /// `Move` of a shard that does not exist.
    NoSuchShard(ShardId),
}

impl fmt::Display for CtrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtrlError::NoGroups => write!(f, "no group named"),
            CtrlError::ReservedGid => write!(f, "gid 0 is reserved for \"no group\""),
            CtrlError::AlreadyMember(g) => write!(f, "group {} is already a member", g.0),
            CtrlError::NotMember(g) => write!(f, "group {} is not a member", g.0),
            CtrlError::NoServers(g) => write!(f, "group {} has no servers", g.0),
            CtrlError::ServerInUse { server, gid } => {
                write!(f, "server {server} already belongs to group {}", gid.0)
            }
            CtrlError::NoSuchShard(s) => write!(f, "no shard {}", s.0),
        }
    }
}

/// The controller's answer to one command.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CtrlReply {
    /// `Join`, `Leave` or `Move` done: this configuration number was created.
    Done(ConfigNum),
    /// The configuration a `Query` asked for.
    Config(Config),
    /// Refused.
    Err(CtrlError),
    /// A stale copy of a request whose client already has a later answer; nobody reads it.
    Stale,
}

/// One entry of the controller's replicated log: an operation and who asked for it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CtrlCommand {
    /// The clerk.
    pub client: ClientId,
    /// Its request number (for duplicate detection).
    pub seq: Seq,
    /// The operation.
    pub op: CtrlOp,
}

/// The controller's state machine: every configuration so far and the client sessions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardCtrler {
    /// `configs[n]` is configuration `n`; never empty.
    configs: Vec<Config>,
    /// Duplicate detection for `Join`, `Leave`, `Move` (queries are read-only and not
    /// recorded).
    sessions: Sessions<CtrlReply>,
    /// Seeded bug `rebalance-differs`: rebalance ties broken in a replica-specific order
    /// (this rotation). `None` in a correct controller.
    divergence: Option<u32>,
    /// Seeded bug `ctrl-drop-dedup`: every committed copy of a `Join`, `Leave` or `Move` is
    /// applied, retries included. False in a correct controller.
    drop_dedup: bool,
}

impl ShardCtrler {
    /// A controller over `shards` shards, holding configuration 0.
    ///
    /// # Panics
    /// If `shards` is 0 or above [`SHARDS_MAX`] (a deployment constant, checked where it is
    /// read from user input).
    pub fn new(shards: usize) -> ShardCtrler {
        assert!(
            (1..=SHARDS_MAX).contains(&shards),
            "1..={SHARDS_MAX} shards"
        );
        ShardCtrler {
            configs: vec![Config::initial(shards)],
            sessions: Sessions::default(),
            divergence: None,
            drop_dedup: false,
        }
    }

    /// A controller with the seeded `bugs` that concern it (`rebalance-differs`, whose
    /// tie-breaking order `replica` picks, and `ctrl-drop-dedup`); the others are ignored.
    pub fn with_bugs(shards: usize, bugs: Bugs, replica: u32) -> ShardCtrler {
        let base = if bugs.has(Bug::RebalanceDiffers) {
            ShardCtrler::with_divergent_rebalance(shards, replica)
        } else {
            ShardCtrler::new(shards)
        };
        ShardCtrler {
            drop_dedup: bugs.has(Bug::CtrlDropDedup),
            ..base
        }
    }

    /// A controller with the seeded bug `rebalance-differs`: this replica breaks rebalancing
    /// ties in its own order (`replica` picks the order), as an implementation iterating a
    /// hash map would. Replicas built with different `replica` values diverge.
    pub fn with_divergent_rebalance(shards: usize, replica: u32) -> ShardCtrler {
        ShardCtrler {
            divergence: Some(replica),
            ..ShardCtrler::new(shards)
        }
    }

    /// Applies the command committed at log `index` and returns its reply. Deterministic:
    /// replicas that apply the same commands hold the same configurations.
    pub fn apply(&mut self, index: LogIndex, cmd: &CtrlCommand) -> CtrlReply {
        if let CtrlOp::Query(num) = &cmd.op {
            return CtrlReply::Config(self.query(*num).clone());
        }
        let stale = match self.sessions.lookup(cmd.client, cmd.seq) {
            Lookup::Duplicate(reply) if !self.drop_dedup => return reply.clone(),
            Lookup::Stale if !self.drop_dedup => return CtrlReply::Stale,
            lookup => matches!(lookup, Lookup::Stale),
        };
        let reply = match self.next_config(&cmd.op) {
            Ok(config) => {
                let num = config.num;
                self.configs.push(config);
                CtrlReply::Done(num)
            }
            Err(e) => CtrlReply::Err(e),
        };
        if !stale {
            self.sessions
                .record(cmd.client, cmd.seq, reply.clone(), index);
        }
        reply
    }

    /// Configuration `num`, or the latest for `None` or a number not reached yet.
    pub fn query(&self, num: Option<ConfigNum>) -> &Config {
        num.and_then(|n| self.configs.get(n.0 as usize))
            .unwrap_or_else(|| self.latest())
    }

    /// The latest configuration.
    pub fn latest(&self) -> &Config {
        self.configs.last().expect("configuration 0 always exists")
    }

    /// Every configuration, in order.
    pub fn configs(&self) -> &[Config] {
        &self.configs
    }

    /// The client sessions (duplicate detection).
    pub fn sessions(&self) -> &Sessions<CtrlReply> {
        &self.sessions
    }

    /// The configuration `op` would create, or why it is refused.
    fn next_config(&self, op: &CtrlOp) -> Result<Config, CtrlError> {
        let latest = self.latest();
        let mut next = Config {
            num: latest.num.next(),
            ..latest.clone()
        };
        match op {
            CtrlOp::Join(joining) => {
                check_join(latest, joining)?;
                next.groups
                    .extend(joining.iter().map(|(g, s)| (*g, s.clone())));
                next.shards = self.rebalance(&next);
            }
            CtrlOp::Leave(leaving) => {
                check_leave(latest, leaving)?;
                next.groups.retain(|g, _| !leaving.contains(g));
                next.shards = self.rebalance(&next);
            }
            CtrlOp::Move { shard, gid } => {
                if shard.index() >= latest.shards.len() {
                    return Err(CtrlError::NoSuchShard(*shard));
                }
                if !latest.groups.contains_key(gid) {
                    return Err(CtrlError::NotMember(*gid));
                }
                next.shards[shard.index()] = *gid;
            }
            CtrlOp::Query(_) => unreachable!("queries create no configuration"),
        }
        Ok(next)
    }

    fn rebalance(&self, next: &Config) -> Vec<Gid> {
        let groups = next.groups.keys().copied();
        match self.divergence {
            None => rebalance::rebalance(&next.shards, groups),
            Some(r) => rebalance::rebalance_rotated(&next.shards, groups, r as usize),
        }
    }
}

impl StateMachine for ShardCtrler {
    type Command = CtrlCommand;
    /// A configuration read (served by ReadIndex, or from any replica's applied state).
    type Query = Option<ConfigNum>;
    type Output = CtrlReply;

    fn apply(&mut self, index: LogIndex, command: &CtrlCommand) -> CtrlReply {
        ShardCtrler::apply(self, index, command)
    }

    fn query(&self, num: &Option<ConfigNum>) -> CtrlReply {
        CtrlReply::Config(ShardCtrler::query(self, *num).clone())
    }

    /// Every configuration and the sessions.
    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.configs.encode(&mut out);
        self.sessions.encode(&mut out);
        out
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader::new(data);
        let configs = Vec::<Config>::decode(&mut r)?;
        if configs.is_empty() || configs.iter().enumerate().any(|(i, c)| c.num.0 != i as u64) {
            return Err(r.error("controller snapshot: configurations not numbered 0, 1, …"));
        }
        let mut sessions = Sessions::default();
        sessions.decode_into(&mut r)?;
        r.finish()?;
        self.configs = configs;
        self.sessions = sessions;
        Ok(())
    }
}

fn check_join(latest: &Config, joining: &BTreeMap<Gid, Vec<NodeId>>) -> Result<(), CtrlError> {
    if joining.is_empty() {
        return Err(CtrlError::NoGroups);
    }
    let mut in_use: BTreeMap<NodeId, Gid> = latest
        .groups
        .iter()
        .flat_map(|(g, servers)| servers.iter().map(move |s| (*s, *g)))
        .collect();
    for (gid, servers) in joining {
        if *gid == Gid::NONE {
            return Err(CtrlError::ReservedGid);
        }
        if latest.groups.contains_key(gid) {
            return Err(CtrlError::AlreadyMember(*gid));
        }
        if servers.is_empty() {
            return Err(CtrlError::NoServers(*gid));
        }
        for server in servers {
            if let Some(other) = in_use.insert(*server, *gid).filter(|o| o != gid) {
                return Err(CtrlError::ServerInUse {
                    server: *server,
                    gid: other,
                });
            }
        }
    }
    Ok(())
}

fn check_leave(latest: &Config, leaving: &BTreeSet<Gid>) -> Result<(), CtrlError> {
    if leaving.is_empty() {
        return Err(CtrlError::NoGroups);
    }
    match leaving.iter().find(|g| !latest.groups.contains_key(g)) {
        Some(g) => Err(CtrlError::NotMember(*g)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
