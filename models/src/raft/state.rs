//! The model's state: every server (core, disk, timers, service), the messages in flight, and
//! the ghost record of what was applied.
//!
//! The encoding is compact so that the checker spends its time in the core rather than in
//! copying and hashing: servers and envelopes are shared (`Arc`) between a state and its
//! successors and carry their hash, computed once when they are made, so cloning a state
//! copies a few pointers and fingerprinting it hashes a few words.

use super::Cmd;
use super::config::NetworkKind;
use aver_core::NodeId;
use aver_core::Violation;
use aver_core::raft::{Config, DeliveryClass, Durable, Message, Raft, Term, Timer, may_lead};
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Permutations whose renamed hashes a [`Hashed`] caches: every permutation of up to
/// [`CACHED_SERVERS`] servers.
const CACHED_PERMS: usize = 6;

/// Clusters of at most this many servers get their renamed hashes cached (3! = 6 namings).
pub const CACHED_SERVERS: usize = 3;

/// The hashes of a value under each renaming of the servers, by permutation rank (see
/// [`Hashed::renamed_hash`]); 0 means not computed yet.
#[derive(Default)]
struct PermCache([AtomicU64; CACHED_PERMS]);

impl Clone for PermCache {
    fn clone(&self) -> PermCache {
        PermCache(std::array::from_fn(|k| {
            AtomicU64::new(self.0[k].load(Ordering::Relaxed))
        }))
    }
}

impl std::fmt::Debug for PermCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PermCache")
    }
}

/// A value with its hash, computed once. `Hash` writes only the stored hash; equality compares
/// the hash first, then the value.
///
/// It also caches the hash of the value *renamed* by each permutation of the servers
/// ([`Hashed::renamed_hash`]): servers and envelopes are shared by many states, so the
/// canonical key of a state ([`super::symmetry::key`]) is assembled from cached hashes
/// instead of renaming and rehashing the whole state for every candidate naming.
#[derive(Clone, Debug)]
pub struct Hashed<T> {
    hash: u64,
    value: T,
    renamed: PermCache,
}

/// A fast hasher with fixed keys (aHash, the hash Stateright fingerprints states with), so
/// hashes are the same in every run of a build: counterexample paths and pinned state counts
/// depend on it.
pub fn stable_hasher() -> ahash::AHasher {
    use std::hash::BuildHasher;
    ahash::RandomState::with_seeds(
        0x6176_6572_2d6d_6f64,
        0x656c_732d_7261_6674,
        0x7374_6174_652d_6861,
        0x7368_6564_2d76_616c,
    )
    .build_hasher()
}

/// The hash the model uses for its parts and fingerprints (see [`stable_hasher`]).
pub fn stable_hash(value: &impl Hash) -> u64 {
    let mut h = stable_hasher();
    value.hash(&mut h);
    h.finish()
}

impl<T: Hash> Hashed<T> {
    /// Wraps `value` with its hash.
    pub fn new(value: T) -> Hashed<T> {
        Hashed {
            hash: stable_hash(&value),
            value,
            renamed: PermCache::default(),
        }
    }
}

impl<T> Hashed<T> {
    /// The stored hash.
    pub fn hash_value(&self) -> u64 {
        self.hash
    }

    /// The hash of the value renamed by the permutation of rank `rank` (lexicographic rank
    /// among the permutations of the servers; 0 is the identity), computed by `compute` the
    /// first time and cached for ranks below 6 (clusters of ≤ [`CACHED_SERVERS`] servers).
    /// The caller must always pass the same `compute` for a rank (the value renamed under
    /// that one permutation, in one model); the cache is then just memoisation.
    pub fn renamed_hash(&self, rank: usize, compute: impl FnOnce(&T) -> u64) -> u64 {
        if rank == 0 {
            return self.hash;
        }
        let Some(slot) = self.renamed.0.get(rank) else {
            return compute(&self.value);
        };
        match slot.load(Ordering::Relaxed) {
            0 => {
                // A computed hash of 0 is simply never cached (recomputed each time).
                let h = compute(&self.value);
                slot.store(h, Ordering::Relaxed);
                h
            }
            h => h,
        }
    }
}

impl<T> Deref for Hashed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Hash for Hashed<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl<T: PartialEq> PartialEq for Hashed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.value == other.value
    }
}

impl<T: Eq> Eq for Hashed<T> {}

impl<T: Ord> PartialOrd for Hashed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders by hash first (cheap), then by value.
impl<T: Ord> Ord for Hashed<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.hash
            .cmp(&other.hash)
            .then_with(|| self.value.cmp(&other.value))
    }
}

