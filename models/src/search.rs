//! The explicit-state search that `aver check` runs over a Stateright [`Model`].
//!
//! Stateright's own checkers remain available (Explorer serves the same models), but this
//! engine adds what deep, honest checking of aver's models needs:
//!
//! * **Symmetry reduction in every search order.** States are identified by a canonical
//!   fingerprint (for Raft, the hash of the state's representative under renaming of the
//!   servers); Stateright 0.31 ignores symmetry in BFS.
//! * **Shortest counterexamples.** [`Order::Bfs`] explores level by level and stops at the
//!   first level that violates an `always` property, so the counterexample it reports has the
//!   fewest steps any counterexample has within the bounds (Stateright 0.31's BFS overwrites
//!   discoveries with later, longer paths).
//! * **`sometimes` properties on every transition.** They are evaluated on every generated
//!   successor, before the visited check, so a property about what the *last step* did (a
//!   follower applied an entry) is exact even though that fact is not part of the state's
//!   identity. `always` properties are evaluated once per distinct state.
//! * **Covering (subsumption) for models with a monotone message pool.** Where the network
//!   keeps every message sent (a duplicating network: delivering a message never removes
//!   it), a state whose servers equal another's and whose pool of messages is a subset of the
//!   other's can do nothing the other cannot: every action enabled in it is enabled in the
//!   other with the same effect on the servers, and the pools stay ordered. So a state
//!   covered by a visited one is skipped, and before a state is expanded it is *saturated*:
//!   steps that only add messages (a redelivery the receiver answers without changing) are
//!   taken first. Properties look only at the servers, so verdicts are unchanged; the test
//!   suite compares the reachable server states with and without.
//! * **Little memory in DFS.** The visited set holds fingerprints (and, when covering, each
//!   kept state's pool as sorted message hashes); paths are shared linked lists of action
//!   indices, rebuilt by replaying the model.
//!
//! Soundness of the symmetry reduction rests on the model: its transitions and properties
//! must commute with the renaming that the canonical fingerprint quotients out (tested per
//! model). `eventually` properties are not supported (no model uses them).

use stateright::{Expectation, Model};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The search order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Depth first, in parallel: least memory.
    Dfs,
    /// Breadth first, level by level (in parallel within a level): shortest counterexamples.
    Bfs,
}

/// How the search identifies a state: `core` fingerprints everything but the pool of
/// messages, `pool` lists the pool's message hashes, sorted. Without covering, `pool` is
/// empty and `core` fingerprints the whole state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// Fingerprint of all but the pool (canonical under symmetry).
    pub core: u64,
    /// The pool's message hashes, sorted and without repeats.
    pub pool: Vec<u64>,
}

/// Whether a step from the first state to the second only grew the pool (see [`Hooks`]).
pub type PoolGrowth<'a, M> =
    &'a (dyn Fn(&M, &<M as Model>::State, &<M as Model>::State) -> bool + Sync);

/// A visitor of every state the search keeps.
pub type OnState<'a, M> = &'a (dyn Fn(&<M as Model>::State) + Sync);

/// A path of states, each with the action taken from it (`None` for the last).
pub type StatesPath<M> = Vec<(<M as Model>::State, Option<<M as Model>::Action>)>;

/// Per property, the length and path of its first discovery.
type Discoveries = Mutex<Vec<Option<(usize, Vec<usize>)>>>;

/// What a model tells the search about its states.
pub struct Hooks<'a, M: Model> {
    /// The state's key (canonical, when the model reduces by symmetry).
    pub key: &'a (dyn Fn(&M, &M::State) -> Key + Sync),
    /// For models whose transitions are monotone in the pool (see the module docs): true if
    /// `next` equals `last` but for a larger pool. `None` turns covering and saturation off.
    pub pool_growth: Option<PoolGrowth<'a, M>>,
    /// Called with every state the search keeps and expands (for tests that compare the
    /// reduced search with the unreduced one).
    pub on_state: Option<OnState<'a, M>>,
}

