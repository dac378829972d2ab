//! The Stateright model: which actions each state offers and what each one does.

use super::actor::{self, Input, command};
use super::config::{NetworkKind, RaftModelCfg};
use super::properties::{PROPERTIES, RaftProperty};
use super::state::{Env, Events, Fault, Leaders, RaftState, Shared, Spent};
use super::trace::describe_msg;
use aver_core::NodeId;
use aver_core::raft::{Bugs, Config, Durable, Role, Term, Timer};
use stateright::{Expectation, Model, Property};
use std::fmt;
use std::sync::Arc;

/// The command type the model's log carries: its proposer's term and id (see
/// [`actor::command`]).
pub type Cmd = u8;

/// The Stateright model of a Raft cluster.
#[derive(Clone)]
pub struct RaftModel {
    /// The bounds and switches.
    pub cfg: RaftModelCfg,
    shared: Arc<Shared>,
}

/// One action of [`RaftModel`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum RaftAction {
    /// Deliver a message in flight to its destination.
    Deliver(Env),
    /// Lose a message in flight (lossy networks only).
    Drop(Env),
    /// A timer of the core fires on a running server.
    Timeout(NodeId, Timer),
    /// A client asks a leader to propose a command (while its log is shorter than `max_log`).
    Propose(NodeId),
    /// The service of a running server snapshots what it has applied beyond its snapshot.
    Compact(NodeId),
    /// A running server crashes: its volatile state is lost, its disk kept.
    Crash(NodeId),
    /// A crashed server restarts from its disk.
    Recover(NodeId),
    /// A running server crashes and restarts from its disk in one step (with
    /// `restart_at_crash`, instead of `Crash` and `Recover`; see `RaftModel::restart`).
    Restart(NodeId),
}

impl fmt::Debug for RaftAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RaftAction::Deliver(e) => write!(f, "{}→{} {}", e.src, e.dst, describe_msg(&e.msg)),
            RaftAction::Drop(e) => write!(f, "drop {}→{} {}", e.src, e.dst, describe_msg(&e.msg)),
            RaftAction::Timeout(n, t) => write!(f, "{n} timeout {t:?}"),
            RaftAction::Propose(n) => write!(f, "{n} propose"),
            RaftAction::Compact(n) => write!(f, "{n} compact"),
            RaftAction::Crash(n) => write!(f, "{n} crash"),
            RaftAction::Recover(n) => write!(f, "{n} recover"),
            RaftAction::Restart(n) => write!(f, "{n} restart"),
        }
    }
}

impl RaftAction {
    /// The server that acts (the destination of a delivery), or `None` for a drop.
    pub fn actor(&self) -> Option<NodeId> {
        match self {
            RaftAction::Deliver(e) => Some(e.dst),
            RaftAction::Drop(_) => None,
            RaftAction::Timeout(n, _)
            | RaftAction::Propose(n)
            | RaftAction::Compact(n)
            | RaftAction::Crash(n)
            | RaftAction::Recover(n)
            | RaftAction::Restart(n) => Some(*n),
        }
    }
}

impl RaftModel {
    /// Builds the model of `cfg`.
    pub fn new(cfg: RaftModelCfg) -> RaftModel {
        assert!((1..=9).contains(&cfg.servers), "1..=9 servers");
        assert!(cfg.max_term < 16, "commands hold terms below 16");
        let voters = cfg.voters();
        let configs = voters
            .iter()
            .map(|&id| {
                let mut config = Config::new(id, voters.clone());
                config.bugs = cfg.bugs;
                config.step_checks = cfg.step_checks;
                Arc::new(config)
            })
            .collect();
        // The reduction reads the correct core's handling of stale terms and of votes (see
        // `Raft::request_moot_within`); bugs that change it turn it off.
        let stale_rules_hold = cfg.bugs.keep_stale_handling();
        let shared = Arc::new(Shared {
            configs,
            network: cfg.network,
            collect_dead_messages: cfg.collect_dead_messages,
            stale_bound: (cfg.collect_stale_requests && stale_rules_hold)
                .then_some(Term(cfg.max_term)),
            merge_equivalent: cfg.merge_equivalent_messages
                && cfg.covering
                && cfg.network.duplicating()
                && cfg.bugs == Bugs::NONE,
            forget_leader_hint: cfg.forget_leader_hint,
        });
        RaftModel { cfg, shared }
    }

    /// Whether a crash is modelled as one `Restart` step (see [`RaftModel::restart`]).
    fn restarts(&self) -> bool {
        self.cfg.restart_at_crash && self.cfg.forget_on_crash && self.cfg.max_crashes > 0
    }

