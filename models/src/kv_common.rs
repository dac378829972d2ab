//! What the two KV models share: the sequential specification their histories are checked
//! against, the clerks (the real clerk core plus a script of operations), the network, and
//! the history type.
//!
//! ## The history type (why not Stateright's register helpers)
//!
//! An operation is *invoked* when the model hands it to the clerk core
//! ([`aver_core::kvraft::Clerk::invoke`], which sends the first request) and *returns* when the
//! clerk core outputs its answer. Retries, duplicated requests and stale replies never touch
//! the history: the clerk decides which reply answers the operation in progress (the one
//! carrying its current sequence number), exactly as it does for a real application. Keying
//! the history by the application's operations — not by request ids — is what lets a clerk
//! that reuses a sequence number be caught: the dedup table answers its new operation with
//! the old one's reply, and the history shows it.

use aver_core::NodeId;
use aver_core::kvraft::KvEvent;
use aver_core::kvraft::invariants::{Ledger, at_most_once};
use aver_core::kvraft::{Clerk, ClerkConfig, ClerkOutput, ClerkTimer, ClientId, KvBugs};
use aver_core::kvraft::{VersionedOp, VersionedReply, VersionedStore};
use aver_core::{Ready, TimerCmd, Violation};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use stateright::{Expectation, Model, Property};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

/// Clerk `c` has node id `CLERK_BASE + c`; servers are `0..servers`.
pub const CLERK_BASE: u32 = 100;

/// The sequential specification of the versioned store, written independently of the store
/// under test: a map from key to (value, version ≥ 1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VersionedSpec {
    data: BTreeMap<Arc<str>, (Arc<str>, u64)>,
}

impl SequentialSpec for VersionedSpec {
    type Op = VersionedOp;
    type Ret = VersionedReply;

    fn invoke(&mut self, op: &VersionedOp) -> VersionedReply {
        match op {
            VersionedOp::Get { key } => match self.data.get(key) {
                Some((value, version)) => VersionedReply::Value {
                    value: value.clone(),
                    version: *version,
                },
                None => VersionedReply::NoKey,
            },
            VersionedOp::Put {
                key,
                value,
                version,
            } => {
                let current = self.data.get(key).map_or(0, |(_, v)| *v);
                if current != *version {
                    return if current == 0 {
                        VersionedReply::NoKey
                    } else {
                        VersionedReply::ErrVersion
                    };
                }
                self.data.insert(key.clone(), (value.clone(), current + 1));
                VersionedReply::Ok
            }
        }
    }
}

/// The history: Stateright's linearizability tester over [`VersionedSpec`], one thread per
/// clerk.
pub type History = LinearizabilityTester<usize, VersionedSpec>;

/// A fresh history.
pub fn new_history() -> History {
    LinearizabilityTester::new(VersionedSpec::default())
}

/// KV-1 on a model history.
pub fn linearizable(history: &History) -> bool {
    history.serialized_history().is_some()
}

/// Facts the properties need that no core keeps (ghost variables).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// KV-2 was violated (the ledger saw a write execute at two indices).
    pub twice: Option<Violation>,
    /// A retried write was answered from the dedup table.
    pub dedup_answered: bool,
    /// A new term began while an operation was outstanding.
    pub leader_change_mid_op: bool,
    /// A server restarted from a snapshot whose dedup table was not empty.
    pub restored_sessions: bool,
}

impl Ghost {
    /// Folds a server's event into the ghost facts and the KV-2 ledger.
    pub fn on_event(&mut self, ledger: &mut Ledger, event: KvEvent) {
        match event {
            KvEvent::Executed { index, client, seq } => {
                if let Err(v) = at_most_once(ledger, index, client, seq) {
                    self.twice.get_or_insert(v);
                }
            }
            KvEvent::Duplicate { .. } => self.dedup_answered = true,
            KvEvent::Restored { .. } => {}
        }
    }
}

/// A message in flight.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Envelope<M> {
    /// Sender.
    pub src: NodeId,
    /// Receiver.
    pub dst: NodeId,
    /// The message.
    pub msg: M,
}

/// A clerk in a model: the clerk core, how far through its script it is, and whether its
/// retry timer is set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClerkSlot {
    /// The core.
    pub clerk: Clerk<VersionedStore>,
    /// Index of the next operation of the script to invoke.
    pub next: usize,
    /// The `Retry` timer is set.
    pub retry: bool,
}

impl ClerkSlot {
    /// Clerk `c` of a cluster of `servers` servers.
    pub fn new(c: usize, servers: usize, bugs: KvBugs) -> ClerkSlot {
        ClerkSlot {
            clerk: Clerk::new(ClerkConfig {
                client: ClientId(c as u64 + 1),
                servers: (0..servers as u32).map(NodeId).collect(),
                bugs,
            }),
            next: 0,
            retry: false,
        }
    }

