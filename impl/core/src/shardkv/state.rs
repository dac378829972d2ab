//! The replicated state machine of one shard group: what every replica of the group holds,
//! changed only by applying committed [`Command`]s in log order.

use super::bugs::{Bug, Bugs};
use super::codec;
use super::types::{
    Key, Msg, Op, OpReply, SessionEntry, ShardData, Source, Value, export_sessions, key2shard,
};
use crate::codec::DecodeError;
use crate::contract::NodeId;
use crate::kvraft::{ClientId, Lookup, Seq, Sessions};
use crate::raft::LogIndex;
use crate::rsm::StateMachine;
use crate::shardctrler::{Config, ConfigNum, Gid, ShardId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a shard held by this group stands.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ShardState {
    /// Ours, data here: served.
    Serving,
    /// Ours in the current configuration, but its data is still at the previous holder: not
    /// served yet; we pull it.
    Pulling(Source),
    /// No longer ours: kept, unchanged and not served, until the new owner confirms that it
    /// installed it (then deleted).
    Offering,
    /// Ours and served; the previous holder still keeps a copy, garbage that we must get
    /// deleted (we send it `Delete` until it confirms).
    Garbage(Source),
}

/// One shard held by this group: its state, its data and its duplicate-detection table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    /// Where it stands.
    pub state: ShardState,
    /// Its key/value pairs (empty while `Pulling`).
    pub data: ShardData,
    /// Its sessions: they travel with the shard, so that a request executed here is not
    /// executed again by the next owner when the client retries it there.
    pub sessions: Sessions<OpReply>,
}

impl Shard {
    fn empty(state: ShardState) -> Shard {
        Shard {
            state,
            data: ShardData::new(),
            sessions: Sessions::default(),
        }
    }
}

/// A command of the group's replicated log.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Command {
    /// A client operation.
    Op {
        /// The clerk.
        client: ClientId,
        /// Its request number.
        seq: Seq,
        /// The operation.
        op: Op,
    },
    /// Move to the next configuration (applied only if it is exactly the next one and no
    /// migration is in progress).
    Reconfigure(Config),
    /// A pulled shard arrived.
    InsertShard {
        /// The shard.
        shard: ShardId,
        /// The configuration that moved it here.
        num: ConfigNum,
        /// Its data.
        data: ShardData,
        /// Its sessions.
        sessions: Vec<SessionEntry>,
    },
    /// The new owner confirmed it holds the shard: delete our copy.
    DeleteShard {
        /// The shard.
        shard: ShardId,
        /// The configuration that moved it away.
        num: ConfigNum,
    },
    /// The previous holder confirmed it deleted its copy: garbage collection is done.
    ShardDeleted {
        /// The shard.
        shard: ShardId,
        /// The configuration that moved it here.
        num: ConfigNum,
    },
}

/// The state machine of one group (see the module docs of [`super`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardKv {
    gid: Gid,
    /// The current configuration.
    config: Config,
    /// `holders[s]`: the group that holds shard `s`'s data in the current configuration:
    /// its owner, or — while the configuration assigns it to no group (every group left) —
    /// the group that held it last, which keeps it until a later configuration assigns it.
    holders: Vec<Gid>,
    /// Servers of every group in `holders`, from the last configuration that listed it.
    holder_servers: BTreeMap<Gid, Vec<NodeId>>,
    /// Every shard this group holds, in any state. Absent: not held.
    shards: BTreeMap<ShardId, Shard>,
    bugs: Bugs,
}

impl ShardKv {
    /// Group `gid` in configuration 0 of `shards` shards (holding nothing).
    pub fn new(gid: Gid, shards: usize, bugs: Bugs) -> ShardKv {
        assert!(gid != Gid::NONE, "gid 0 means no group");
        ShardKv {
            gid,
            config: Config::initial(shards),
            holders: vec![Gid::NONE; shards],
            holder_servers: BTreeMap::new(),
            shards: BTreeMap::new(),
            bugs,
        }
    }

    /// This group's id.
    pub fn gid(&self) -> Gid {
        self.gid
    }

    /// The current configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current configuration's number.
    pub fn num(&self) -> ConfigNum {
        self.config.num
    }

    /// The seeded bugs this replica runs with.
    pub fn bugs(&self) -> Bugs {
        self.bugs
    }

    /// The shards this group holds, in any state.
    pub fn shards(&self) -> &BTreeMap<ShardId, Shard> {
        &self.shards
    }

