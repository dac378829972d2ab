//! # The KV dedup model: exactly-once over an abstract atomic log
//!
//! This model checks the KV service's own logic — the clerk, the server's request handling,
//! the rsm's "answer only from your own entry" rule, the dedup table and its snapshots — with
//! consensus replaced by its specification: one **atomic log**. The servers and clerks are the
//! real cores (`KvServer`, `Clerk`); only Raft is abstracted, by [`LogView`], an
//! implementation of the rsm's `Engine` trait whose state the model moves.
//!
//! ## What is modelled
//!
//! * **Clerks** run scripts of operations (2–3 clerks). Each operation is invoked on the clerk
//!   core, which sends the first request; its `Retry` timer may fire at any time and resends.
//! * **The network** carries requests and replies; it is a set of envelopes from which any
//!   may be delivered any number of times, in any order, or never (duplication, reordering
//!   and loss; with `lossy`, also explicit drops, which cannot change a safety verdict since
//!   no property looks at the network).
//! * **The log** is one global sequence of `(term, entry)` with a commit point and a term.
//!   `Elect(s)` starts a new term led by `s`; it may drop the uncommitted suffix (a new Raft
//!   leader that lacked those entries) or keep it. Only the current term's leader appends;
//!   proposals of a server whose view is stale never enter the log (in Raft they would never
//!   commit). Other servers learn the new term only by `Learn(s)`, so a deposed leader can
//!   keep believing it leads. `Commit` commits the next entry; `Apply(s)` has server `s`
//!   apply the next committed entry, each server at its own pace.
//! * **Snapshots and restarts.** The rsm snapshots when its view's state size (entries
//!   applied since the last snapshot) exceeds `max_raft_state`; `Restart(s)` rebuilds a
//!   server from its snapshot and term alone (its requests in progress are lost) and it
//!   re-applies committed entries from there.
//!
//! ## Properties
//!
//! `always`: KV-1 Linearizable (the history type of [`crate::kv_common`]), KV-2 At-Most-Once
//! (a ledger of where each write executed), KV-3 Snapshot Faithful (the rsm's check:
//! the dedup state survives snapshot and restore) and KV-4 Replica Agreement. `sometimes`: a
//! retried operation answered from the dedup table; a leader change while an operation is
//! outstanding; a server restored from a snapshot that holds sessions; every operation
//! completed.

use crate::kv_common::{
    CLERK_BASE, ClerkSlot, ClerkStep, Envelope, Ghost, History, KvProperty, default_scripts,
    describe_client_msg, describe_op, describe_reply, drain_clerk, invoke, linearizable,
    new_history, put, to_properties,
};
use aver_core::kvraft::invariants::{Ledger, replica_agreement};
use aver_core::kvraft::{
    ClerkTimer, ClientMsg, KvBugs, KvConfig, KvEntry, KvEvent, KvMsg, KvServer, VersionedOp,
    VersionedStore,
};
use aver_core::raft::{
    Apply, LogIndex, NotLeader, ReadId, ReadState, Snapshot, SnapshotMeta, Term,
};
use aver_core::rsm::{Engine, ReadMode, RsmEntry};
use aver_core::{NodeId, Ready, Violation};
use stateright::{Expectation, Model, Property};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;

/// What the log carries.
pub type Entry = KvEntry<VersionedStore>;
/// A server of this model.
pub type DedupServer = KvServer<VersionedStore, LogView>;
type CMsg = ClientMsg<VersionedOp, aver_core::kvraft::VersionedReply>;

// ---- the abstract engine ---------------------------------------------------------------------

/// One server's view of the atomic log: the rsm's engine in this model. The model moves it
/// (elections, learning a term, applying committed entries); the rsm proposes and snapshots
/// through it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LogView {
    term: Term,
    leader: bool,
    /// The leader's end of log (where its next proposal goes, minus one).
    last: LogIndex,
    /// Last committed entry handed to the rsm.
    applied: LogIndex,
    /// The latest snapshot (persisted: it survives a restart, as does `term`).
    snapshot: Option<Snapshot>,
    /// Proposals not yet taken by the model: `(index, term, entry)`.
    proposed: Vec<(LogIndex, Term, Entry)>,
    /// Applies not yet drained by the rsm.
    apply: Vec<Apply<Entry>>,
}

