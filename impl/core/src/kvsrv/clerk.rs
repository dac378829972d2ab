//! The kvsrv clerk: one operation at a time, retransmitted on a timer until a reply for it
//! arrives, with the `ErrMaybe` rule for retransmitted puts.
//!
//! # Retries and `ErrMaybe`
//!
//! A request or its reply may be lost, so the clerk resends the same request (same [`Seq`])
//! every time its `Retry` timer fires, until a reply carrying that `Seq` arrives. Gets are
//! harmless to repeat. A put is not, and the server keeps no table of what it already did, so
//! a `ErrVersion` answer is ambiguous once the put was sent more than once: the first copy may
//! have been applied (its reply lost) and the version moved on because of it — or another
//! client's put won. The clerk cannot tell, and reports [`PutOutcome::Maybe`] (`ErrMaybe`):
//! applied or not. A first-copy `ErrVersion` is definite, and so are `OK` and `ErrNoKey` (a
//! key never disappears, so a put that found it absent applied nowhere before). This is
//! [`put_outcome`], shared with every clerk that speaks versioned puts.
//!
//! **What the rule assumes of the network**: the clerk retransmits only once the previous
//! copy is *resolved* — lost, or executed with its reply lost — and a send reaches the server
//! at most once. 6.5840's labrpc gives exactly this (a failed `Call` was dropped or executed),
//! and so does the simulator (the longest round trip is shorter than the retry interval). If a
//! copy could still be in flight when the clerk returns, it could apply *after* the operation
//! returned, and no outcome the clerk reports would be linearizable; the model shows such a
//! history when the assumption is dropped (specs/kvsrv.md).
//!
//! # History
//!
//! The clerk reports every operation as a [`ClerkEvent::Call`] when it first sends it and a
//! [`ClerkEvent::Return`] when it accepts the reply: the call/return record every driver turns
//! into the checker's history. A reply counts only while its operation is pending; replies to
//! finished operations (late copies, answers to retransmissions) are ignored.

use super::bugs::{Bug, Bugs};
use super::message::{Message, Seq};
use super::store::{GetResult, Op, PutResult, Version};
use super::{ClerkReady, Never};
use crate::contract::{Core, NodeId, TimerCmd};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The clerk's one timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClerkTimer {
    /// No reply yet: send the pending request again (the lab's hint: 100 ms).
    Retry,
}

/// What a put means to the client, after the `ErrMaybe` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PutOutcome {
    /// `OK`: the put was applied.
    Ok,
    /// `ErrNoKey`: the key was absent; the put was not applied.
    NoKey,
    /// `ErrVersion`: the version did not match; the put was not applied.
    Version,
    /// `ErrMaybe`: a retransmitted put got `ErrVersion`; it may or may not have been applied.
    Maybe,
}

impl fmt::Display for PutOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PutOutcome::Ok => "OK",
            PutOutcome::NoKey => "ErrNoKey",
            PutOutcome::Version => "ErrVersion",
            PutOutcome::Maybe => "ErrMaybe",
        })
    }
}

/// The `ErrMaybe` rule: what a put's reply means, given whether the put was sent more than
/// once. (Seeded bugs change the ambiguous case.)
pub fn put_outcome(result: PutResult, retried: bool, bugs: Bugs) -> PutOutcome {
    match result {
        PutResult::Ok => PutOutcome::Ok,
        PutResult::NoKey => PutOutcome::NoKey,
        PutResult::Version if !retried => PutOutcome::Version,
        PutResult::Version if bugs.has(Bug::ErrMaybeAsOk) => PutOutcome::Ok,
        PutResult::Version if bugs.has(Bug::NoErrMaybe) => PutOutcome::Version,
        PutResult::Version => PutOutcome::Maybe,
    }
}

/// What an operation returned to the client.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Output {
    /// A get's value and version, or `ErrNoKey`.
    Get(GetResult),
    /// A put's outcome.
    Put(PutOutcome),
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Get(r) => r.fmt(f),
            Output::Put(p) => p.fmt(f),
        }
    }
}

