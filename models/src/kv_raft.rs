//! # Raft and kvraft composed
//!
//! The whole service as it runs: clerks (the clerk core) and servers that are the real
//! composite `KvServer` on the real `Raft`, exchanging Raft messages and client messages on
//! one network where any message may be delivered any number of times, in any order, or never.
//! Every timer may fire at any moment. Nothing is abstracted: this is what the simulator and
//! the runtime run, explored exhaustively on the smallest configuration where a leader change
//! happens under a client's retry.
//!
//! ## Bounds
//!
//! * **Where it starts, who campaigns.** The model starts after the first election, n0
//!   leading term 1 and known to all (reached by running the cores: n0 times out and every
//!   message is delivered in order). Only the servers in `campaigners` have an election timer
//!   that fires (by default n1 of three servers): enough for the leader to be deposed while
//!   the third server votes, and it keeps the state space small. The others still vote,
//!   replicate and apply.
//! * **Client messages** are delivered at most once each (a retry sends a new copy); Raft
//!   messages may be delivered any number of times. Duplicated client requests are the
//!   subject of the KV dedup model.
//! * **Terms** ≤ `max_term`, **logs** ≤ `max_log` entries (with ReadIndex each new
//!   leader's no-op counts) and ReadIndex **rounds** per leader ≤ `max_read_rounds`; states
//!   beyond are outside the model. With `max_retries`, the clerks' retry timer fires at
//!   most that many times in all (a `WrongLeader` reply still moves a clerk on at once).
//! * **Dead messages** are collected, by the cores' own predicates: Raft's
//!   `ignores_forever` for messages between servers, and a clerk's sequence number for
//!   replies to it (see [`crate::kv_dedup`]).
//!
//! ## Properties
//!
//! KV-1…KV-4 as in [`crate::kv_dedup`], plus every Raft invariant of the catalogue
//! (`raft::invariants::check_cluster`, and the servers' own step checks). `sometimes`: a leader
//! change while an operation is outstanding; a retry answered from the dedup table; a Get
//! answered through ReadIndex; every operation completed.

use crate::kv_common::{
    CLERK_BASE, ClerkSlot, ClerkStep, Envelope, Ghost, History, KvProperty, default_scripts,
    describe_client_msg, describe_op, drain_clerk, invoke, linearizable, new_history,
    to_properties,
};
use crate::raft::describe_msg as describe_raft_msg;
use aver_core::kvraft::invariants::{Ledger, replica_agreement};
use aver_core::kvraft::{
    ClerkTimer, ClientMsg, KvBug, KvBugs, KvConfig, KvEntry, KvMsg, RaftKvServer, VersionedOp,
    VersionedReply, VersionedStore,
};
use aver_core::raft::{self, Durable, Message, Timer, invariants};
use aver_core::rsm::{ReadMode, RsmEntry};
use aver_core::{NodeId, TimerCmd};
use stateright::{Expectation, Model, Property};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// What the log carries.
pub type Entry = KvEntry<VersionedStore>;
/// A server of this model.
pub type Server = RaftKvServer<VersionedStore>;
/// Every message a server handles.
pub type Msg = KvMsg<Message<Entry>, VersionedOp, VersionedReply>;
type CMsg = ClientMsg<VersionedOp, VersionedReply>;

/// The bounds and switches of the composed model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvRaftCfg {
    /// Servers (3 for a leader change with a quorum left).
    pub servers: usize,
    /// The servers whose election timer fires.
    pub campaigners: Vec<usize>,
    /// One script per clerk.
    pub scripts: Vec<Vec<VersionedOp>>,
    /// Largest term.
    pub max_term: u64,
    /// Longest log.
    pub max_log: u64,
    /// How Gets are served.
    pub reads: ReadMode,
    /// ReadIndex rounds a leader may start in its term (every Get that reaches a leader
    /// starts one, so a retrying reader makes them unbounded).
    pub max_read_rounds: u64,
    /// Retry timer firings at most, over all clerks (`None`: unbounded). A `WrongLeader`
    /// reply still moves a clerk on at once; this bounds only the timer.
    pub max_retries: Option<u8>,
    /// Whether a leader's `Heartbeat` timer fires (see the module docs).
    pub heartbeats: bool,
    /// Whether one server at a time may be cut off (its messages, both ways, wait until the
    /// partition heals). Adds no behaviour a duplicating network lacks — a message may
    /// always stay undelivered — but lets random walks keep a deposed leader in the dark.
    pub partitions: bool,
    /// Raft messages may be delivered more than once (they stay in the network); otherwise
    /// each send is delivered at most once.
    pub duplicating: bool,
    /// Seeded service bugs.
    pub bugs: KvBugs,
    /// Only the properties that state what a user loses (KV-1, KV-2): for seeded bugs.
    pub consequences_only: bool,
}