impl LogView {
    fn new() -> LogView {
        LogView {
            term: Term(0),
            leader: false,
            last: LogIndex(0),
            applied: LogIndex(0),
            snapshot: None,
            proposed: Vec::new(),
            apply: Vec::new(),
        }
    }

    /// What a restart keeps: the term and the snapshot (the log itself is the global one).
    fn restart(&self) -> LogView {
        let mut view = LogView::new();
        view.term = self.term;
        if let Some(s) = &self.snapshot {
            view.applied = s.meta.index;
            view.snapshot = Some(s.clone());
            view.apply.push(Apply::Snapshot(s.clone()));
        }
        view
    }

    fn deliver(&mut self, index: LogIndex, term: Term, command: Entry) {
        assert_eq!(index, self.applied.next(), "the model applies in order");
        self.applied = index;
        self.apply.push(Apply::Entry {
            index,
            term,
            command,
        });
    }

    fn learn(&mut self, term: Term) {
        self.term = term;
        self.leader = false;
    }

    fn elect(&mut self, term: Term, last: LogIndex) {
        self.term = term;
        self.leader = true;
        self.last = last;
    }

    fn take_proposals(&mut self) -> Vec<(LogIndex, Term, Entry)> {
        std::mem::take(&mut self.proposed)
    }

    /// Index of the last entry this server applied.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }
}

impl Engine<Entry> for LogView {
    type Persist = Infallible;
    type Msg = Infallible;
    type Timer = Infallible;

    fn on_message(&mut self, _: NodeId, msg: Infallible) {
        match msg {}
    }
    fn on_timeout(&mut self, timer: Infallible) {
        match timer {}
    }
    fn propose(&mut self, command: Entry) -> Result<(LogIndex, Term), NotLeader> {
        if !self.leader {
            return Err(NotLeader {
                leader_hint: None,
                term: self.term,
            });
        }
        self.last = self.last.next();
        self.proposed.push((self.last, self.term, command));
        Ok((self.last, self.term))
    }
    fn read_index(&mut self, _: ReadId) -> Result<(), NotLeader> {
        // This model reads through the log (ReadMode::Log); ReadIndex needs Raft's quorum
        // rounds and is checked by the composed model.
        Err(NotLeader {
            leader_hint: None,
            term: self.term,
        })
    }
    fn snapshot(&mut self, index: LogIndex, data: Arc<[u8]>) -> bool {
        let base = self.snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index);
        if index <= base || index > self.applied {
            return false;
        }
        let meta = SnapshotMeta {
            index,
            term: Term(0),
        };
        self.snapshot = Some(Snapshot { meta, data });
        true
    }
    fn take_ready(&mut self) -> Ready<Infallible, Infallible, Apply<Entry>, Infallible> {
        Ready {
            apply: std::mem::take(&mut self.apply),
            ..Ready::default()
        }
    }
    fn take_read_states(&mut self) -> Vec<ReadState> {
        Vec::new()
    }
    fn term(&self) -> Term {
        self.term
    }
    fn is_leader(&self) -> bool {
        self.leader
    }
    fn leader_hint(&self) -> Option<NodeId> {
        None
    }
    /// Entries applied since the last snapshot stand for the log's bytes.
    fn state_size(&self) -> usize {
        let base = self.snapshot.as_ref().map_or(0, |s| s.meta.index.0);
        (self.applied.0 - base) as usize
    }
    /// Nothing to track: the size above is a subtraction, not a walk.
    type Size = ();
    fn measure(&self) {}
    fn track(_: &mut (), op: &Infallible) {
        match *op {}
    }
    fn tracked_size(&self, _: &()) -> usize {
        self.state_size()
    }
    fn violation(&self) -> Option<&Violation> {
        None
    }
}

// ---- configuration ---------------------------------------------------------------------------