/// The clerk's record of its operations, in order (its `Apply` stream).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClerkEvent {
    /// The operation was invoked: its first request is being sent.
    Call {
        /// The operation's number.
        seq: Seq,
        /// The operation.
        op: Op,
    },
    /// The operation returned this output to the client.
    Return {
        /// The operation's number.
        seq: Seq,
        /// The operation.
        op: Op,
        /// What the client sees.
        output: Output,
    },
}

/// The operation in progress.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pending {
    /// Its number.
    pub seq: Seq,
    /// The operation.
    pub op: Op,
    /// The request was sent more than once (the `ErrMaybe` rule needs to know).
    pub retried: bool,
}

/// `start` was called while an operation is pending (a clerk does one at a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Busy;

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the clerk already has an operation pending")
    }
}

impl std::error::Error for Busy {}

/// The clerk core.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Clerk {
    server: NodeId,
    bugs: Bugs,
    /// The number the next operation gets; every earlier number is taken.
    next_seq: Seq,
    pending: Option<Pending>,
    ready: ClerkReady,
}

impl Clerk {
    /// A clerk talking to `server`.
    pub fn new(server: NodeId, bugs: Bugs) -> Clerk {
        Clerk {
            server,
            bugs,
            next_seq: Seq(1),
            pending: None,
            ready: ClerkReady::default(),
        }
    }

    /// The operation in progress, if any.
    pub fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }

    /// True when no operation is in progress.
    pub fn is_idle(&self) -> bool {
        self.pending.is_none()
    }

    /// The seeded bugs this clerk runs with.
    pub fn bugs(&self) -> Bugs {
        self.bugs
    }

    /// Starts an operation: records its call, sends its request, arms the retry timer.
    pub fn start(&mut self, op: Op) -> Result<Seq, Busy> {
        if self.pending.is_some() {
            return Err(Busy);
        }
        let seq = self.next_seq;
        self.next_seq = Seq(seq.0 + 1);
        self.ready.apply.push(ClerkEvent::Call {
            seq,
            op: op.clone(),
        });
        self.pending = Some(Pending {
            seq,
            op,
            retried: false,
        });
        self.send_pending();
        Ok(seq)
    }

    /// `Get(key)`; see [`Clerk::start`].
    pub fn get(&mut self, key: &str) -> Result<Seq, Busy> {
        self.start(Op::Get { key: key.into() })
    }

    /// `Put(key, value, version)`; see [`Clerk::start`].
    pub fn put(&mut self, key: &str, value: &str, version: Version) -> Result<Seq, Busy> {
        self.start(Op::Put {
            key: key.into(),
            value: value.into(),
            version,
        })
    }

    /// True if delivering `msg` to this clerk does nothing now and in every later state: a
    /// reply to an operation that is no longer pending (numbers are never reused, and the
    /// pending one is the newest). Drivers that keep messages around (the model's network)
    /// may discard such messages.
    pub fn ignores_forever(&self, msg: &Message) -> bool {
        msg.is_request() || self.pending.as_ref().is_none_or(|p| p.seq != msg.seq())
    }

    /// The number `seq` gets under [`Clerk::canonicalize`]: the pending operation's becomes
    /// 1, every other (an earlier operation's) 0.
    pub fn canonical_seq(&self, seq: Seq) -> Seq {
        match &self.pending {
            Some(p) if p.seq == seq => Seq(1),
            _ => Seq(0),
        }
    }

    /// Renumbers the clerk's operations to the smallest numbers that keep its behaviour: the
    /// pending operation becomes 1 and the next one 2 (idle: the next one 1). The clerk only
    /// ever compares a reply's number with its pending one and never reuses a number, so a
    /// clerk and its messages renumbered together by [`Clerk::canonical_seq`] behave exactly
    /// as before. Drivers that store states (the model checker) use this to keep a clerk that
    /// starts operation after operation from making every state new.
    pub fn canonicalize(&mut self) {
        match &mut self.pending {
            Some(p) => {
                p.seq = Seq(1);
                self.next_seq = Seq(2);
            }
            None => self.next_seq = Seq(1),
        }
    }

    fn send_pending(&mut self) {
        let p = self.pending.as_ref().expect("an operation is pending");
        let msg = match &p.op {
            Op::Get { key } => Message::Get {
                seq: p.seq,
                key: key.clone(),
            },
            Op::Put {
                key,
                value,
                version,
            } => Message::Put {
                seq: p.seq,
                key: key.clone(),
                value: value.clone(),
                version: *version,
            },
        };
        self.ready.messages.push((self.server, msg));
        self.ready.timers.push(TimerCmd::Set(ClerkTimer::Retry));
    }

    /// The output a reply gives the pending operation; `None` if it does not answer it.
    fn output_for(&self, pending: &Pending, msg: &Message) -> Option<Output> {
        match (&pending.op, msg) {
            (Op::Get { .. }, Message::GetReply { result, .. }) => Some(Output::Get(result.clone())),
            (Op::Put { .. }, Message::PutReply { result, .. }) => Some(Output::Put(put_outcome(
                *result,
                pending.retried,
                self.bugs,
            ))),
            _ => None,
        }
    }
}

