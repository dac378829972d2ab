//! # Raft, model-checked
//!
//! This model runs the one Raft core of aver (`aver_core::raft::Raft`) inside Stateright's
//! actor framework and explores every interleaving of its inputs within state-based bounds.
//!
//! ## What is modelled
//!
//! * **Servers.** Each actor is one [`RaftServer`]: a `Raft<u8>` plus what its disk holds.
//!   The actor makes no protocol decision. Every handler feeds one input to the core, drains
//!   `take_ready()` and maps it to Stateright commands, in the contract's order: persist ops
//!   are folded into the disk with the core's own [`Durable::apply`] and saved with
//!   `o.save(..)`, then messages are sent, then timers are set or cancelled (with
//!   `model_timeout()`: any set timer may fire at any moment).
//! * **Crash and recover.** `Storage` is exactly a [`Durable`] folded from the persist ops
//!   the core emitted, nothing else. Recovery restarts the core with `Raft::new(config,
//!   storage)`, so a seeded bug that forgets to persist (`vote-not-persisted`) really loses
//!   the write. The actor keeps its disk image in its state only when it differs from the
//!   core's own `durable()` (that is, only under such a bug), so a correct server pays
//!   nothing for it.
//! * **Clients and the service.** Two extra per-server timers stand for the world above Raft.
//!   `Propose` asks a leader to `propose` one command (the command is the proposer's id) while
//!   its log is shorter than `max_log`; `Compact` asks a server that applied entries beyond
//!   its snapshot to `snapshot(applied, data)`, where `data` is the applied commands' bytes.
//!   When they do nothing they are pruned as no-ops, so they cost no states.
//! * **Network.** Unordered or ordered; optionally lossy and/or duplicating (Stateright's
//!   networks; networks that hold copies are bounded to a few messages in flight per server).
//!   The CI configuration uses the duplicating network without explicit drops: any message
//!   may arrive any number of times, late, or never — and "never" is loss as far as safety
//!   properties can tell, while explicit drops only add powerset states
//!   (`--network lossy-duplicating` has them). The network's "last delivered" field is
//!   cleared after each step, and messages their receiver will ignore forever (by the core's
//!   [`Raft::ignores_forever`]) are removed from it ([`RaftModel::next_state`]): a sound
//!   reduction that keeps exactly the same reachable server states.
//!
//! ## Bounds
//!
//! Bounds are on the state, never on path depth (a depth bound makes DFS incomplete): every
//! server's term ≤ `max_term` ([`RaftModelCfg::within_boundary`]); a leader proposes only while
//! its log is shorter than `max_log`, so every log holds ≤ `max_log` entries and the number of
//! proposals is ≤ `max_term × max_log`; at most `max_crashes` servers are down at once.
//!
//! [`RaftModelCfg::ci`] and [`RaftModelCfg::ci_crash`] are the exhaustive CI configurations
//! ([`RaftModelCfg::ci_all`]; `aver check` runs them all); [`RaftModelCfg::deep`] is the target (terms ≤ 3, logs
//! ≤ 2, crashes, snapshots), too large to exhaust, and covered by explicit witness paths
//! (tests) and seeded random walks ([`random_walks`], `aver check --simulate`), which is also
//! how the seeded bugs are hunted.
//!
//! ## Properties
//!
//! Every safety invariant of the catalogue is an `always` property named after its ID and
//! evaluated by the function the simulator uses ([`aver_core::raft::invariants`]): cluster
//! invariants (RAFT-1, 3, 4, 5, 7) over every server's latest state, crashed servers
//! included; node invariants (RAFT-8, 9) on each server; and step invariants (RAFT-2, 6, 10),
//! which each server checks itself after every input and records in `Raft::violation()`, so a
//! violation — seeded or real — fails the property with a counterexample.
//!
//! Four `sometimes` properties make sure the model is not vacuous: a leader is elected, an
//! entry is committed, a snapshot is installed by InstallSnapshot, and a new leader is
//! elected after a leader crashed.

use aver_core::NodeId;
use aver_core::raft::invariants;
use aver_core::raft::{Bugs, Config, Durable, LogIndex, Message, Raft, RaftReady, Timer};
use aver_core::{TimerCmd, Violation};
use stateright::actor::{
    Actor, ActorModel, ActorModelAction, ActorModelState, Envelope, Id, LossyNetwork, Network, Out,
    model_timeout,
};
use stateright::{Expectation, Model};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The command type the model's log carries: the id of the server that proposed it.
pub type Cmd = u8;

/// The Stateright model of a Raft cluster: Stateright's `ActorModel` of [`RaftServer`]s with
/// one normalisation (see [`RaftModel::next_state`]).
#[derive(Clone)]
pub struct RaftModel {
    /// The bounds and switches.
    pub cfg: RaftModelCfg,
    /// The actor model that does the work.
    pub inner: ActorModel<RaftServer, RaftModelCfg, ()>,
}