/// The bounds and switches of the KV dedup model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvDedupCfg {
    /// Servers.
    pub servers: usize,
    /// One script of operations per clerk.
    pub scripts: Vec<Vec<VersionedOp>>,
    /// Terms (elections) at most.
    pub max_term: u64,
    /// States where the log, or a leader's view of it, is longer are outside the model
    /// (every retry that reaches a leader is proposed again, so the log is otherwise
    /// unbounded).
    pub max_log: u64,
    /// Explicit message drops (besides never delivering).
    pub lossy: bool,
    /// Snapshot when more than this many entries were applied since the last one.
    pub max_raft_state: Option<usize>,
    /// Restarts (from a snapshot) at most, over the whole run.
    pub max_restarts: u8,
    /// Seeded service bugs.
    pub bugs: KvBugs,
    /// Only the properties that state what a user loses (KV-1, KV-2), for seeded bugs: a bug
    /// must be caught by its consequence.
    pub consequences_only: bool,
}

impl KvDedupCfg {
    /// The CI configuration: 2 servers, one clerk that creates `k` and then overwrites it
    /// (a duplicated or repeated write shows in its own replies: the repeat answers
    /// ErrVersion), n0 leading term 1 at the start and one leader change (terms ≤ 2), logs ≤
    /// 3 entries (room for one re-proposed retry), a snapshot after every applied entry, one
    /// restart, a duplicating network. About 240k states.
    pub fn ci() -> KvDedupCfg {
        KvDedupCfg {
            servers: 2,
            scripts: vec![vec![put("k", "a", 0), put("k", "b", 1)]],
            max_term: 2,
            max_log: 3,
            lossy: false,
            max_raft_state: Some(0),
            max_restarts: 1,
            bugs: KvBugs::NONE,
            consequences_only: false,
        }
    }

    /// Deeper bounds for random walks and seeded bugs: 3 servers, two clerks (a writer and a
    /// reader, [`default_scripts`]), terms ≤ 3, logs ≤ 6, a lossy network and two restarts.
    pub fn deep() -> KvDedupCfg {
        KvDedupCfg {
            servers: 3,
            scripts: default_scripts(),
            max_term: 3,
            max_log: 6,
            lossy: true,
            max_restarts: 2,
            ..KvDedupCfg::ci()
        }
    }

    /// The two-clerk CI configuration: clerk 0 creates `k` while clerk 1 reads it, so KV-1
    /// judges operations of different clerks that overlap in time; 2 servers, one leader
    /// change, logs ≤ 2 entries (one re-proposed retry fits when the other operation has
    /// not entered the log), a snapshot after every applied entry and one restart, on the
    /// duplicating network (which loses by never delivering: explicit drops add states but
    /// no verdict). About 806k states.
    pub fn ci_two_clerks() -> KvDedupCfg {
        KvDedupCfg {
            scripts: vec![
                vec![put("k", "a", 0)],
                vec![VersionedOp::Get { key: "k".into() }],
            ],
            max_log: 2,
            ..KvDedupCfg::ci()
        }
    }

    /// Every configuration `aver check` runs, by name.
    pub fn ci_all() -> Vec<(&'static str, KvDedupCfg)> {
        vec![
            ("ci", KvDedupCfg::ci()),
            ("ci_two_clerks", KvDedupCfg::ci_two_clerks()),
        ]
    }

    /// One line: the bounds and switches.
    pub fn describe(&self) -> String {
        let scripts: Vec<String> = self
            .scripts
            .iter()
            .map(|s| s.iter().map(describe_op).collect::<Vec<_>>().join(";"))
            .collect();
        format!(
            "servers={} clerks=[{}] max_term={} max_log={} lossy={} max_raft_state={} \
             restarts≤{}{}",
            self.servers,
            scripts.join(" | "),
            self.max_term,
            self.max_log,
            self.lossy,
            self.max_raft_state.map_or("none".into(), |m| m.to_string()),
            self.max_restarts,
            if self.bugs.is_empty() {
                String::new()
            } else {
                format!(" bugs={:?}", self.bugs)
            }
        )
    }

    /// False when these bounds make the `sometimes` property `name` unreachable by
    /// construction (so not finding it is no failure).
    pub fn can_reach(&self, name: &str) -> bool {
        match name {
            "leader change mid-operation" => self.max_term >= 2,
            "restored sessions from snapshot" => {
                self.max_restarts > 0 && self.max_raft_state.is_some()
            }
            _ => true,
        }
    }

    /// The server configuration.
    pub fn kv_config(&self) -> KvConfig {
        KvConfig {
            max_raft_state: self.max_raft_state,
            reads: ReadMode::Log,
            bugs: self.bugs,
            step_checks: !self.consequences_only,
            ..KvConfig::default()
        }
    }

