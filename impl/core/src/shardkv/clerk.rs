//! The sharded KV's client, as a pure core: it routes each operation key → shard → group by
//! its cached configuration, retries on a timer, tries another server of the group on
//! `WrongLeader` or silence, and refreshes the configuration from the controller on
//! `WrongGroup` (and on every retry, as the lab's clerk does). Once every server of the group
//! has answered `WrongLeader` (an election is under way), it waits for its retry timer
//! before trying again, as the lab's clerk sleeps 100 ms after a round of the group: resending
//! at once would loop as fast as the network carries messages.
//!
//! One operation at a time, numbered `1, 2, …` under the clerk's [`ClientId`]; a retry keeps
//! the number, so the groups' session tables (which move with the shards) execute it at most
//! once, whichever group it finally reaches.

use super::types::{Msg, Op, OpReply, key2shard};
use crate::contract::{NodeId, TimerCmd};
use crate::kvraft::{ClientId, Seq};
use crate::shardctrler::{Config, Gid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The clerk's one timer: no answer for a while; retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClerkTimer {
    /// Resend the operation (to the next server of the group) and re-read the configuration.
    Retry,
}

/// An operation the clerk finished.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Completed {
    /// Its request number.
    pub seq: Seq,
    /// The operation.
    pub op: Op,
    /// The final answer (`Ok`, `Value` or `NoKey`).
    pub reply: OpReply,
}

/// What the clerk asks of its driver after one input: send, report completions, set timers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClerkReady {
    /// Messages to send.
    pub messages: Vec<(NodeId, Msg)>,
    /// Operations completed by this input.
    pub completed: Vec<Completed>,
    /// Timer commands.
    pub timers: Vec<TimerCmd<ClerkTimer>>,
}

/// The operation in flight.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pending {
    /// Its request number.
    pub seq: Seq,
    /// The operation.
    pub op: Op,
}

/// A sharded-KV clerk.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Clerk {
    id: ClientId,
    /// The controller's servers.
    ctrl: Vec<NodeId>,
    /// The latest configuration seen (`None` before the first answer).
    config: Option<Config>,
    /// The last request number used.
    seq: Seq,
    pending: Option<Pending>,
    /// Per group, the position of the server to try first (the last one that answered);
    /// absent means 0.
    leaders: BTreeMap<Gid, usize>,
    /// `WrongLeader` answers since the last retry timer, new operation or new target group.
    wrong_leaders: usize,
    ready: ClerkReady,
}

impl Clerk {
    /// Clerk `id`, reading configurations from the controller at `ctrl`.
    pub fn new(id: ClientId, ctrl: Vec<NodeId>) -> Clerk {
        assert!(!ctrl.is_empty(), "a controller has servers");
        Clerk {
            id,
            ctrl,
            config: None,
            seq: Seq(0),
            pending: None,
            leaders: BTreeMap::new(),
            wrong_leaders: 0,
            ready: ClerkReady::default(),
        }
    }

