//! # Shard migration, model-checked
//!
//! This model runs aver's shard cores — the controller state machine
//! (`aver_core::shardctrler::ShardCtrler`), the group state machine and server
//! (`aver_core::shardkv::{ShardKv, ShardServer}`) and the clerk (`aver_core::shardkv::Clerk`)
//! — as Stateright actors, and explores every interleaving of their inputs.
//!
//! ## What is modelled
//!
//! * **The controller** is one actor holding two replicas of the controller state machine
//!   that apply the same administrative script (joins, leaves, moves), one operation per
//!   `Admin` timeout. A `Query` is answered by *every* replica (a Raft-replicated controller
//!   answers from whichever replica leads at the time): identical answers are one message on
//!   the duplicating network, so this costs nothing unless the replicas disagree — which is
//!   exactly what the seeded bug `rebalance-differs` makes them do. Each script operation is
//!   applied once, as no administrator retries, so the seeded bug `ctrl-drop-dedup` (a
//!   controller that applies a retried `Join` again) changes nothing here: `aver shard check`
//!   refuses it, and the simulator, whose administrators retry, catches it.
//! * **Groups** are single atomic replicas (Raft is checked on its own, `models/src/raft.rs`):
//!   an actor holds a `ShardKv`; the `ShardServer` logic runs on each input, and every command
//!   it proposes is applied at once, its answer sent to whoever caused it. The adapter makes
//!   no protocol decision.
//! * **Clerks** each run a short script of operations, one at a time; the next one starts on
//!   an `Invoke` timeout (so invocations interleave freely with everything else), and the
//!   clerk core retries on its `Retry` timer.
//! * **Network**: Stateright's duplicating network by default — any message may arrive any
//!   number of times, in any order, or never — optionally lossy (explicit drops). As in the
//!   Raft model, the "last delivered" field is cleared after each step and messages their
//!   receiver ignores forever (by the cores' own `ignores_forever`) are removed, a sound
//!   reduction ([`ShardModel::next_state`]).
//!
//! The state is finite without bounds on depth: the script, the clerks' operations and hence
//! the configurations and messages are finite; timers that change nothing are pruned.
//!
//! ## History
//!
//! The model keeps its own history of client operations ([`History`]), recorded in
//! [`ShardModel::next_state`] from the clerks' states: an operation is invoked when a clerk
//! starts it and returns when the clerk completes it, and each operation remembers which
//! operations had returned before it was invoked (real-time order). Operations are keyed by
//! (clerk, position), so the history is canonical: two interleavings that order the same
//! operations the same way give the same history.
//!
//! ## Properties
//!
//! `always`: SHARD-1..6 (the catalogue's functions, [`aver_core::shardkv::invariants`] and
//! [`aver_core::shardctrler::invariants`]; SHARD-2 and SHARD-3 read acknowledged and issued
//! appends from the history) and SHARD-L, linearizability of the history against a
//! sequential key/value map. `sometimes`: a migration completed (a shard with data installed
//! at a group other than its first owner), a deletion completed (its first owner no longer
//! holds it while another serves it), and everything finished (every operation returned and
//! every group in the last configuration).

use aver_core::NodeId;
use aver_core::contract::{TimerCmd, Violation};
use aver_core::kvraft::ClientId;
use aver_core::raft::LogIndex;
use aver_core::shardctrler::{
    Config, CtrlCommand, CtrlOp, Gid, ShardCtrler, ShardId, invariants as ctrl_inv,
};
use aver_core::shardkv::invariants as kv_inv;
use aver_core::shardkv::{
    Bug, Bugs, Clerk, ClerkTimer, Completed, Key, Msg, Op, OpReply, ShardKv, ShardServer,
    ShardState, Timer, Value,
};
use stateright::actor::{
    Actor, ActorModel, ActorModelAction, ActorModelState, Envelope, Id, LossyNetwork, Network, Out,
    model_timeout,
};
use stateright::{Expectation, Model};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use crate::raft::NetworkKind;

// ---- configuration ---------------------------------------------------------------------------

/// Controller replicas in the model (see the module docs).
pub const CTRL_REPLICAS: usize = 2;

/// The most operations one clerk's script may hold (history ids are `clerk × this + i`).
pub const OPS_PER_CLERK_MAX: usize = 4;

/// The bounds, script and switches of one shard model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardModelCfg {
    /// Number of shards.
    pub shards: usize,
    /// Group ids; group `g` is actor `g` (the controller is actor 0).
    pub groups: Vec<u32>,
    /// The controller's administrative operations, applied in order.
    pub script: Vec<CtrlOp>,
    /// Each clerk's operations, in order.
    pub clerks: Vec<Vec<Op>>,
    /// The network.
    pub network: NetworkKind,
    /// Seeded bugs.
    pub bugs: Bugs,
    /// Remove messages the receiver will ignore forever (sound; off only to compare counts).
    pub collect_dead_messages: bool,
}

fn join(gids: &[u32]) -> CtrlOp {
    CtrlOp::Join(gids.iter().map(|g| (Gid(*g), vec![NodeId(*g)])).collect())
}