    /// Builds the model.
    pub fn into_model(self) -> KvDedupModel {
        assert!((1..=5).contains(&self.servers), "1..=5 servers");
        assert!(!self.scripts.is_empty(), "at least one clerk");
        KvDedupModel { cfg: self }
    }
}

// ---- state and actions -----------------------------------------------------------------------

/// One state of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DedupState {
    /// The servers.
    pub servers: Vec<DedupServer>,
    /// The clerks.
    pub clerks: Vec<ClerkSlot>,
    /// Messages in flight.
    pub network: BTreeSet<Envelope<CMsg>>,
    /// The atomic log.
    pub log: Vec<(Term, Entry)>,
    /// Entries `log[..commit]` are committed.
    pub commit: usize,
    /// The current term.
    pub term: Term,
    /// The leader of the current term.
    pub leader: Option<usize>,
    /// Restarts so far.
    pub restarts: u8,
    /// The clerks' history.
    pub history: History,
    /// Where each write executed (KV-2).
    pub ledger: Ledger,
    /// Ghost facts.
    pub ghost: Ghost,
}

/// One action of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DedupAction {
    /// Deliver a message (it stays in the network: it may be delivered again).
    Deliver(Envelope<CMsg>),
    /// Lose a message for good.
    Drop(Envelope<CMsg>),
    /// Clerk `c` invokes its next operation.
    Invoke(usize),
    /// Clerk `c`'s retry timer fires.
    Retry(usize),
    /// A new term begins, led by `server`; `keep_tail`: the uncommitted entries survive.
    Elect {
        /// The new leader.
        server: usize,
        /// Whether the uncommitted suffix survives.
        keep_tail: bool,
    },
    /// Server `s` learns the current term (a heartbeat without entries).
    Learn(usize),
    /// The next entry commits, and the leader applies it (as Raft's leader does in the same
    /// step).
    Commit,
    /// Server `s` (not the leader) hears from the current leader: it learns the term and
    /// applies its next committed entry.
    Apply(usize),
    /// Server `s` restarts from its snapshot.
    Restart(usize),
}

/// The model.
#[derive(Clone)]
pub struct KvDedupModel {
    /// Its configuration.
    pub cfg: KvDedupCfg,
}

impl KvDedupModel {
    fn server_node(s: usize) -> NodeId {
        NodeId(s as u32)
    }

    fn clerk_of(id: NodeId) -> Option<usize> {
        id.0.checked_sub(CLERK_BASE).map(|c| c as usize)
    }

    /// Runs `f` on server `s` and carries out its outputs.
    fn server_step(&self, st: &mut DedupState, s: usize, f: impl FnOnce(&mut DedupServer)) {
        let server = &mut st.servers[s];
        f(server);
        let ready = server.take_ready();
        let proposals = server.engine_input(LogView::take_proposals);
        let after = server.take_ready();
        debug_assert!(after.is_empty(), "taking proposals has no outputs");
        for (to, msg) in ready.messages {
            let KvMsg::Client(msg) = msg;
            st.network.insert(Envelope {
                src: Self::server_node(s),
                dst: to,
                msg,
            });
        }
        for event in ready.apply {
            self.on_event(st, event);
        }
        for (index, term, entry) in proposals {
            let current = term == st.term && st.leader == Some(s);
            if current && index.0 == st.log.len() as u64 + 1 {
                st.log.push((term, entry));
            }
        }
    }

    fn on_event(&self, st: &mut DedupState, event: KvEvent) {
        st.ghost.on_event(&mut st.ledger, event);
    }

    fn clerk_step(&self, st: &mut DedupState, c: usize, step: ClerkStep) {
        let _ = step.answer;
        for (to, msg) in step.sent {
            st.network.insert(Envelope {
                src: NodeId(CLERK_BASE + c as u32),
                dst: to,
                msg,
            });
        }
        let _ = self;
    }