impl Model for RaftModel {
    type State = RaftState;
    type Action = RaftAction;

    fn init_states(&self) -> Vec<RaftState> {
        self.inner.init_states()
    }

    fn actions(&self, state: &RaftState, actions: &mut Vec<RaftAction>) {
        self.inner.actions(state, actions)
    }

    /// Two normalisations of the duplicating network, after every step:
    ///
    /// * Stateright's duplicating network remembers the last delivered envelope so that a
    ///   re-delivery that changes nothing still makes a new fingerprint (stateright #74). That
    ///   field is not part of the system being modelled, and it multiplies the state count by
    ///   the number of distinct messages; a delivery that changes nothing is instead a
    ///   self-loop, which is harmless for safety. So it is cleared.
    /// * Dead messages are collected (when `cfg.collect_dead_messages`): an envelope is
    ///   removed if its destination's latest state (crashed or not) says, by the core's own
    ///   [`Raft::ignores_forever`], that delivering it is a no-op now and in every future
    ///   state of that server, a restart from its disk included. Such a delivery is already
    ///   pruned by Stateright as a no-op (its actor state and outputs are unchanged), so the
    ///   only difference between a state with the envelope and one without is an action that
    ///   can never be enabled to any effect: every path of either has a path of the other
    ///   through the same actor states, and every property (all are on actor states only)
    ///   has the same verdict. The envelope may be sent again later; it is then collected
    ///   again. The predicate assumes the disk is exactly `raft.durable()`, so servers whose
    ///   disk differs (a seeded bug that skips a write) are never collected for. The adapter
    ///   makes no protocol decision here: the core's predicate does.
    fn next_state(&self, last: &RaftState, action: RaftAction) -> Option<RaftState> {
        let mut next = self.inner.next_state(last, action)?;
        let RaftState {
            network,
            actor_states,
            ..
        } = &mut next;
        if let Network::UnorderedDuplicating(envelopes, last_msg) = network {
            *last_msg = None;
            if self.cfg.collect_dead_messages {
                envelopes.retain(|env| {
                    let dst = &actor_states[usize::from(env.dst)];
                    dst.disk.is_some() || !dst.raft.ignores_forever(node_id(env.src), &env.msg)
                });
            }
        }
        Some(next)
    }

    fn format_action(&self, action: &RaftAction) -> String {
        self.inner.format_action(action)
    }

    fn format_step(&self, last: &RaftState, action: RaftAction) -> Option<String> {
        self.inner.format_step(last, action)
    }

    fn as_svg(&self, path: stateright::Path<RaftState, RaftAction>) -> Option<String> {
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

    fn within_boundary(&self, state: &RaftState) -> bool {
        self.cfg.within_boundary(state)
    }
}
/// One state of [`RaftModel`].
pub type RaftState = ActorModelState<RaftServer, ()>;
/// One action of [`RaftModel`].
pub type RaftAction = ActorModelAction<Message<Cmd>, ModelTimer, ()>;

// ---- configuration ---------------------------------------------------------------------------

/// Which Stateright network the messages travel on (always unordered except `Ordered`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkKind {
    /// Every message is delivered at most once, in any order; none is lost.
    Reliable,
    /// Delivered at most once, in any order, or lost.
    Lossy,
    /// Delivered any number of times, in any order; none is lost.
    Duplicating,
    /// Delivered any number of times, in any order, or lost (the CI network).
    LossyDuplicating,
    /// FIFO per (sender, receiver) pair; nothing lost.
    Ordered,
}

impl NetworkKind {
    /// Every kind, by its `--network` name.
    pub const ALL: [NetworkKind; 5] = [
        NetworkKind::Reliable,
        NetworkKind::Lossy,
        NetworkKind::Duplicating,
        NetworkKind::LossyDuplicating,
        NetworkKind::Ordered,
    ];

    /// The `--network` name.
    pub fn name(self) -> &'static str {
        match self {
            NetworkKind::Reliable => "reliable",
            NetworkKind::Lossy => "lossy",
            NetworkKind::Duplicating => "duplicating",
            NetworkKind::LossyDuplicating => "lossy-duplicating",
            NetworkKind::Ordered => "ordered",
        }
    }

    fn lossy(self) -> bool {
        matches!(self, NetworkKind::Lossy | NetworkKind::LossyDuplicating)
    }

    fn network(self) -> Network<Message<Cmd>> {
        match self {
            NetworkKind::Reliable | NetworkKind::Lossy => Network::new_unordered_nonduplicating([]),
            NetworkKind::Duplicating | NetworkKind::LossyDuplicating => {
                Network::new_unordered_duplicating([])
            }
            NetworkKind::Ordered => Network::new_ordered([]),
        }
    }
}

impl fmt::Display for NetworkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NetworkKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NetworkKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = NetworkKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown network `{s}`; known: {}", names.join(", "))
            })
    }
}

