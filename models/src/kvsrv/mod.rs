//! # The versioned KV (kvsrv) and its lock, model-checked
//!
//! These models run aver's kvsrv cores — the server, the clerk, the lock client
//! (`aver_core::kvsrv`) — inside Stateright's actor framework and explore every interleaving
//! of their inputs.
//!
//! ## What is modelled
//!
//! * **Actors.** Actor 0 is the server; the others are scripted clerks (the `kvsrv` model)
//!   or lock clients (the `lock` model). Each handler feeds one input to a core and maps its
//!   `Ready` to Stateright commands ([`actor`]); the only choices the actors make are the
//!   application's: a scripted clerk starts its next operation as soon as one returns, a lock
//!   client releases when its `Leave` timer fires and starts its next round after a release.
//! * **Timers** fire at any moment (`model_timeout()`): a clerk may retransmit before, or long
//!   after, its request or reply was lost.
//! * **Network** ([`KvNetwork`]). The default, `rpc`, is the network the protocol is built
//!   for, labrpc's: any message may be lost, replies may be duplicated, messages to different
//!   clerks race each other, a send reaches the server at most once, and a clerk retransmits
//!   only once its previous copy is resolved (lost, or executed and its reply lost) — the
//!   retry timer is enabled only while nothing of that clerk is in flight. Two more networks
//!   break one assumption each, to show the `ErrMaybe` rule needs it: `async` lets a
//!   retransmission race earlier copies still in flight, `duplicating` delivers one send
//!   several times. With either, the correct clerk produces non-linearizable histories
//!   (`models/tests/kvsrv.rs` asserts it; specs/kvsrv.md explains it).
//! * **History** ([`history`]): the model owns its history type — an operation is invoked at
//!   its first send, a reply counts only while its operation is pending — and checks it with
//!   `aver-checker` whenever an operation returns.
//!
//! After every step the model ([`KvsrvModel::next_state`]) moves the clerks' call/return
//! records into the history, forgets delivered requests (`rpc`: at most once per send), and
//! removes replies their receiver will ignore forever (the core's `ignores_forever`: replies to
//! finished operations), and renumbers each clerk's operations (the core's `canonicalize`) —
//! two sound reductions that keep the same reachable actor states up to operation numbers.
//!
//! ## Bounds
//!
//! Bounds are on the state. The workload bounds the models: scripts of a few operations, or a
//! few lock clients with a few rounds each. A lock client waiting for the lock reads it again
//! and again, each read a new operation number; the model renumbers every clerk's operations
//! after each step ([`KvsrvModel::next_state`]), so a read that sees what the last one saw
//! leads back to a known state. A seeded bug may write the lock forever, so the lock's version
//! is bounded ([`KvsrvModelCfg::version_max`]; a correct lock stays below it). On `rpc` and
//! `duplicating` the network needs no bound (at most one message per clerk is in flight, or a
//! set of distinct ones); on `async` at most [`ASYNC_IN_FLIGHT_MAX`] per clerk.

mod actor;
pub mod history;
mod properties;
pub mod trace;

pub use actor::{KvActor, KvState, KvTimer, LOCK_KEY, SERVER};
pub use history::{Ghost, HistEvent};
pub use properties::{KV_PROPERTIES, KvProperty, LOCK_PROPERTIES};

use aver_core::kvsrv::{Bugs, Message, Op, Version};
use stateright::actor::{
    ActorModel, ActorModelAction, ActorModelState, Envelope, Id, LossyNetwork, Network,
};
use stateright::{Expectation, Model};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// One state of [`KvsrvModel`].
pub type KvsrvState = ActorModelState<KvActor, Ghost>;
/// One action of [`KvsrvModel`].
pub type KvsrvAction = ActorModelAction<Message, KvTimer, ()>;

/// Messages in flight per clerk allowed on the `async` network.
pub const ASYNC_IN_FLIGHT_MAX: usize = 2;

/// The network the messages travel on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvNetwork {
    /// labrpc's semantics (the default): lossy, replies may be duplicated, each send delivered
    /// at most once, and a retransmission only after the previous copy is resolved.
    Rpc,
    /// Lossy and unordered, and a clerk may retransmit while earlier copies are in flight.
    Async,
    /// Lossy, and any message — requests too — may be delivered any number of times.
    Duplicating,
}