    fn deliver(&self, st: &mut DedupState, env: Envelope<CMsg>) {
        match Self::clerk_of(env.dst) {
            Some(c) => {
                let slot = &mut st.clerks[c];
                slot.clerk.on_message(env.src, env.msg);
                let ready = slot.clerk.take_ready();
                let step = drain_clerk(slot, c, &mut st.history, ready);
                self.clerk_step(st, c, step);
            }
            None => {
                let s = env.dst.0 as usize;
                self.server_step(st, s, |server| {
                    server.on_message(env.src, KvMsg::Client(env.msg))
                });
            }
        }
    }

    fn elect(&self, st: &mut DedupState, s: usize, keep_tail: bool) {
        if !keep_tail {
            st.log.truncate(st.commit);
        }
        st.term = Term(st.term.0 + 1);
        st.leader = Some(s);
        if st.clerks.iter().any(|c| c.clerk.outstanding().is_some()) {
            st.ghost.leader_change_mid_op = true;
        }
        let (term, last) = (st.term, LogIndex(st.log.len() as u64));
        self.server_step(st, s, |server| {
            server.engine_input(|v| v.elect(term, last));
        });
    }

    /// The current term's leader, if its view knows it leads (a restart makes it forget).
    fn leader_view(&self, st: &DedupState) -> Option<usize> {
        st.leader
            .filter(|&l| st.servers[l].engine().leader && st.servers[l].engine().term == st.term)
    }

    /// Server `s` hears from the current leader: learns the term, applies one more committed
    /// entry (the leader applies every entry as it commits).
    fn catch_up(&self, st: &mut DedupState, s: usize) {
        let index = st.servers[s].engine().applied.next();
        let (term, entry) = st.log[index.0 as usize - 1].clone();
        let current = st.term;
        self.server_step(st, s, |server| {
            server.engine_input(|v| {
                if v.term < current {
                    v.learn(current);
                }
                v.deliver(index, term, entry)
            });
        });
    }

    fn restart(&self, st: &mut DedupState, s: usize) {
        st.restarts += 1;
        let view = st.servers[s].engine().restart();
        let server = KvServer::new(self.cfg.kv_config(), view);
        if !server.machine().sessions().is_empty() {
            st.ghost.restored_sessions = true;
        }
        st.servers[s] = server;
        self.server_step(st, s, |_| {});
    }

    /// Removes messages no core can ever act on: replies to a clerk for an older sequence
    /// number than its current one (a clerk's sequence number never decreases, so it ignores
    /// them forever — the clerk core's own rule), and anything to a clerk that has finished
    /// its script.
    fn collect_dead(&self, st: &mut DedupState) {
        let clerks = &st.clerks;
        let scripts = &self.cfg.scripts;
        st.network.retain(|env| {
            let Some(c) = Self::clerk_of(env.dst) else {
                return true;
            };
            let slot = &clerks[c];
            if slot.finished(&scripts[c]) {
                return false;
            }
            match &env.msg {
                ClientMsg::Reply(r) => r.seq >= slot.clerk.seq(),
                ClientMsg::Request(_) => true,
            }
        });
    }
}

impl Model for KvDedupModel {
    type State = DedupState;
    type Action = DedupAction;

    fn init_states(&self) -> Vec<DedupState> {
        let config = self.cfg.kv_config();
        let servers = (0..self.cfg.servers)
            .map(|_| KvServer::new(config.clone(), LogView::new()))
            .collect();
        let clerks = (0..self.cfg.scripts.len())
            .map(|c| ClerkSlot::new(c, self.cfg.servers, self.cfg.bugs))
            .collect();
        let mut st = DedupState {
            servers,
            clerks,
            network: BTreeSet::new(),
            log: Vec::new(),
            commit: 0,
            term: Term(0),
            leader: None,
            restarts: 0,
            history: new_history(),
            ledger: Ledger::new(),
            ghost: Ghost::default(),
        };
        // Start where a cluster is after its first election: n0 leads term 1 and the others
        // know it. Leader changes (up to `max_term`) are the model's to explore.
        self.elect(&mut st, 0, true);
        for s in 1..self.cfg.servers {
            self.server_step(&mut st, s, |server| {
                server.engine_input(|v| v.learn(Term(1)));
            });
        }
        vec![st]
    }