/// Messages in flight per server allowed on networks that hold copies (see
/// [`RaftModelCfg::within_boundary`]).
pub const IN_FLIGHT_MAX_PER_SERVER: usize = 3;

/// The bounds and switches of one Raft model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RaftModelCfg {
    /// Number of servers (1..=9).
    pub servers: usize,
    /// States where a server's term exceeds this are outside the model.
    pub max_term: u64,
    /// A leader proposes only while its log is shorter than this.
    pub max_log: u64,
    /// Servers that may be crashed at the same time.
    pub max_crashes: usize,
    /// The network.
    pub network: NetworkKind,
    /// Whether servers take snapshots (the `Compact` timer).
    pub compaction: bool,
    /// Seeded bugs (none for the correct protocol).
    pub bugs: Bugs,
    /// Remove messages the receiver will ignore forever from the duplicating network (a
    /// sound reduction, see [`RaftModel::next_state`]; on by default, off only to compare).
    pub collect_dead_messages: bool,
}

impl RaftModelCfg {
    /// The exhaustive CI configuration: 3 servers, duplicating network, snapshots, terms ≤ 1,
    /// logs ≤ 1 entry, no crashes (232,988 unique states with dead messages collected, a few
    /// seconds; 1,965,698 without). [`RaftModelCfg::ci_crash`] adds crashes; the deeper
    /// behaviours are covered by witnesses and random walks at [`RaftModelCfg::deep`].
    pub fn ci() -> RaftModelCfg {
        RaftModelCfg {
            servers: 3,
            max_term: 1,
            max_log: 1,
            max_crashes: 0,
            network: NetworkKind::Duplicating,
            compaction: true,
            bugs: Bugs::NONE,
            collect_dead_messages: true,
        }
    }

    /// The second exhaustive CI configuration: [`RaftModelCfg::ci`] with one crash (and
    /// recovery from storage) instead of snapshots — terms ≤ 1, logs ≤ 1 entry, duplicating
    /// network (366,876 unique states; 3,429,804 without dead-message collection).
    pub fn ci_crash() -> RaftModelCfg {
        RaftModelCfg {
            max_crashes: 1,
            compaction: false,
            ..RaftModelCfg::ci()
        }
    }

    /// The deepest exhaustive CI configuration with logs: [`RaftModelCfg::ci`] with one crash
    /// *and* snapshots, so a server may restart from a snapshot — terms ≤ 1, logs ≤ 1 entry,
    /// duplicating network (3,304,512 unique states, ≈45 s on 2 threads; without dead-message
    /// collection it did not finish: > 20.6M after 300 s). Its paths include those of `ci`
    /// and `ci_crash`, which stay as fast first checks.
    pub fn ci_crash_snapshots() -> RaftModelCfg {
        RaftModelCfg {
            max_crashes: 1,
            ..RaftModelCfg::ci()
        }
    }

    /// The third exhaustive CI configuration: elections only — two terms, one crash, empty
    /// logs, duplicating network — deep enough for a leader to crash and another to be
    /// elected in the next term (237,032 unique states; without dead-message collection it
    /// did not finish: > 16.9M after 200 s).
    pub fn ci_reelect() -> RaftModelCfg {
        RaftModelCfg {
            max_term: 2,
            max_log: 0,
            max_crashes: 1,
            compaction: false,
            ..RaftModelCfg::ci()
        }
    }

    /// Every exhaustive CI configuration, by name: what `aver check` runs.
    pub fn ci_all() -> Vec<(&'static str, RaftModelCfg)> {
        vec![
            ("ci", RaftModelCfg::ci()),
            ("ci_crash", RaftModelCfg::ci_crash()),
            ("ci_reelect", RaftModelCfg::ci_reelect()),
            ("ci_crash_snapshots", RaftModelCfg::ci_crash_snapshots()),
        ]
    }

    /// The target bounds — 3 servers, duplicating network, one crash at a time with
    /// recovery, snapshots, terms ≤ 3, logs ≤ 2 entries — used for witness paths, random walks
    /// (`--simulate`) and the seeded-bug tests. Too large to exhaust.
    pub fn deep() -> RaftModelCfg {
        RaftModelCfg {
            max_term: 3,
            max_log: 2,
            max_crashes: 1,
            ..RaftModelCfg::ci()
        }
    }

    /// False if the bounds make the `sometimes` property `name` unreachable by construction
    /// (no crashes, no second term, no snapshots), so that a missing example is expected.
    pub fn can_reach(&self, name: &str) -> bool {
        match name {
            "new leader after crash" => self.max_crashes >= 1 && self.max_term >= 2,
            "snapshot installed" => self.compaction && self.servers >= 3,
            "entry committed" => self.max_log >= 1,
            _ => true,
        }
    }

    /// The voters, `n0..n{servers-1}`; actor index `i` is `NodeId(i)`.
    pub fn voters(&self) -> Vec<NodeId> {
        (0..self.servers as u32).map(NodeId).collect()
    }