impl KvNetwork {
    /// Every network, by its `--network` name.
    pub const ALL: [KvNetwork; 3] = [KvNetwork::Rpc, KvNetwork::Async, KvNetwork::Duplicating];

    /// The `--network` name.
    pub fn name(self) -> &'static str {
        match self {
            KvNetwork::Rpc => "rpc",
            KvNetwork::Async => "async",
            KvNetwork::Duplicating => "duplicating",
        }
    }

    fn network(self) -> Network<Message> {
        match self {
            KvNetwork::Async => Network::new_unordered_nonduplicating([]),
            KvNetwork::Rpc | KvNetwork::Duplicating => Network::new_unordered_duplicating([]),
        }
    }
}

impl fmt::Display for KvNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KvNetwork {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KvNetwork::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = KvNetwork::ALL.iter().map(|k| k.name()).collect();
                format!("unknown kvsrv network `{s}`; known: {}", names.join(", "))
            })
    }
}

/// What the clients do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// The `kvsrv` model: one clerk per script, each running its operations in order.
    Clerks(Vec<Vec<Op>>),
    /// The `lock` model: `clients` lock clients, each acquiring and releasing `rounds` times.
    Lock {
        /// Lock clients.
        clients: usize,
        /// Acquire/release cycles per client.
        rounds: u8,
    },
}

/// The configuration of one kvsrv or lock model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvsrvModelCfg {
    /// What the clients do.
    pub workload: Workload,
    /// The network.
    pub network: KvNetwork,
    /// Seeded bugs, in every clerk and lock client.
    pub bugs: Bugs,
    /// Apply the sound reductions ([`KvsrvModel::reduce`]); off only to compare state counts
    /// and reachable sets (then every clerk's operation numbers are bounded by
    /// [`UNREDUCED_SEQ_MAX`] instead).
    pub reduce: bool,
}

/// Without reductions, the highest operation number a clerk may reach.
pub const UNREDUCED_SEQ_MAX: u64 = 4;

/// `Get(key)`.
pub fn get(key: &str) -> Op {
    Op::Get { key: key.into() }
}

/// `Put(key, value, version)`.
pub fn put(key: &str, value: &str, version: u64) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
        version: Version(version),
    }
}

impl KvsrvModelCfg {
    /// The `kvsrv` CI configuration: two clerks on one key, `rpc` network. Clerk 1 creates the
    /// key and reads it; clerk 2 races to create it and then writes version 1 — so creates
    /// collide, a put may find the key absent, at version 1 or beyond, and a lost reply turns
    /// a retransmitted create into `ErrMaybe`.
    pub fn kv_ci() -> KvsrvModelCfg {
        KvsrvModelCfg {
            workload: Workload::Clerks(vec![
                vec![put("k", "a", 0), get("k")],
                vec![put("k", "b", 0), put("k", "c", 1)],
            ]),
            network: KvNetwork::Rpc,
            bugs: Bugs::NONE,
            reduce: true,
        }
    }

    /// The larger `kvsrv` configuration: three clerks, each creating the key and reading it.
    pub fn kv_three() -> KvsrvModelCfg {
        KvsrvModelCfg {
            workload: Workload::Clerks(vec![
                vec![put("k", "a", 0), get("k")],
                vec![put("k", "b", 0), get("k")],
                vec![put("k", "c", 1), get("k")],
            ]),
            ..KvsrvModelCfg::kv_ci()
        }
    }

    /// The configuration that shows what the `ErrMaybe` rule assumes of the network: clerk
    /// 1 writes version 1 blindly (the key is absent at first), clerk 2 creates the key and
    /// reads it. On `rpc` it is linearizable; on `async` a retransmitted copy of clerk 1's put
    /// still in flight when clerk 1 returned `ErrNoKey` applies after clerk 2's create, and on
    /// `duplicating` a redelivered copy does the same.
    pub fn blind_put(network: KvNetwork) -> KvsrvModelCfg {
        KvsrvModelCfg {
            workload: Workload::Clerks(vec![
                vec![put("k", "a", 1)],
                vec![put("k", "b", 0), get("k")],
            ]),
            network,
            ..KvsrvModelCfg::kv_ci()
        }
    }