/// How to search.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Depth or breadth first.
    pub order: Order,
    /// Stop as soon as an `always` property fails (the usual choice: one counterexample is
    /// what a user needs, and the search is then incomplete).
    pub stop_at_failure: bool,
    /// Saturate states before expanding them (needs `Hooks::pool_growth`; see the module
    /// docs). It lengthens paths by the saturating steps, so BFS leaves it off to keep
    /// counterexamples shortest.
    pub saturate: bool,
}

/// Live counters, for progress lines while a search runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Distinct (canonical) states found.
    pub unique: AtomicUsize,
    /// Successors generated within the bounds, repeats included.
    pub generated: AtomicUsize,
    /// Longest path so far, in steps.
    pub depth: AtomicUsize,
}

/// What a search found.
#[derive(Clone, Debug)]
pub struct Found {
    /// Distinct (canonical) states.
    pub unique: usize,
    /// Successors generated within the bounds, repeats included.
    pub generated: usize,
    /// Longest path explored, in steps.
    pub depth: usize,
    /// Every reachable state was explored (no early stop).
    pub complete: bool,
    /// Per property of `model.properties()`, in order: the first path that discovered it (a
    /// counterexample for `always`, an example for `sometimes`) as action indices, the first
    /// being the initial state's — Stateright Explorer's path encoding.
    pub discoveries: Vec<Option<Vec<usize>>>,
}

/// A path as a shared linked list: each job holds its own tail; prefixes are shared.
struct Trail {
    index: usize,
    parent: Option<Arc<Trail>>,
}

impl Trail {
    fn push(parent: &Arc<Trail>, index: usize) -> Arc<Trail> {
        Arc::new(Trail {
            index,
            parent: Some(Arc::clone(parent)),
        })
    }

    fn indices(self: &Arc<Trail>) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = Some(self);
        while let Some(t) = at {
            out.push(t.index);
            at = t.parent.as_ref();
        }
        out.reverse();
        out
    }
}

/// A hasher for fingerprints, which are hashes already.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("fingerprints are u64")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type FingerprintSet = HashSet<u64, BuildHasherDefault<Identity>>;

const SHARDS: usize = 64;

/// A kept pool: its message hashes, sorted, and their [`signature`] for a quick subset test.
struct Pool {
    signature: u64,
    hashes: Box<[u64]>,
}

/// A 64-bit summary of a sorted set of hashes: bit `h % 64` for each member. `a ⊆ b` implies
/// `signature(a) & !signature(b) == 0`, so most pairs that are not subsets are told apart by
/// one instruction before [`subset`] walks them (the answer is the same, only faster).
fn signature(hashes: &[u64]) -> u64 {
    hashes.iter().fold(0, |m, h| m | 1 << (h % 64))
}

impl Pool {
    /// `self ⊆ other`.
    fn within(&self, other: &Pool) -> bool {
        self.signature & !other.signature == 0 && subset(&self.hashes, &other.hashes)
    }
}

type PoolMap = HashMap<u64, Vec<Pool>, BuildHasherDefault<Identity>>;

/// The visited states, sharded so threads rarely contend: fingerprints, or (when covering)
/// for each core the pools of the kept states, none a subset of another.
enum Visited {
    Plain(Vec<Mutex<FingerprintSet>>),
    Covering(Vec<Mutex<PoolMap>>),
}

/// `a ⊆ b` for sorted slices.
fn subset(a: &[u64], b: &[u64]) -> bool {
    if a.len() > b.len() {
        return false;
    }
    let mut rest = b;
    a.iter().all(|x| match rest.binary_search(x) {
        Ok(at) => {
            rest = &rest[at + 1..];
            true
        }
        Err(_) => false,
    })
}

impl Visited {
    fn new(covering: bool) -> Visited {
        if covering {
            Visited::Covering((0..SHARDS).map(|_| Mutex::default()).collect())
        } else {
            Visited::Plain((0..SHARDS).map(|_| Mutex::default()).collect())
        }
    }

    /// Records `key`; false if it was already visited (or, covering, is covered).
    fn insert(&self, key: &Key) -> bool {
        let shard = (key.core >> 58) as usize % SHARDS;
        match self {
            Visited::Plain(shards) => shards[shard].lock().expect("not poisoned").insert(key.core),
            Visited::Covering(shards) => {
                let mut map = shards[shard].lock().expect("not poisoned");
                let pools = map.entry(key.core).or_default();
                let pool = Pool {
                    signature: signature(&key.pool),
                    hashes: key.pool.clone().into_boxed_slice(),
                };
                if pools.iter().any(|p| pool.within(p)) {
                    return false;
                }
                pools.retain(|p| !p.within(&pool));
                pools.push(pool);
                true
            }
        }
    }
}

