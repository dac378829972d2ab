//! The controller's client (the lab's `shardctrler` clerk), as a pure core: it runs one
//! operation at a time (`Join`, `Leave`, `Move` or `Query`) on the Raft-replicated controller
//! ([`crate::shardkv::replica::CtrlReplica`]), trying its servers in turn until one answers.
//!
//! Each operation gets the next sequence number of the clerk's session; a retry keeps it, so
//! the controller's session table applies a `Join`, `Leave` or `Move` at most once however
//! many servers it reaches. A server that cannot order the request answers with the leader
//! it knows of: the clerk tries that one at once (once per retry period, so that two servers
//! pointing at each other during an election cannot make it spin), and otherwise the next
//! server when its [`CtrlClerkTimer::Retry`] fires (the lab's clerk tries every server, then
//! sleeps 100 ms).

use super::{CtrlOp, CtrlReply};
use crate::contract::{NodeId, Ready, TimerCmd};
use crate::kvraft::{ClientId, Seq};
use crate::shardkv::replica::NetMsg;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;

/// The clerk's one timer: no answer for a while; try the next server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CtrlClerkTimer {
    /// Resend the operation to the next server.
    Retry,
}

/// An operation the clerk finished: its sequence number and the controller's reply.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CtrlDone {
    /// The operation's sequence number.
    pub seq: Seq,
    /// The controller's reply (never [`CtrlReply::Stale`]).
    pub reply: CtrlReply,
}

/// The clerk's `Ready`: messages to servers, finished operations, the retry timer.
pub type CtrlClerkReady = Ready<Infallible, NetMsg, CtrlDone, CtrlClerkTimer>;

/// Why an operation was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Busy {
    /// The previous operation has not finished.
    InFlight,
}

/// A controller clerk.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CtrlClerk {
    client: ClientId,
    servers: Vec<NodeId>,
    /// The last sequence number used.
    seq: Seq,
    /// The operation in flight.
    pending: Option<CtrlOp>,
    /// The server tried last (an index into `servers`).
    target: usize,
    /// A leader hint was followed since the retry timer was last set.
    hinted: bool,
    ready: CtrlClerkReady,
}

impl CtrlClerk {
    /// A clerk with session `client` that knows the controller's `servers` (not empty).
    pub fn new(client: ClientId, servers: Vec<NodeId>) -> CtrlClerk {
        assert!(!servers.is_empty(), "a controller clerk needs a server");
        CtrlClerk {
            client,
            servers,
            seq: Seq(0),
            pending: None,
            target: 0,
            hinted: false,
            ready: Ready::default(),
        }
    }

    /// Its session.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// True while an operation waits for its answer.
    pub fn is_busy(&self) -> bool {
        self.pending.is_some()
    }

    /// Starts `op`; its answer comes as a [`CtrlDone`] in [`CtrlClerk::take_ready`].
    pub fn invoke(&mut self, op: CtrlOp) -> Result<Seq, Busy> {
        if self.pending.is_some() {
            return Err(Busy::InFlight);
        }
        self.seq = Seq(self.seq.0 + 1);
        self.pending = Some(op);
        self.send();
        Ok(self.seq)
    }

    /// A server's message arrived.
    pub fn on_message(&mut self, from: NodeId, msg: NetMsg) {
        let NetMsg::AdminReply {
            client,
            seq,
            result,
        } = msg
        else {
            return;
        };
        if client != self.client || seq != self.seq || self.pending.is_none() {
            return; // an answer to an earlier try of a finished operation
        }
        match result {
            Ok(CtrlReply::Stale) => {} // not for the operation in flight
            Ok(reply) => {
                self.pending = None;
                self.ready
                    .timers
                    .push(TimerCmd::Cancel(CtrlClerkTimer::Retry));
                self.ready.apply.push(CtrlDone { seq, reply });
            }
            Err(hint) => {
                let known = hint.and_then(|h| self.servers.iter().position(|s| *s == h));
                match known {
                    Some(k) if !self.hinted && self.servers[k] != from => {
                        self.hinted = true;
                        self.target = k;
                        self.send_to_target();
                    }
                    // Wait for the retry timer, then try the next server.
                    _ => {}
                }
            }
        }
    }

    /// The retry timer fired: try the next server.
    pub fn on_timeout(&mut self, _timer: CtrlClerkTimer) {
        if self.pending.is_some() {
            self.target = (self.target + 1) % self.servers.len();
            self.send();
        }
    }

    /// Drains what the clerk asks of its driver.
    pub fn take_ready(&mut self) -> CtrlClerkReady {
        std::mem::take(&mut self.ready)
    }

    /// Sends the operation to the current target and (re)arms the retry timer.
    fn send(&mut self) {
        self.hinted = false;
        self.ready.timers.push(TimerCmd::Set(CtrlClerkTimer::Retry));
        self.send_to_target();
    }

    fn send_to_target(&mut self) {
        let op = self.pending.clone().expect("an operation is in flight");
        let msg = NetMsg::Admin {
            client: self.client,
            seq: self.seq,
            op,
        };
        self.ready.messages.push((self.servers[self.target], msg));
    }
}