    /// Builds the Stateright model.
    pub fn into_model(self) -> RaftModel {
        assert!((1..=9).contains(&self.servers), "1..=9 servers");
        let voters = self.voters();
        let servers: Vec<RaftServer> = voters
            .iter()
            .map(|&id| {
                let mut config = Config::new(id, voters.clone());
                config.bugs = self.bugs;
                RaftServer {
                    config,
                    max_log: self.max_log,
                    compaction: self.compaction,
                }
            })
            .collect();
        let inner = ActorModel::new(self.clone(), ())
            .actors(servers)
            .init_network(self.network.network())
            .lossy_network(if self.network.lossy() {
                LossyNetwork::Yes
            } else {
                LossyNetwork::No
            })
            .max_crashes(self.max_crashes)
            .within_boundary(RaftModelCfg::within_boundary);
        RaftModel { cfg: self, inner }
    }

    /// The state bound: every server's term is at most `max_term`; on networks that hold
    /// copies (all but the duplicating ones, where a resent message is the same set element)
    /// at most [`IN_FLIGHT_MAX_PER_SERVER`] × servers messages are in flight, since every
    /// heartbeat adds a copy and the space would otherwise be infinite.
    pub fn within_boundary(&self, state: &RaftState) -> bool {
        let copies = !matches!(state.network, Network::UnorderedDuplicating(..));
        if copies && state.network.len() > IN_FLIGHT_MAX_PER_SERVER * self.servers {
            return false;
        }
        state
            .actor_states
            .iter()
            .all(|s| s.raft.term().0 <= self.max_term)
    }
}

// ---- the actor -------------------------------------------------------------------------------

/// The actor: one Raft server. Holds only configuration.
#[derive(Clone, Debug)]
pub struct RaftServer {
    /// The core's configuration (id, voters, seeded bugs).
    pub config: Config,
    /// The `Propose` timer proposes only while the log is shorter than this.
    pub max_log: u64,
    /// Whether the `Compact` timer is armed.
    pub compaction: bool,
}

/// The actor's timers: the core's own, plus the two that stand for the world above Raft.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModelTimer {
    /// A timer of the core.
    Raft(Timer),
    /// A client asks this server to propose a command (only a leader with room does).
    Propose,
    /// The service asks this server to snapshot what it has applied.
    Compact,
}

/// One server's state in the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerState {
    /// The core.
    pub raft: Raft<Cmd>,
    /// What the disk holds, when it differs from `raft.durable()` (only under a seeded bug
    /// that skips a write; `None` for a correct server).
    pub disk: Option<Durable<Cmd>>,
    /// This server installed a snapshot sent by a leader since it last started.
    pub installed_snapshot: bool,
}

impl ServerState {
    /// What this server's disk holds.
    pub fn disk(&self) -> &Durable<Cmd> {
        self.disk.as_ref().unwrap_or(self.raft.durable())
    }
}

fn node_id(id: Id) -> NodeId {
    NodeId(usize::from(id) as u32)
}

fn actor_id(id: NodeId) -> Id {
    Id::from(id.0 as usize)
}

impl RaftServer {
    /// Carries out one `Ready` (persist → save, messages → send, timers), and returns the
    /// server's next state, or `None` if nothing changed (so Stateright can prune no-ops).
    fn drive(
        &self,
        before: &ServerState,
        raft: Raft<Cmd>,
        ready: RaftReady<Cmd>,
        from_leader: bool,
        o: &mut Out<Self>,
    ) -> Option<ServerState> {
        let disk_unchanged = ready.persist.is_empty() && raft.durable() == before.raft.durable();
        let disk = if disk_unchanged {
            before.disk.clone()
        } else {
            let mut disk = before.disk().clone();
            if !ready.persist.is_empty() {
                disk.apply_all(&ready.persist);
                o.save(disk.clone());
            }
            (&disk != raft.durable()).then_some(disk)
        };
        for (to, msg) in ready.messages {
            o.send(actor_id(to), msg);
        }
        for t in ready.timers {
            match t {
                TimerCmd::Set(t) => o.set_timer(ModelTimer::Raft(t), model_timeout()),
                TimerCmd::Cancel(t) => o.cancel_timer(ModelTimer::Raft(t)),
            }
        }
        let installed = from_leader
            && ready
                .apply
                .iter()
                .any(|a| matches!(a, aver_core::raft::Apply::Snapshot(_)));
        let next = ServerState {
            raft,
            disk,
            installed_snapshot: before.installed_snapshot || installed,
        };
        (next != *before).then_some(next)
    }

    /// Runs `input` on a copy of the core and drives its `Ready`; leaves `state` borrowed when
    /// nothing changed.
    fn step(
        &self,
        state: &mut Cow<ServerState>,
        from_leader: bool,
        o: &mut Out<Self>,
        input: impl FnOnce(&mut Raft<Cmd>),
    ) {
        let mut raft = state.raft.clone();
        input(&mut raft);
        let ready = raft.take_ready();
        if let Some(next) = self.drive(state, raft, ready, from_leader, o) {
            *state = Cow::Owned(next);
        }
    }