    /// The `lock` CI configuration: two clients, two rounds each, `rpc` network.
    pub fn lock_ci() -> KvsrvModelCfg {
        KvsrvModelCfg {
            workload: Workload::Lock {
                clients: 2,
                rounds: 2,
            },
            network: KvNetwork::Rpc,
            bugs: Bugs::NONE,
            reduce: true,
        }
    }

    /// The larger `lock` configuration: three clients, one round each.
    pub fn lock_three() -> KvsrvModelCfg {
        KvsrvModelCfg {
            workload: Workload::Lock {
                clients: 3,
                rounds: 1,
            },
            ..KvsrvModelCfg::lock_ci()
        }
    }

    /// The largest lock version the lock model explores: one acquiring and one releasing put
    /// per client and round, plus two. A correct lock never gets there; a seeded bug that
    /// writes the lock again and again would otherwise make the state space infinite.
    pub fn version_max(&self) -> u64 {
        match self.workload {
            Workload::Lock { clients, rounds } => 2 * clients as u64 * u64::from(rounds) + 2,
            Workload::Clerks(_) => u64::MAX,
        }
    }

    /// True for the lock model.
    pub fn is_lock(&self) -> bool {
        matches!(self.workload, Workload::Lock { .. })
    }

    /// Rounds per lock client (0 for the kvsrv model).
    pub fn rounds(&self) -> u8 {
        match self.workload {
            Workload::Lock { rounds, .. } => rounds,
            Workload::Clerks(_) => 0,
        }
    }

    /// The properties of this model.
    pub fn properties(&self) -> &'static [KvProperty] {
        if self.is_lock() {
            LOCK_PROPERTIES
        } else {
            KV_PROPERTIES
        }
    }

    /// False if the configuration makes the `sometimes` property `name` unreachable by
    /// construction.
    pub fn can_reach(&self, name: &str) -> bool {
        match (&self.workload, name) {
            (Workload::Lock { clients, .. }, "lock handed to another client") => *clients >= 2,
            (Workload::Lock { rounds, .. }, _) => *rounds >= 1,
            (Workload::Clerks(scripts), "retried put answered ErrMaybe") => scripts
                .iter()
                .flatten()
                .any(|op| matches!(op, Op::Put { .. })),
            (Workload::Clerks(_), _) => true,
        }
    }

    /// Builds the model.
    pub fn into_model(self) -> KvsrvModel {
        let mut actors = vec![KvActor::Server];
        let mut scripts = vec![Vec::new()];
        match &self.workload {
            Workload::Clerks(s) => {
                for script in s {
                    actors.push(KvActor::Clerk {
                        script: script.clone(),
                        bugs: self.bugs,
                    });
                    scripts.push(script.clone());
                }
            }
            Workload::Lock {
                clients, rounds, ..
            } => {
                for i in 1..=*clients {
                    actors.push(KvActor::Lock {
                        id: format!("c{i}"),
                        rounds: *rounds,
                        bugs: self.bugs,
                    });
                    scripts.push(Vec::new());
                }
            }
        }
        let inner = ActorModel::new(self.clone(), Ghost::new(!self.is_lock()))
            .actors(actors)
            .init_network(self.network.network())
            .lossy_network(LossyNetwork::Yes);
        KvsrvModel {
            cfg: self,
            scripts,
            inner,
        }
    }
}

/// The Stateright model: Stateright's `ActorModel` plus the history bookkeeping and the
/// network's semantics (see [`KvsrvModel::next_state`]).
#[derive(Clone)]
pub struct KvsrvModel {
    /// The configuration.
    pub cfg: KvsrvModelCfg,
    /// Each actor's script (empty for the server and lock clients).
    pub scripts: Vec<Vec<Op>>,
    /// The actor model that does the work.
    pub inner: ActorModel<KvActor, KvsrvModelCfg, Ghost>,
}

/// True if any message from or to actor `id` is in flight.
fn in_flight(state: &KvsrvState, id: Id) -> bool {
    state
        .network
        .iter_all()
        .any(|env| env.src == id || env.dst == id)
}