    fn actions(&self, st: &DedupState, actions: &mut Vec<DedupAction>) {
        for env in &st.network {
            actions.push(DedupAction::Deliver(env.clone()));
            if self.cfg.lossy {
                actions.push(DedupAction::Drop(env.clone()));
            }
        }
        for (c, slot) in st.clerks.iter().enumerate() {
            if slot.clerk.outstanding().is_none() && slot.next < self.cfg.scripts[c].len() {
                actions.push(DedupAction::Invoke(c));
            }
            if slot.retry {
                actions.push(DedupAction::Retry(c));
            }
        }
        if st.term.0 < self.cfg.max_term {
            for s in 0..st.servers.len() {
                actions.push(DedupAction::Elect {
                    server: s,
                    keep_tail: true,
                });
                if st.commit < st.log.len() {
                    actions.push(DedupAction::Elect {
                        server: s,
                        keep_tail: false,
                    });
                }
            }
        }
        if st.commit < st.log.len() && self.leader_view(st).is_some() {
            actions.push(DedupAction::Commit);
        }
        for (s, server) in st.servers.iter().enumerate() {
            let view = server.engine();
            if view.term < st.term {
                actions.push(DedupAction::Learn(s));
            }
            if (view.applied.0 as usize) < st.commit && Some(s) != self.leader_view(st) {
                actions.push(DedupAction::Apply(s));
            }
            if st.restarts < self.cfg.max_restarts {
                actions.push(DedupAction::Restart(s));
            }
        }
    }

    fn next_state(&self, last: &DedupState, action: DedupAction) -> Option<DedupState> {
        let mut st = last.clone();
        match action {
            DedupAction::Deliver(env) => self.deliver(&mut st, env),
            DedupAction::Drop(env) => {
                st.network.remove(&env);
            }
            DedupAction::Invoke(c) => {
                let op = self.cfg.scripts[c][st.clerks[c].next].clone();
                let step = invoke(&mut st.clerks[c], c, op, &mut st.history);
                self.clerk_step(&mut st, c, step);
            }
            DedupAction::Retry(c) => {
                let slot = &mut st.clerks[c];
                slot.clerk.on_timeout(ClerkTimer::Retry);
                let ready = slot.clerk.take_ready();
                let step = drain_clerk(slot, c, &mut st.history, ready);
                self.clerk_step(&mut st, c, step);
            }
            DedupAction::Elect { server, keep_tail } => self.elect(&mut st, server, keep_tail),
            DedupAction::Learn(s) => {
                let term = st.term;
                self.server_step(&mut st, s, |server| {
                    server.engine_input(|v| v.learn(term));
                });
            }
            DedupAction::Commit => {
                st.commit += 1;
                let leader = self.leader_view(&st).expect("Commit needs a leader");
                self.catch_up(&mut st, leader);
            }
            DedupAction::Apply(s) => self.catch_up(&mut st, s),
            DedupAction::Restart(s) => self.restart(&mut st, s),
        }
        self.collect_dead(&mut st);
        (st != *last).then_some(st)
    }

    fn format_action(&self, action: &DedupAction) -> String {
        describe_action(action)
    }

    fn within_boundary(&self, st: &DedupState) -> bool {
        st.log.len() as u64 <= self.cfg.max_log
            && st
                .servers
                .iter()
                .all(|s| s.engine().last.0 <= self.cfg.max_log)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        to_properties(PROPERTIES, self.cfg.consequences_only)
    }
}

// ---- properties ------------------------------------------------------------------------------

/// Every property, in the order reported.
pub const PROPERTIES: &[KvProperty<KvDedupModel>] = &[
    KvProperty {
        expectation: Expectation::Always,
        name: "KV-1 Linearizable",
        consequence: true,
        condition: |_, s| linearizable(&s.history),
    },
    KvProperty {
        expectation: Expectation::Always,
        name: "KV-2 At-Most-Once",
        consequence: true,
        condition: |_, s| s.ghost.twice.is_none(),
    },
    KvProperty {
        expectation: Expectation::Always,
        name: "KV-3 Snapshot Faithful",
        consequence: false,
        condition: |_, s| s.servers.iter().all(|v| v.violation().is_none()),
    },
    KvProperty {
        expectation: Expectation::Always,
        name: "KV-4 Replica Agreement",
        consequence: false,
        condition: |_, s| replicas_agree(s),
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "retry answered from dedup table",
        consequence: true,
        condition: |_, s| s.ghost.dedup_answered,
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "leader change mid-operation",
        consequence: true,
        condition: |_, s| s.ghost.leader_change_mid_op,
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "restored sessions from snapshot",
        consequence: true,
        condition: |_, s| s.ghost.restored_sessions,
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "all operations completed",
        consequence: true,
        condition: |m, s| {
            s.clerks
                .iter()
                .enumerate()
                .all(|(c, slot)| slot.finished(&m.cfg.scripts[c]))
        },
    },
];