impl KvRaftCfg {
    /// The CI configuration: 2 servers, n0 leading term 1 at the start and n1 campaigning
    /// (one leader change: terms ≤ 2; with two servers every vote and every commit needs
    /// both), one clerk that writes `k` and then reads it through ReadIndex (one round per
    /// leader), retry timer firings ≤ 2, logs ≤ 3 (a no-op per term and the write), each Raft
    /// message delivered at most once and no heartbeat timer (the ReadIndex round and
    /// replication send their own AppendEntries). About 77k states.
    pub fn ci() -> KvRaftCfg {
        KvRaftCfg {
            servers: 2,
            campaigners: vec![1],
            scripts: vec![vec![
                crate::kv_common::put("k", "a", 0),
                VersionedOp::Get { key: "k".into() },
            ]],
            max_term: 2,
            max_log: 3,
            reads: ReadMode::ReadIndex,
            max_read_rounds: 1,
            max_retries: Some(2),
            duplicating: false,
            heartbeats: false,
            partitions: false,
            bugs: KvBugs::NONE,
            consequences_only: false,
        }
    }

    /// Deeper bounds for random walks and seeded bugs: two clerks (a writer and a reader,
    /// [`default_scripts`]), 3 servers with n1 and n2 campaigning, terms ≤ 3, logs ≤ 5, two ReadIndex
    /// rounds per leader, heartbeats, a duplicating network and partitions.
    pub fn deep() -> KvRaftCfg {
        KvRaftCfg {
            servers: 3,
            scripts: default_scripts(),
            campaigners: vec![1, 2],
            max_term: 3,
            max_log: 5,
            max_read_rounds: 2,
            max_retries: None,
            duplicating: true,
            heartbeats: true,
            partitions: true,
            ..KvRaftCfg::ci()
        }
    }

    /// The configuration a seeded-bug hunt walks: [`KvRaftCfg::deep`] with `bugs` and reads
    /// through the log; for a bug in ReadIndex, a narrower one where walks meet a deposed
    /// leader more often: 3 servers, a writer and a reader of one operation each, only n1
    /// campaigning (terms ≤ 2), no heartbeat timer, partitions.
    pub fn hunt(bugs: KvBugs) -> KvRaftCfg {
        let read_index = KvBug::ALL
            .into_iter()
            .any(|b| b.is_read_index() && bugs.has(b));
        let base = if read_index {
            KvRaftCfg {
                scripts: vec![
                    vec![crate::kv_common::put("k", "a", 0)],
                    vec![VersionedOp::Get { key: "k".into() }],
                ],
                servers: 3,
                max_read_rounds: 2,
                max_retries: None,
                partitions: true,
                ..KvRaftCfg::ci()
            }
        } else {
            KvRaftCfg {
                reads: ReadMode::Log,
                ..KvRaftCfg::deep()
            }
        };
        KvRaftCfg {
            bugs,
            consequences_only: true,
            ..base
        }
    }

    /// Every configuration `aver check` runs, by name.
    pub fn ci_all() -> Vec<(&'static str, KvRaftCfg)> {
        vec![("ci", KvRaftCfg::ci())]
    }

    /// One line: the bounds and switches.
    pub fn describe(&self) -> String {
        let scripts: Vec<String> = self
            .scripts
            .iter()
            .map(|s| s.iter().map(describe_op).collect::<Vec<_>>().join(";"))
            .collect();
        format!(
            "servers={} campaigners={:?} clerks=[{}] max_term={} max_log={} reads={:?} \
             retries≤{} heartbeats={} partitions={} duplicating={}{}",
            self.servers,
            self.campaigners,
            scripts.join(" | "),
            self.max_term,
            self.max_log,
            self.reads,
            self.max_retries.map_or("∞".into(), |m| m.to_string()),
            self.heartbeats,
            self.partitions,
            self.duplicating,
            if self.bugs.is_empty() {
                String::new()
            } else {
                format!(" bugs={:?}", self.bugs)
            }
        )
    }

