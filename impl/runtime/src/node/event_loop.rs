//! The node's event loop and its [`Environment`]: the only place the core (the kvraft server
//! on Raft) and the clerk sessions' reply queues live.

use super::{NodeError, NodeOptions};
use crate::commit::{CommitEvent, Committer};
use crate::driver::{Driver, Environment};
use crate::kv::{Entry, OpReply, PeerMessage, Server, ServerMessage};
use crate::net::{Metrics, PeerQueue};
use crate::storage::StorageStats;
use crate::trace::{Digest, Item, TraceInput, TraceRecord, TraceWriter};
use crate::wire::{NodeStatus, Reply, Request};
use aver_core::contract::NodeId;
use aver_core::kvraft::{ClientMsg, KvEvent, KvMsg};
use aver_core::raft::{PersistOp, RoleKind, Term, Timer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Inputs handled per loop turn before the turn's writes go to the committer (a bound on
/// the batch, so that a flood of input cannot starve commits and timers).
pub const INPUTS_PER_TURN_MAX: usize = 512;

/// What a clerk session tells the event loop. Each session has its own node id (outside the
/// members'), which the server core answers to.
pub enum Input {
    /// A session opened; its replies go to `reply` (the loop never waits on it: a full queue
    /// drops the reply, and the clerk retries).
    Open {
        /// The session's id.
        from: NodeId,
        /// Its reply queue.
        reply: mpsc::Sender<Reply<OpReply>>,
    },
    /// A request from the session.
    Request {
        /// The session's id.
        from: NodeId,
        /// The request.
        request: Request<crate::kv::Op>,
    },
    /// The session closed.
    Closed(NodeId),
}

/// What the environment holds back until the writes before it are durable.
enum Output {
    Send(NodeId, ServerMessage),
}

/// The real environment of one node. Writes are buffered for the committer; every message and
/// apply is tagged with the number of writes before it and released only once those are
/// durable (see the module docs of [`super`]).
struct NodeEnv {
    /// Writes not yet handed to the committer.
    pending: Vec<PersistOp<Entry>>,
    /// Writes emitted so far (this incarnation).
    written: u64,
    outputs: VecDeque<(u64, Output)>,
    /// Outputs the core says do not depend on pending writes: released at the end of the
    /// turn, in order.
    independent: Vec<Output>,
    /// Events the server reported (executed writes, duplicates, restores).
    events: Vec<KvEvent>,
    /// Deadlines of `[Election, Heartbeat]`.
    deadlines: [Option<Instant>; 2],
    rng: ChaCha8Rng,
    heartbeat: Duration,
    election: (Duration, Duration),
    /// Digest of the current input's outputs (when tracing).
    digest: Option<Digest>,
}

fn slot(t: Timer) -> usize {
    match t {
        Timer::Election => 0,
        Timer::Heartbeat => 1,
    }
}

impl Environment<Server> for NodeEnv {
    fn persist(&mut self, ops: &[PersistOp<Entry>]) {
        if let Some(d) = &mut self.digest {
            for op in ops {
                d.item(Item::Persist, op);
            }
        }
        self.pending.extend_from_slice(ops);
        self.written += ops.len() as u64;
    }

    fn sync(&mut self) {
        if let Some(d) = &mut self.digest {
            d.item(Item::Sync, &());
        }
    }

    fn send(&mut self, to: NodeId, msg: ServerMessage) {
        if let Some(d) = &mut self.digest {
            d.item(Item::Send, &(to, &msg));
        }
        self.outputs
            .push_back((self.written, Output::Send(to, msg)));
    }

    fn send_independent(&mut self, to: NodeId, msg: ServerMessage) {
        if let Some(d) = &mut self.digest {
            d.item(Item::Send, &(to, &msg));
        }
        self.independent.push(Output::Send(to, msg));
    }

    fn apply(&mut self, event: KvEvent) {
        if let Some(d) = &mut self.digest {
            d.item(Item::Apply, &crate::trace::event_digest(&event));
        }
        self.events.push(event);
    }

    fn set_timer(&mut self, timer: Timer) {
        if let Some(d) = &mut self.digest {
            d.item(Item::SetTimer, &timer);
        }
        let after = match timer {
            Timer::Heartbeat => self.heartbeat,
            Timer::Election => {
                let (lo, hi) = self.election;
                let ms = self.rng.random_range(lo.as_millis()..=hi.as_millis()) as u64;
                Duration::from_millis(ms)
            }
        };
        self.deadlines[slot(timer)] = Some(Instant::now() + after);
    }

    fn cancel_timer(&mut self, timer: Timer) {
        if let Some(d) = &mut self.digest {
            d.item(Item::CancelTimer, &timer);
        }
        self.deadlines[slot(timer)] = None;
    }
}

/// What [`super::start`] hands the loop.
pub(super) struct Parts {
    pub opts: Arc<NodeOptions>,
    pub driver: Driver<Server>,
    pub peers: BTreeMap<NodeId, Arc<PeerQueue<PeerMessage>>>,
    pub committer: Committer<Entry>,
    pub commits: mpsc::UnboundedReceiver<CommitEvent>,
    pub trace: Option<TraceWriter>,
    pub metrics: Arc<Metrics>,
}

/// The event loop of one node.
pub(super) struct EventLoop {
    opts: Arc<NodeOptions>,
    driver: Driver<Server>,
    env: NodeEnv,
    /// Reply queues of the open clerk sessions.
    sessions: BTreeMap<NodeId, mpsc::Sender<Reply<OpReply>>>,
    peers: BTreeMap<NodeId, Arc<PeerQueue<PeerMessage>>>,
    committer: Committer<Entry>,
    commits: mpsc::UnboundedReceiver<CommitEvent>,
    /// Submitted tickets and the write count each covers.
    tickets: VecDeque<(u64, u64)>,
    /// Writes known durable.
    durable: u64,
    trace: Option<TraceWriter>,
    metrics: Arc<Metrics>,
    storage: StorageStats,
    log_bytes: u64,
    acked_ops: u64,
    /// Role, term and snapshot index after the last input, to log changes.
    seen: (RoleKind, Term, u64),
}

impl EventLoop {
    pub(super) fn new(p: Parts) -> EventLoop {
        let env = NodeEnv {
            pending: Vec::new(),
            written: 0,
            outputs: VecDeque::new(),
            independent: Vec::new(),
            events: Vec::new(),
            deadlines: [None, None],
            rng: ChaCha8Rng::seed_from_u64(p.opts.seed),
            heartbeat: p.opts.heartbeat,
            election: p.opts.election,
            digest: p.trace.as_ref().map(|_| Digest::default()),
        };
        let raft = p.driver.core().engine();
        let seen = (raft.role_kind(), raft.term(), raft.log().base().index.0);
        EventLoop {
            opts: p.opts,
            driver: p.driver,
            env,
            sessions: BTreeMap::new(),
            peers: p.peers,
            committer: p.committer,
            commits: p.commits,
            tickets: VecDeque::new(),
            durable: 0,
            trace: p.trace,
            metrics: p.metrics,
            storage: StorageStats::default(),
            log_bytes: 0,
            acked_ops: 0,
            seen,
        }
    }

    /// Runs until `stop` turns true (`Ok`) or something fatal happens (`Err`).
    pub(super) async fn run(
        mut self,
        mut peers: mpsc::Receiver<(NodeId, PeerMessage)>,
        mut clients: mpsc::Receiver<Input>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let result = self.serve(&mut peers, &mut clients, &mut stop).await;
        self.committer.shutdown();
        while let Ok(event) = self.commits.try_recv() {
            if let CommitEvent::Durable { ticket, .. } = event {
                self.on_durable_ticket(ticket);
            }
        }
        if let Err(e) = self.flush_trace() {
            tracing::error!("{e}");
        }
        match &result {
            Ok(()) => tracing::info!(node = %self.opts.id, "stopped"),
            Err(e) => tracing::error!(node = %self.opts.id, "stopped: {e}"),
        }
        result
    }

    async fn serve(
        &mut self,
        peers: &mut mpsc::Receiver<(NodeId, PeerMessage)>,
        clients: &mut mpsc::Receiver<Input>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        self.start_trace();
        self.end_turn()?;
        loop {
            let deadline = self.env.deadlines.iter().flatten().min().copied();
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return Ok(()),
                Some(event) = self.commits.recv() => self.on_commit(event)?,
                _ = sleep_until(deadline) => self.fire_timers()?,
                Some((from, msg)) = peers.recv() => {
                    self.on_message(from, KvMsg::Peer(msg))?;
                    self.drain(peers, clients)?;
                }
                Some(input) = clients.recv() => {
                    self.on_client(input)?;
                    self.drain(peers, clients)?;
                }
            }
            self.end_turn()?;
        }
    }

    /// Takes whatever else is already queued, up to the per-turn limit.
    fn drain(
        &mut self,
        peers: &mut mpsc::Receiver<(NodeId, PeerMessage)>,
        clients: &mut mpsc::Receiver<Input>,
    ) -> Result<(), NodeError> {
        // Alternate, so that a stream of peer messages cannot starve clients (or vice versa).
        for _ in 0..INPUTS_PER_TURN_MAX / 2 {
            let mut idle = true;
            if let Ok((from, msg)) = peers.try_recv() {
                self.on_message(from, KvMsg::Peer(msg))?;
                idle = false;
            }
            if let Ok(input) = clients.try_recv() {
                self.on_client(input)?;
                idle = false;
            }
            if idle {
                break;
            }
        }
        Ok(())
    }

    // ---- inputs -------------------------------------------------------------------------

    fn start_trace(&mut self) {
        self.driver.flush(&mut self.env);
        self.after_events();
        let Some(trace) = &mut self.trace else { return };
        let digest = self.env.digest.as_mut().map_or(0, Digest::finish);
        let server = self.driver.core();
        trace.push(&TraceRecord::<Entry, ServerMessage>::Start {
            incarnation: trace.incarnation(),
            config: server.engine().config().clone(),
            kv: server.config().clone(),
            durable: server.engine().durable().clone(),
            digest,
        });
    }

    /// Records a handled input (when tracing) and stops on a violation.
    fn after_input(&mut self, input: Option<TraceInput<ServerMessage>>) -> Result<(), NodeError> {
        if let (Some(trace), Some(input)) = (&mut self.trace, input) {
            let digest = self.env.digest.as_mut().map_or(0, Digest::finish);
            trace.push(&TraceRecord::<Entry, ServerMessage>::Input { input, digest });
        }
        if let Some(v) = self.driver.core().violation().cloned() {
            let _ = self.flush_trace();
            return Err(NodeError::Violation(v));
        }
        self.after_events();
        self.log_changes();
        Ok(())
    }

    fn on_message(&mut self, from: NodeId, msg: ServerMessage) -> Result<(), NodeError> {
        let record = self.trace.is_some().then(|| TraceInput::Message {
            from,
            msg: msg.clone(),
        });
        self.driver.on_message(&mut self.env, from, msg);
        self.after_input(record)
    }

    fn fire_timers(&mut self) -> Result<(), NodeError> {
        let now = Instant::now();
        for timer in [Timer::Election, Timer::Heartbeat] {
            if self.env.deadlines[slot(timer)].is_some_and(|d| d <= now) {
                self.env.deadlines[slot(timer)] = None;
                self.driver.on_timeout(&mut self.env, timer);
                let record = self.trace.is_some().then_some(TraceInput::Timeout(timer));
                self.after_input(record)?;
            }
        }
        Ok(())
    }

    fn on_client(&mut self, input: Input) -> Result<(), NodeError> {
        match input {
            Input::Open { from, reply } => {
                self.sessions.insert(from, reply);
                Ok(())
            }
            Input::Closed(from) => {
                self.sessions.remove(&from);
                Ok(())
            }
            Input::Request {
                from,
                request: Request::Status { id },
            } => {
                if let Some(s) = self.sessions.get(&from) {
                    let _ = s.try_send(Reply::Status {
                        id,
                        status: self.status(),
                    });
                }
                Ok(())
            }
            Input::Request {
                from,
                request: Request::Kv(r),
            } => self.on_message(from, KvMsg::Client(ClientMsg::Request(r))),
        }
    }

    // ---- end of a turn: trace, commit, release --------------------------------------------

    fn end_turn(&mut self) -> Result<(), NodeError> {
        self.flush_trace()?;
        self.submit();
        self.release();
        Ok(())
    }

    fn flush_trace(&mut self) -> Result<(), NodeError> {
        let Some(trace) = &mut self.trace else {
            return Ok(());
        };
        trace.flush().map_err(|source| NodeError::Trace {
            path: trace.path().to_path_buf(),
            source,
        })
    }

    fn submit(&mut self) {
        if self.env.pending.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut self.env.pending);
        let ticket = self.committer.submit(ops);
        self.tickets.push_back((ticket, self.env.written));
    }

    fn on_commit(&mut self, event: CommitEvent) -> Result<(), NodeError> {
        match event {
            CommitEvent::Failed(e) => Err(NodeError::Storage(e)),
            CommitEvent::Durable {
                ticket,
                stats,
                log_bytes,
                last,
            } => {
                self.storage = stats;
                self.log_bytes = log_bytes;
                self.on_durable_ticket(ticket);
                if self
                    .driver
                    .core()
                    .engine()
                    .config()
                    .leader_counts_durable_only
                {
                    let (index, term) = last;
                    self.driver.input(&mut self.env, |server| {
                        server.engine_input(|raft| raft.on_persisted(index, term))
                    });
                    let record = self
                        .trace
                        .is_some()
                        .then_some(TraceInput::Persisted { index, term });
                    self.after_input(record)?;
                }
                Ok(())
            }
        }
    }

    fn on_durable_ticket(&mut self, ticket: u64) {
        while let Some(&(t, writes)) = self.tickets.front() {
            if t > ticket {
                break;
            }
            self.tickets.pop_front();
            self.durable = writes;
        }
        if let Some(trace) = &mut self.trace {
            trace.push::<Entry, ServerMessage>(&TraceRecord::Durable { ops: self.durable });
        }
    }

    /// Releases the independent outputs, then every output whose writes are durable, in
    /// order: as one batch, in which the Raft core merges a message into the previous one to
    /// the same peer when one does the work of both (`Message::coalesce`: a leader's
    /// AppendEntries of one turn become one, a follower's acknowledgements of one fsync too).
    fn release(&mut self) {
        let entries_max = (self.driver.core().engine().config()).entries_per_message_max;
        let mut batch: Vec<Output> = Vec::new();
        for Output::Send(to, msg) in std::mem::take(&mut self.env.independent) {
            push_coalesced(&mut batch, to, msg, entries_max);
        }
        while let Some((writes, _)) = self.env.outputs.front() {
            if *writes > self.durable {
                break;
            }
            let (_, Output::Send(to, msg)) = self.env.outputs.pop_front().expect("front exists");
            push_coalesced(&mut batch, to, msg, entries_max);
        }
        for output in batch {
            self.perform(output);
        }
    }

    fn perform(&mut self, output: Output) {
        let Output::Send(to, msg) = output;
        match msg {
            KvMsg::Peer(m) => {
                if let Some(q) = self.peers.get(&to) {
                    q.push(m);
                }
            }
            KvMsg::Client(ClientMsg::Reply(r)) => {
                if r.result.is_ok() {
                    self.acked_ops += 1;
                }
                if let Some(s) = self.sessions.get(&to) {
                    // A full or closed session drops the reply; its clerk retries.
                    let _ = s.try_send(Reply::Kv(r));
                }
            }
            KvMsg::Client(ClientMsg::Request(_)) => {} // servers send no requests
        }
    }

    /// Logs what the server reported (snapshots installed).
    fn after_events(&mut self) {
        for event in self.env.events.drain(..) {
            if let KvEvent::Restored { index } = event {
                tracing::info!(node = %self.opts.id, index = index.0, "snapshot installed");
            }
        }
    }

    fn log_changes(&mut self) {
        let raft = self.driver.core().engine();
        let now = (raft.role_kind(), raft.term(), raft.log().base().index.0);
        if now == self.seen {
            return;
        }
        let id = self.opts.id;
        if now.2 != self.seen.2 {
            tracing::info!(node = %id, index = now.2, log_bytes = self.log_bytes, "snapshot");
        }
        if (now.0, now.1) != (self.seen.0, self.seen.1) {
            match now.0 {
                RoleKind::Candidate => {
                    tracing::info!(node = %id, term = now.1.0, "election started")
                }
                RoleKind::Leader => tracing::info!(node = %id, term = now.1.0, "became leader"),
                RoleKind::Follower => {
                    tracing::info!(node = %id, term = now.1.0, leader = ?raft.leader_hint(), "follower")
                }
            }
        }
        self.seen = now;
    }

    fn status(&self) -> NodeStatus {
        let server = self.driver.core();
        let raft = server.engine();
        let role = match raft.role_kind() {
            RoleKind::Follower => "follower",
            RoleKind::Candidate => "candidate",
            RoleKind::Leader => "leader",
        };
        let m = &self.metrics;
        NodeStatus {
            id: self.opts.id,
            role: role.into(),
            term: raft.term().0,
            leader: raft
                .leader_hint()
                .or(raft.is_leader().then_some(self.opts.id)),
            commit: raft.commit_index().0,
            applied: server.rsm().applied_index().0,
            snapshot_index: raft.log().base().index.0,
            last_index: raft.log().last_index().0,
            log_bytes: self.log_bytes,
            fsyncs: self.storage.fsyncs,
            commits: self.storage.commits,
            acked_ops: self.acked_ops,
            malformed_frames: m.malformed_frames.load(Ordering::Relaxed),
            refused_handshakes: m.refused_handshakes.load(Ordering::Relaxed),
            dropped_messages: self.peers.values().map(|q| q.outbox.dropped()).sum(),
        }
    }
}

/// How far back [`push_coalesced`] looks for the previous message to the same peer.
const COALESCE_WINDOW: usize = 64;

/// Appends a message for `to` to `batch`, or merges it into the last message to `to` within
/// the window when the Raft core says one message does the work of both.
fn push_coalesced(batch: &mut Vec<Output>, to: NodeId, msg: ServerMessage, entries_max: usize) {
    let KvMsg::Peer(msg) = msg else {
        batch.push(Output::Send(to, msg));
        return;
    };
    let last = batch
        .iter_mut()
        .rev()
        .take(COALESCE_WINDOW)
        .find(|Output::Send(t, _)| *t == to);
    let msg = match last {
        Some(Output::Send(_, KvMsg::Peer(prev))) => match prev.coalesce(msg, entries_max) {
            None => return,
            Some(msg) => msg,
        },
        _ => msg,
    };
    batch.push(Output::Send(to, KvMsg::Peer(msg)));
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