    /// The properties this model checks: all of [`PROPERTIES`], but without the servers' own
    /// step and node checks when `step_checks` is off.
    pub fn checked_properties(&self) -> impl Iterator<Item = &'static RaftProperty> + '_ {
        PROPERTIES
            .iter()
            .filter(|p| self.cfg.step_checks || !p.step_check)
    }

    fn deliverable(&self, state: &RaftState, k: usize) -> bool {
        let e = &state.network[k];
        if state.servers[e.dst.0 as usize].down {
            return false;
        }
        // On the ordered network only the oldest message of each (sender, receiver) pair.
        self.cfg.network != NetworkKind::Ordered
            || !state.network[..k]
                .iter()
                .any(|o| o.src == e.src && o.dst == e.dst)
    }

    fn server_actions(
        &self,
        state: &RaftState,
        i: usize,
        crashes_left: bool,
        out: &mut Vec<RaftAction>,
    ) {
        let s = &state.servers[i];
        let id = s.raft.id();
        if s.down {
            out.push(RaftAction::Recover(id));
            return;
        }
        out.extend(
            s.timers
                .iter()
                .filter(|&t| self.may_time_out(state, i, t))
                .map(|t| RaftAction::Timeout(id, t)),
        );
        let may_propose = below(state.spent.proposals, self.cfg.limits.proposals);
        if may_propose && s.raft.is_leader() && s.raft.log().last_index().0 < self.cfg.max_log {
            out.push(RaftAction::Propose(id));
        }
        if self.cfg.compaction && s.raft.applied_index() > s.raft.log().base().index {
            out.push(RaftAction::Compact(id));
        }
        if self.restarts() {
            out.push(RaftAction::Restart(id));
        } else if crashes_left {
            out.push(RaftAction::Crash(id));
        }
        debug_assert_eq!(i, id.0 as usize);
    }

    /// Whether timer `t` of server `i` may fire, by the behaviour limits (`cfg.limits`):
    /// within its budget, and for an election timer, with no other server a candidate when
    /// campaigns may not overlap.
    fn may_time_out(&self, state: &RaftState, i: usize, t: Timer) -> bool {
        let limits = &self.cfg.limits;
        match t {
            Timer::Heartbeat => below(state.spent.heartbeats, limits.heartbeats),
            Timer::Election => {
                below(state.spent.campaigns, limits.campaigns)
                    && !(limits.one_candidate
                        && state.servers.iter().enumerate().any(|(j, o)| {
                            j != i && !o.down && matches!(o.raft.role(), Role::Candidate { .. })
                        }))
            }
        }
    }

    /// Counts `action` against the budget of its limit, if that limit is set (so a model
    /// without limits never counts, and its states stay as they were).
    fn spend(&self, state: &mut RaftState, action: &RaftAction) {
        let limits = &self.cfg.limits;
        let spent = &mut state.spent;
        let (count, limit) = match action {
            RaftAction::Timeout(_, Timer::Election) => (&mut spent.campaigns, limits.campaigns),
            RaftAction::Timeout(_, Timer::Heartbeat) => (&mut spent.heartbeats, limits.heartbeats),
            RaftAction::Propose(_) => (&mut spent.proposals, limits.proposals),
            _ => return,
        };
        if limit.is_some() {
            *count += 1;
        }
    }

    /// Removes messages their receiver will ignore forever (when `collect_dead_messages`): an
    /// envelope goes if its destination's latest state (crashed or not) says, by the core's
    /// own [`aver_core::raft::Raft::ignores_forever`], that delivering it is a no-op now and
    /// in every future state of that server, a restart from its disk included. Such a
    /// delivery changes nothing, so the only difference between a state with the envelope
    /// and one without is an action that can never have an effect: both reach the same
    /// server states, and every property (all are on server states and the apply record) has
    /// the same verdict. The envelope may be sent again later; it is then collected again. The
    /// predicate assumes the disk is exactly `raft.durable()`, so servers whose disk differs
    /// (a seeded bug that skips a write) are never collected for. The adapter makes no
    /// protocol decision here: the core's predicate does (the rule within the term bound,
    /// below, reads the core's handlers at a bound that only the model knows).
    ///
    /// Deadness by `ignores_forever` depends only on the destination's state, so after a step
    /// only the messages to the server that acted are looked at again; new messages are
    /// looked at as they are sent ([`RaftState::send`]). With `collect_stale_requests`,
    /// requests that can no longer matter within the term bound
    /// ([`RaftState::dead_within_bound`], which reads both ends) go the same way, so the
    /// messages from the server that acted are looked at again too.
    fn collect_dead_messages(&self, state: &mut RaftState, actor: NodeId) {
        let both_ends = state.shared.stale_bound.is_some();
        if !self.cfg.collect_dead_messages && !both_ends {
            return;
        }
        let looked_at = |e: &Env| e.dst == actor || both_ends && e.src == actor;
        if !state.network.iter().any(|e| looked_at(e) && state.dead(e)) {
            return;
        }
        let mut network = (*state.network).clone();
        network.retain(|e| !looked_at(e) || !state.dead(e));
        state.network = Arc::new(network);
    }