fn leave(gids: &[u32]) -> CtrlOp {
    CtrlOp::Leave(gids.iter().map(|g| Gid(*g)).collect())
}

fn append(k: &str, v: &str) -> Op {
    Op::Append(k.into(), v.into())
}

impl ShardModelCfg {
    /// The exhaustive CI configuration: 2 shards, groups 1 and 2, the script `Join(1)`,
    /// `Join(2)` (shard 1 moves from group 1 to group 2); clerk 1 appends to key "1" (shard 1)
    /// then reads it, clerk 2 appends to it too; duplicating network.
    pub fn ci() -> ShardModelCfg {
        ShardModelCfg {
            shards: 2,
            groups: vec![1, 2],
            script: vec![join(&[1]), join(&[2])],
            clerks: vec![
                vec![append("1", "a"), Op::Get("1".into())],
                vec![append("1", "b")],
            ],
            network: NetworkKind::Duplicating,
            bugs: Bugs::NONE,
            collect_dead_messages: true,
        }
    }

    /// The second CI configuration: both groups join at once (the controller replicas must
    /// split the shards the same way), then group 1 leaves (shard 0 moves from group 1 to
    /// group 2, which keeps serving shard 1 meanwhile); clerk 1 appends to key "0" (shard 0),
    /// clerk 2 appends to key "1" (shard 1) then reads key "0".
    pub fn ci_multi() -> ShardModelCfg {
        ShardModelCfg {
            script: vec![join(&[1, 2]), leave(&[1])],
            clerks: vec![
                vec![append("0", "a")],
                vec![append("1", "b"), Op::Get("0".into())],
            ],
            ..ShardModelCfg::ci()
        }
    }

    /// Every exhaustive CI configuration, by name: what `aver check` runs.
    pub fn ci_all() -> Vec<(&'static str, ShardModelCfg)> {
        vec![
            ("ci", ShardModelCfg::ci()),
            ("ci_multi", ShardModelCfg::ci_multi()),
        ]
    }

    /// The actor index of clerk `k`.
    pub fn clerk_actor(&self, k: usize) -> usize {
        self.first_clerk() + k
    }

    fn first_clerk(&self) -> usize {
        self.groups.iter().max().map_or(1, |g| *g as usize + 1)
    }

    /// Builds the Stateright model.
    pub fn into_model(self) -> ShardModel {
        assert!(
            self.clerks.iter().all(|ops| ops.len() <= OPS_PER_CLERK_MAX),
            "at most {OPS_PER_CLERK_MAX} operations per clerk"
        );
        let ctrl = vec![NodeId(0)];
        let replicas: Vec<ShardCtrler> = (0..CTRL_REPLICAS as u32)
            .map(|r| {
                if self.bugs.has(Bug::RebalanceDiffers) {
                    ShardCtrler::with_divergent_rebalance(self.shards, r)
                } else {
                    ShardCtrler::new(self.shards)
                }
            })
            .collect();
        let mut actors = vec![ShardActor::Ctrl {
            replicas,
            script: self.script.clone(),
        }];
        for a in 1..self.first_clerk() {
            let gid = a as u32;
            assert!(self.groups.contains(&gid), "groups are numbered 1..=n");
            let mut server = ShardServer::new(ctrl.clone());
            server.take_ready(); // its start-up timers: set in on_start
            actors.push(ShardActor::Group {
                sm: ShardKv::new(Gid(gid), self.shards, self.bugs),
                server,
            });
        }
        for (k, ops) in self.clerks.iter().enumerate() {
            actors.push(ShardActor::Clerk {
                clerk: Clerk::new(ClientId(k as u64 + 1), ctrl.clone()),
                ops: ops.clone(),
            });
        }
        let inner = ActorModel::new(self.clone(), History::default())
            .actors(actors)
            .init_network(self.network.network_of())
            .lossy_network(if self.network.is_lossy() {
                LossyNetwork::Yes
            } else {
                LossyNetwork::No
            });
        ShardModel { cfg: self, inner }
    }
}

// ---- the actors ------------------------------------------------------------------------------

/// The model's actors: the controller, the groups, the clerks.
#[derive(Clone, Debug)]
pub enum ShardActor {
    /// The controller (its replicas' initial state and the administrative script).
    Ctrl {
        /// Initial replicas.
        replicas: Vec<ShardCtrler>,
        /// Operations applied one per `Admin` timeout.
        script: Vec<CtrlOp>,
    },
    /// A group: its initial state machine and its server logic.
    Group {
        /// Initial state.
        sm: ShardKv,
        /// The server logic (no state of its own).
        server: ShardServer,
    },
    /// A clerk and its operations.
    Clerk {
        /// Initial clerk.
        clerk: Clerk,
        /// Operations, in order.
        ops: Vec<Op>,
    },
}