/// Every clerk's pending operation number is at most `max`.
fn seqs_within(state: &KvsrvState, max: u64) -> bool {
    state.actor_states.iter().all(|a| {
        let clerk = match &**a {
            KvState::Clerk { clerk, .. } => clerk,
            KvState::Lock { client, .. } => client.clerk(),
            KvState::Server(_) => return true,
        };
        clerk.pending().is_none_or(|p| p.seq.0 <= max)
    })
}

fn per_actor_in_flight_max(state: &KvsrvState) -> usize {
    (1..state.actor_states.len())
        .map(|i| {
            let id = Id::from(i);
            state
                .network
                .iter_all()
                .filter(|env| env.src == id || env.dst == id)
                .count()
        })
        .max()
        .unwrap_or(0)
}

impl KvsrvModel {
    /// Moves every actor's outbox (the step's clerk records) into the history.
    fn record(state: &mut KvsrvState) {
        for i in 0..state.actor_states.len() {
            let has_events = match &*state.actor_states[i] {
                KvState::Clerk { outbox, .. } => !outbox.is_empty(),
                KvState::Lock { outbox, .. } => !outbox.is_empty(),
                KvState::Server(_) => false,
            };
            if !has_events {
                continue;
            }
            let client = i as u8;
            match Arc::make_mut(&mut state.actor_states[i]) {
                KvState::Clerk { outbox, .. } => {
                    for e in outbox.drain(..) {
                        state.history.add(client, &e);
                    }
                }
                KvState::Lock { outbox, .. } => {
                    for e in outbox.drain(..) {
                        if let aver_core::kvsrv::LockEvent::Kv(e) = e {
                            state.history.add(client, &e);
                        }
                    }
                }
                KvState::Server(_) => {}
            }
        }
    }
}

impl KvsrvModel {
    /// The two sound reductions [`KvsrvModel::next_state`] applies after every step (when
    /// `cfg.reduce`): messages their receiver ignores forever are removed, and every clerk's
    /// operations are renumbered. Public so that tests can compare the reduced search with
    /// the unreduced one projected through this very function.
    pub fn reduce(state: &mut KvsrvState) {
        let KvsrvState {
            network,
            actor_states,
            ..
        } = &mut *state;
        let dead = |env: &Envelope<Message>| {
            actor_states
                .get(usize::from(env.dst))
                .is_some_and(|a| a.ignores_forever(&env.msg))
        };
        match network {
            Network::UnorderedDuplicating(envelopes, _) => envelopes.retain(|env| !dead(env)),
            Network::UnorderedNonDuplicating(envelopes) => envelopes.retain(|env, _| !dead(env)),
            Network::Ordered(_) => unreachable!("the kvsrv models use unordered networks"),
        }
        KvsrvModel::renumber(state);
    }

    /// Renumbers every clerk's operations and the messages from and to it (see
    /// `Clerk::canonicalize`): a lock client that reads the lock again and again would
    /// otherwise make every state new. Sound: a clerk only compares a reply's number with its
    /// pending one, the server only echoes numbers, and no property looks at them.
    fn renumber(state: &mut KvsrvState) {
        let KvsrvState {
            network,
            actor_states,
            ..
        } = state;
        let rename = |env: &Envelope<Message>| {
            let clerk = if env.msg.is_request() {
                env.src
            } else {
                env.dst
            };
            let seq = actor_states[usize::from(clerk)]
                .canonical_seq(env.msg.seq())
                .expect("clerk messages only");
            Envelope {
                src: env.src,
                dst: env.dst,
                msg: env.msg.clone().with_seq(seq),
            }
        };
        let needs = network.iter_all().any(|env| {
            let renamed = rename(&Envelope {
                src: env.src,
                dst: env.dst,
                msg: env.msg.clone(),
            });
            renamed.msg != *env.msg
        });
        if needs {
            match network {
                Network::UnorderedDuplicating(envelopes, _) => {
                    let renamed: Vec<_> = envelopes.iter().map(rename).collect();
                    envelopes.clear();
                    envelopes.extend(renamed);
                }
                Network::UnorderedNonDuplicating(envelopes) => {
                    let renamed: Vec<_> = envelopes.iter().map(|(e, n)| (rename(e), *n)).collect();
                    envelopes.clear();
                    for (e, n) in renamed {
                        *envelopes.entry(e).or_insert(0) += n;
                    }
                }
                Network::Ordered(_) => unreachable!("the kvsrv models use unordered networks"),
            }
        }
        for a in actor_states.iter_mut() {
            let canonical = a.canonical();
            if canonical != **a {
                *a = Arc::new(canonical);
            }
        }
    }
}