/// The core's timers that are set on a server, as a bitset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timers(u8);

impl Timers {
    fn bit(t: Timer) -> u8 {
        match t {
            Timer::Election => 1,
            Timer::Heartbeat => 2,
        }
    }
    /// Sets `t`.
    pub fn set(&mut self, t: Timer) {
        self.0 |= Timers::bit(t);
    }
    /// Cancels `t`.
    pub fn cancel(&mut self, t: Timer) {
        self.0 &= !Timers::bit(t);
    }
    /// True if `t` is set.
    pub fn is_set(self, t: Timer) -> bool {
        self.0 & Timers::bit(t) != 0
    }
    /// The set timers, in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Timer> {
        [Timer::Election, Timer::Heartbeat]
            .into_iter()
            .filter(move |&t| self.is_set(t))
    }
}

/// One server in the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Server {
    /// The core: the running server's state, or a crashed server's last state.
    pub raft: Raft<Cmd>,
    /// What the disk holds, when it differs from `raft.durable()`: only under a seeded bug that
    /// skips a write. `None` for a correct server, which so pays nothing for it.
    pub disk: Option<Durable<Cmd>>,
    /// The core's timers that are set (none while down).
    pub timers: Timers,
    /// Crashed and not yet recovered.
    pub down: bool,
    /// Down, and it was leading when it crashed (for the `sometimes` property "new leader
    /// after crash": with `forget_on_crash`, a down server's core no longer says so).
    pub crashed_leading: bool,
    /// The service above Raft: the commands it has applied, in index order (a snapshot
    /// replaces them with its contents). For a correct server it is a function of the core's
    /// state, so it adds no states; under a bug it is what the service really holds.
    pub service: Vec<Cmd>,
}

impl Server {
    /// What this server's disk holds.
    pub fn disk(&self) -> &Durable<Cmd> {
        self.disk.as_ref().unwrap_or(self.raft.durable())
    }
}

/// One message in flight.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Envelope {
    /// Sender.
    pub src: NodeId,
    /// Destination.
    pub dst: NodeId,
    /// The message.
    pub msg: Message<Cmd>,
}

/// A shared envelope with its hash.
pub type Env = Arc<Hashed<Envelope>>;

/// The first violation of the apply stream's properties (RAFT-A1, RAFT-A2) or a panic of the
/// core, recorded in the state so that the property fails there with its trace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fault {
    /// The catalogue ID (`RAFT-A1`, `RAFT-A2`) or [`PANIC`].
    pub id: &'static str,
    /// What happened.
    pub detail: String,
}

/// The [`Fault`] id of a panic in the core.
pub const PANIC: &str = "PANIC";

impl From<Violation> for Fault {
    fn from(v: Violation) -> Fault {
        Fault {
            id: v.id,
            detail: v.detail,
        }
    }
}

/// Progress the last step made, for the `sometimes` properties: each bit says the step did
/// something a correct core must be able to do. Cleared by every step, and not part of the
/// state's identity (`Hash`, `Eq`): the search evaluates `sometimes` properties on every
/// transition it generates (see [`crate::search`]), so the facts are seen exactly without
/// multiplying states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Events(pub u8);

impl Events {
    /// A follower applied a committed entry.
    pub const FOLLOWER_APPLIED: u8 = 1;
    /// A follower truncated a conflicting entry from its log.
    pub const TRUNCATED: u8 = 2;
    /// A leader, told of a conflict, backed up past the rejected index by the follower's hint
    /// (more than the one entry a plain decrement would).
    pub const HINT_BACKUP: u8 = 4;
    /// A leader committed an entry of an earlier term (by committing one of its own).
    pub const OLDER_TERM_COMMITTED: u8 = 8;
    /// A follower installed a snapshot its leader sent.
    pub const SNAPSHOT_INSTALLED: u8 = 16;

    /// True if the step did `event`.
    pub fn has(self, event: u8) -> bool {
        self.0 & event != 0
    }
}

/// What every state of one model shares: the servers' configurations (not part of the
/// state's identity).
#[derive(Debug)]
pub struct Shared {
    /// The configuration of server `i`.
    pub configs: Vec<Arc<Config>>,
    /// The network's kind.
    pub network: NetworkKind,
    /// Whether messages their receiver ignores forever are removed (see
    /// `RaftModel::collect_dead_messages`).
    pub collect_dead_messages: bool,
    /// The term bound, when requests that can no longer matter within it are removed too
    /// (see [`RaftState::dead_within_bound`]); `None` when that reduction is off.
    pub stale_bound: Option<Term>,
    /// Whether messages whose deliveries have the same effect forever are one message to the
    /// search (see [`RaftState::delivery_classes`]).
    pub merge_equivalent: bool,
    /// Whether servers forget the leader hint after every input (see
    /// `RaftModelCfg::forget_leader_hint`).
    pub forget_leader_hint: bool,
}