fn replicas_agree(s: &DedupState) -> bool {
    let servers: Vec<_> = s
        .servers
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("n{i}"), v.rsm().applied_index(), v.machine()))
        .collect();
    replica_agreement(&servers).is_ok()
}

// ---- traces ----------------------------------------------------------------------------------

/// A short text for an action.
pub fn describe_action(action: &DedupAction) -> String {
    match action {
        DedupAction::Deliver(e) => {
            format!(
                "deliver {}→{} {}",
                e.src,
                e.dst,
                describe_client_msg(&e.msg)
            )
        }
        DedupAction::Drop(e) => format!("drop {}→{} {}", e.src, e.dst, describe_client_msg(&e.msg)),
        DedupAction::Invoke(c) => format!("clerk {c} invokes its next operation"),
        DedupAction::Retry(c) => format!("clerk {c} retry timer fires"),
        DedupAction::Elect { server, keep_tail } => format!(
            "new term led by n{server}{}",
            if *keep_tail {
                ""
            } else {
                " (uncommitted entries lost)"
            }
        ),
        DedupAction::Learn(s) => format!("n{s} learns the current term"),
        DedupAction::Commit => "the next entry commits".into(),
        DedupAction::Apply(s) => format!("n{s} applies its next committed entry"),
        DedupAction::Restart(s) => format!("n{s} restarts from its snapshot"),
    }
}

/// A short text for a state: log, servers, clerks.
pub fn describe_state(st: &DedupState) -> String {
    let mut out = String::new();
    let entries: Vec<String> = st
        .log
        .iter()
        .enumerate()
        .map(|(k, (t, e))| {
            let mark = if k < st.commit { "" } else { "?" };
            match e {
                RsmEntry::NoOp => format!("{}:noop{mark}", t.0),
                RsmEntry::Command(c) => {
                    format!("{}:{}{}{}{mark}", t.0, c.client, c.seq, describe_op(&c.op))
                }
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "term={} leader={} log=[{}]",
        st.term.0,
        st.leader.map_or("-".into(), |l| format!("n{l}")),
        entries.join(" ")
    );
    for (i, s) in st.servers.iter().enumerate() {
        let v = s.engine();
        let sessions = s.machine().sessions();
        let _ = writeln!(
            out,
            "  n{i}: term={} leader={} applied={} sessions={} waiting={}{}",
            v.term.0,
            v.leader,
            v.applied.0,
            sessions.len(),
            s.rsm().waiting(),
            s.violation()
                .map_or(String::new(), |v| format!(" VIOLATION {v}"))
        );
    }
    for (c, slot) in st.clerks.iter().enumerate() {
        let _ = writeln!(
            out,
            "  clerk {c}: seq={} outstanding={}",
            slot.clerk.seq().0,
            slot.clerk
                .outstanding()
                .map_or("-".into(), |(_, op)| describe_op(op))
        );
    }
    out
}

/// A counterexample path as readable lines.
pub fn trace(path: &[(DedupState, Option<DedupAction>)]) -> Vec<String> {
    let mut out = Vec::new();
    for (k, (_, action)) in path.iter().enumerate() {
        if let Some(a) = action {
            out.push(format!("{:>3}. {}", k + 1, describe_action(a)));
        }
    }
    if let Some((last, _)) = path.last() {
        out.push("final state:".into());
        out.extend(describe_state(last).lines().map(|l| format!("  {l}")));
        let ops: Vec<String> = last
            .history
            .serialized_history()
            .map(|h| {
                h.iter()
                    .map(|(o, r)| format!("{}→{}", describe_op(o), describe_reply(r)))
                    .collect()
            })
            .unwrap_or_else(|| vec!["not linearizable".into()]);
        out.push(format!("  history: {}", ops.join(", ")));
    }
    out
}