    /// The shard `shard`, if held.
    pub fn shard(&self, shard: ShardId) -> Option<&Shard> {
        self.shards.get(&shard)
    }

    /// The shard of `key`.
    pub fn shard_of(&self, key: &str) -> ShardId {
        key2shard(key, self.config.shard_count())
    }

    /// True if this group answers client operations on `shard` now.
    pub fn serves(&self, shard: ShardId) -> bool {
        match self.shards.get(&shard).map(|s| &s.state) {
            Some(ShardState::Serving | ShardState::Garbage(_)) => true,
            Some(ShardState::Pulling(_)) => self.bugs.has(Bug::ServeBeforeArrival),
            Some(ShardState::Offering) | None => false,
        }
    }

    /// True if no migration is in progress (every held shard `Serving`): only then may the
    /// next configuration be applied.
    pub fn can_reconfigure(&self) -> bool {
        self.shards
            .values()
            .all(|s| matches!(s.state, ShardState::Serving))
    }

    /// True if `config` is the configuration to apply next. A correct group takes exactly the
    /// next number; with `configs-out-of-order` it takes any later one.
    pub fn is_next(&self, config: &Config) -> bool {
        if self.bugs.has(Bug::ConfigsOutOfOrder) {
            config.num > self.config.num
        } else {
            config.num == self.config.num.next()
        }
    }

    /// Applies the command committed at log `index` (used only to order sessions for
    /// eviction). Returns the message for whoever proposed it, if any: the [`Msg::Response`]
    /// to a client operation, the [`Msg::DeleteReply`] to a `DeleteShard`. Commands that no
    /// longer apply (a configuration already taken, a shard already installed or deleted:
    /// duplicates proposed by several replicas, or retries) change nothing.
    pub fn apply(&mut self, index: LogIndex, cmd: &Command) -> Option<Msg> {
        match cmd {
            Command::Op { client, seq, op } => Some(Msg::Response {
                client: *client,
                seq: *seq,
                reply: self.apply_op(index, *client, *seq, op),
            }),
            Command::Reconfigure(config) => {
                self.reconfigure(config);
                None
            }
            Command::InsertShard {
                shard,
                num,
                data,
                sessions,
            } => {
                self.insert_shard(index, *shard, *num, data, sessions);
                None
            }
            Command::DeleteShard { shard, num } => self.delete_shard(*shard, *num),
            Command::ShardDeleted { shard, num } => {
                if *num == self.config.num
                    && let Some(s) = self.shards.get_mut(shard)
                    && matches!(s.state, ShardState::Garbage(_))
                {
                    s.state = ShardState::Serving;
                }
                None
            }
        }
    }

    fn apply_op(&mut self, index: LogIndex, client: ClientId, seq: Seq, op: &Op) -> OpReply {
        let shard = self.shard_of(op.key());
        if !self.serves(shard) {
            return OpReply::WrongGroup;
        }
        let s = self.shards.get_mut(&shard).expect("a served shard is held");
        match op {
            Op::Get(k) => s
                .data
                .get(k)
                .cloned()
                .map_or(OpReply::NoKey, OpReply::Value),
            Op::Put(k, v) | Op::Append(k, v) => match s.sessions.lookup(client, seq) {
                Lookup::Duplicate(reply) => reply.clone(),
                Lookup::Stale => OpReply::Ok,
                Lookup::New => {
                    write(&mut s.data, op, k, v);
                    s.sessions.record(client, seq, OpReply::Ok, index);
                    OpReply::Ok
                }
            },
        }
    }