    /// The bytes a service would snapshot after applying everything up to `applied`: the
    /// previous snapshot's bytes followed by the applied commands.
    fn service_state(raft: &Raft<Cmd>) -> Arc<[u8]> {
        let log = raft.log();
        let mut data: Vec<u8> = raft
            .durable()
            .snapshot
            .as_ref()
            .map(|s| s.data.to_vec())
            .unwrap_or_default();
        let mut i = log.first_index();
        while i <= raft.applied_index() {
            data.push(log.entry(i).expect("applied entries are held").command);
            i = i.next();
        }
        Arc::from(data)
    }
}

impl Actor for RaftServer {
    type Msg = Message<Cmd>;
    type Timer = ModelTimer;
    type State = ServerState;
    type Storage = Durable<Cmd>;
    type Random = ();

    fn name(&self) -> String {
        self.config.id.to_string()
    }

    fn on_start(&self, _id: Id, storage: &Option<Durable<Cmd>>, o: &mut Out<Self>) -> ServerState {
        let durable = storage.clone().unwrap_or_default();
        let mut raft = Raft::new(self.config.clone(), durable);
        let ready = raft.take_ready();
        assert!(ready.persist.is_empty(), "a starting server writes nothing");
        let before = ServerState {
            raft: raft.clone(),
            disk: None,
            installed_snapshot: false,
        };
        let state = self.drive(&before, raft, ready, false, o).unwrap_or(before);
        o.set_timer(ModelTimer::Propose, model_timeout());
        if self.compaction {
            o.set_timer(ModelTimer::Compact, model_timeout());
        }
        state
    }

    fn on_msg(
        &self,
        _id: Id,
        state: &mut Cow<ServerState>,
        src: Id,
        msg: Message<Cmd>,
        o: &mut Out<Self>,
    ) {
        let from_leader = matches!(msg, Message::InstallSnapshot(_));
        self.step(state, from_leader, o, |raft| {
            raft.on_message(node_id(src), msg)
        });
    }

    fn on_timeout(
        &self,
        _id: Id,
        state: &mut Cow<ServerState>,
        timer: &ModelTimer,
        o: &mut Out<Self>,
    ) {
        match *timer {
            ModelTimer::Raft(t) => self.step(state, false, o, |raft| raft.on_timeout(t)),
            ModelTimer::Propose => {
                let raft = &state.raft;
                if raft.is_leader() && raft.log().last_index().0 < self.max_log {
                    let command = self.config.id.0 as Cmd;
                    self.step(state, false, o, |raft| {
                        raft.propose(command).expect("a leader accepts proposals");
                    });
                }
                o.set_timer(ModelTimer::Propose, model_timeout());
            }
            ModelTimer::Compact => {
                let raft = &state.raft;
                let applied = raft.applied_index();
                if applied > raft.log().base().index {
                    let data = Self::service_state(raft);
                    self.step(state, false, o, |raft| {
                        assert!(
                            raft.snapshot(applied, data),
                            "applied entries can be compacted"
                        );
                    });
                }
                o.set_timer(ModelTimer::Compact, model_timeout());
            }
        }
    }
}

// ---- properties ------------------------------------------------------------------------------

/// One property of the model: its expectation, name and condition.
pub struct RaftProperty {
    /// `Always` for safety, `Sometimes` for reachability.
    pub expectation: Expectation,
    /// The catalogue ID and name, e.g. `"RAFT-1 Election Safety"`.
    pub name: &'static str,
    /// The condition, evaluated on every reachable state.
    pub condition: fn(&RaftModel, &RaftState) -> bool,
}

fn nodes(state: &RaftState) -> Vec<&Raft<Cmd>> {
    state.actor_states.iter().map(|s| &s.raft).collect()
}

/// The first recorded step violation among the servers, if any.
fn recorded<'a>(state: &'a RaftState, id: &str) -> Option<&'a Violation> {
    state
        .actor_states
        .iter()
        .filter_map(|s| s.raft.violation())
        .find(|v| v.id == id)
}

/// `id` holds in `state`: no server recorded a violation of it and `check` finds none.
fn holds(state: &RaftState, id: &str, check: fn(&[&Raft<Cmd>]) -> Result<(), Violation>) -> bool {
    if recorded(state, id).is_some() {
        return false;
    }
    match check(&nodes(state)) {
        Ok(()) => true,
        Err(v) => v.id != id,
    }
}

fn per_node(nodes: &[&Raft<Cmd>]) -> Result<(), Violation> {
    nodes
        .iter()
        .try_for_each(|n| invariants::snapshot_consistency(n))
}

fn nothing(_: &[&Raft<Cmd>]) -> Result<(), Violation> {
    Ok(())
}