    /// False when these bounds make the `sometimes` property `name` unreachable by
    /// construction.
    pub fn can_reach(&self, name: &str) -> bool {
        match name {
            "leader change mid-operation" => self.max_term >= 2 && !self.campaigners.is_empty(),
            "Get answered through ReadIndex" => self.reads == ReadMode::ReadIndex,
            _ => true,
        }
    }

    /// The servers' configuration.
    pub fn kv_config(&self) -> KvConfig {
        KvConfig {
            reads: self.reads,
            bugs: self.bugs,
            step_checks: !self.consequences_only,
            ..KvConfig::default()
        }
    }

    fn voters(&self) -> Vec<NodeId> {
        (0..self.servers as u32).map(NodeId).collect()
    }

    /// Builds the model.
    pub fn into_model(self) -> KvRaftModel {
        assert!((1..=5).contains(&self.servers), "1..=5 servers");
        KvRaftModel { cfg: self }
    }
}

/// A server and its set timers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerSlot {
    /// The core.
    pub server: Server,
    /// Timers currently set.
    pub timers: BTreeSet<Timer>,
}

/// One state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvRaftState {
    /// The servers.
    pub servers: Vec<ServerSlot>,
    /// The clerks.
    pub clerks: Vec<ClerkSlot>,
    /// Raft messages in flight: any may be delivered any number of times (it stays).
    pub network: BTreeSet<Envelope<Message<Entry>>>,
    /// Client messages in flight: each is delivered at most once (delivery removes it; a
    /// retry sends it again). Duplicated client messages are the KV dedup model's subject.
    pub client_network: BTreeSet<Envelope<CMsg>>,
    /// The clerks' history.
    pub history: History,
    /// Where each write executed (KV-2).
    pub ledger: Ledger,
    /// Ghost facts.
    pub ghost: Ghost,
    /// A Get was answered by ReadIndex.
    pub read_index_served: bool,
    /// The server cut off from everyone, if any.
    pub cut: Option<usize>,
    /// Retry timer firings so far (counted only under `max_retries`).
    pub retries: u8,
}

/// One action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvRaftAction {
    /// Deliver a Raft message (it stays: it may arrive again).
    Deliver(Envelope<Message<Entry>>),
    /// Deliver a client message (it is consumed).
    DeliverClient(Envelope<CMsg>),
    /// A server's timer fires.
    Timeout(usize, Timer),
    /// Clerk `c` invokes its next operation.
    Invoke(usize),
    /// Clerk `c`'s retry timer fires.
    Retry(usize),
    /// Server `s` is cut off from everyone.
    Cut(usize),
    /// The partition heals.
    Heal,
}

/// The composed model.
#[derive(Clone)]
pub struct KvRaftModel {
    /// Its configuration.
    pub cfg: KvRaftCfg,
}

impl KvRaftModel {
    fn server_step(&self, st: &mut KvRaftState, s: usize, f: impl FnOnce(&mut Server)) {
        let outstanding = st.clerks.iter().any(|c| c.clerk.outstanding().is_some());
        let slot = &mut st.servers[s];
        let was_leader = slot.server.engine().is_leader();
        f(&mut slot.server);
        let raft = slot.server.engine();
        if outstanding && !was_leader && raft.is_leader() && raft.term().0 >= 2 {
            st.ghost.leader_change_mid_op = true;
        }
        let ready = slot.server.take_ready();
        for t in ready.timers {
            match t {
                TimerCmd::Set(t) => slot.timers.insert(t),
                TimerCmd::Cancel(t) => slot.timers.remove(&t),
            };
        }
        let src = NodeId(s as u32);
        for (dst, msg) in ready.messages {
            match msg {
                KvMsg::Peer(msg) => {
                    st.network.insert(Envelope { src, dst, msg });
                }
                KvMsg::Client(msg) => {
                    let read_reply = matches!(
                        &msg,
                        ClientMsg::Reply(r)
                            if matches!(r.result, Ok(VersionedReply::Value { .. } | VersionedReply::NoKey))
                    );
                    if read_reply && self.cfg.reads == ReadMode::ReadIndex {
                        st.read_index_served = true;
                    }
                    st.client_network.insert(Envelope { src, dst, msg });
                }
            }
        }
        for event in ready.apply {
            st.ghost.on_event(&mut st.ledger, event);
        }
    }

