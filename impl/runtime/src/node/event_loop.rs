//! The node's event loop and its [`Environment`]: the only place the service core (the
//! kvraft server on Raft, or a sharded deployment's server) and the client sessions' reply
//! queues live.

use super::remote::Remotes;
use super::service::{ClientInput, Route, Service};
use super::{NodeError, NodeOptions};
use crate::commit::{CommitEvent, Committer};
use crate::driver::{Driver, Environment};
use crate::net::{Metrics, PeerQueue};
use crate::storage::StorageStats;
use crate::trace::{Digest, Item, TraceInput, TraceRecord, TraceWriter};
use crate::wire::{NodeStatus, Reply, Request};
use aver_core::contract::NodeId;
use aver_core::raft::{Message, PersistOp, RoleKind, Term};
use rand::SeedableRng;
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

/// What a client session tells the event loop. Each session has its own node id (outside
/// the members'), which the server core answers to.
pub enum Input<Q, R> {
    /// A session opened; its replies go to `reply` (the loop never waits on it: a full queue
    /// drops the reply, and the clerk retries).
    Open {
        /// The session's id.
        from: NodeId,
        /// Its reply queue.
        reply: mpsc::Sender<Reply<R>>,
    },
    /// A request from the session.
    Request {
        /// The session's id.
        from: NodeId,
        /// The request.
        request: Request<Q>,
    },
    /// The session closed.
    Closed(NodeId),
}

/// A service's session input.
pub type ServiceInput<S> = Input<<S as Service>::ClientOp, <S as Service>::ClientReply>;

/// What the environment holds back until the writes before it are durable.
enum Output<M> {
    Send(NodeId, M),
}

/// The real environment of one node. Writes are buffered for the committer; every message and
/// apply is tagged with the number of writes before it and released only once those are
/// durable (see the module docs of [`super`]).
struct NodeEnv<S: Service> {
    /// Writes not yet handed to the committer.
    pending: Vec<PersistOp<S::Entry>>,
    /// Writes emitted so far (this incarnation).
    written: u64,
    outputs: VecDeque<(u64, Output<S::Msg>)>,
    /// Outputs the core says do not depend on pending writes: released at the end of the
    /// turn, in order.
    independent: Vec<Output<S::Msg>>,
    /// Events the server reported (executed writes, duplicates, restores).
    events: Vec<S::Event>,
    /// Deadlines of the timers, in the order of [`Service::TIMERS`].
    deadlines: Vec<Option<Instant>>,
    rng: ChaCha8Rng,
    opts: Arc<NodeOptions>,
    /// Digest of the current input's outputs (when tracing).
    digest: Option<Digest>,
}

fn slot<S: Service>(t: S::Timer) -> usize {
    S::TIMERS
        .iter()
        .position(|x| *x == t)
        .expect("every timer is in Service::TIMERS")
}