/// Every property, in catalogue order: the safety invariants, then the reachability checks.
pub const PROPERTIES: &[RaftProperty] = &[
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-1 Election Safety",
        condition: |_, s| holds(s, invariants::ELECTION_SAFETY, invariants::election_safety),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-2 Leader Append-Only",
        condition: |_, s| holds(s, invariants::LEADER_APPEND_ONLY, nothing),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-3 Log Matching",
        condition: |_, s| holds(s, invariants::LOG_MATCHING, invariants::log_matching),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-4 Leader Completeness",
        condition: |_, s| {
            holds(
                s,
                invariants::LEADER_COMPLETENESS,
                invariants::leader_completeness,
            )
        },
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-5 State Machine Safety",
        condition: |_, s| {
            holds(
                s,
                invariants::STATE_MACHINE_SAFETY,
                invariants::state_machine_safety,
            )
        },
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-6 Current-Term Commit",
        condition: |_, s| holds(s, invariants::CURRENT_TERM_COMMIT, nothing),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-7 Commit Quorum",
        condition: |_, s| holds(s, invariants::COMMIT_QUORUM, invariants::commit_quorum),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-8 Snapshot Within Commit",
        condition: |_, s| holds(s, invariants::SNAPSHOT_WITHIN_COMMIT, per_node),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-9 Snapshot/Log Consistency",
        condition: |_, s| holds(s, invariants::SNAPSHOT_LOG_CONSISTENCY, per_node),
    },
    RaftProperty {
        expectation: Expectation::Always,
        name: "RAFT-10 Monotonicity",
        condition: |_, s| holds(s, invariants::MONOTONIC, nothing),
    },
    RaftProperty {
        expectation: Expectation::Sometimes,
        name: "leader elected",
        condition: |_, s| s.actor_states.iter().any(|n| n.raft.is_leader()),
    },
    RaftProperty {
        expectation: Expectation::Sometimes,
        name: "entry committed",
        condition: |_, s| {
            s.actor_states
                .iter()
                .any(|n| n.raft.commit_index() > LogIndex(0))
        },
    },
    RaftProperty {
        expectation: Expectation::Sometimes,
        name: "snapshot installed",
        condition: |_, s| s.actor_states.iter().any(|n| n.installed_snapshot),
    },
    RaftProperty {
        expectation: Expectation::Sometimes,
        name: "new leader after crash",
        condition: |_, s| new_leader_after_crash(s),
    },
];

/// A crashed server was leading when it went down, and a running server leads a later term.
fn new_leader_after_crash(s: &RaftState) -> bool {
    let crashed_leader_term = s
        .actor_states
        .iter()
        .zip(&s.crashed)
        .filter(|(n, crashed)| **crashed && n.raft.is_leader())
        .map(|(n, _)| n.raft.term())
        .min();
    let Some(old) = crashed_leader_term else {
        return false;
    };
    s.actor_states
        .iter()
        .zip(&s.crashed)
        .any(|(n, crashed)| !*crashed && n.raft.is_leader() && n.raft.term() > old)
}

/// The names of the `always` properties.
pub fn safety_properties() -> impl Iterator<Item = &'static str> {
    PROPERTIES
        .iter()
        .filter(|p| matches!(p.expectation, Expectation::Always))
        .map(|p| p.name)
}

/// The property whose name starts with `id` (e.g. `"RAFT-7"`).
pub fn property_named(id: &str) -> Option<&'static str> {
    PROPERTIES
        .iter()
        .map(|p| p.name)
        .find(|n| n.split(' ').next() == Some(id) || *n == id)
}

// ---- counterexample traces -------------------------------------------------------------------

/// One step of a trace, for humans and for JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceStep {
    /// 1-based step number.
    pub step: usize,
    /// The actor that acted (`n0`…), or the network for a drop.
    pub actor: String,
    /// The action: a delivery, timeout, crash, recover or drop.
    pub action: String,
    /// Storage operations the step made durable (a diff of the disk).
    pub persisted: Vec<String>,
    /// What changed in the actor's state.
    pub changed: Vec<String>,
    /// Messages the step sent.
    pub sent: Vec<String>,
}

/// Describes a server briefly: role, term, vote, commit, applied, log.
pub fn describe_server(s: &ServerState) -> String {
    let r = &s.raft;
    let log: Vec<String> = r
        .log()
        .entries()
        .iter()
        .map(|e| format!("{}:{}", e.term.0, e.command))
        .collect();
    let base = r.log().base();
    format!(
        "{:?} term={} vote={} commit={} applied={} snap=({},{}) log=[{}]{}",
        r.role_kind(),
        r.term().0,
        r.voted_for().map_or("-".into(), |v| v.to_string()),
        r.commit_index().0,
        r.applied_index().0,
        base.index.0,
        base.term.0,
        log.join(" "),
        r.violation()
            .map_or(String::new(), |v| format!(" VIOLATION {v}"))
    )
}