    /// Crashes server `i`: it stops, its timers with it, and only its disk survives.
    ///
    /// With `forget_on_crash`, its core becomes at once the core it will restart with —
    /// `Raft::new` from its disk, the very state `Recover` builds — instead of the last state
    /// it had in memory. This is sound: a down server takes no input, recovery reads only the
    /// disk, and messages it sent are already in the network, so two states that differ only
    /// in a down server's memory (its role, commit and applied indices, leader hint, replica
    /// progress) have the same futures, step for step. Properties read a down server as it
    /// will come back (what its disk holds), as the simulator does; what it applied before
    /// crashing stays in the apply record (RAFT-A1/A2), and whether it was leading stays in
    /// `crashed_leading` for the `sometimes` property "new leader after crash". A violation
    /// visible only in a lost memory was visible in the state before the crash, where the
    /// server was up (every property is checked on every state). The test suite compares
    /// reachable states and verdicts with the reduction off.
    fn crash(&self, state: &mut RaftState, i: usize) {
        let was_leading = state.servers[i].raft.is_leader();
        let s = &mut state.servers[i];
        let mut down = (***s).clone();
        down.down = true;
        down.crashed_leading = was_leading;
        down.timers = Default::default();
        *s = Arc::new(super::state::Hashed::new(down));
        if self.cfg.forget_on_crash {
            self.forget(state, i);
        }
    }

    /// Crashes server `i` and restarts it from its disk in one step (`restart_at_crash`).
    ///
    /// A down server takes no input and its timers do not fire, but nothing else in the
    /// model depends on it being down: messages to it stay in the network (every network
    /// kind keeps them until delivered or dropped), properties read it as it will come back,
    /// and the dead-message rules and delivery classes read its restart core. So a server
    /// down from one step to a later one behaves exactly like one restarted at the first
    /// step and given no input until the second — in an asynchronous model a down server
    /// is a slow one. The states where a server is down are therefore not needed: each has
    /// the same futures as its restarted twin, which the search reaches instead, and the
    /// two model the same runs whatever the bound on servers down at once (`max_crashes` ≥ 1;
    /// servers down together are servers restarted one after the other and kept idle).
    /// What remains of the down interval is `crashed_leading`, the ghost the `sometimes`
    /// property "new leader after crash" reads: set when a leader restarts, it lasts until
    /// the server's own next step that changes it (`actor::step`). The test
    /// suite compares reachable states and verdicts with the reduction off.
    fn restart(&self, state: &mut RaftState, i: usize) {
        let s = &state.servers[i];
        let crashed_leading = s.raft.is_leader() || s.crashed_leading;
        let disk = s.disk().clone();
        actor::start(state, i, &self.shared.configs[i], disk);
        if crashed_leading {
            let mut up = (**state.servers[i]).clone();
            up.crashed_leading = true;
            state.servers[i] = Arc::new(super::state::Hashed::new(up));
        }
    }

    /// `state` with every down server restarted (as `Recover` does, its `crashed_leading`
    /// kept), for comparing the search with `restart_at_crash` to the one without.
    pub fn restarted(&self, state: &RaftState) -> RaftState {
        let mut out = state.clone();
        for i in 0..out.servers.len() {
            if out.servers[i].down {
                let crashed_leading = out.servers[i].crashed_leading;
                self.apply(&mut out, RaftAction::Recover(NodeId(i as u32)));
                let mut up = (**out.servers[i]).clone();
                up.crashed_leading = crashed_leading;
                out.servers[i] = Arc::new(super::state::Hashed::new(up));
                self.collect_dead_messages(&mut out, NodeId(i as u32));
            }
        }
        out
    }

    /// Replaces down server `i`'s core by the one it restarts with (see [`RaftModel::crash`]).
    fn forget(&self, state: &mut RaftState, i: usize) {
        let before = Arc::clone(&state.servers[i]);
        actor::start(state, i, &self.shared.configs[i], before.disk().clone());
        let mut down = (**state.servers[i]).clone();
        down.down = true;
        down.crashed_leading = before.crashed_leading;
        down.timers = Default::default();
        state.servers[i] = Arc::new(super::state::Hashed::new(down));
    }

    /// `state` with every down server's memory forgotten, as `forget_on_crash` does at the
    /// crash (for comparing the reduced search with the unreduced one).
    pub fn forgotten(&self, state: &RaftState) -> RaftState {
        let mut out = state.clone();
        for i in 0..out.servers.len() {
            if out.servers[i].down {
                self.forget(&mut out, i);
                self.collect_dead_messages(&mut out, NodeId(i as u32));
            }
        }
        out
    }

