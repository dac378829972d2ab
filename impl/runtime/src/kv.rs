//! The service a real node runs: the kvraft server core on the Raft core, over the
//! Put/Append/Get store ([`AppendStore`]). The runtime adds no protocol of its own: requests,
//! the dedup table, snapshots and replies are the cores' (specs/kv.md).

use aver_core::kvraft::{
    AppendOp, AppendReply, AppendStore, ClientMsg, KvEntry, KvMsg, RaftKvServer,
};
use aver_core::raft::Message;

/// The store a node replicates.
pub type Store = AppendStore;
/// An operation on it.
pub type Op = AppendOp;
/// Its answer.
pub type OpReply = AppendReply;
/// What the Raft log holds.
pub type Entry = KvEntry<Store>;
/// The core a node runs.
pub type Server = RaftKvServer<Store>;
/// A Raft message between servers.
pub type PeerMessage = Message<Entry>;
/// Every message the server core takes or emits.
pub type ServerMessage = KvMsg<PeerMessage, Op, OpReply>;
/// What clerks and servers say to each other.
pub type ClientMessage = ClientMsg<Op, OpReply>;

/// The kvraft server as a node's service ([`crate::node::Service`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct KvService;

mod service {
    use super::{ClientMessage, Entry, KvService, Op, OpReply, PeerMessage, Server, ServerMessage};
    use crate::node::service::{ClientInput, Route, Service, raft_delay};
    use crate::node::{NodeError, NodeOptions};
    use crate::trace::{Digest, Item, TraceRecord, event_digest};
    use crate::wire::{Reply, Request};
    use aver_core::contract::{NodeId, Violation};
    use aver_core::kvraft::{ClientMsg, KvConfig, KvEvent, KvMsg};
    use aver_core::raft::{self, Durable, LogIndex, Raft, Term, Timer};
    use rand_chacha::ChaCha8Rng;
    use std::time::Duration;

    impl Service for KvService {
        type Entry = Entry;
        type Msg = ServerMessage;
        type Event = KvEvent;
        type Timer = Timer;
        type Core = Server;
        type ClientOp = Op;
        type ClientReply = OpReply;
        const TIMERS: &'static [Timer] = &[Timer::Election, Timer::Heartbeat];
        const TRACES: bool = true;

        fn build(
            &self,
            opts: &NodeOptions,
            config: raft::Config,
            durable: Durable<Entry>,
        ) -> Result<Server, NodeError> {
            let kv = KvConfig {
                max_raft_state: (opts.snapshot_log_bytes > 0)
                    .then_some(opts.snapshot_log_bytes as usize),
                pending_max: opts.waiters_max,
                ..KvConfig::default()
            };
            Ok(Server::new(kv, Raft::new(config, durable)))
        }
        fn raft(core: &Server) -> &Raft<Entry> {
            core.engine()
        }
        fn applied(core: &Server) -> LogIndex {
            core.rsm().applied_index()
        }
        fn violation(core: &Server) -> Option<Violation> {
            core.violation().cloned()
        }
        fn on_persisted(core: &mut Server, index: LogIndex, term: Term) {
            core.engine_input(|raft| raft.on_persisted(index, term))
        }
        fn peer(msg: PeerMessage) -> ServerMessage {
            KvMsg::Peer(msg)
        }
        fn into_peer(msg: ServerMessage) -> Result<PeerMessage, ServerMessage> {
            match msg {
                KvMsg::Peer(msg) => Ok(msg),
                other => Err(other),
            }
        }
        fn as_peer_mut(msg: &mut ServerMessage) -> Option<&mut PeerMessage> {
            match msg {
                KvMsg::Peer(msg) => Some(msg),
                _ => None,
            }
        }
        fn request(request: Request<Op>) -> ClientInput<ServerMessage> {
            match request {
                Request::Kv(r) => ClientInput::Msg(KvMsg::Client(ClientMsg::Request(r))),
                Request::Status { id } => ClientInput::Status { id },
                Request::Msg(_) => ClientInput::Ignore,
            }
        }
        fn remote_reply(_: Reply<OpReply>) -> Option<ServerMessage> {
            None
        }
        fn route(_to: NodeId, msg: ServerMessage) -> Route<Entry, Op, OpReply> {
            match msg {
                KvMsg::Peer(m) => Route::Peer(m),
                KvMsg::Client(ClientMessage::Reply(r)) => Route::Client {
                    acked: r.result.is_ok(),
                    reply: Reply::Kv(r),
                },
                KvMsg::Client(ClientMsg::Request(_)) => Route::Drop, // servers send none
            }
        }
        fn timer_delay(timer: Timer, opts: &NodeOptions, rng: &mut ChaCha8Rng) -> Duration {
            raft_delay(timer, opts, rng)
        }
        fn restored(event: &KvEvent) -> Option<LogIndex> {
            match event {
                KvEvent::Restored { index } => Some(*index),
                _ => None,
            }
        }
        fn detail(_: &Server) -> String {
            String::new()
        }
        fn trace_start(
            server: &Server,
            incarnation: u64,
            digest: u64,
        ) -> Option<TraceRecord<Entry, ServerMessage>> {
            Some(TraceRecord::Start {
                incarnation,
                config: server.engine().config().clone(),
                kv: server.config().clone(),
                durable: server.engine().durable().clone(),
                digest,
            })
        }
        fn trace_timer(timer: Timer) -> Option<Timer> {
            Some(timer)
        }
        fn digest_event(event: &KvEvent, digest: &mut Digest) {
            digest.item(Item::Apply, &event_digest(event));
        }
    }
}