    /// True if this clerk will never take another message: its script is done and nothing
    /// is outstanding.
    pub fn finished(&self, script: &[VersionedOp]) -> bool {
        self.next >= script.len() && self.clerk.outstanding().is_none()
    }
}

/// What one clerk step produced, for the model to carry out.
pub struct ClerkStep {
    /// Requests to send.
    pub sent: Vec<(
        NodeId,
        aver_core::kvraft::ClientMsg<VersionedOp, VersionedReply>,
    )>,
    /// The answer, if the operation completed.
    pub answer: Option<VersionedReply>,
}

/// Carries out a clerk's `Ready`: timers into the slot, answers into the history.
pub fn drain_clerk(
    slot: &mut ClerkSlot,
    c: usize,
    history: &mut History,
    ready: Ready<
        Infallible,
        aver_core::kvraft::ClientMsg<VersionedOp, VersionedReply>,
        ClerkOutput<VersionedReply>,
        ClerkTimer,
    >,
) -> ClerkStep {
    for t in ready.timers {
        slot.retry = matches!(t, TimerCmd::Set(_));
    }
    let mut answer = None;
    for out in ready.apply {
        // The tester refuses a return without an invocation; that cannot happen here (the
        // clerk answers only its outstanding operation), and would show as not linearizable.
        let _ = history.on_return(c, out.reply.clone());
        answer = Some(out.reply);
    }
    ClerkStep {
        sent: ready.messages,
        answer,
    }
}

/// Invokes clerk `c`'s next scripted operation (the caller checked it is idle).
pub fn invoke(slot: &mut ClerkSlot, c: usize, op: VersionedOp, history: &mut History) -> ClerkStep {
    let _ = history.on_invoke(c, op.clone());
    slot.clerk
        .invoke(op)
        .expect("the model invokes only idle clerks");
    slot.next += 1;
    let ready = slot.clerk.take_ready();
    drain_clerk(slot, c, history, ready)
}

/// The scripts the CI configurations use: clerk 0 creates `k` then overwrites it; clerk 1
/// reads it. A second write is what a clerk reusing its sequence number gets wrong; the read
/// is what shows a lost or repeated write.
pub fn default_scripts() -> Vec<Vec<VersionedOp>> {
    vec![
        vec![put("k", "a", 0), put("k", "b", 1)],
        vec![VersionedOp::Get { key: "k".into() }],
    ]
}

/// `Put(key, value, version)`.
pub fn put(key: &str, value: &str, version: u64) -> VersionedOp {
    VersionedOp::Put {
        key: key.into(),
        value: value.into(),
        version,
    }
}

/// A short text for an operation.
pub fn describe_op(op: &VersionedOp) -> String {
    match op {
        VersionedOp::Get { key } => format!("Get({key})"),
        VersionedOp::Put {
            key,
            value,
            version,
        } => format!("Put({key},{value},v{version})"),
    }
}

/// A short text for a reply.
pub fn describe_reply(r: &VersionedReply) -> String {
    match r {
        VersionedReply::Value { value, version } => format!("({value},v{version})"),
        VersionedReply::NoKey => "ErrNoKey".into(),
        VersionedReply::Ok => "OK".into(),
        VersionedReply::ErrVersion => "ErrVersion".into(),
    }
}

/// A short text for a client message.
pub fn describe_client_msg(
    m: &aver_core::kvraft::ClientMsg<VersionedOp, VersionedReply>,
) -> String {
    use aver_core::kvraft::{ClientMsg, KvError};
    match m {
        ClientMsg::Request(r) => format!("Request({} {} {})", r.client, r.seq, describe_op(&r.op)),
        ClientMsg::Reply(r) => match &r.result {
            Ok(reply) => format!("Reply({} {} {})", r.client, r.seq, describe_reply(reply)),
            Err(KvError::WrongLeader { leader_hint }) => format!(
                "Reply({} {} WrongLeader hint={})",
                r.client,
                r.seq,
                leader_hint.map_or("-".into(), |h| h.to_string())
            ),
        },
    }
}

/// A named property of a KV model, with whether it states a user's loss (kept when only
/// consequences are checked, as for seeded bugs).
pub struct KvProperty<M: Model> {
    /// Always or sometimes.
    pub expectation: Expectation,
    /// The name (KV-n for invariants of the catalogue).
    pub name: &'static str,
    /// Kept when only consequences are checked (seeded bugs).
    pub consequence: bool,
    /// The condition.
    pub condition: fn(&M, &M::State) -> bool,
}

/// The Stateright properties of `props`, only the consequences when `consequences_only`.
pub fn to_properties<M: Model>(
    props: &[KvProperty<M>],
    consequences_only: bool,
) -> Vec<Property<M>> {
    props
        .iter()
        .filter(|p| !consequences_only || p.consequence)
        .map(|p| match p.expectation {
            Expectation::Always => Property::always(p.name, p.condition),
            Expectation::Sometimes => Property::sometimes(p.name, p.condition),
            Expectation::Eventually => Property::eventually(p.name, p.condition),
        })
        .collect()
}