/// A state waiting to be expanded.
struct Job<S> {
    state: S,
    trail: Arc<Trail>,
    depth: usize,
}

impl<S: Clone> Job<S> {
    fn clone_shallow(&self) -> Job<S> {
        Job {
            state: self.state.clone(),
            trail: Arc::clone(&self.trail),
            depth: self.depth,
        }
    }
}

/// The fixed parts of one search.
struct Search<'a, M: Model> {
    model: &'a M,
    hooks: Hooks<'a, M>,
    properties: Vec<stateright::Property<M>>,
    options: Options,
    visited: Visited,
    stats: &'a Stats,
    discoveries: Discoveries,
    /// Bit `k`: property `k` has a discovery (read without the lock on every transition).
    discovered: AtomicU64,
    stop: AtomicBool,
}

impl<'a, M> Search<'a, M>
where
    M: Model + Sync,
    M::State: Clone + Send + Sync,
    M::Action: Clone + PartialEq,
{
    fn discover(&self, k: usize, depth: usize, trail: &Arc<Trail>) {
        let mut d = self.discoveries.lock().expect("not poisoned");
        // Keep the shortest (BFS order makes the first one shortest within a level).
        if d[k].as_ref().is_none_or(|(len, _)| depth < *len) {
            d[k] = Some((depth, trail.indices()));
        }
        self.discovered.fetch_or(1 << k, Ordering::Relaxed);
        if self.options.stop_at_failure && self.properties[k].expectation == Expectation::Always {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    fn undiscovered(&self, k: usize) -> bool {
        self.discovered.load(Ordering::Relaxed) & (1 << k) == 0
    }

    /// Checks `always` properties on a new distinct state.
    fn check_state(&self, state: &M::State, depth: usize, trail: &Arc<Trail>) {
        if let Some(visit) = self.hooks.on_state {
            visit(state);
        }
        for (k, p) in self.properties.iter().enumerate() {
            if p.expectation == Expectation::Always
                && !(p.condition)(self.model, state)
                && self.undiscovered(k)
            {
                self.discover(k, depth, trail);
            }
        }
    }

    /// Checks `sometimes` properties on a successor (every transition is seen here).
    fn check_transition(&self, state: &M::State, depth: usize, trail: &dyn Fn() -> Arc<Trail>) {
        for (k, p) in self.properties.iter().enumerate() {
            if p.expectation == Expectation::Sometimes
                && self.undiscovered(k)
                && (p.condition)(self.model, state)
            {
                self.discover(k, depth, &trail());
            }
        }
    }

    /// Saturates `job` (when covering): takes every step that only grows the pool, until
    /// none is left, and records the saturated state as visited. False if the saturated
    /// state is covered by another visited state (so expanding it would find nothing new).
    ///
    /// Each round takes the first action, in the state's action order, that grows the pool.
    /// An action that did not grow it — it changed a server, or changed nothing — does not
    /// after a step that only grew the pool either (that step left every server as it was,
    /// so the action has the same effect on the servers and sends what it sent before, now
    /// already in the pool), so it is not tried again: the steps taken are the ones trying
    /// every action in every round would take, at one trial per action.
    fn saturate(&self, job: &mut Job<M::State>, actions: &mut Vec<M::Action>) -> bool {
        let Some(growth) = self.hooks.pool_growth else {
            return true;
        };
        let mut grew = false;
        let mut fruitless: Vec<M::Action> = Vec::new();
        'again: loop {
            actions.clear();
            self.model.actions(&job.state, actions);
            for (index, action) in actions.drain(..).enumerate() {
                if fruitless.contains(&action) {
                    continue;
                }
                let Some(next) = self.model.next_state(&job.state, action.clone()) else {
                    fruitless.push(action);
                    continue;
                };
                if !self.model.within_boundary(&next) {
                    continue;
                }
                if !growth(self.model, &job.state, &next) {
                    fruitless.push(action);
                    continue;
                }
                self.stats.generated.fetch_add(1, Ordering::Relaxed);
                job.depth += 1;
                job.trail = Trail::push(&job.trail, index);
                self.check_transition(&next, job.depth, &|| Arc::clone(&job.trail));
                job.state = next;
                grew = true;
                continue 'again;
            }
            break;
        }
        if !grew {
            return true;
        }
        self.stats.depth.fetch_max(job.depth, Ordering::Relaxed);
        self.visited
            .insert(&(self.hooks.key)(self.model, &job.state))
    }

    /// Expands `job`: every enabled action within the bounds; new distinct states are handed
    /// to `push`.
    fn expand(
        &self,
        job: &Job<M::State>,
        actions: &mut Vec<M::Action>,
        push: &mut dyn FnMut(Job<M::State>),
    ) {
        actions.clear();
        self.model.actions(&job.state, actions);
        let depth = job.depth + 1;
        for (index, action) in actions.drain(..).enumerate() {
            let Some(next) = self.model.next_state(&job.state, action) else {
                continue;
            };
            if !self.model.within_boundary(&next) {
                continue;
            }
            self.stats.generated.fetch_add(1, Ordering::Relaxed);
            self.check_transition(&next, depth, &|| Trail::push(&job.trail, index));
            if !self.visited.insert(&(self.hooks.key)(self.model, &next)) {
                continue;
            }
            self.stats.unique.fetch_add(1, Ordering::Relaxed);
            self.stats.depth.fetch_max(depth, Ordering::Relaxed);
            let trail = Trail::push(&job.trail, index);
            self.check_state(&next, depth, &trail);
            push(Job {
                state: next,
                trail,
                depth,
            });
        }
    }

    fn initial_jobs(&self) -> Vec<Job<M::State>> {
        let mut jobs = Vec::new();
        for (i, state) in self.model.init_states().into_iter().enumerate() {
            if !self.model.within_boundary(&state) {
                continue;
            }
            let trail = Arc::new(Trail {
                index: i,
                parent: None,
            });
            self.check_transition(&state, 0, &|| Arc::clone(&trail));
            if self.visited.insert(&(self.hooks.key)(self.model, &state)) {
                self.stats.unique.fetch_add(1, Ordering::Relaxed);
                self.check_state(&state, 0, &trail);
                jobs.push(Job {
                    state,
                    trail,
                    depth: 0,
                });
            }
        }
        jobs
    }

    fn dfs(&self, jobs: Vec<Job<M::State>>) {
        let shared = Mutex::new(jobs);
        let idle = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..self.options.threads {
                scope.spawn(|| self.dfs_worker(&shared, &idle));
            }
        });
    }

    fn dfs_worker(&self, shared: &Mutex<Vec<Job<M::State>>>, idle: &AtomicUsize) {
        let threads = self.options.threads;
        let mut local: Vec<Job<M::State>> = Vec::new();
        let mut actions = Vec::new();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let mut job = match local.pop() {
                Some(job) => job,
                None => match self.take_shared(shared, idle, threads) {
                    Some(job) => job,
                    None => return,
                },
            };
            if !self.options.saturate || self.saturate(&mut job, &mut actions) {
                self.expand(&job, &mut actions, &mut |j| local.push(j));
            }
            // Share the oldest half when another worker waits and nothing is shared.
            if threads > 1 && local.len() > 8 && idle.load(Ordering::Relaxed) > 0 {
                let mut s = shared.lock().expect("not poisoned");
                if s.is_empty() {
                    let half = local.len() / 2;
                    s.extend(local.drain(..half));
                }
            }
        }
    }

    /// A job from the shared pool, waiting while other workers may still share some; `None`
    /// when every worker is idle and the pool is empty (the search is over).
    fn take_shared(
        &self,
        shared: &Mutex<Vec<Job<M::State>>>,
        idle: &AtomicUsize,
        threads: usize,
    ) -> Option<Job<M::State>> {
        idle.fetch_add(1, Ordering::SeqCst);
        loop {
            if let Some(job) = shared.lock().expect("not poisoned").pop() {
                idle.fetch_sub(1, Ordering::SeqCst);
                return Some(job);
            }
            if idle.load(Ordering::SeqCst) == threads || self.stop.load(Ordering::Relaxed) {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    fn bfs(&self, mut level: Vec<Job<M::State>>) {
        while !level.is_empty() && !self.stop.load(Ordering::Relaxed) {
            let chunk = level.len().div_ceil(self.options.threads).max(1);
            let mut nexts: Vec<Vec<Job<M::State>>> = Vec::new();
            std::thread::scope(|scope| {
                let handles: Vec<_> = level
                    .chunks(chunk)
                    .map(|part| {
                        scope.spawn(move || {
                            let mut next = Vec::new();
                            let mut actions = Vec::new();
                            for job in part {
                                if self.stop.load(Ordering::Relaxed) {
                                    break;
                                }
                                if self.options.saturate {
                                    let mut job = job.clone_shallow();
                                    if self.saturate(&mut job, &mut actions) {
                                        self.expand(&job, &mut actions, &mut |j| next.push(j));
                                    }
                                } else {
                                    self.expand(job, &mut actions, &mut |j| next.push(j));
                                }
                            }
                            next
                        })
                    })
                    .collect();
                nexts = handles
                    .into_iter()
                    .map(|h| h.join().expect("worker"))
                    .collect();
            });
            level = nexts.into_iter().flatten().collect();
        }
    }
}

/// Searches `model` from its initial states within its boundary. `hooks` identify states (a
/// canonical key for symmetry reduction: equal exactly for states the model treats as
/// equivalent) and say whether the model allows covering. `stats` is updated as it goes.
pub fn search<M>(model: &M, hooks: Hooks<'_, M>, options: Options, stats: &Stats) -> Found
where
    M: Model + Sync,
    M::State: Clone + Send + Sync,
    M::Action: Clone + PartialEq,
{
    assert!(options.threads >= 1, "at least one thread");
    let properties = model.properties();
    assert!(properties.len() <= 64, "at most 64 properties");
    let covering = hooks.pool_growth.is_some();
    let options = Options {
        saturate: options.saturate && covering,
        ..options
    };
    let search = Search {
        model,
        hooks,
        discoveries: Mutex::new(vec![None; properties.len()]),
        properties,
        options,
        visited: Visited::new(covering),
        stats,
        discovered: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    let jobs = search.initial_jobs();
    match options.order {
        Order::Dfs => search.dfs(jobs),
        Order::Bfs => search.bfs(jobs),
    }
    let stopped = search.stop.load(Ordering::Relaxed);
    Found {
        unique: stats.unique.load(Ordering::Relaxed),
        generated: stats.generated.load(Ordering::Relaxed),
        depth: stats.depth.load(Ordering::Relaxed),
        complete: !stopped,
        discoveries: search
            .discoveries
            .into_inner()
            .expect("not poisoned")
            .into_iter()
            .map(|d| d.map(|(_, path)| path))
            .collect(),
    }
}

/// The plain key of a state: its `Hash` (through the same fixed-key hasher as
/// [`crate::raft::state::stable_hash`]) and no pool.
pub fn plain_key<M: Model>(_: &M, state: &M::State) -> Key
where
    M::State: Hash,
{
    Key {
        core: crate::raft::state::stable_hash(state),
        pool: Vec::new(),
    }
}

/// Rebuilds a path from action indices (as in [`Found::discoveries`]): each state with the
/// action taken from it (`None` for the last). `None` if the indices do not replay.
pub fn replay_indices<M: Model>(model: &M, indices: &[usize]) -> Option<StatesPath<M>>
where
    M::State: Clone,
    M::Action: Clone,
{
    let (&init, rest) = indices.split_first()?;
    let mut state = model.init_states().into_iter().nth(init)?;
    let mut out = Vec::new();
    let mut actions = Vec::new();
    for &i in rest {
        actions.clear();
        model.actions(&state, &mut actions);
        let action = actions.get(i)?.clone();
        let next = model.next_state(&state, action.clone())?;
        out.push((state, Some(action)));
        state = next;
    }
    out.push((state, None));
    Some(out)
}