impl Core for Clerk {
    type Persist = Never;
    type Msg = Message;
    type Apply = ClerkEvent;
    type Timer = ClerkTimer;

    /// A reply for the pending operation completes it; anything else is ignored.
    fn on_message(&mut self, from: NodeId, msg: Message) {
        if from != self.server || self.ignores_forever(&msg) {
            return;
        }
        let pending = self.pending.as_ref().expect("not ignored: pending");
        let Some(output) = self.output_for(pending, &msg) else {
            return;
        };
        let Pending { seq, op, .. } = self.pending.take().expect("pending");
        self.ready.timers.push(TimerCmd::Cancel(ClerkTimer::Retry));
        self.ready
            .apply
            .push(ClerkEvent::Return { seq, op, output });
    }

    /// Retransmits the pending request, if any.
    fn on_timeout(&mut self, timer: ClerkTimer) {
        match timer {
            ClerkTimer::Retry => {
                if let Some(p) = self.pending.as_mut() {
                    p.retried = true;
                    self.send_pending();
                }
            }
        }
    }

    fn take_ready(&mut self) -> ClerkReady {
        std::mem::take(&mut self.ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: NodeId = NodeId(0);

    fn put_reply(seq: u64, result: PutResult) -> Message {
        Message::PutReply {
            seq: Seq(seq),
            result,
        }
    }

    fn returned(ck: &mut Clerk) -> Vec<Output> {
        ck.take_ready()
            .apply
            .into_iter()
            .filter_map(|e| match e {
                ClerkEvent::Return { output, .. } => Some(output),
                ClerkEvent::Call { .. } => None,
            })
            .collect()
    }

    /// A first-copy `ErrVersion` is definite; after a retransmission it becomes `ErrMaybe`.
    #[test]
    fn errversion_after_a_retry_is_errmaybe() {
        let mut ck = Clerk::new(SERVER, Bugs::NONE);
        ck.put("k", "a", Version(0)).unwrap();
        ck.on_message(SERVER, put_reply(1, PutResult::Version));
        assert_eq!(returned(&mut ck), vec![Output::Put(PutOutcome::Version)]);

        ck.put("k", "b", Version(0)).unwrap();
        ck.on_timeout(ClerkTimer::Retry);
        let sent = ck.take_ready().messages;
        assert_eq!(sent.len(), 2, "the first send and one retransmission");
        assert_eq!(sent[0], sent[1], "a retransmission is the same request");
        ck.on_message(SERVER, put_reply(2, PutResult::Version));
        assert_eq!(returned(&mut ck), vec![Output::Put(PutOutcome::Maybe)]);
    }

    /// Replies to finished operations, and replies of the wrong kind, are ignored.
    #[test]
    fn stale_replies_are_ignored() {
        let mut ck = Clerk::new(SERVER, Bugs::NONE);
        ck.put("k", "a", Version(0)).unwrap();
        ck.on_message(SERVER, put_reply(1, PutResult::Ok));
        ck.get("k").unwrap();
        ck.take_ready();
        ck.on_message(SERVER, put_reply(1, PutResult::Version));
        ck.on_message(SERVER, put_reply(2, PutResult::Ok));
        assert!(ck.take_ready().is_empty());
        assert!(ck.pending().is_some());
        assert_eq!(ck.start(Op::Get { key: "x".into() }), Err(Busy));
    }
}
