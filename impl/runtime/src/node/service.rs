//! What a node needs to know of the service core it runs: how to build it around Raft's
//! durable state, how to reach the Raft core inside it, and where each of its messages goes.
//! The event loop, storage, links and sessions are the same for every service; the kvraft
//! server ([`crate::kv::KvService`]) and the sharded deployment's servers
//! ([`crate::shard`]) implement this trait. None of it makes a protocol decision.

use super::{NodeError, NodeOptions};
use crate::trace::{Digest, TraceRecord};
use crate::wire::{Reply, Request};
use aver_core::contract::{Core, NodeId, Violation};
use aver_core::raft::{self, Durable, LogIndex, Message, PersistOp, Raft, Term};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;

/// What a client frame asks of the node.
pub enum ClientInput<M> {
    /// Report the node's status.
    Status {
        /// Echoed in the reply.
        id: u64,
    },
    /// A message for the core.
    Msg(M),
    /// Nothing this service takes (another service's request).
    Ignore,
}

/// Where a message the core emits goes.
pub enum Route<E, Q, R> {
    /// To a member of the node's Raft group, over its peer link.
    Peer(Message<E>),
    /// To the client session it is addressed to; `acked` if it acknowledges an operation.
    Client {
        /// The frame.
        reply: Reply<R>,
        /// Whether it reports an operation's result (counted in the status).
        acked: bool,
    },
    /// To a node outside the group (another group, the controller), over a connection this
    /// node opens as a client.
    Remote(Request<Q>),
    /// Nowhere (a message this runtime never sends).
    Drop,
}

/// A service core the node runs on Raft.
pub trait Service: Send + Sync + 'static {
    /// The Raft log's entries.
    type Entry: raft::Command + Serialize + DeserializeOwned + Send + Sync;
    /// The core's messages.
    type Msg: Clone + Debug + Serialize + Send + 'static;
    /// The core's outputs to the service (applies).
    type Event: Send;
    /// The core's timers.
    type Timer: Copy + Debug + Eq + Serialize + Send + 'static;
    /// The core.
    type Core: Core<
            Persist = PersistOp<Self::Entry>,
            Msg = Self::Msg,
            Apply = Self::Event,
            Timer = Self::Timer,
        > + Send
        + 'static;
    /// What clients send in [`Request`] frames.
    type ClientOp: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What the node sends clients in [`Reply`] frames.
    type ClientReply: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Every timer, in the order they fire when due together.
    const TIMERS: &'static [Self::Timer];

    /// Builds the core around Raft (configured by `raft`, recovered from `durable`).
    fn build(
        &self,
        opts: &NodeOptions,
        raft: raft::Config,
        durable: Durable<Self::Entry>,
    ) -> Result<Self::Core, NodeError>;
    /// The Raft core inside.
    fn raft(core: &Self::Core) -> &Raft<Self::Entry>;
    /// The service's applied index.
    fn applied(core: &Self::Core) -> LogIndex;
    /// The first violation the core's step checks recorded.
    fn violation(core: &Self::Core) -> Option<Violation>;
    /// Raft's log is durable through `index` of `term` (`Raft::on_persisted`).
    fn on_persisted(core: &mut Self::Core, index: LogIndex, term: Term);
    /// Wraps a Raft message from a peer.
    fn peer(msg: Message<Self::Entry>) -> Self::Msg;
    /// `msg` as the Raft message it wraps, or `msg` back if it wraps none (the node merges a
    /// batch's Raft messages to one peer: [`Message::coalesce`]).
    fn into_peer(msg: Self::Msg) -> Result<Message<Self::Entry>, Self::Msg>;
    /// The Raft message `msg` wraps, if any, to merge a later one into.
    fn as_peer_mut(msg: &mut Self::Msg) -> Option<&mut Message<Self::Entry>>;
    /// What a client frame asks.
    fn request(request: Request<Self::ClientOp>) -> ClientInput<Self::Msg>;
    /// A frame a remote node answered on a connection this node opened, as a message.
    fn remote_reply(reply: Reply<Self::ClientReply>) -> Option<Self::Msg>;
    /// Where `msg`, addressed to `to`, goes.
    fn route(to: NodeId, msg: Self::Msg) -> Route<Self::Entry, Self::ClientOp, Self::ClientReply>;
    /// How long `timer` runs (Raft's from the options; the rng draws election timeouts).
    fn timer_delay(timer: Self::Timer, opts: &NodeOptions, rng: &mut ChaCha8Rng) -> Duration;
    /// The index a snapshot installed, if `event` reports one (logged).
    fn restored(event: &Self::Event) -> Option<LogIndex>;
    /// The service's state in one line, for the status.
    fn detail(core: &Self::Core) -> String;

    /// Whether the service can write input traces ([`TraceRecord`]s for `aver replay`).
    const TRACES: bool = false;
    /// The trace's `Start` record (services that trace).
    fn trace_start(
        _core: &Self::Core,
        _incarnation: u64,
        _digest: u64,
    ) -> Option<TraceRecord<Self::Entry, Self::Msg>> {
        None
    }
    /// `timer` as a traced Raft timer (services that trace).
    fn trace_timer(_timer: Self::Timer) -> Option<raft::Timer> {
        None
    }
    /// Adds `event` to an output digest (services that trace).
    fn digest_event(_event: &Self::Event, _digest: &mut Digest) {}
}

/// Raft's timers' durations: the heartbeat, and an election timeout drawn from the range.
pub fn raft_delay(timer: raft::Timer, opts: &NodeOptions, rng: &mut ChaCha8Rng) -> Duration {
    use rand::Rng;
    match timer {
        raft::Timer::Heartbeat => opts.heartbeat,
        raft::Timer::Election => {
            let (lo, hi) = opts.election;
            Duration::from_millis(rng.random_range(lo.as_millis()..=hi.as_millis()) as u64)
        }
    }
}