/// One actor's state. (Variants differ in size; each lives behind an `Arc` in the model's
/// state, one per actor, so boxing would only add an indirection.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// The controller.
    Ctrl {
        /// Replicas of the controller state machine.
        replicas: Vec<ShardCtrler>,
        /// Script operations applied so far.
        next: usize,
    },
    /// A group.
    Group {
        /// Its state machine.
        sm: ShardKv,
    },
    /// A clerk.
    Clerk {
        /// The clerk core.
        clerk: Clerk,
        /// Operations started so far.
        next: usize,
        /// The last operation completed.
        last: Option<Completed>,
    },
}

/// The actors' timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModelTimer {
    /// The controller applies the next script operation.
    Admin,
    /// A group server's timer.
    Server(Timer),
    /// A clerk's retry timer.
    Retry,
    /// A clerk starts its next operation.
    Invoke,
}

fn node_id(id: Id) -> NodeId {
    NodeId(usize::from(id) as u32)
}

fn actor_id(id: NodeId) -> Id {
    Id::from(id.0 as usize)
}

fn set_server_timers(timers: &[TimerCmd<Timer>], o: &mut Out<ShardActor>) {
    for t in timers {
        match t {
            TimerCmd::Set(t) => o.set_timer(ModelTimer::Server(*t), model_timeout()),
            TimerCmd::Cancel(t) => o.cancel_timer(ModelTimer::Server(*t)),
        }
    }
}

/// The log index every command is applied at. A group here is one atomic replica with no
/// log; the index orders sessions only for eviction, which starts at `SESSIONS_MAX` clients,
/// far above the model's, so a fixed index changes no behaviour and keeps equal states equal.
const MODEL_INDEX: LogIndex = LogIndex(0);

impl ShardActor {
    /// Runs one server input on the group's state; applies what it proposes at once (an
    /// atomic log) and sends each answer to whoever caused the command.
    fn drive_group(
        server: &ShardServer,
        state: &mut Cow<NodeState>,
        o: &mut Out<Self>,
        input: impl FnOnce(&mut ShardServer, &ShardKv),
    ) {
        let NodeState::Group { sm } = state.as_ref() else {
            unreachable!("a group's state")
        };
        let mut server = server.clone();
        input(&mut server, sm);
        let ready = server.take_ready();
        if !ready.propose.is_empty() {
            let mut next = sm.clone();
            for p in &ready.propose {
                if let (Some(reply), Some(to)) = (next.apply(MODEL_INDEX, &p.command), p.reply_to) {
                    o.send(actor_id(to), reply);
                }
            }
            if &next != sm {
                *state = Cow::Owned(NodeState::Group { sm: next });
            }
        }
        for (to, m) in ready.messages {
            o.send(actor_id(to), m);
        }
        set_server_timers(&ready.timers, o);
    }

    /// Runs one clerk input; sends, reports completions, sets timers.
    fn drive_clerk(
        ops: &[Op],
        state: &mut Cow<NodeState>,
        o: &mut Out<Self>,
        input: impl FnOnce(&mut Clerk, &mut usize),
    ) {
        let NodeState::Clerk { clerk, next, last } = state.as_ref() else {
            unreachable!("a clerk's state")
        };
        let (mut clerk, mut next, mut last) = (clerk.clone(), *next, last.clone());
        input(&mut clerk, &mut next);
        let ready = clerk.take_ready();
        for (to, m) in ready.messages {
            o.send(actor_id(to), m);
        }
        for t in ready.timers {
            match t {
                TimerCmd::Set(_) => o.set_timer(ModelTimer::Retry, model_timeout()),
                TimerCmd::Cancel(_) => o.cancel_timer(ModelTimer::Retry),
            }
        }
        if let Some(done) = ready.completed.into_iter().last() {
            last = Some(done);
            if next < ops.len() {
                o.set_timer(ModelTimer::Invoke, model_timeout());
            }
        }
        let after = NodeState::Clerk { clerk, next, last };
        if &after != state.as_ref() {
            *state = Cow::Owned(after);
        }
    }
}

impl Actor for ShardActor {
    type Msg = Msg;
    type Timer = ModelTimer;
    type State = NodeState;
    type Storage = ();
    type Random = ();

    fn name(&self) -> String {
        match self {
            ShardActor::Ctrl { .. } => "ctrl".into(),
            ShardActor::Group { sm, .. } => sm.gid().to_string(),
            ShardActor::Clerk { clerk, .. } => clerk.id().to_string(),
        }
    }