impl<S: Service> Environment<S::Core> for NodeEnv<S> {
    fn persist(&mut self, ops: &[PersistOp<S::Entry>]) {
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

    fn send(&mut self, to: NodeId, msg: S::Msg) {
        if let Some(d) = &mut self.digest {
            d.item(Item::Send, &(to, &msg));
        }
        self.outputs
            .push_back((self.written, Output::Send(to, msg)));
    }

    fn send_independent(&mut self, to: NodeId, msg: S::Msg) {
        if let Some(d) = &mut self.digest {
            d.item(Item::Send, &(to, &msg));
        }
        self.independent.push(Output::Send(to, msg));
    }

    fn apply(&mut self, event: S::Event) {
        if let Some(d) = &mut self.digest {
            S::digest_event(&event, d);
        }
        self.events.push(event);
    }

    fn set_timer(&mut self, timer: S::Timer) {
        if let Some(d) = &mut self.digest {
            d.item(Item::SetTimer, &timer);
        }
        let after: Duration = S::timer_delay(timer, &self.opts, &mut self.rng);
        self.deadlines[slot::<S>(timer)] = Some(Instant::now() + after);
    }

    fn cancel_timer(&mut self, timer: S::Timer) {
        if let Some(d) = &mut self.digest {
            d.item(Item::CancelTimer, &timer);
        }
        self.deadlines[slot::<S>(timer)] = None;
    }
}

/// What [`super::start`] hands the loop.
pub(super) struct Parts<S: Service> {
    pub opts: Arc<NodeOptions>,
    pub driver: Driver<S::Core>,
    pub peers: BTreeMap<NodeId, Arc<PeerQueue<Message<S::Entry>>>>,
    pub remotes: Remotes<S::ClientOp>,
    pub committer: Committer<S::Entry>,
    pub commits: mpsc::UnboundedReceiver<CommitEvent>,
    pub trace: Option<TraceWriter>,
    pub metrics: Arc<Metrics>,
}

/// The event loop of one node.
pub(super) struct EventLoop<S: Service> {
    opts: Arc<NodeOptions>,
    driver: Driver<S::Core>,
    env: NodeEnv<S>,
    /// Reply queues of the open clerk sessions.
    sessions: BTreeMap<NodeId, mpsc::Sender<Reply<S::ClientReply>>>,
    peers: BTreeMap<NodeId, Arc<PeerQueue<Message<S::Entry>>>>,
    /// Connections this node opened to nodes outside its group.
    remotes: Remotes<S::ClientOp>,
    committer: Committer<S::Entry>,
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

impl<S: Service> EventLoop<S> {
    pub(super) fn new(p: Parts<S>) -> EventLoop<S> {
        let env = NodeEnv {
            pending: Vec::new(),
            written: 0,
            outputs: VecDeque::new(),
            independent: Vec::new(),
            events: Vec::new(),
            deadlines: vec![None; S::TIMERS.len()],
            rng: ChaCha8Rng::seed_from_u64(p.opts.seed),
            opts: p.opts.clone(),
            digest: p.trace.as_ref().map(|_| Digest::default()),
        };
        let raft = S::raft(p.driver.core());
        let seen = (raft.role_kind(), raft.term(), raft.log().base().index.0);
        EventLoop {
            opts: p.opts,
            driver: p.driver,
            env,
            sessions: BTreeMap::new(),
            peers: p.peers,
            remotes: p.remotes,
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
        mut peers: mpsc::Receiver<(NodeId, Message<S::Entry>)>,
        mut clients: mpsc::Receiver<ServiceInput<S>>,
        mut remote: mpsc::Receiver<(NodeId, Reply<S::ClientReply>)>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let inputs = (&mut peers, &mut clients, &mut remote);
        let result = self.serve(inputs, &mut stop).await;
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
        (peers, clients, remote): Inputs<'_, S>,
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
                    self.on_message(from, S::peer(msg))?;
                    self.drain(peers, clients)?;
                }
                Some(input) = clients.recv() => {
                    self.on_client(input)?;
                    self.drain(peers, clients)?;
                }
                Some((from, reply)) = remote.recv() => {
                    if let Some(msg) = S::remote_reply(reply) {
                        self.on_message(from, msg)?;
                    }
                    self.drain(peers, clients)?;
                }
            }
            self.end_turn()?;
        }
    }

