//! The node's event loop and its [`Environment`]: the only place the core, the service and
//! the waiting clients live.

use super::{NodeError, NodeOptions};
use crate::commit::{CommitEvent, Committer};
use crate::driver::{Driver, Environment};
use crate::net::{Metrics, PeerQueue};
use crate::service::Service;
use crate::storage::StorageStats;
use crate::trace::{Digest, Item, TraceInput, TraceRecord, TraceWriter};
use crate::wire::{NodeStatus, OpResult, Reply, Request};
use aver_core::contract::NodeId;
use aver_core::raft::{Apply, LogIndex, Message, PersistOp, Raft, RoleKind, Term, Timer};
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

/// A client request, with where to send its reply.
pub struct Input<S: Service> {
    /// The request.
    pub request: Request<S::Op>,
    /// The session's reply queue (the loop never waits on it: a full queue drops the reply,
    /// and the client times out).
    pub reply: mpsc::Sender<Reply<S::Output>>,
}

/// What the environment holds back until the writes before it are durable.
enum Output<C> {
    Send(NodeId, Message<C>),
    Apply(Apply<C>),
}

/// The real environment of one node. Writes are buffered for the committer; every message and
/// apply is tagged with the number of writes before it and released only once those are
/// durable (see the module docs of [`super`]).
struct NodeEnv<C> {
    /// Writes not yet handed to the committer.
    pending: Vec<PersistOp<C>>,
    /// Writes emitted so far (this incarnation).
    written: u64,
    outputs: VecDeque<(u64, Output<C>)>,
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

impl<C: aver_core::raft::Command + serde::Serialize> Environment<Raft<C>> for NodeEnv<C> {
    fn persist(&mut self, ops: &[PersistOp<C>]) {
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

    fn send(&mut self, to: NodeId, msg: Message<C>) {
        if let Some(d) = &mut self.digest {
            d.item(Item::Send, &(to, &msg));
        }
        self.outputs
            .push_back((self.written, Output::Send(to, msg)));
    }

    fn apply(&mut self, output: Apply<C>) {
        if let Some(d) = &mut self.digest {
            d.item(Item::Apply, &output);
        }
        self.outputs
            .push_back((self.written, Output::Apply(output)));
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

/// A client waiting for its entry to apply.
struct Waiter<O> {
    term: Term,
    id: u64,
    reply: mpsc::Sender<Reply<O>>,
}

/// What [`super::start`] hands the loop.
pub(super) struct Parts<S: Service> {
    pub opts: Arc<NodeOptions>,
    pub driver: Driver<Raft<S::Command>>,
    pub service: S,
    pub peers: BTreeMap<NodeId, Arc<PeerQueue<Message<S::Command>>>>,
    pub committer: Committer<S::Command>,
    pub commits: mpsc::UnboundedReceiver<CommitEvent>,
    pub trace: Option<TraceWriter>,
    pub metrics: Arc<Metrics>,
}

/// The event loop of one node.
pub(super) struct EventLoop<S: Service> {
    opts: Arc<NodeOptions>,
    driver: Driver<Raft<S::Command>>,
    env: NodeEnv<S::Command>,
    service: S,
    /// The index the service has applied (it trails the core's applied index while applies
    /// wait for durability).
    service_applied: LogIndex,
    waiters: BTreeMap<LogIndex, Waiter<S::Output>>,
    peers: BTreeMap<NodeId, Arc<PeerQueue<Message<S::Command>>>>,
    committer: Committer<S::Command>,
    commits: mpsc::UnboundedReceiver<CommitEvent>,
    /// Submitted tickets and the write count each covers.
    tickets: VecDeque<(u64, u64)>,
    /// Writes known durable.
    durable: u64,
    /// A snapshot is being written; `Some(writes)`: durable once `durable >= writes`.
    snapshot_until: Option<u64>,
    trace: Option<TraceWriter>,
    metrics: Arc<Metrics>,
    storage: StorageStats,
    log_bytes: u64,
    acked_ops: u64,
    /// Role and term after the last input, to log changes.
    seen: (RoleKind, Term),
}

impl<S: Service> EventLoop<S> {
    pub(super) fn new(p: Parts<S>) -> EventLoop<S> {
        let env = NodeEnv {
            pending: Vec::new(),
            written: 0,
            outputs: VecDeque::new(),
            deadlines: [None, None],
            rng: ChaCha8Rng::seed_from_u64(p.opts.seed),
            heartbeat: p.opts.heartbeat,
            election: p.opts.election,
            digest: p.trace.as_ref().map(|_| Digest::default()),
        };
        let seen = (p.driver.core().role_kind(), p.driver.core().term());
        let service_applied = p.driver.core().log().base().index;
        EventLoop {
            opts: p.opts,
            driver: p.driver,
            env,
            service: p.service,
            service_applied,
            waiters: BTreeMap::new(),
            peers: p.peers,
            committer: p.committer,
            commits: p.commits,
            tickets: VecDeque::new(),
            durable: 0,
            snapshot_until: None,
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
        mut peers: mpsc::Receiver<(NodeId, Message<S::Command>)>,
        mut clients: mpsc::Receiver<Input<S>>,
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
        peers: &mut mpsc::Receiver<(NodeId, Message<S::Command>)>,
        clients: &mut mpsc::Receiver<Input<S>>,
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
                    self.on_peer(from, msg)?;
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
        peers: &mut mpsc::Receiver<(NodeId, Message<S::Command>)>,
        clients: &mut mpsc::Receiver<Input<S>>,
    ) -> Result<(), NodeError> {
        // Alternate, so that a stream of peer messages cannot starve clients (or vice versa).
        for _ in 0..INPUTS_PER_TURN_MAX / 2 {
            let mut idle = true;
            if let Ok((from, msg)) = peers.try_recv() {
                self.on_peer(from, msg)?;
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
        let Some(trace) = &mut self.trace else { return };
        let digest = self.env.digest.as_mut().map_or(0, Digest::finish);
        let core = self.driver.core();
        trace.push(&TraceRecord::Start {
            incarnation: trace.incarnation(),
            config: core.config().clone(),
            durable: core.durable().clone(),
            digest,
        });
    }

    /// Records a handled input (when tracing) and stops on a violation.
    fn after_input(&mut self, input: Option<TraceInput<S::Command>>) -> Result<(), NodeError> {
        if let (Some(trace), Some(input)) = (&mut self.trace, input) {
            let digest = self.env.digest.as_mut().map_or(0, Digest::finish);
            trace.push(&TraceRecord::Input { input, digest });
        }
        if let Some(v) = self.driver.core().violation().cloned() {
            let _ = self.flush_trace();
            return Err(NodeError::Violation(v));
        }
        self.log_role_change();
        Ok(())
    }

    fn on_peer(&mut self, from: NodeId, msg: Message<S::Command>) -> Result<(), NodeError> {
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

    fn on_client(&mut self, input: Input<S>) -> Result<(), NodeError> {
        let Input { request, reply } = input;
        match request {
            Request::Status { id } => {
                let _ = reply.try_send(Reply::Status {
                    id,
                    status: self.status(),
                });
                Ok(())
            }
            Request::Op { id, op } => self.propose(id, op, reply),
        }
    }

    fn propose(
        &mut self,
        id: u64,
        op: S::Op,
        reply: mpsc::Sender<Reply<S::Output>>,
    ) -> Result<(), NodeError> {
        let core = self.driver.core();
        if !core.is_leader() {
            let leader = self.leader_hint(core.leader_hint());
            let _ = reply.try_send(Reply::Op {
                id,
                result: OpResult::NotLeader { leader },
            });
            return Ok(());
        }
        if self.waiters.len() >= self.opts.waiters_max {
            let _ = reply.try_send(Reply::Op {
                id,
                result: OpResult::Busy,
            });
            return Ok(());
        }
        let command = self.service.command(op);
        let record = self
            .trace
            .is_some()
            .then(|| TraceInput::Propose(command.clone()));
        let result = self
            .driver
            .input(&mut self.env, |raft| raft.propose(command));
        if let Some(d) = &mut self.env.digest {
            let r = result.map_err(|nl| (nl.leader_hint, nl.term));
            d.item(Item::Result, &r);
        }
        match result {
            Ok((index, term)) => {
                self.waiters.insert(index, Waiter { term, id, reply });
            }
            Err(nl) => {
                let leader = self.leader_hint(nl.leader_hint);
                let _ = reply.try_send(Reply::Op {
                    id,
                    result: OpResult::NotLeader { leader },
                });
            }
        }
        self.after_input(record)
    }

    fn leader_hint(&self, leader: Option<NodeId>) -> Option<(NodeId, String)> {
        let id = leader?;
        Some((id, self.opts.members.get(&id)?.to_string()))
    }

    // ---- end of a turn: trace, commit, release --------------------------------------------

    fn end_turn(&mut self) -> Result<(), NodeError> {
        self.flush_trace()?;
        self.submit();
        self.release()?;
        if self.maybe_snapshot()? {
            self.flush_trace()?;
            self.submit();
        }
        self.fail_waiters_if_deposed();
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
            } => {
                self.storage = stats;
                self.log_bytes = log_bytes;
                self.on_durable_ticket(ticket);
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
            trace.push::<S::Command>(&TraceRecord::Durable { ops: self.durable });
        }
        if self.snapshot_until.is_some_and(|w| self.durable >= w) {
            self.snapshot_until = None;
        }
    }

    /// Releases every output whose writes are durable, in order.
    fn release(&mut self) -> Result<(), NodeError> {
        while let Some((writes, _)) = self.env.outputs.front() {
            if *writes > self.durable {
                break;
            }
            let (_, output) = self.env.outputs.pop_front().expect("front exists");
            match output {
                Output::Send(to, msg) => {
                    if let Some(q) = self.peers.get(&to) {
                        q.push(msg);
                    }
                }
                Output::Apply(apply) => self.on_apply(apply)?,
            }
        }
        Ok(())
    }

    fn on_apply(&mut self, apply: Apply<S::Command>) -> Result<(), NodeError> {
        match apply {
            Apply::Entry {
                index,
                term,
                command,
            } => {
                let output = self.service.apply(index, &command);
                self.service_applied = index;
                if let Some(w) = self.waiters.remove(&index) {
                    let result = if w.term == term {
                        self.acked_ops += 1;
                        OpResult::Ok(output)
                    } else {
                        OpResult::NotApplied
                    };
                    let _ = w.reply.try_send(Reply::Op { id: w.id, result });
                }
            }
            Apply::Snapshot(s) => {
                self.service.restore(&s.data).map_err(|e| {
                    NodeError::Service(format!(
                        "snapshot at {} does not restore: {e}",
                        s.meta.index.0
                    ))
                })?;
                self.service_applied = s.meta.index;
                tracing::info!(node = %self.opts.id, index = s.meta.index.0, "snapshot installed");
                let covered: Vec<LogIndex> = self
                    .waiters
                    .range(..=s.meta.index)
                    .map(|(&i, _)| i)
                    .collect();
                for index in covered {
                    let w = self.waiters.remove(&index).expect("listed");
                    let result = OpResult::Unknown;
                    let _ = w.reply.try_send(Reply::Op { id: w.id, result });
                }
            }
        }
        Ok(())
    }

    /// Snapshots when the log has grown past the threshold. Returns true if it did.
    fn maybe_snapshot(&mut self) -> Result<bool, NodeError> {
        let threshold = self.opts.snapshot_log_bytes;
        let base = self.driver.core().log().base().index;
        if threshold == 0
            || self.log_bytes < threshold
            || self.snapshot_until.is_some()
            || self.service_applied <= base
        {
            return Ok(false);
        }
        let index = self.service_applied;
        let data: Arc<[u8]> = Arc::from(self.service.snapshot());
        let record = self.trace.is_some().then(|| TraceInput::Snapshot {
            index,
            data: data.clone(),
        });
        let taken = self
            .driver
            .input(&mut self.env, |raft| raft.snapshot(index, data));
        if let Some(d) = &mut self.env.digest {
            d.item(Item::Result, &taken);
        }
        self.after_input(record)?;
        if taken {
            self.snapshot_until = Some(self.env.written);
            tracing::info!(node = %self.opts.id, index = index.0, log_bytes = self.log_bytes, "snapshot taken");
        }
        Ok(taken)
    }

    /// A node that no longer leads cannot tell whether its waiting clients' entries will
    /// commit (another leader may commit them, or overwrite them): it tells them so.
    fn fail_waiters_if_deposed(&mut self) {
        let core = self.driver.core();
        if self.waiters.is_empty() || core.is_leader() && self.waiters_current(core.term()) {
            return;
        }
        let term = core.term();
        let leading = core.is_leader();
        let stale: Vec<LogIndex> = self
            .waiters
            .iter()
            .filter(|(_, w)| !leading || w.term < term)
            .map(|(&i, _)| i)
            .collect();
        for index in stale {
            let w = self.waiters.remove(&index).expect("listed");
            let _ = w.reply.try_send(Reply::Op {
                id: w.id,
                result: OpResult::Unknown,
            });
        }
    }

    fn waiters_current(&self, term: Term) -> bool {
        self.waiters.values().next().is_none_or(|w| w.term == term)
    }

    fn log_role_change(&mut self) {
        let core = self.driver.core();
        let now = (core.role_kind(), core.term());
        if now == self.seen {
            return;
        }
        let id = self.opts.id;
        match now.0 {
            RoleKind::Candidate => tracing::info!(node = %id, term = now.1.0, "election started"),
            RoleKind::Leader => tracing::info!(node = %id, term = now.1.0, "became leader"),
            RoleKind::Follower if now.1 != self.seen.1 || self.seen.0 != RoleKind::Follower => {
                tracing::info!(node = %id, term = now.1.0, leader = ?core.leader_hint(), "follower")
            }
            RoleKind::Follower => {}
        }
        self.seen = now;
    }

    fn status(&self) -> NodeStatus {
        let core = self.driver.core();
        let role = match core.role_kind() {
            RoleKind::Follower => "follower",
            RoleKind::Candidate => "candidate",
            RoleKind::Leader => "leader",
        };
        let m = &self.metrics;
        NodeStatus {
            id: self.opts.id,
            role: role.into(),
            term: core.term().0,
            leader: core
                .leader_hint()
                .or(core.is_leader().then_some(self.opts.id)),
            commit: core.commit_index().0,
            applied: self.service_applied.0,
            snapshot_index: core.log().base().index.0,
            last_index: core.log().last_index().0,
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

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