    fn on_start(&self, _id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> NodeState {
        match self {
            ShardActor::Ctrl { replicas, script } => {
                if !script.is_empty() {
                    o.set_timer(ModelTimer::Admin, model_timeout());
                }
                NodeState::Ctrl {
                    replicas: replicas.clone(),
                    next: 0,
                }
            }
            ShardActor::Group { sm, .. } => {
                o.set_timer(ModelTimer::Server(Timer::PollConfig), model_timeout());
                o.set_timer(ModelTimer::Server(Timer::Migrate), model_timeout());
                NodeState::Group { sm: sm.clone() }
            }
            ShardActor::Clerk { clerk, ops } => {
                if !ops.is_empty() {
                    o.set_timer(ModelTimer::Invoke, model_timeout());
                }
                NodeState::Clerk {
                    clerk: clerk.clone(),
                    next: 0,
                    last: None,
                }
            }
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<NodeState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match self {
            ShardActor::Ctrl { .. } => {
                let (NodeState::Ctrl { replicas, .. }, Msg::Query { num }) = (state.as_ref(), msg)
                else {
                    return;
                };
                for r in replicas {
                    let config = r.query(num).clone();
                    o.send(src, Msg::QueryReply { config });
                }
            }
            ShardActor::Group { server, .. } => Self::drive_group(server, state, o, |s, sm| {
                s.on_message(sm, node_id(src), msg)
            }),
            ShardActor::Clerk { ops, .. } => {
                Self::drive_clerk(ops, state, o, |c, _| c.on_message(node_id(src), msg))
            }
        }
    }

    fn on_timeout(
        &self,
        _id: Id,
        state: &mut Cow<NodeState>,
        timer: &ModelTimer,
        o: &mut Out<Self>,
    ) {
        match (self, *timer) {
            (ShardActor::Ctrl { script, .. }, ModelTimer::Admin) => {
                let NodeState::Ctrl { replicas, next } = state.as_ref() else {
                    return;
                };
                let Some(op) = script.get(*next) else { return };
                let cmd = CtrlCommand {
                    client: ClientId(0),
                    seq: aver_core::kvraft::Seq(*next as u64 + 1),
                    op: op.clone(),
                };
                let mut replicas = replicas.clone();
                for r in &mut replicas {
                    r.apply(MODEL_INDEX, &cmd);
                }
                let next = *next + 1;
                if next < script.len() {
                    o.set_timer(ModelTimer::Admin, model_timeout());
                }
                *state = Cow::Owned(NodeState::Ctrl { replicas, next });
            }
            (ShardActor::Group { server, .. }, ModelTimer::Server(t)) => {
                Self::drive_group(server, state, o, |s, sm| s.on_timeout(sm, t))
            }
            (ShardActor::Clerk { ops, .. }, ModelTimer::Retry) => {
                Self::drive_clerk(ops, state, o, |c, _| c.on_timeout(ClerkTimer::Retry))
            }
            (ShardActor::Clerk { ops, .. }, ModelTimer::Invoke) => {
                Self::drive_clerk(ops, state, o, |c, next| {
                    if c.pending().is_none() && *next < ops.len() {
                        c.invoke(ops[*next].clone());
                        *next += 1;
                    }
                })
            }
            _ => {}
        }
    }
}

// ---- the history -----------------------------------------------------------------------------

/// One client operation of the history.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HistOp {
    /// The clerk (0-based).
    pub clerk: usize,
    /// The operation.
    pub op: Op,
    /// Its answer, once it returned.
    pub reply: Option<OpReply>,
    /// Operations (by id) that had returned before this one was invoked: they precede it.
    pub after: u32,
}

/// The model's history of client operations, keyed by id = clerk × [`OPS_PER_CLERK_MAX`] +
/// position in the clerk's script.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    /// Every operation invoked so far.
    pub ops: BTreeMap<usize, HistOp>,
}

impl History {
    fn returned(&self) -> u32 {
        self.ops
            .iter()
            .filter(|(_, o)| o.reply.is_some())
            .fold(0, |m, (id, _)| m | (1 << id))
    }

    /// Records that clerk `clerk` invoked the `index`-th operation of its script.
    pub fn invoke(&mut self, clerk: usize, index: usize, op: Op) {
        let after = self.returned();
        let id = clerk * OPS_PER_CLERK_MAX + index;
        let prev = self.ops.insert(
            id,
            HistOp {
                clerk,
                op,
                reply: None,
                after,
            },
        );
        assert!(prev.is_none(), "operation {id} invoked twice");
    }

    /// Records that the `index`-th operation of clerk `clerk` returned `reply`.
    pub fn ret(&mut self, clerk: usize, index: usize, reply: OpReply) {
        let id = clerk * OPS_PER_CLERK_MAX + index;
        let op = self.ops.get_mut(&id).expect("returns follow invocations");
        op.reply = Some(reply);
    }

