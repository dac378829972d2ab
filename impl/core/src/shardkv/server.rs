//! What a group's server does besides applying the log: answer clerks and other groups, poll
//! the controller, drive migrations. It reads the applied state ([`ShardKv`]) and asks for
//! commands to be proposed to the group's log; it never changes the state itself.
//!
//! Every message it sends is idempotent and resent on a timer until it is no longer needed, so
//! it keeps no record of requests in flight: a `Pull` is answered from the applied state, a
//! `Delete` that already took effect is answered at once, and a `Delete` that has not yet is
//! proposed and answered once applied (or on the next retry).

use super::bugs::Bug;
use super::state::{Command, ShardKv, ShardState};
use super::types::{Msg, OpReply};
use crate::contract::{NodeId, TimerCmd};
use serde::{Deserialize, Serialize};

/// The server's named timers; the driver picks durations (the lab polls the controller about
/// every 100 ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Ask the controller for the next configuration.
    PollConfig,
    /// (Re)send `Pull` for shards being pulled and `Delete` for garbage at previous holders.
    Migrate,
}

/// A command to propose to the group's log, and who gets the message its application
/// produces (the client of an operation, the group asking for a deletion).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proposal {
    /// The command.
    pub command: Command,
    /// The sender of the request that caused it, if it expects an answer.
    pub reply_to: Option<NodeId>,
}

/// What the server asks of its driver after one input, in this order: propose (then, once
/// applied, send [`ShardKv::apply`]'s message to `reply_to`), send, set timers. Nothing is
/// persisted here: the group's log and snapshots hold the state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServerReady {
    /// Commands for the group's log.
    pub propose: Vec<Proposal>,
    /// Messages to send.
    pub messages: Vec<(NodeId, Msg)>,
    /// Timer commands.
    pub timers: Vec<TimerCmd<Timer>>,
}

/// One server of a shard group (the part that is not the replicated state).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardServer {
    /// The controller's servers.
    ctrl: Vec<NodeId>,
    ready: ServerReady,
}

impl ShardServer {
    /// A server that asks the controller at `ctrl` for configurations. Sets its timers.
    pub fn new(ctrl: Vec<NodeId>) -> ShardServer {
        assert!(!ctrl.is_empty(), "a controller has servers");
        let mut s = ShardServer {
            ctrl,
            ready: ServerReady::default(),
        };
        s.ready.timers.push(TimerCmd::Set(Timer::PollConfig));
        s.ready.timers.push(TimerCmd::Set(Timer::Migrate));
        s
    }

    /// Drains what the last inputs asked for.
    pub fn take_ready(&mut self) -> ServerReady {
        std::mem::take(&mut self.ready)
    }

    /// A timer fired.
    pub fn on_timeout(&mut self, sm: &ShardKv, timer: Timer) {
        match timer {
            Timer::PollConfig => self.poll(sm),
            Timer::Migrate => self.migrate(sm),
        }
        self.ready.timers.push(TimerCmd::Set(timer));
    }

    /// A message arrived from `from`.
    pub fn on_message(&mut self, sm: &ShardKv, from: NodeId, msg: Msg) {
        match msg {
            Msg::Request { client, seq, op } => {
                if sm.serves(sm.shard_of(op.key())) {
                    self.propose(Command::Op { client, seq, op }, Some(from));
                } else {
                    let reply = OpReply::WrongGroup;
                    self.send(from, Msg::Response { client, seq, reply });
                }
            }
            Msg::QueryReply { config } => {
                if sm.is_next(&config) && sm.can_reconfigure() {
                    self.propose(Command::Reconfigure(config), None);
                }
            }
            Msg::Pull { shard, num } => {
                if let Some(reply) = sm.pull_reply(shard, num) {
                    self.send(from, reply);
                    if sm.bugs().has(Bug::DeleteBeforeConfirm) {
                        self.propose(Command::DeleteShard { shard, num }, None);
                    }
                }
            }
            Msg::PullReply {
                shard,
                num,
                data,
                sessions,
            } => {
                if num == sm.num() && is_state(sm, shard, |s| matches!(s, ShardState::Pulling(_))) {
                    let cmd = Command::InsertShard {
                        shard,
                        num,
                        data,
                        sessions,
                    };
                    self.propose(cmd, None);
                }
            }
            Msg::Delete { shard, num } => {
                if sm.deleted(shard, num) {
                    self.send(from, Msg::DeleteReply { shard, num });
                } else if num == sm.num() {
                    self.propose(Command::DeleteShard { shard, num }, Some(from));
                }
            }
            Msg::DeleteReply { shard, num } => {
                if num == sm.num() && is_state(sm, shard, |s| matches!(s, ShardState::Garbage(_))) {
                    self.propose(Command::ShardDeleted { shard, num }, None);
                }
            }
            Msg::Response { .. } | Msg::Query { .. } => {}
        }
    }

    /// True if delivering `msg` to a server whose applied state is `sm` is a no-op now and
    /// for every later state (the state's configuration number never decreases and a shard
    /// never returns to `Pulling`/`Garbage` within one configuration). Used by the model
    /// checker to drop dead messages; conservative: `false` when unsure.
    pub fn ignores_forever(sm: &ShardKv, msg: &Msg) -> bool {
        match msg {
            Msg::QueryReply { config } => config.num <= sm.num(),
            // Within one configuration a source only ever loses shards, so once it is in `num`
            // and does not offer the shard, it never will.
            Msg::Pull { shard, num } => {
                *num < sm.num()
                    || (*num == sm.num() && !is_state(sm, *shard, |s| *s == ShardState::Offering))
            }
            Msg::PullReply { shard, num, .. } => {
                *num < sm.num()
                    || (*num == sm.num()
                        && !is_state(sm, *shard, |s| matches!(s, ShardState::Pulling(_))))
            }
            Msg::DeleteReply { shard, num } => {
                *num < sm.num()
                    || (*num == sm.num()
                        && !is_state(sm, *shard, |s| matches!(s, ShardState::Garbage(_))))
            }
            Msg::Response { .. } | Msg::Query { .. } => true,
            Msg::Request { .. } | Msg::Delete { .. } => false,
        }
    }

    fn poll(&mut self, sm: &ShardKv) {
        if !sm.can_reconfigure() {
            return;
        }
        // One configuration at a time, in order; the buggy group asks for the latest.
        let num = if sm.bugs().has(Bug::ConfigsOutOfOrder) {
            None
        } else {
            Some(sm.num().next())
        };
        for c in self.ctrl.clone() {
            self.send(c, Msg::Query { num });
        }
    }

    fn migrate(&mut self, sm: &ShardKv) {
        let num = sm.num();
        for (shard, s) in sm.shards() {
            let (source, msg) = match &s.state {
                ShardState::Pulling(src) => (src, Msg::Pull { shard: *shard, num }),
                ShardState::Garbage(src) => (src, Msg::Delete { shard: *shard, num }),
                ShardState::Serving | ShardState::Offering => continue,
            };
            for server in &source.servers {
                self.send(*server, msg.clone());
            }
        }
    }

    fn propose(&mut self, command: Command, reply_to: Option<NodeId>) {
        self.ready.propose.push(Proposal { command, reply_to });
    }

    fn send(&mut self, to: NodeId, msg: Msg) {
        self.ready.messages.push((to, msg));
    }
}

fn is_state(
    sm: &ShardKv,
    shard: crate::shardctrler::ShardId,
    f: impl Fn(&ShardState) -> bool,
) -> bool {
    sm.shard(shard).is_some_and(|s| f(&s.state))
}
