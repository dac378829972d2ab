//! The clerk: the client side of the KV service, as a pure core. One operation at a time;
//! each gets the next sequence number and is retried — on the same number — until a server
//! answers it, so the servers' dedup table can execute it exactly once.
//!
//! Inputs: [`Clerk::invoke`] (the application calls an operation), [`Clerk::on_message`] (a
//! server's reply), [`Clerk::on_timeout`] (`Retry`). Outputs: requests as messages, the
//! operation's answer as `apply` ([`ClerkOutput`]), the `Retry` timer (the driver picks its
//! duration; the lab's clerks wait 100 ms).
//!
//! Leader caching: the clerk sends to the server that answered last. A `WrongLeader` reply
//! moves it to the hinted leader or the next server at once, until it has tried as many
//! servers as there are since the last timer; then it waits for `Retry`, which also moves it
//! on (a server that does not answer may be cut off or down).

use super::bugs::{KvBug, KvBugs};
use super::store::Store;
use super::types::{ClientId, ClientMsg, KvError, Reply, Request, Seq};
use crate::contract::{self, NodeId, Ready, TimerCmd};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;

/// The clerk's timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClerkTimer {
    /// No answer for a while: resend to the next server.
    Retry,
}

/// An operation's answer, for the application.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClerkOutput<R> {
    /// The operation's sequence number.
    pub seq: Seq,
    /// The store's reply.
    pub reply: R,
}

/// Static configuration of a clerk.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClerkConfig {
    /// Its session id (unique among clerks).
    pub client: ClientId,
    /// The servers, in the order tried.
    pub servers: Vec<NodeId>,
    /// Seeded bugs (only `clerk-reuses-seq` concerns the clerk).
    pub bugs: KvBugs,
}

/// The operation in progress.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Outstanding<O> {
    op: O,
    /// Servers tried since the last `Retry` (bounds the immediate retries).
    tried: usize,
}

/// `invoke` while an operation is outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// The `Ready` of a clerk (it persists nothing).
pub type ClerkReady<St> = Ready<
    Infallible,
    ClientMsg<<St as Store>::Op, <St as Store>::Reply>,
    ClerkOutput<<St as Store>::Reply>,
    ClerkTimer,
>;

/// A clerk.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Clerk<St: Store> {
    config: Arc<ClerkConfig>,
    /// Position in `servers` of the server believed to lead.
    leader: usize,
    /// Sequence number of the current (or last) operation; 0 before the first.
    seq: Seq,
    current: Option<Outstanding<St::Op>>,
    ready: ClerkReady<St>,
}

impl<St: Store> Clerk<St> {
    /// A clerk with no operation yet.
    pub fn new(config: ClerkConfig) -> Self {
        assert!(!config.servers.is_empty(), "a clerk needs servers");
        Clerk {
            config: Arc::new(config),
            leader: 0,
            seq: Seq(0),
            current: None,
            ready: Ready::default(),
        }
    }

    /// The application calls `op`; its answer arrives as a [`ClerkOutput`]. Returns the
    /// operation's sequence number.
    pub fn invoke(&mut self, op: St::Op) -> Result<Seq, Busy> {
        if self.current.is_some() {
            return Err(Busy);
        }
        let reuse = self.config.bugs.has(KvBug::ClerkReusesSeq) && self.seq.0 > 0;
        if !reuse {
            self.seq = Seq(self.seq.0 + 1);
        }
        self.current = Some(Outstanding { op, tried: 0 });
        self.send();
        self.ready.timers.push(TimerCmd::Set(ClerkTimer::Retry));
        Ok(self.seq)
    }

    /// A message arrived (only replies concern a clerk).
    pub fn on_message(&mut self, from: NodeId, msg: ClientMsg<St::Op, St::Reply>) {
        if let ClientMsg::Reply(r) = msg {
            self.on_reply(from, r);
        }
    }

    /// The retry timer fired: try the next server.
    pub fn on_timeout(&mut self, _: ClerkTimer) {
        let Some(current) = &mut self.current else {
            return;
        };
        current.tried = 0;
        self.leader = (self.leader + 1) % self.config.servers.len();
        self.send();
        self.ready.timers.push(TimerCmd::Set(ClerkTimer::Retry));
    }

    /// Drains the outputs accumulated since the last call.
    pub fn take_ready(&mut self) -> ClerkReady<St> {
        std::mem::take(&mut self.ready)
    }

    /// The configuration.
    pub fn config(&self) -> &ClerkConfig {
        &self.config
    }

    /// The operation in progress and its sequence number.
    pub fn outstanding(&self) -> Option<(Seq, &St::Op)> {
        self.current.as_ref().map(|c| (self.seq, &c.op))
    }

    /// The server the clerk believes leads.
    pub fn leader(&self) -> NodeId {
        self.config.servers[self.leader]
    }

    fn on_reply(&mut self, from: NodeId, r: Reply<St::Reply>) {
        if self.current.is_none() || r.client != self.config.client || r.seq != self.seq {
            return; // not for the operation in progress
        }
        let position = |id: NodeId| self.config.servers.iter().position(|&s| s == id);
        match r.result {
            Ok(reply) => {
                if let Some(p) = position(from) {
                    self.leader = p;
                }
                self.current = None;
                self.ready.apply.push(ClerkOutput {
                    seq: self.seq,
                    reply,
                });
                self.ready.timers.push(TimerCmd::Cancel(ClerkTimer::Retry));
            }
            Err(KvError::WrongLeader { leader_hint }) => {
                let n = self.config.servers.len();
                let hinted = leader_hint.filter(|&h| h != from).and_then(position);
                let from_leader = position(from) == Some(self.leader);
                let current = self.current.as_mut().expect("checked above");
                if !from_leader {
                    return; // a late answer from a server we already left
                }
                if current.tried + 1 >= n {
                    // Every server said no since the last timer: wait for it, do not spin.
                    current.tried = n;
                    return;
                }
                current.tried += 1;
                self.leader = hinted.unwrap_or((self.leader + 1) % n);
                self.send();
            }
        }
    }

    fn send(&mut self) {
        let current = self.current.as_ref().expect("an operation is outstanding");
        let request = Request {
            client: self.config.client,
            seq: self.seq,
            op: current.op.clone(),
        };
        let to = self.config.servers[self.leader];
        self.ready.messages.push((to, ClientMsg::Request(request)));
    }
}

impl<St: Store> contract::Core for Clerk<St> {
    type Persist = Infallible;
    type Msg = ClientMsg<St::Op, St::Reply>;
    type Apply = ClerkOutput<St::Reply>;
    type Timer = ClerkTimer;

    fn on_message(&mut self, from: NodeId, msg: Self::Msg) {
        Clerk::on_message(self, from, msg)
    }
    fn on_timeout(&mut self, timer: ClerkTimer) {
        Clerk::on_timeout(self, timer)
    }
    fn take_ready(&mut self) -> ClerkReady<St> {
        Clerk::take_ready(self)
    }
}