/// One state of the Raft model.
#[derive(Clone, Debug)]
pub struct RaftState {
    /// Server `i` is `NodeId(i)`.
    pub servers: Vec<Arc<Hashed<Server>>>,
    /// Messages in flight. On the unordered networks, sorted by (hash, envelope), so equal
    /// sets are equal vectors; the duplicating network holds each envelope once. On the
    /// ordered network, in sending order. Shared with the state's successors until a step
    /// changes it (copy on write): most steps the search tries change no message.
    pub network: Arc<Vec<Env>>,
    /// Ghost state: the first command any server applied at each index (index `k + 1` at
    /// position `k`), snapshots included. Every later apply at that index, by any server, must
    /// agree (RAFT-A2).
    pub applied: Vec<Cmd>,
    /// The first apply-stream violation or core panic, if any.
    pub fault: Option<Fault>,
    /// What the last step did, for the `sometimes` properties (not part of the identity).
    pub events: Events,
    /// The behaviour budgets spent so far (see `RaftModelCfg::limits`); all zero, and so
    /// hashing to nothing, in a model without limits.
    pub spent: Spent,
    /// Ghost state: the terms some server has led, ever (a crash does not erase it), so
    /// that RAFT-1 is checked over the whole run: a second election in one term is a
    /// violation even if the first leader crashed before the second was elected.
    pub leaders: Leaders,
    /// Shared by every state of the model.
    pub shared: Arc<Shared>,
}

/// How much of each limited behaviour a run has done (see `Limits`): counted only for the
/// limits that are set, so it stays zero without them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    /// Election timeouts taken.
    pub campaigns: u8,
    /// Heartbeat timeouts taken.
    pub heartbeats: u8,
    /// Proposals taken.
    pub proposals: u8,
}

/// Writes nothing when nothing was spent, so that states of a model without limits hash
/// exactly as they did before limits existed (pinned state counts and counterexample paths
/// depend on those hashes); otherwise the three counts.
impl Hash for Spent {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if *self != Spent::default() {
            state.write_u8(self.campaigns);
            state.write_u8(self.heartbeats);
            state.write_u8(self.proposals);
        }
    }
}

/// The terms some server has led so far, ever, as a bitset (bit `t` for term `t`, terms
/// below 64). Which server led is not kept: no server can be elected twice in one term (it
/// campaigns into a new term each time), so any election into a term already led is a
/// second leader of that term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Leaders(pub u64);

impl Leaders {
    /// True if some server has led `term`.
    pub fn led(self, term: Term) -> bool {
        self.0 & (1 << term.0) != 0
    }

    /// Records that `term` has been led.
    pub fn record(&mut self, term: Term) {
        self.0 |= 1 << term.0;
    }
}

/// A state's identity: everything but `events` (what the last step did) and `shared`.
impl Hash for RaftState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.servers.hash(state);
        self.network.hash(state);
        self.applied.hash(state);
        self.fault.hash(state);
        self.spent.hash(state);
        self.leaders.hash(state);
    }
}

impl PartialEq for RaftState {
    fn eq(&self, other: &Self) -> bool {
        self.servers == other.servers
            && self.network == other.network
            && self.applied == other.applied
            && self.fault == other.fault
            && self.spent == other.spent
            && self.leaders == other.leaders
    }
}

impl Eq for RaftState {}

impl RaftState {
    /// The core of every server, in id order (crashed servers' last states included).
    pub fn rafts(&self) -> Vec<&Raft<Cmd>> {
        self.servers.iter().map(|s| &s.raft).collect()
    }

    /// Servers that are down.
    pub fn down(&self) -> usize {
        self.servers.iter().filter(|s| s.down).count()
    }

    /// True if `env` can never have an effect (see `RaftModel::collect_dead_messages`).
    pub fn dead(&self, env: &Envelope) -> bool {
        let dst = &self.servers[env.dst.0 as usize];
        (self.shared.collect_dead_messages
            && dst.disk.is_none()
            && dst.raft.ignores_forever(env.src, &env.msg))
            || self.dead_within_bound(env)
    }