/// Describes a message briefly.
pub fn describe_msg(msg: &Message<Cmd>) -> String {
    match msg {
        Message::RequestVote(m) => format!(
            "RequestVote(t{}, last=({},{}))",
            m.term.0, m.last_log_index.0, m.last_log_term.0
        ),
        Message::RequestVoteReply(m) => {
            format!("RequestVoteReply(t{}, granted={})", m.term.0, m.granted)
        }
        Message::AppendEntries(m) => {
            let es: Vec<String> = m
                .entries
                .iter()
                .map(|e| format!("{}:{}", e.term.0, e.command))
                .collect();
            format!(
                "AppendEntries(t{}, prev=({},{}), [{}], commit={})",
                m.term.0,
                m.prev_log_index.0,
                m.prev_log_term.0,
                es.join(" "),
                m.leader_commit.0
            )
        }
        Message::AppendEntriesReply(m) => {
            format!("AppendEntriesReply(t{}, {:?})", m.term.0, m.result)
        }
        Message::InstallSnapshot(m) => format!(
            "InstallSnapshot(t{}, snap=({},{}))",
            m.term.0, m.snapshot.meta.index.0, m.snapshot.meta.term.0
        ),
        Message::InstallSnapshotReply(m) => {
            format!(
                "InstallSnapshotReply(t{}, match={})",
                m.term.0, m.match_index.0
            )
        }
    }
}

fn describe_persist(before: &Durable<Cmd>, after: &Durable<Cmd>) -> Vec<String> {
    let mut out = Vec::new();
    if before.hard != after.hard {
        out.push(format!(
            "hard state term={} vote={}",
            after.hard.term.0,
            after.hard.voted_for.map_or("-".into(), |v| v.to_string())
        ));
    }
    if let Some(s) = after
        .snapshot
        .as_ref()
        .filter(|_| before.snapshot != after.snapshot)
    {
        out.push(format!("snapshot ({},{})", s.meta.index.0, s.meta.term.0));
    }
    if before.log != after.log {
        let log: Vec<String> = after
            .log
            .entries()
            .iter()
            .map(|e| format!("{}:{}", e.term.0, e.command))
            .collect();
        out.push(format!("log [{}]", log.join(" ")));
    }
    out
}

fn describe_action(action: &RaftAction) -> (String, String) {
    match action {
        ActorModelAction::Deliver { src, dst, msg } => (
            node_id(*dst).to_string(),
            format!("receive {} from {}", describe_msg(msg), node_id(*src)),
        ),
        ActorModelAction::Drop(Envelope { src, dst, msg }) => (
            "network".into(),
            format!(
                "drop {} {}→{}",
                describe_msg(msg),
                node_id(*src),
                node_id(*dst)
            ),
        ),
        ActorModelAction::Timeout(id, t) => (node_id(*id).to_string(), format!("timeout {t:?}")),
        ActorModelAction::Crash(id) => (node_id(*id).to_string(), "crash".into()),
        ActorModelAction::Recover(id) => (node_id(*id).to_string(), "recover from storage".into()),
        ActorModelAction::SelectRandom { actor, .. } => {
            (node_id(*actor).to_string(), "random choice".into())
        }
    }
}

fn acting_index(action: &RaftAction) -> Option<usize> {
    match action {
        ActorModelAction::Deliver { dst, .. } => Some(usize::from(*dst)),
        ActorModelAction::Timeout(id, _)
        | ActorModelAction::Crash(id)
        | ActorModelAction::Recover(id) => Some(usize::from(*id)),
        ActorModelAction::SelectRandom { actor, .. } => Some(usize::from(*actor)),
        ActorModelAction::Drop(_) => None,
    }
}

/// Turns a path of the model into readable steps: who acted, on what, what it persisted,
/// what changed and what it sent.
pub fn trace(steps: &[(RaftState, Option<RaftAction>)]) -> Vec<TraceStep> {
    let mut out = Vec::new();
    for (k, pair) in steps.windows(2).enumerate() {
        let (before, Some(action)) = (&pair[0].0, &pair[0].1) else {
            continue;
        };
        let after = &pair[1].0;
        let (actor, what) = describe_action(action);
        let mut step = TraceStep {
            step: k + 1,
            actor,
            action: what,
            persisted: Vec::new(),
            changed: Vec::new(),
            sent: Vec::new(),
        };
        if let Some(i) = acting_index(action) {
            let empty = Durable::default();
            let disk_before = before.actor_storages[i].as_ref().unwrap_or(&empty);
            let disk_after = after.actor_storages[i].as_ref().unwrap_or(&empty);
            step.persisted = describe_persist(disk_before, disk_after);
            let (b, a) = (
                describe_server(&before.actor_states[i]),
                describe_server(&after.actor_states[i]),
            );
            if b != a {
                step.changed.push(format!("{b}  ⇒  {a}"));
            }
            if before.crashed[i] != after.crashed[i] {
                step.changed
                    .push(if after.crashed[i] { "down" } else { "up" }.into());
            }
        }
        let old: Vec<_> = before.network.iter_all().collect();
        for env in after.network.iter_all() {
            if !old.contains(&env) {
                step.sent.push(format!(
                    "{}→{} {}",
                    node_id(env.src),
                    node_id(env.dst),
                    describe_msg(env.msg)
                ));
            }
        }
        out.push(step);
    }
    out
}