    fn clerk_step(&self, st: &mut KvRaftState, c: usize, step: ClerkStep) {
        for (to, msg) in step.sent {
            st.client_network.insert(Envelope {
                src: NodeId(CLERK_BASE + c as u32),
                dst: to,
                msg,
            });
        }
    }

    /// The state a cluster is in after its first election: n0 times out, every message is
    /// delivered once in order until none is left, and n0's first heartbeat round (which
    /// commits its no-op, with ReadIndex) reaches everyone. Leader changes from there are the
    /// model's to explore (only `campaigners` time out).
    fn first_election(&self, st: &mut KvRaftState) {
        st.servers[0].timers.remove(&Timer::Election);
        self.server_step(st, 0, |server| server.on_timeout(Timer::Election));
        for _round in 0..2 {
            let mut delivered = BTreeSet::new();
            while let Some(env) = st.network.iter().find(|e| !delivered.contains(*e)).cloned() {
                delivered.insert(env.clone());
                let s = env.dst.0 as usize;
                self.server_step(st, s, |server| {
                    server.on_message(env.src, KvMsg::Peer(env.msg))
                });
            }
            st.network.clear();
            self.server_step(st, 0, |server| server.on_timeout(Timer::Heartbeat));
        }
        assert!(st.servers[0].server.engine().is_leader(), "n0 leads term 1");
        self.collect_dead(st);
    }

    fn clerk_of(id: NodeId) -> Option<usize> {
        id.0.checked_sub(CLERK_BASE).map(|c| c as usize)
    }

    fn deliver_client(&self, st: &mut KvRaftState, env: Envelope<CMsg>) {
        st.client_network.remove(&env);
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

    /// Removes messages their receiver ignores forever: between servers by Raft's
    /// `ignores_forever`; to a clerk by its sequence number (or because it is done).
    fn collect_dead(&self, st: &mut KvRaftState) {
        let servers = &st.servers;
        let clerks = &st.clerks;
        let scripts = &self.cfg.scripts;
        st.network.retain(|env| {
            let raft = servers[env.dst.0 as usize].server.engine();
            !raft.ignores_forever(env.src, &env.msg)
        });
        st.client_network
            .retain(|env| match Self::clerk_of(env.dst) {
                Some(c) => {
                    let slot = &clerks[c];
                    !slot.finished(&scripts[c])
                        && match &env.msg {
                            ClientMsg::Reply(r) => r.seq >= slot.clerk.seq(),
                            ClientMsg::Request(_) => true,
                        }
                }
                None => true,
            });
    }
}

impl Model for KvRaftModel {
    type State = KvRaftState;
    type Action = KvRaftAction;

    fn init_states(&self) -> Vec<KvRaftState> {
        let voters = self.cfg.voters();
        let mut st = KvRaftState {
            servers: Vec::new(),
            clerks: (0..self.cfg.scripts.len())
                .map(|c| ClerkSlot::new(c, self.cfg.servers, self.cfg.bugs))
                .collect(),
            network: BTreeSet::new(),
            client_network: BTreeSet::new(),
            history: new_history(),
            ledger: Ledger::new(),
            ghost: Ghost::default(),
            read_index_served: false,
            cut: None,
            retries: 0,
        };
        for &id in &voters {
            let server =
                Server::start(self.cfg.kv_config(), id, voters.clone(), Durable::default());
            st.servers.push(ServerSlot {
                server,
                timers: BTreeSet::new(),
            });
            self.server_step(&mut st, id.0 as usize, |_| {});
        }
        self.first_election(&mut st);
        vec![st]
    }