impl Model for KvsrvModel {
    type State = KvsrvState;
    type Action = KvsrvAction;

    fn init_states(&self) -> Vec<KvsrvState> {
        let mut states = self.inner.init_states();
        for s in &mut states {
            KvsrvModel::record(s);
        }
        states
    }

    /// Stateright's actions, except that on `rpc` and `duplicating` a clerk's retry timer is
    /// enabled only while nothing from or to that clerk is in flight (its previous copy is
    /// resolved).
    fn actions(&self, state: &KvsrvState, actions: &mut Vec<KvsrvAction>) {
        self.inner.actions(state, actions);
        if self.cfg.network != KvNetwork::Async {
            actions.retain(|a| match a {
                ActorModelAction::Timeout(id, t) if t.is_retry() => !in_flight(state, *id),
                _ => true,
            });
        }
    }

    /// Stateright's step, then: the step's clerk records go into the history; on the
    /// duplicating set network the "last delivered" field is cleared (a redelivery that
    /// changes nothing is a self-loop, harmless for safety); on `rpc` a delivered request is
    /// removed (each send reaches the server at most once); and messages their receiver
    /// ignores forever (replies to finished operations) are removed. The last is sound: such
    /// a delivery is a no-op Stateright already prunes, so with or without the envelope the
    /// same actor states are reachable, and no property looks at the network.
    fn next_state(&self, last: &KvsrvState, action: KvsrvAction) -> Option<KvsrvState> {
        let delivered = match &action {
            ActorModelAction::Deliver { src, dst, msg } if msg.is_request() => Some(Envelope {
                src: *src,
                dst: *dst,
                msg: msg.clone(),
            }),
            _ => None,
        };
        let mut next = self.inner.next_state(last, action)?;
        KvsrvModel::record(&mut next);
        if let Network::UnorderedDuplicating(envelopes, last_msg) = &mut next.network {
            *last_msg = None;
            if let (KvNetwork::Rpc, Some(env)) = (self.cfg.network, &delivered) {
                envelopes.remove(env);
            }
        }
        if self.cfg.reduce {
            KvsrvModel::reduce(&mut next);
        }
        Some(next)
    }

    fn format_action(&self, action: &KvsrvAction) -> String {
        self.inner.format_action(action)
    }

    fn format_step(&self, last: &KvsrvState, action: KvsrvAction) -> Option<String> {
        self.inner.format_step(last, action)
    }

    fn properties(&self) -> Vec<stateright::Property<Self>> {
        self.cfg
            .properties()
            .iter()
            .map(|p| match p.expectation {
                Expectation::Always => stateright::Property::always(p.name, p.condition),
                Expectation::Sometimes => stateright::Property::sometimes(p.name, p.condition),
                Expectation::Eventually => stateright::Property::eventually(p.name, p.condition),
            })
            .collect()
    }

    /// On `async`, at most [`ASYNC_IN_FLIGHT_MAX`] messages per clerk in flight; in the lock
    /// model, the lock's version at most [`KvsrvModelCfg::version_max`]; without reductions,
    /// operation numbers at most [`UNREDUCED_SEQ_MAX`].
    fn within_boundary(&self, state: &KvsrvState) -> bool {
        if self.cfg.network == KvNetwork::Async
            && per_actor_in_flight_max(state) > ASYNC_IN_FLIGHT_MAX
        {
            return false;
        }
        if !self.cfg.reduce && !seqs_within(state, UNREDUCED_SEQ_MAX) {
            return false;
        }
        let store = state.actor_states[SERVER].server().expect("server").store();
        store.version(LOCK_KEY).0 <= self.cfg.version_max()
    }
}