    /// This clerk's id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The operation in flight, if any.
    pub fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }

    /// The cached configuration.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }

    /// Drains what the last inputs asked for.
    pub fn take_ready(&mut self) -> ClerkReady {
        std::mem::take(&mut self.ready)
    }

    /// Starts `op`; returns its request number.
    ///
    /// # Panics
    /// If an operation is still in flight (one at a time: a driver bug).
    pub fn invoke(&mut self, op: Op) -> Seq {
        assert!(
            self.pending.is_none(),
            "{}: one operation at a time",
            self.id
        );
        self.seq = Seq(self.seq.0 + 1);
        self.pending = Some(Pending { seq: self.seq, op });
        self.wrong_leaders = 0;
        self.send_request();
        self.ready.timers.push(TimerCmd::Set(ClerkTimer::Retry));
        self.seq
    }

    /// The retry timer fired: try the next server of the group and re-read the configuration.
    pub fn on_timeout(&mut self, timer: ClerkTimer) {
        let ClerkTimer::Retry = timer;
        if self.pending.is_none() {
            return;
        }
        self.wrong_leaders = 0;
        if let Some(gid) = self.target() {
            self.next_server(gid);
        }
        self.send_request();
        self.query();
        self.ready.timers.push(TimerCmd::Set(ClerkTimer::Retry));
    }

    /// A message arrived from `from`.
    pub fn on_message(&mut self, from: NodeId, msg: Msg) {
        match msg {
            Msg::Response { client, seq, reply } => self.on_response(from, client, seq, reply),
            Msg::QueryReply { config } => {
                if self.config.as_ref().is_some_and(|c| c.num >= config.num) {
                    return;
                }
                let before = self.target();
                self.config = Some(config);
                if self.pending.is_some() && self.target() != before {
                    self.wrong_leaders = 0;
                    self.send_request();
                }
            }
            _ => {}
        }
    }

    /// True if delivering `msg` is a no-op now and forever (an answer to a finished request, a
    /// configuration no newer than the cached one). For the model checker's dead-message
    /// collection; conservative.
    pub fn ignores_forever(&self, msg: &Msg) -> bool {
        match msg {
            Msg::Response { client, seq, .. } => {
                *client != self.id
                    || *seq < self.seq
                    || (*seq == self.seq && self.pending.is_none())
            }
            Msg::QueryReply { config } => self.config.as_ref().is_some_and(|c| c.num >= config.num),
            _ => true,
        }
    }

    fn on_response(&mut self, from: NodeId, client: ClientId, seq: Seq, reply: OpReply) {
        let Some(p) = &self.pending else { return };
        if client != self.id || seq != p.seq {
            return;
        }
        match reply {
            OpReply::WrongGroup => self.query(),
            OpReply::WrongLeader => {
                if let Some(gid) = self.target() {
                    self.next_server(gid);
                    self.wrong_leaders += 1;
                    if self.wrong_leaders < self.servers(gid).len() {
                        self.send_request();
                    }
                }
            }
            reply => {
                if let Some(gid) = self.target() {
                    let servers = self.servers(gid);
                    if let Some(i) = servers.iter().position(|s| *s == from) {
                        self.set_leader(gid, i);
                    }
                }
                let Pending { seq, op } = self.pending.take().expect("checked above");
                self.ready.completed.push(Completed { seq, op, reply });
                self.ready.timers.push(TimerCmd::Cancel(ClerkTimer::Retry));
            }
        }
    }

    /// The group serving the pending operation's key in the cached configuration.
    fn target(&self) -> Option<Gid> {
        let (p, c) = (self.pending.as_ref()?, self.config.as_ref()?);
        let gid = c.owner(key2shard(p.op.key(), c.shard_count()));
        (gid != Gid::NONE).then_some(gid)
    }

    fn servers(&self, gid: Gid) -> &[NodeId] {
        self.config.as_ref().map_or(&[], |c| c.servers(gid))
    }

    fn next_server(&mut self, gid: Gid) {
        let n = self.servers(gid).len().max(1);
        let i = self.leaders.get(&gid).copied().unwrap_or(0);
        self.set_leader(gid, (i + 1) % n);
    }

    /// Remembers server position `i` of `gid` as the one to try first. Position 0 is the
    /// default and is not stored, so equal clerks have equal maps.
    fn set_leader(&mut self, gid: Gid, i: usize) {
        if i == 0 {
            self.leaders.remove(&gid);
        } else {
            self.leaders.insert(gid, i);
        }
    }

    /// Sends the pending request to its group, or asks for a configuration if it has none.
    fn send_request(&mut self) {
        let Some(p) = self.pending.clone() else {
            return;
        };
        let Some(gid) = self.target() else {
            self.query();
            return;
        };
        let servers = self.servers(gid);
        let i = self.leaders.get(&gid).copied().unwrap_or(0) % servers.len();
        let to = servers[i];
        let (client, seq, op) = (self.id, p.seq, p.op);
        self.ready
            .messages
            .push((to, Msg::Request { client, seq, op }));
    }

    fn query(&mut self) {
        for c in &self.ctrl {
            self.ready.messages.push((*c, Msg::Query { num: None }));
        }
    }
}