    fn actions(&self, st: &KvRaftState, actions: &mut Vec<KvRaftAction>) {
        let cut = |id: NodeId| st.cut == Some(id.0 as usize);
        for env in &st.network {
            if !cut(env.src) && !cut(env.dst) {
                actions.push(KvRaftAction::Deliver(env.clone()));
            }
        }
        for env in &st.client_network {
            if !cut(env.src) && !cut(env.dst) {
                actions.push(KvRaftAction::DeliverClient(env.clone()));
            }
        }
        if self.cfg.partitions {
            match st.cut {
                None => actions.extend((0..st.servers.len()).map(KvRaftAction::Cut)),
                Some(_) => actions.push(KvRaftAction::Heal),
            }
        }
        for (s, slot) in st.servers.iter().enumerate() {
            for &t in &slot.timers {
                if t == Timer::Election && !self.cfg.campaigners.contains(&s) {
                    continue;
                }
                if t == Timer::Heartbeat && !self.cfg.heartbeats {
                    continue;
                }
                actions.push(KvRaftAction::Timeout(s, t));
            }
        }
        for (c, slot) in st.clerks.iter().enumerate() {
            if slot.clerk.outstanding().is_none() && slot.next < self.cfg.scripts[c].len() {
                actions.push(KvRaftAction::Invoke(c));
            }
            let budget = self.cfg.max_retries.is_none_or(|m| st.retries < m);
            if slot.retry && budget {
                actions.push(KvRaftAction::Retry(c));
            }
        }
    }

    fn next_state(&self, last: &KvRaftState, action: KvRaftAction) -> Option<KvRaftState> {
        let mut st = last.clone();
        match action {
            KvRaftAction::Deliver(env) => {
                if !self.cfg.duplicating {
                    st.network.remove(&env);
                }
                let s = env.dst.0 as usize;
                self.server_step(&mut st, s, |server| {
                    server.on_message(env.src, KvMsg::Peer(env.msg))
                });
            }
            KvRaftAction::DeliverClient(env) => self.deliver_client(&mut st, env),
            KvRaftAction::Timeout(s, t) => {
                st.servers[s].timers.remove(&t);
                self.server_step(&mut st, s, |server| server.on_timeout(t));
            }
            KvRaftAction::Invoke(c) => {
                let op = self.cfg.scripts[c][st.clerks[c].next].clone();
                let step = invoke(&mut st.clerks[c], c, op, &mut st.history);
                self.clerk_step(&mut st, c, step);
            }
            KvRaftAction::Retry(c) => {
                if self.cfg.max_retries.is_some() {
                    st.retries += 1;
                }
                let slot = &mut st.clerks[c];
                slot.clerk.on_timeout(ClerkTimer::Retry);
                let ready = slot.clerk.take_ready();
                let step = drain_clerk(slot, c, &mut st.history, ready);
                self.clerk_step(&mut st, c, step);
            }
            KvRaftAction::Cut(s) => st.cut = Some(s),
            KvRaftAction::Heal => st.cut = None,
        }
        self.collect_dead(&mut st);
        (st != *last).then_some(st)
    }

    fn format_action(&self, action: &KvRaftAction) -> String {
        describe_action(action)
    }

    fn within_boundary(&self, st: &KvRaftState) -> bool {
        st.servers.iter().all(|s| {
            let raft = s.server.engine();
            let rounds = match raft.role() {
                raft::Role::Leader { reads, .. } => reads.round,
                _ => 0,
            };
            raft.term().0 <= self.cfg.max_term
                && raft.log().last_index().0 <= self.cfg.max_log
                && rounds <= self.cfg.max_read_rounds
        })
    }

    fn properties(&self) -> Vec<Property<Self>> {
        to_properties(PROPERTIES, self.cfg.consequences_only)
    }
}

/// Every property, in the order reported.
pub const PROPERTIES: &[KvProperty<KvRaftModel>] = &[
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
        name: "KV-3 Snapshot Faithful and server checks",
        consequence: false,
        condition: |_, s| s.servers.iter().all(|v| v.server.violation().is_none()),
    },
    KvProperty {
        expectation: Expectation::Always,
        name: "KV-4 Replica Agreement",
        consequence: false,
        condition: |_, s| replicas_agree(s),
    },
    KvProperty {
        expectation: Expectation::Always,
        name: "RAFT-1..10 Raft invariants",
        consequence: false,
        condition: |_, s| {
            let nodes: Vec<_> = s.servers.iter().map(|v| v.server.engine()).collect();
            invariants::check_cluster(&nodes).is_ok()
        },
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "leader change mid-operation",
        consequence: true,
        condition: |_, s| s.ghost.leader_change_mid_op,
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "retry answered from dedup table",
        consequence: true,
        condition: |_, s| s.ghost.dedup_answered,
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "Get answered through ReadIndex",
        consequence: true,
        condition: |_, s| s.read_index_served,
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

fn replicas_agree(s: &KvRaftState) -> bool {
    let servers: Vec<_> = s
        .servers
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (
                format!("n{i}"),
                v.server.rsm().applied_index(),
                v.server.machine(),
            )
        })
        .collect();
    replica_agreement(&servers).is_ok()
}