    /// True if `env` is a request that can have no effect in any state within the term
    /// bound (when `stale_bound` is `Some`): the receiver's core says so
    /// ([`aver_core::raft::Raft::request_moot_within`], which also gives the argument), so
    /// it is collected like a dead message. As for dead messages, servers whose disk differs
    /// from the core's own record (a bug that skips a write) are never collected for.
    /// Whether the envelope is dead depends on both ends, so after a step the messages to and
    /// from the server that acted are looked at again; once dead, it stays dead.
    pub fn dead_within_bound(&self, env: &Envelope) -> bool {
        let Some(bound) = self.shared.stale_bound else {
            return false;
        };
        let dst = &self.servers[env.dst.0 as usize];
        let src = &self.servers[env.src.0 as usize];
        dst.disk.is_none()
            && src.disk.is_none()
            && dst.raft.request_moot_within(&src.raft, &env.msg, bound)
    }

    /// For each message in flight, in order, the class of deliveries it belongs to
    /// (`None` for a message in no class): the core's [`Raft::delivery_class`] at its
    /// receiver, with [`may_lead`] over the whole cluster and the votes in flight. Messages
    /// of one class have the same effect on their receiver, now and forever, whichever is
    /// delivered; on a network that keeps every message sent, a delivered one stays, so a
    /// state with several of them and a state with just one have the same futures step for
    /// step. The search therefore identifies a state by its classes rather than their members
    /// (`super::symmetry`), and the model delivers one member per class. Every property reads
    /// the servers and the ghost records only, so every verdict is unchanged; the test suite
    /// compares the reachable server states with and without. One class, AppendEntries a
    /// follower already holds, stays a class only while no second server leads the term: the
    /// ghost [`Leaders`] makes RAFT-1 fail at the first election into a term already led,
    /// which the search reaches exactly (everything before it is exact), so nothing that
    /// class could hide goes unreported. `None` when the reduction is
    /// off (see `RaftModelCfg::merge_equivalent_messages`) or a server's disk differs from
    /// its core's record.
    pub fn delivery_classes(&self) -> Option<Vec<Option<DeliveryClass>>> {
        if !self.shared.merge_equivalent || self.servers.iter().any(|s| s.disk.is_some()) {
            return None;
        }
        let rafts = self.rafts();
        let network = &self.network;
        // may_lead by (receiver, term), computed once per state.
        let mut leads: Vec<(NodeId, Term, bool)> = Vec::new();
        let classes = network
            .iter()
            .map(|e| {
                rafts[e.dst.0 as usize].delivery_class(e.src, &e.msg, |t| {
                    if let Some(&(_, _, b)) = leads.iter().find(|l| l.0 == e.dst && l.1 == t) {
                        return b;
                    }
                    let grant_in_flight = |voter: NodeId| {
                        network.iter().any(|o| {
                            o.src == voter
                                && o.dst == e.dst
                                && matches!(&o.msg, Message::RequestVoteReply(r)
                                    if r.granted && r.term == t)
                        })
                    };
                    let b = may_lead(&rafts, e.dst, t, grant_in_flight);
                    leads.push((e.dst, t, b));
                    b
                })
            })
            .collect();
        Some(classes)
    }

    /// True if message `k` belongs to a class (`classes` from [`RaftState::delivery_classes`])
    /// that an earlier message in flight, to the same receiver, belongs to as well.
    pub fn stands_for_another(
        &self,
        classes: &Option<Vec<Option<DeliveryClass>>>,
        k: usize,
    ) -> bool {
        let Some(classes) = classes else {
            return false;
        };
        let Some(class) = classes[k] else {
            return false;
        };
        let dst = self.network[k].dst;
        (0..k).any(|j| classes[j] == Some(class) && self.network[j].dst == dst)
    }

    /// Adds `env` to the network (set semantics on the duplicating networks), unless it is
    /// dead on arrival.
    pub fn send(&mut self, env: Envelope) {
        if self.dead(&env) {
            return;
        }
        let env = Arc::new(Hashed::new(env));
        if self.shared.network == NetworkKind::Ordered {
            Arc::make_mut(&mut self.network).push(env);
            return;
        }
        match self.network.binary_search(&env) {
            Ok(_) if self.shared.network.duplicating() => {}
            Ok(at) | Err(at) => Arc::make_mut(&mut self.network).insert(at, env),
        }
    }

    /// Removes one copy of `env` from the network, if there is one.
    pub fn remove(&mut self, env: &Env) {
        if let Some(at) = self.network.iter().position(|e| e == env) {
            Arc::make_mut(&mut self.network).remove(at);
        }
    }
}