/// Replays `actions` from the initial state; `None` unless each one is enabled (offered by
/// `Model::actions`, changes something, stays within the bounds). Returns the states.
pub fn replay(model: &RaftModel, actions: &[RaftAction]) -> Option<Vec<RaftState>> {
    let mut states = vec![model.init_states().pop()?];
    let mut enabled = Vec::new();
    for a in actions {
        let last = states.last()?;
        enabled.clear();
        model.actions(last, &mut enabled);
        if !enabled.contains(a) {
            return None;
        }
        let next = model.next_state(last, a.clone())?;
        if !model.within_boundary(&next) {
            return None;
        }
        states.push(next);
    }
    Some(states)
}

// ---- random walks ----------------------------------------------------------------------------

/// A state path: each state with the action taken from it (`None` for the last).
pub type StatePath = Vec<(RaftState, Option<RaftAction>)>;

/// What [`random_walks`] found.
pub struct WalkReport {
    /// For each entry of [`PROPERTIES`], the first path that discovered it (a counterexample
    /// for `always`, an example for `sometimes`).
    pub discoveries: Vec<Option<StatePath>>,
    /// States visited over all walks.
    pub states: usize,
    /// Longest walk, in states.
    pub depth: usize,
    /// Walks run.
    pub runs: u64,
}

/// Up to `runs` seeded random walks from the initial state, each until no action is enabled
/// within the bounds or `steps_max` steps. Properties are checked at every state; the walks
/// stop at the first violated `always` property. Deterministic for a given seed. This is what
/// finds deep seeded bugs fast where exhaustive search cannot reach (`aver check --simulate`).
pub fn random_walks(model: &RaftModel, runs: u64, steps_max: usize, seed: u64) -> WalkReport {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut report = WalkReport {
        discoveries: vec![None; PROPERTIES.len()],
        states: 0,
        depth: 0,
        runs: 0,
    };
    let init = model.init_states().remove(0);
    let mut actions = Vec::new();
    while report.runs < runs {
        report.runs += 1;
        let mut path: StatePath = vec![(init.clone(), None)];
        for _ in 0..=steps_max {
            let state = &path.last().expect("non-empty").0;
            report.states += 1;
            report.depth = report.depth.max(path.len());
            for (k, p) in PROPERTIES.iter().enumerate() {
                if report.discoveries[k].is_some() {
                    continue;
                }
                let holds = (p.condition)(model, state);
                let always = matches!(p.expectation, Expectation::Always);
                if holds != always {
                    report.discoveries[k] = Some(if always {
                        shrink(model, &path, p.condition)
                    } else {
                        path.clone()
                    });
                    if always {
                        return report;
                    }
                }
            }
            actions.clear();
            model.actions(state, &mut actions);
            // Pick uniformly among the actions that are enabled within the bounds, evaluating
            // only the ones tried (most of a state's actions are never computed).
            let mut chosen = None;
            while !actions.is_empty() && chosen.is_none() {
                let a = actions.swap_remove((next() % actions.len() as u64) as usize);
                // A step that changes nothing (a redelivery whose reply is already in the
                // network) only lengthens the trace: skip it.
                chosen = model
                    .next_state(state, a.clone())
                    .filter(|s| s != state && model.within_boundary(s))
                    .map(|s| (a, s));
            }
            let Some((a, s)) = chosen else { break };
            if path.len() > steps_max {
                break;
            }
            path.last_mut().expect("non-empty").1 = Some(a);
            path.push((s, None));
        }
    }
    report
}

/// Shortens a counterexample: drops one step at a time while the rest still replays and
/// still ends in a state where `condition` fails. Random walks wander; this keeps the trace
/// readable.
fn shrink(
    model: &RaftModel,
    path: &StatePath,
    condition: fn(&RaftModel, &RaftState) -> bool,
) -> StatePath {
    let mut actions: Vec<RaftAction> = path.iter().filter_map(|(_, a)| a.clone()).collect();
    let mut i = 0;
    while i < actions.len() {
        let mut candidate = actions.clone();
        candidate.remove(i);
        let still_fails = replay(model, &candidate)
            .and_then(|states| states.last().map(|s| !condition(model, s)))
            .unwrap_or(false);
        if still_fails {
            actions = candidate;
        } else {
            i += 1;
        }
    }
    let states = replay(model, &actions).expect("the shrunk trace replays");
    let mut out: StatePath = states.into_iter().map(|s| (s, None)).collect();
    for (k, a) in actions.into_iter().enumerate() {
        out[k].1 = Some(a);
    }
    out
}