    /// Takes whatever else is already queued, up to the per-turn limit.
    fn drain(
        &mut self,
        peers: &mut mpsc::Receiver<(NodeId, Message<S::Entry>)>,
        clients: &mut mpsc::Receiver<ServiceInput<S>>,
    ) -> Result<(), NodeError> {
        // Alternate, so that a stream of peer messages cannot starve clients (or vice versa).
        for _ in 0..INPUTS_PER_TURN_MAX / 2 {
            let mut idle = true;
            if let Ok((from, msg)) = peers.try_recv() {
                self.on_message(from, S::peer(msg))?;
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
        if let Some(record) = S::trace_start(self.driver.core(), trace.incarnation(), digest) {
            trace.push(&record);
        }
    }

    /// Records a handled input (when tracing) and stops on a violation.
    fn after_input(&mut self, input: Option<TraceInput<S::Msg>>) -> Result<(), NodeError> {
        if let (Some(trace), Some(input)) = (&mut self.trace, input) {
            let digest = self.env.digest.as_mut().map_or(0, Digest::finish);
            trace.push(&TraceRecord::<S::Entry, S::Msg>::Input { input, digest });
        }
        if let Some(v) = S::violation(self.driver.core()) {
            let _ = self.flush_trace();
            return Err(NodeError::Violation(v));
        }
        self.after_events();
        self.log_changes();
        Ok(())
    }

    fn on_message(&mut self, from: NodeId, msg: S::Msg) -> Result<(), NodeError> {
        let record = self.trace.is_some().then(|| TraceInput::Message {
            from,
            msg: msg.clone(),
        });
        self.driver.on_message(&mut self.env, from, msg);
        self.after_input(record)
    }

    fn fire_timers(&mut self) -> Result<(), NodeError> {
        let now = Instant::now();
        for (i, &timer) in S::TIMERS.iter().enumerate() {
            if self.env.deadlines[i].is_some_and(|d| d <= now) {
                self.env.deadlines[i] = None;
                self.driver.on_timeout(&mut self.env, timer);
                let traced = S::trace_timer(timer).filter(|_| self.trace.is_some());
                self.after_input(traced.map(TraceInput::Timeout))?;
            }
        }
        Ok(())
    }

    fn on_client(&mut self, input: ServiceInput<S>) -> Result<(), NodeError> {
        match input {
            Input::Open { from, reply } => {
                self.sessions.insert(from, reply);
                Ok(())
            }
            Input::Closed(from) => {
                self.sessions.remove(&from);
                Ok(())
            }
            Input::Request { from, request } => match S::request(request) {
                ClientInput::Status { id } => {
                    if let Some(s) = self.sessions.get(&from) {
                        let _ = s.try_send(Reply::Status {
                            id,
                            status: self.status(),
                        });
                    }
                    Ok(())
                }
                ClientInput::Msg(msg) => self.on_message(from, msg),
                ClientInput::Ignore => Ok(()),
            },
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
                if S::raft(self.driver.core())
                    .config()
                    .leader_counts_durable_only
                {
                    let (index, term) = last;
                    self.driver
                        .input(&mut self.env, |server| S::on_persisted(server, index, term));
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
            trace.push::<S::Entry, S::Msg>(&TraceRecord::Durable { ops: self.durable });
        }
    }

    /// Releases the independent outputs, then every output whose writes are durable, in
    /// order: as one batch, in which the Raft core merges a message into the previous one to
    /// the same peer when one does the work of both (`Message::coalesce`: a leader's
    /// AppendEntries of one turn become one, a follower's acknowledgements of one fsync too).
    fn release(&mut self) {
        let entries_max = S::raft(self.driver.core()).config().entries_per_message_max;
        let mut batch: Vec<Output<S::Msg>> = Vec::new();
        for Output::Send(to, msg) in std::mem::take(&mut self.env.independent) {
            push_coalesced::<S>(&mut batch, to, msg, entries_max);
        }
        while let Some((writes, _)) = self.env.outputs.front() {
            if *writes > self.durable {
                break;
            }
            let (_, Output::Send(to, msg)) = self.env.outputs.pop_front().expect("front exists");
            push_coalesced::<S>(&mut batch, to, msg, entries_max);
        }
        for output in batch {
            self.perform(output);
        }
    }

    fn perform(&mut self, output: Output<S::Msg>) {
        let Output::Send(to, msg) = output;
        match S::route(to, msg) {
            Route::Peer(m) => {
                if let Some(q) = self.peers.get(&to) {
                    q.push(m);
                }
            }
            Route::Client { reply, acked } => {
                if acked {
                    self.acked_ops += 1;
                }
                if let Some(s) = self.sessions.get(&to) {
                    // A full or closed session drops the reply; its clerk retries.
                    let _ = s.try_send(reply);
                }
            }
            Route::Remote(request) => self.remotes.send(to, request),
            Route::Drop => {}
        }
    }

    /// Logs what the server reported (snapshots installed).
    fn after_events(&mut self) {
        for event in self.env.events.drain(..) {
            if let Some(index) = S::restored(&event) {
                tracing::info!(node = %self.opts.id, index = index.0, "snapshot installed");
            }
        }
    }

    fn log_changes(&mut self) {
        let raft = S::raft(self.driver.core());
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
        let raft = S::raft(server);
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
            applied: S::applied(server).0,
            snapshot_index: raft.log().base().index.0,
            last_index: raft.log().last_index().0,
            log_bytes: self.log_bytes,
            fsyncs: self.storage.fsyncs,
            commits: self.storage.commits,
            acked_ops: self.acked_ops,
            malformed_frames: m.malformed_frames.load(Ordering::Relaxed),
            refused_handshakes: m.refused_handshakes.load(Ordering::Relaxed),
            dropped_messages: self.peers.values().map(|q| q.outbox.dropped()).sum(),
            detail: S::detail(server),
        }
    }
}

/// The loop's input queues: peers, client sessions, answers on connections it opened.
type Inputs<'a, S> = (
    &'a mut mpsc::Receiver<(NodeId, Message<<S as Service>::Entry>)>,
    &'a mut mpsc::Receiver<ServiceInput<S>>,
    &'a mut mpsc::Receiver<(NodeId, Reply<<S as Service>::ClientReply>)>,
);

/// How far back [`push_coalesced`] looks for the previous message to the same peer.
const COALESCE_WINDOW: usize = 64;

/// Appends a message for `to` to `batch`, or merges it into the last message to `to` within
/// the window when the Raft core says one message does the work of both.
fn push_coalesced<S: Service>(
    batch: &mut Vec<Output<S::Msg>>,
    to: NodeId,
    msg: S::Msg,
    entries_max: usize,
) {
    let msg = match S::into_peer(msg) {
        Ok(msg) => msg,
        Err(msg) => {
            batch.push(Output::Send(to, msg));
            return;
        }
    };
    let last = batch
        .iter_mut()
        .rev()
        .take(COALESCE_WINDOW)
        .find(|Output::Send(t, _)| *t == to);
    let msg = match last.and_then(|Output::Send(_, prev)| S::as_peer_mut(prev)) {
        Some(prev) => match prev.coalesce(msg, entries_max) {
            None => return,
            Some(msg) => msg,
        },
        None => msg,
    };
    batch.push(Output::Send(to, S::peer(msg)));
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