/// A short text for an action.
pub fn describe_action(action: &KvRaftAction) -> String {
    match action {
        KvRaftAction::Deliver(e) => format!(
            "deliver {}→{} {}",
            e.src,
            e.dst,
            describe_raft_msg(&raft_cmd_view(&e.msg))
        ),
        KvRaftAction::DeliverClient(e) => {
            format!(
                "deliver {}→{} {}",
                e.src,
                e.dst,
                describe_client_msg(&e.msg)
            )
        }
        KvRaftAction::Timeout(s, t) => format!("n{s} timeout {t:?}"),
        KvRaftAction::Invoke(c) => format!("clerk {c} invokes its next operation"),
        KvRaftAction::Retry(c) => format!("clerk {c} retry timer fires"),
        KvRaftAction::Cut(s) => format!("n{s} is cut off"),
        KvRaftAction::Heal => "the partition heals".into(),
    }
}

/// The message with each command replaced by a one-byte tag, for the Raft model's printer:
/// 0 for a no-op, else 1 + the client number.
fn raft_cmd_view(m: &Message<Entry>) -> Message<u8> {
    let tag = |e: &Entry| match e {
        RsmEntry::NoOp => 0u8,
        RsmEntry::Command(c) => 1 + c.client.0 as u8,
    };
    match m {
        Message::AppendEntries(a) => Message::AppendEntries(raft::AppendEntries {
            term: a.term,
            prev_log_index: a.prev_log_index,
            prev_log_term: a.prev_log_term,
            entries: a
                .entries
                .iter()
                .map(|e| raft::Entry {
                    term: e.term,
                    command: tag(&e.command),
                })
                .collect(),
            leader_commit: a.leader_commit,
            read_ctx: a.read_ctx,
        }),
        Message::RequestVote(v) => Message::RequestVote(v.clone()),
        Message::RequestVoteReply(v) => Message::RequestVoteReply(v.clone()),
        Message::AppendEntriesReply(r) => Message::AppendEntriesReply(r.clone()),
        Message::InstallSnapshot(i) => Message::InstallSnapshot(i.clone()),
        Message::InstallSnapshotReply(r) => Message::InstallSnapshotReply(r.clone()),
    }
}

/// A short text for a state.
pub fn describe_state(st: &KvRaftState) -> String {
    let mut out = String::new();
    for (i, slot) in st.servers.iter().enumerate() {
        let r = slot.server.engine();
        let log: Vec<String> = r
            .log()
            .entries()
            .iter()
            .map(|e| match &e.command {
                RsmEntry::NoOp => format!("{}:noop", e.term.0),
                RsmEntry::Command(c) => {
                    format!("{}:{}{}{}", e.term.0, c.client, c.seq, describe_op(&c.op))
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "n{i}: {:?} term={} commit={} applied={} log=[{}] waiting={}{}",
            r.role_kind(),
            r.term().0,
            r.commit_index().0,
            slot.server.rsm().applied_index().0,
            log.join(" "),
            slot.server.rsm().waiting(),
            slot.server
                .violation()
                .map_or(String::new(), |v| format!(" VIOLATION {v}"))
        );
    }
    for (c, slot) in st.clerks.iter().enumerate() {
        let _ = writeln!(
            out,
            "clerk {c}: seq={} outstanding={}",
            slot.clerk.seq().0,
            slot.clerk
                .outstanding()
                .map_or("-".into(), |(_, op)| describe_op(op))
        );
    }
    out
}

/// A counterexample path as readable lines.
pub fn trace(path: &[(KvRaftState, Option<KvRaftAction>)]) -> Vec<String> {
    let mut out = Vec::new();
    for (k, (_, action)) in path.iter().enumerate() {
        if let Some(a) = action {
            out.push(format!("{:>3}. {}", k + 1, describe_action(a)));
        }
    }
    if let Some((last, _)) = path.last() {
        out.push("final state:".into());
        out.extend(describe_state(last).lines().map(|l| format!("  {l}")));
        out.push(format!("  history: {:?}", last.history));
    }
    out
}