    /// Appends the clients were told succeeded.
    pub fn acked_appends(&self) -> Vec<(Key, Value)> {
        self.ops
            .values()
            .filter_map(|o| match (&o.op, &o.reply) {
                (Op::Append(k, v), Some(OpReply::Ok)) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }

    /// Every Append issued.
    pub fn appends(&self) -> Vec<(Key, Value)> {
        self.ops
            .values()
            .filter_map(|o| match &o.op {
                Op::Append(k, v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }

    /// True if the history is linearizable against a sequential key/value map: some order of
    /// the returned operations and any subset of the pending ones respects real-time order
    /// and explains every answer.
    pub fn linearizable(&self) -> bool {
        let ids: Vec<usize> = self.ops.keys().copied().collect();
        let mut seen = BTreeSet::new();
        self.search(&ids, 0, &BTreeMap::new(), &mut seen)
    }

    fn search(
        &self,
        ids: &[usize],
        done: u32,
        kv: &BTreeMap<Key, Value>,
        seen: &mut BTreeSet<(u32, BTreeMap<Key, Value>)>,
    ) -> bool {
        let complete = ids
            .iter()
            .all(|id| done & (1 << id) != 0 || self.ops[id].reply.is_none());
        if complete {
            return true;
        }
        if !seen.insert((done, kv.clone())) {
            return false;
        }
        for id in ids {
            let o = &self.ops[id];
            if done & (1 << id) != 0 || o.after & !done != 0 {
                continue;
            }
            let mut next = kv.clone();
            let result = execute(&mut next, &o.op);
            if o.reply.as_ref().is_some_and(|r| *r != result) {
                continue;
            }
            if self.search(ids, done | (1 << id), &next, seen) {
                return true;
            }
        }
        false
    }
}

fn execute(kv: &mut BTreeMap<Key, Value>, op: &Op) -> OpReply {
    match op {
        Op::Get(k) => kv.get(k).cloned().map_or(OpReply::NoKey, OpReply::Value),
        Op::Put(k, v) => {
            kv.insert(k.clone(), v.clone());
            OpReply::Ok
        }
        Op::Append(k, v) => {
            kv.entry(k.clone()).or_default().push_str(v);
            OpReply::Ok
        }
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (id, o) in &self.ops {
            let after: Vec<String> = (0..32)
                .filter(|i| o.after & (1 << i) != 0)
                .map(|i| format!("#{i}"))
                .collect();
            writeln!(
                f,
                "    #{id} (clerk {} op {}) {} → {}{}",
                o.clerk + 1,
                id % OPS_PER_CLERK_MAX + 1,
                o.op,
                o.reply
                    .as_ref()
                    .map_or("(pending)".into(), |r| r.to_string()),
                if after.is_empty() {
                    String::new()
                } else {
                    format!("   (invoked after {} returned)", after.join(", "))
                }
            )?;
        }
        Ok(())
    }
}

// ---- the model -------------------------------------------------------------------------------

/// One state of [`ShardModel`].
pub type ModelState = ActorModelState<ShardActor, History>;
/// One action of [`ShardModel`].
pub type ModelAction = ActorModelAction<Msg, ModelTimer, ()>;

/// The Stateright model of shard migration: Stateright's `ActorModel` of [`ShardActor`]s with
/// the history recorded and the network normalised after every step.
#[derive(Clone)]
pub struct ShardModel {
    /// The configuration.
    pub cfg: ShardModelCfg,
    /// The actor model that does the work.
    pub inner: ActorModel<ShardActor, ShardModelCfg, History>,
}

impl ShardModel {
    /// Updates the history from the clerks' states before and after one step.
    fn record(&self, last: &ModelState, next: &mut ModelState) {
        for k in 0..self.cfg.clerks.len() {
            let a = self.cfg.clerk_actor(k);
            let (
                NodeState::Clerk {
                    clerk: c0,
                    next: n0,
                    ..
                },
                NodeState::Clerk {
                    clerk: c1,
                    next: n1,
                    last,
                },
            ) = (&*last.actor_states[a], &*next.actor_states[a])
            else {
                continue;
            };
            if n1 > n0 {
                next.history
                    .invoke(k, n1 - 1, self.cfg.clerks[k][n1 - 1].clone());
            }
            if c0.pending().is_some()
                && c1.pending().is_none()
                && let Some(done) = last
            {
                next.history.ret(k, *n1 - 1, done.reply.clone());
            }
        }
    }
}

impl Model for ShardModel {
    type State = ModelState;
    type Action = ModelAction;

    fn init_states(&self) -> Vec<ModelState> {
        self.inner.init_states()
    }

    fn actions(&self, state: &ModelState, actions: &mut Vec<ModelAction>) {
        self.inner.actions(state, actions)
    }

    /// After the actor model's step: record invocations and returns in the history; clear the
    /// duplicating network's "last delivered" field (not part of the system; see the Raft
    /// model); and, if `collect_dead_messages`, drop envelopes whose receiver ignores them now
    /// and forever (by the cores' `ignores_forever`): delivering one is already a no-op that
    /// Stateright prunes, so removing it changes no reachable actor state and no verdict.
    fn next_state(&self, last: &ModelState, action: ModelAction) -> Option<ModelState> {
        let mut next = self.inner.next_state(last, action)?;
        self.record(last, &mut next);
        let ModelState {
            network,
            actor_states,
            ..
        } = &mut next;
        if let Network::UnorderedDuplicating(envelopes, last_msg) = network {
            *last_msg = None;
            if self.cfg.collect_dead_messages {
                envelopes.retain(|env| !ignores_forever(&actor_states[usize::from(env.dst)], env));
            }
        }
        Some(next)
    }

    fn format_action(&self, action: &ModelAction) -> String {
        self.inner.format_action(action)
    }

    fn format_step(&self, last: &ModelState, action: ModelAction) -> Option<String> {
        self.inner.format_step(last, action)
    }

    fn as_svg(&self, path: stateright::Path<ModelState, ModelAction>) -> Option<String> {
        self.inner.as_svg(path)
    }

    fn properties(&self) -> Vec<stateright::Property<Self>> {
        PROPERTIES
            .iter()
            .map(|p| match p.expectation {
                Expectation::Always => stateright::Property::always(p.name, p.condition),
                Expectation::Sometimes => stateright::Property::sometimes(p.name, p.condition),
                Expectation::Eventually => stateright::Property::eventually(p.name, p.condition),
            })
            .collect()
    }
}

fn ignores_forever(dst: &NodeState, env: &Envelope<Msg>) -> bool {
    match dst {
        NodeState::Group { sm } => ShardServer::ignores_forever(sm, &env.msg),
        NodeState::Clerk { clerk, .. } => clerk.ignores_forever(&env.msg),
        NodeState::Ctrl { .. } => !matches!(env.msg, Msg::Query { .. }),
    }
}

// ---- properties ------------------------------------------------------------------------------

/// One property of the model: its expectation, name and condition.
pub struct ShardProperty {
    /// `Always` for safety, `Sometimes` for reachability.
    pub expectation: Expectation,
    /// The catalogue ID and name, e.g. `"SHARD-1 Single Owner"`.
    pub name: &'static str,
    /// The condition, evaluated on every reachable state.
    pub condition: fn(&ShardModel, &ModelState) -> bool,
}

/// The groups' state machines.
pub fn groups(state: &ModelState) -> Vec<&ShardKv> {
    state
        .actor_states
        .iter()
        .filter_map(|s| match &**s {
            NodeState::Group { sm } => Some(sm),
            _ => None,
        })
        .collect()
}

/// The controller's replicas.
pub fn replicas(state: &ModelState) -> &[ShardCtrler] {
    match &*state.actor_states[0] {
        NodeState::Ctrl { replicas, .. } => replicas,
        _ => unreachable!("actor 0 is the controller"),
    }
}

/// The first violation of `id` in `state`, if any (evaluated by the catalogue's function).
pub fn violation(state: &ModelState, id: &str) -> Option<Violation> {
    let g = groups(state);
    let result = match id {
        kv_inv::SINGLE_OWNER => kv_inv::single_owner(&g),
        kv_inv::NO_LOST_WRITE => kv_inv::no_lost_write(&g, &state.history.acked_appends()),
        kv_inv::AT_MOST_ONCE => kv_inv::at_most_once(&g, &state.history.appends()),
        kv_inv::NO_PREMATURE_DELETE => kv_inv::no_premature_delete(&g),
        ctrl_inv::CONFIG_AGREEMENT => {
            let r: Vec<&ShardCtrler> = replicas(state).iter().collect();
            ctrl_inv::config_agreement(&r)
        }
        ctrl_inv::BALANCED => replicas(state).iter().try_for_each(ctrl_inv::balanced),
        LINEARIZABLE if !state.history.linearizable() => Err(Violation::new(
            LINEARIZABLE,
            format!("no linearization of:\n{}", state.history),
        )),
        _ => Ok(()),
    };
    result.err()
}

/// The catalogue ID of the linearizability property.
pub const LINEARIZABLE: &str = "SHARD-L";

/// The first group that held `shard`'s data: its owner in the first configuration that
/// assigned it.
fn first_owner(state: &ModelState, shard: ShardId) -> Gid {
    replicas(state)[0]
        .configs()
        .iter()
        .map(|c| c.owner(shard))
        .find(|g| *g != Gid::NONE)
        .unwrap_or(Gid::NONE)
}

/// Some shard's data was installed (with at least one key) at a group that is not its first
/// owner: a migration completed.
fn migration_completed(state: &ModelState) -> bool {
    groups(state).iter().any(|g| {
        g.shards().iter().any(|(s, sh)| {
            matches!(sh.state, ShardState::Serving | ShardState::Garbage(_))
                && !sh.data.is_empty()
                && g.gid() != first_owner(state, *s)
        })
    })
}

/// Some shard is served, fully (`Serving`), by a group that is not its first owner, and its
/// first owner no longer holds it: the old copy was deleted.
fn deletion_completed(state: &ModelState) -> bool {
    let g = groups(state);
    g.iter().any(|x| {
        x.shards().iter().any(|(s, sh)| {
            let first = first_owner(state, *s);
            sh.state == ShardState::Serving
                && x.gid() != first
                && g.iter().any(|y| y.gid() == first && y.shard(*s).is_none())
        })
    })
}

/// Every operation returned and every group is in the last configuration, done migrating.
fn all_done(model: &ShardModel, state: &ModelState) -> bool {
    let ops: usize = model.cfg.clerks.iter().map(Vec::len).sum();
    let returned = state.history.ops.values().filter(|o| o.reply.is_some());
    let latest = replicas(state)[0].latest().num;
    returned.count() == ops
        && latest.0 == model.cfg.script.len() as u64
        && groups(state)
            .iter()
            .all(|g| g.num() == latest && g.can_reconfigure())
}

macro_rules! always {
    ($name:expr, $id:expr) => {
        ShardProperty {
            expectation: Expectation::Always,
            name: $name,
            condition: |_, s| violation(s, $id).is_none(),
        }
    };
}

/// Every property: the safety invariants in catalogue order, then the reachability checks.
pub const PROPERTIES: &[ShardProperty] = &[
    always!("SHARD-1 Single Owner", kv_inv::SINGLE_OWNER),
    always!("SHARD-2 No Lost Write", kv_inv::NO_LOST_WRITE),
    always!("SHARD-3 At Most Once Across Moves", kv_inv::AT_MOST_ONCE),
    always!("SHARD-4 No Premature Delete", kv_inv::NO_PREMATURE_DELETE),
    always!("SHARD-5 Config Agreement", ctrl_inv::CONFIG_AGREEMENT),
    always!("SHARD-6 Balanced Configs", ctrl_inv::BALANCED),
    always!("SHARD-L Linearizable", LINEARIZABLE),
    ShardProperty {
        expectation: Expectation::Sometimes,
        name: "migration completed",
        condition: |_, s| migration_completed(s),
    },
    ShardProperty {
        expectation: Expectation::Sometimes,
        name: "deletion completed",
        condition: |_, s| deletion_completed(s),
    },
    ShardProperty {
        expectation: Expectation::Sometimes,
        name: "everything done",
        condition: all_done,
    },
];

/// The properties that state what a user loses — two groups answering for one shard, an
/// acknowledged write gone, a write applied twice, a non-linearizable history — as opposed to
/// the mechanism checks SHARD-4 (a shard's source dropped it too early) and SHARD-5/6 (the
/// controller). A seeded bug counts as caught when one of these fails.
pub const CONSEQUENCES: [&str; 4] = [
    "SHARD-1 Single Owner",
    "SHARD-2 No Lost Write",
    "SHARD-3 At Most Once Across Moves",
    "SHARD-L Linearizable",
];

/// The catalogue ID of a property name (`"SHARD-1 Single Owner"` → `"SHARD-1"`).
pub fn property_id(name: &str) -> &str {
    name.split(' ').next().unwrap_or(name)
}

// ---- counterexample traces -------------------------------------------------------------------

/// Describes a configuration briefly: `cfg2[g1 g2]`.
pub fn describe_config(c: &Config) -> String {
    let owners: Vec<String> = c.shards.iter().map(|g| g.0.to_string()).collect();
    format!("cfg{}[{}]", c.num.0, owners.join(" "))
}

/// Describes one actor's state briefly.
pub fn describe_node(s: &NodeState) -> String {
    match s {
        NodeState::Ctrl { replicas, next } => {
            let cfgs: Vec<String> = replicas
                .iter()
                .map(|r| describe_config(r.latest()))
                .collect();
            format!("script@{next} replicas: {}", cfgs.join(" / "))
        }
        NodeState::Group { sm } => {
            let shards: Vec<String> = sm
                .shards()
                .iter()
                .map(|(s, sh)| {
                    let state = match &sh.state {
                        ShardState::Serving => "serving".to_string(),
                        ShardState::Pulling(src) => format!("pulling←{}", src.gid),
                        ShardState::Offering => "offering".into(),
                        ShardState::Garbage(src) => format!("garbage@{}", src.gid),
                    };
                    format!("{s}:{state}{:?}", sh.data)
                })
                .collect();
            format!("{} {}", describe_config(sm.config()), shards.join(" "))
        }
        NodeState::Clerk { clerk, next, last } => format!(
            "started {next}, pending {}, config {}, last {}",
            clerk
                .pending()
                .map_or("-".into(), |p| format!("{} {}", p.seq, p.op)),
            clerk.config().map_or("-".into(), describe_config),
            last.as_ref()
                .map_or("-".into(), |c| format!("{} → {}", c.op, c.reply))
        ),
    }
}

/// Describes a message briefly.
pub fn describe_msg(m: &Msg) -> String {
    match m {
        Msg::QueryReply { config } => format!("QueryReply({})", describe_config(config)),
        Msg::PullReply {
            shard,
            num,
            data,
            sessions,
        } => format!(
            "PullReply({shard}, cfg{}, {data:?}, {} sessions)",
            num.0,
            sessions.len()
        ),
        other => format!("{other:?}"),
    }
}

/// One step of a counterexample, for humans and for JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceStep {
    /// 1-based step number.
    pub step: usize,
    /// The actor that acted, or `network` for a drop.
    pub actor: String,
    /// What happened.
    pub action: String,
    /// The acting actor's state change, if any.
    pub changed: Vec<String>,
    /// Messages sent.
    pub sent: Vec<String>,
}

fn actor_name(model: &ShardModel, id: Id) -> String {
    let i = usize::from(id);
    match i {
        0 => "ctrl".into(),
        _ if i < model.cfg.first_clerk() => format!("g{i}"),
        _ => format!("clerk{}", i - model.cfg.first_clerk() + 1),
    }
}

/// Turns a path into readable steps.
pub fn trace(model: &ShardModel, path: &[(ModelState, Option<ModelAction>)]) -> Vec<TraceStep> {
    let mut out = Vec::new();
    for (k, pair) in path.windows(2).enumerate() {
        let (before, Some(action)) = (&pair[0].0, &pair[0].1) else {
            continue;
        };
        let after = &pair[1].0;
        let (actor, what, acting) = match action {
            ActorModelAction::Deliver { src, dst, msg } => (
                actor_name(model, *dst),
                format!(
                    "receive {} from {}",
                    describe_msg(msg),
                    actor_name(model, *src)
                ),
                Some(usize::from(*dst)),
            ),
            ActorModelAction::Drop(env) => (
                "network".into(),
                format!(
                    "drop {} to {}",
                    describe_msg(&env.msg),
                    actor_name(model, env.dst)
                ),
                None,
            ),
            ActorModelAction::Timeout(id, t) => (
                actor_name(model, *id),
                format!("timeout {t:?}"),
                Some(usize::from(*id)),
            ),
            other => ("?".into(), format!("{other:?}"), None),
        };
        let mut step = TraceStep {
            step: k + 1,
            actor,
            action: what,
            changed: Vec::new(),
            sent: Vec::new(),
        };
        if let Some(i) = acting {
            let (b, a) = (
                describe_node(&before.actor_states[i]),
                describe_node(&after.actor_states[i]),
            );
            if b != a {
                step.changed.push(format!("{b}  ⇒  {a}"));
            }
        }
        let old: Vec<_> = before.network.iter_all().collect();
        for env in after.network.iter_all() {
            if !old.contains(&env) {
                step.sent.push(format!(
                    "→{} {}",
                    actor_name(model, env.dst),
                    describe_msg(env.msg)
                ));
            }
        }
        out.push(step);
    }
    out
}

/// Replays `actions` from the initial state; `None` unless each one is enabled and changes
/// the state. Returns the states.
pub fn replay(model: &ShardModel, actions: &[ModelAction]) -> Option<Vec<ModelState>> {
    let mut states = vec![model.init_states().pop()?];
    let mut enabled = Vec::new();
    for a in actions {
        let last = states.last()?;
        enabled.clear();
        model.actions(last, &mut enabled);
        if !enabled.contains(a) {
            return None;
        }
        states.push(model.next_state(last, a.clone())?);
    }
    Some(states)
}

impl NetworkKind {
    fn network_of<M: Ord + Clone + fmt::Debug + std::hash::Hash>(self) -> Network<M> {
        match self {
            NetworkKind::Reliable | NetworkKind::Lossy => Network::new_unordered_nonduplicating([]),
            NetworkKind::Duplicating | NetworkKind::LossyDuplicating => {
                Network::new_unordered_duplicating([])
            }
            NetworkKind::Ordered => Network::new_ordered([]),
        }
    }

    fn is_lossy(self) -> bool {
        matches!(self, NetworkKind::Lossy | NetworkKind::LossyDuplicating)
    }
}

// ---- searching and shrinking -----------------------------------------------------------------

/// A path of the model: each state with the action taken from it (`None` for the last).
pub type StatePath = Vec<(ModelState, Option<ModelAction>)>;

/// The condition of the property named `name`.
pub fn condition(name: &str) -> Option<fn(&ShardModel, &ModelState) -> bool> {
    PROPERTIES
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.condition)
}

/// Shortens a counterexample to the `always` property `name`. Replays the path with one step
/// left out, skipping every later step that is no longer enabled, and cut at the first state
/// that violates the property; keeps the result whenever it still fails. Exhaustive search
/// wanders (DFS reports the first path that reached a violation, with every unrelated step
/// it took on the way); this keeps the trace to the steps that matter.
pub fn shrink(model: &ShardModel, path: &StatePath, name: &str) -> StatePath {
    let holds = condition(name).expect("a property of the model");
    let mut actions: Vec<ModelAction> = path.iter().filter_map(|(_, a)| a.clone()).collect();
    if let Some(short) = replay_until(model, &actions, holds) {
        actions = short;
    }
    let mut i = 0;
    while i < actions.len() {
        let mut candidate = actions.clone();
        candidate.remove(i);
        match replay_until(model, &candidate, holds) {
            Some(short) if short.len() < actions.len() => actions = short,
            _ => i += 1,
        }
    }
    let states = replay(model, &actions).expect("the shrunk path replays");
    let mut out: StatePath = states.into_iter().map(|s| (s, None)).collect();
    for (k, a) in actions.into_iter().enumerate() {
        out[k].1 = Some(a);
    }
    out
}

/// Replays `actions`, skipping those not enabled (or changing nothing), until a state violates
/// `holds`; returns the actions taken up to it, or `None` if no state violates it.
fn replay_until(
    model: &ShardModel,
    actions: &[ModelAction],
    holds: fn(&ShardModel, &ModelState) -> bool,
) -> Option<Vec<ModelAction>> {
    let mut state = model.init_states().pop()?;
    let mut taken = Vec::new();
    let mut enabled = Vec::new();
    for a in actions {
        enabled.clear();
        model.actions(&state, &mut enabled);
        if !enabled.contains(a) {
            continue;
        }
        let Some(next) = model.next_state(&state, a.clone()).filter(|n| *n != state) else {
            continue;
        };
        state = next;
        taken.push(a.clone());
        if !holds(model, &state) {
            return Some(taken);
        }
    }
    None
}