    fn apply(&self, state: &mut RaftState, action: RaftAction) {
        match action {
            RaftAction::Deliver(e) => {
                if !self.cfg.network.duplicating() {
                    state.remove(&e);
                }
                let input = Input::Message(e.src, e.msg.clone());
                actor::step(state, e.dst.0 as usize, input);
            }
            RaftAction::Drop(e) => state.remove(&e),
            RaftAction::Timeout(n, t) => actor::step(state, n.0 as usize, Input::Timeout(t)),
            RaftAction::Propose(n) => {
                let term = state.servers[n.0 as usize].raft.term().0;
                actor::step(state, n.0 as usize, Input::Propose(command(term, n)));
            }
            RaftAction::Compact(n) => actor::step(state, n.0 as usize, Input::Compact),
            RaftAction::Crash(n) => self.crash(state, n.0 as usize),
            RaftAction::Recover(n) => {
                let i = n.0 as usize;
                let disk = state.servers[i].disk().clone();
                actor::start(state, i, &self.shared.configs[i], disk);
            }
            RaftAction::Restart(n) => self.restart(state, n.0 as usize),
        }
    }
}

/// Records in the ghost [`Leaders`] that `actor` was just elected (it leads now and did not
/// in `last`); an election into a term already led is an Election Safety violation (RAFT-1
/// over the whole run), recorded as the state's fault unless one is recorded already.
fn record_election(last: &RaftState, state: &mut RaftState, actor: NodeId) {
    let i = actor.0 as usize;
    let s = &state.servers[i];
    if s.down || !s.raft.is_leader() || last.servers[i].raft.is_leader() {
        return;
    }
    let term = s.raft.term();
    if !state.leaders.led(term) {
        state.leaders.record(term);
    } else if state.fault.is_none() {
        state.fault = Some(Fault {
            id: aver_core::raft::invariants::ELECTION_SAFETY,
            detail: format!("a second server was elected in term {}", term.0),
        });
    }
}

/// `spent` is below `limit`, or there is no limit.
fn below(spent: u8, limit: Option<u8>) -> bool {
    limit.is_none_or(|l| spent < l)
}

impl Model for RaftModel {
    type State = RaftState;
    type Action = RaftAction;

    fn init_states(&self) -> Vec<RaftState> {
        let mut state = RaftState {
            servers: Vec::new(),
            network: Arc::new(Vec::new()),
            applied: Vec::new(),
            fault: None,
            events: Events::default(),
            spent: Spent::default(),
            leaders: Leaders::default(),
            shared: Arc::clone(&self.shared),
        };
        for (i, config) in self.shared.configs.iter().enumerate() {
            actor::start(&mut state, i, config, Durable::default());
        }
        vec![state]
    }

    fn actions(&self, state: &RaftState, actions: &mut Vec<RaftAction>) {
        let crashes_left = state.down() < self.cfg.max_crashes;
        for i in 0..state.servers.len() {
            self.server_actions(state, i, crashes_left, actions);
        }
        let classes = state.delivery_classes();
        for (k, e) in state.network.iter().enumerate() {
            if state.stands_for_another(&classes, k) {
                continue;
            }
            if self.deliverable(state, k) {
                actions.push(RaftAction::Deliver(Arc::clone(e)));
            }
            if self.cfg.network.lossy() {
                actions.push(RaftAction::Drop(Arc::clone(e)));
            }
        }
    }

    /// Carries out `action`; `None` if it changes nothing (a redelivery whose effects are all
    /// already in the state), so such self-loops cost no states.
    fn next_state(&self, last: &RaftState, action: RaftAction) -> Option<RaftState> {
        let mut next = last.clone();
        next.events = Events::default();
        let actor = action.actor();
        let limited = self.cfg.limits.any().then(|| action.clone());
        self.apply(&mut next, action);
        if let Some(actor) = actor {
            record_election(last, &mut next, actor);
            self.collect_dead_messages(&mut next, actor);
        }
        if next == *last {
            return None;
        }
        // Only a step that did something spends its budget.
        if let Some(action) = limited {
            self.spend(&mut next, &action);
        }
        Some(next)
    }

    fn format_action(&self, action: &RaftAction) -> String {
        format!("{action:?}")
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.checked_properties()
            .map(|p| match p.expectation {
                Expectation::Always => Property::always(p.name, p.condition),
                Expectation::Sometimes => Property::sometimes(p.name, p.condition),
                Expectation::Eventually => Property::eventually(p.name, p.condition),
            })
            .collect()
    }

    fn within_boundary(&self, state: &RaftState) -> bool {
        self.cfg.within_boundary(state)
    }
}