    /// Takes the next configuration: shards we keep stay served; shards we lose are offered;
    /// shards we gain are pulled from their holder (or start empty if no group ever held them).
    fn reconfigure(&mut self, next: &Config) {
        if !self.is_next(next) || !self.can_reconfigure() {
            return;
        }
        assert_eq!(
            next.shard_count(),
            self.config.shard_count(),
            "the shard count never changes"
        );
        let holders: Vec<Gid> = next
            .shards
            .iter()
            .zip(&self.holders)
            .map(|(now, was)| if *now == Gid::NONE { *was } else { *now })
            .collect();
        for (s, (was, now)) in self.holders.iter().zip(&holders).enumerate() {
            let shard = ShardId(s as u32);
            match (*was == self.gid, *now == self.gid) {
                (true, false) => {
                    if let Some(held) = self.shards.get_mut(&shard) {
                        held.state = ShardState::Offering;
                    }
                }
                (false, true) if *was == Gid::NONE => {
                    self.shards.insert(shard, Shard::empty(ShardState::Serving));
                }
                (false, true) => {
                    let source = Source {
                        gid: *was,
                        servers: self.holder_servers.get(was).cloned().unwrap_or_default(),
                    };
                    self.shards
                        .insert(shard, Shard::empty(ShardState::Pulling(source)));
                }
                _ => {}
            }
        }
        let mut servers = BTreeMap::new();
        for g in holders.iter().filter(|g| **g != Gid::NONE) {
            let known = next.groups.get(g).or_else(|| self.holder_servers.get(g));
            servers.insert(*g, known.cloned().unwrap_or_default());
        }
        self.holder_servers = servers;
        self.holders = holders;
        self.config = next.clone();
    }

    fn insert_shard(
        &mut self,
        index: LogIndex,
        shard: ShardId,
        num: ConfigNum,
        data: &ShardData,
        sessions: &[SessionEntry],
    ) {
        if num != self.config.num {
            return;
        }
        let Some(s) = self.shards.get_mut(&shard) else {
            return;
        };
        let ShardState::Pulling(source) = &s.state else {
            return;
        };
        s.state = ShardState::Garbage(source.clone());
        s.data = data.clone();
        s.sessions = Sessions::default();
        for e in sessions {
            s.sessions.record(e.client, e.seq, e.reply.clone(), index);
        }
    }

    /// The new owner holds `shard` of configuration `num`: drop our copy. Answers
    /// `DeleteReply` whenever our copy is gone (now or earlier); a request for a configuration
    /// we have not reached gets no answer.
    fn delete_shard(&mut self, shard: ShardId, num: ConfigNum) -> Option<Msg> {
        if num > self.config.num {
            return None;
        }
        if num == self.config.num
            && self
                .shards
                .get(&shard)
                .is_some_and(|s| s.state == ShardState::Offering)
        {
            self.shards.remove(&shard);
        }
        Some(Msg::DeleteReply { shard, num })
    }

    /// The answer to a `Pull` of `shard` for configuration `num`, read from the applied state
    /// (no log entry needed: an offered shard no longer changes). `None` if we do not offer
    /// it for that configuration (not reached yet, or long gone).
    pub fn pull_reply(&self, shard: ShardId, num: ConfigNum) -> Option<Msg> {
        let s = self.shards.get(&shard)?;
        if num != self.config.num || s.state != ShardState::Offering {
            return None;
        }
        let sessions = if self.bugs.has(Bug::DropDedup) {
            Vec::new()
        } else {
            export_sessions(&s.sessions)
        };
        Some(Msg::PullReply {
            shard,
            num,
            data: s.data.clone(),
            sessions,
        })
    }

    /// True if our copy of `shard` for configuration `num` is gone or will be (a `Delete`
    /// needs no log entry: answer at once).
    pub fn deleted(&self, shard: ShardId, num: ConfigNum) -> bool {
        num < self.config.num
            || (num == self.config.num
                && self
                    .shards
                    .get(&shard)
                    .is_none_or(|s| s.state != ShardState::Offering))
    }
}

fn write(data: &mut ShardData, op: &Op, key: &Key, value: &Value) {
    match op {
        Op::Put(..) => {
            data.insert(key.clone(), value.clone());
        }
        Op::Append(..) => data.entry(key.clone()).or_default().push_str(value),
        Op::Get(_) => unreachable!("reads do not write"),
    }
}

impl StateMachine for ShardKv {
    type Command = Command;
    /// Groups answer reads through the log (a Get is a command), so there are no queries.
    type Query = ();
    type Output = Option<Msg>;

    fn apply(&mut self, index: LogIndex, command: &Command) -> Option<Msg> {
        ShardKv::apply(self, index, command)
    }

    fn query(&self, _: &()) -> Option<Msg> {
        None
    }

    /// The configuration, holders and every held shard with its data and sessions.
    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode_snapshot(
            &self.config,
            &self.holders,
            &self.holder_servers,
            &self.shards,
            &mut out,
        );
        out
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        let s = codec::decode_snapshot(data)?;
        self.config = s.config;
        self.holders = s.holders;
        self.holder_servers = s.holder_servers;
        self.shards = s.shards;
        Ok(())
    }
}
