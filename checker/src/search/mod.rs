//! Wing–Gong search with Lowe's memoisation, over one partition.
//!
//! The history becomes a doubly linked list of call and return entries in time order (calls
//! before returns at equal times: intervals are closed). The search walks the list from the
//! front: at a call it tries to linearize that operation now (the model accepts it and the
//! resulting (linearized set, state) configuration is new), and if so removes the call and
//! its return from the list and starts again at the front; at a return, the operation
//! returning was not linearized in time, so it undoes the most recent choice and tries the
//! next call after it. Removal and re-insertion are the "dancing links" O(1) operations,
//! undone in LIFO order.
//!
//! Operations that never returned have no return entry, so they never force a backtrack:
//! the search succeeds once every operation *with* a return is linearized, and whichever
//! never-returned operations are still unlinearized then simply never took effect.
//!
//! Beyond Porcupine, three prunings, each sound on its own (the proofs are at the code):
//! - **read-only operations are placed eagerly** ([`Model::is_read_only`]): at a new
//!   configuration, a callable read the model accepts is linearized at once, and if that
//!   fails the configuration fails, with no other order tried there;
//! - **never-returned operations nobody needs are left out** ([`Model::unneeded`]);
//! - **never-returned operations with equal inputs are placed in call order** ([`twins`]).
//!
//! Right after a never-returned operation, only an operation that depends on it is tried
//! ([`Worker::try_step`]); a partition with never-returned operations is first searched
//! briefly without that pruning, which decides easy ones in far fewer steps
//! ([`check_partition`]).
//!
//! Parallel search: several threads walk the same partition with one shared memo (see
//! `parallel.rs`); an idle thread takes over the untried alternatives of the oldest choice
//! of a busy one. The verdict does not depend on the interleaving.
//!
//! Memory: see `tables.rs`; the memo is packed, interned and capped.

mod interner;
mod parallel;
mod tables;

use crate::hash::zobrist_words;
use crate::{CheckResult, Model, Operation};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tables::{Tables, Visit};

const NONE: u32 = u32::MAX;
const HEAD: u32 = 0;
/// How many steps pass between looks at the clock, the stop flag and idle threads.
const STEPS_PER_POLL: u32 = 1 << 10;

/// Why a search ended, and the longest linearization it found.
pub(crate) struct Outcome {
    /// `Unknown` when timed out, stopped or out of memory.
    pub result: CheckResult,
    /// Set when the search was stopped because another partition was illegal.
    pub stopped: bool,
    /// Set when the memo reached the memory budget.
    pub out_of_memory: bool,
    /// What the search did.
    pub stats: SearchStats,
    /// Indices into the partition's operations, in linearization order: the whole
    /// linearization when `Ok`, the longest partial one when `Illegal`.
    pub linearization: Vec<usize>,
    /// When `Illegal`: the operation (index into the partition) whose return the search
    /// reached latest in time, and the operations searched (every one but those left out
    /// before the search) that were called before that return: an illegal sub-history
    /// (see [`Worker::frontier`]).
    pub core: Option<(usize, Vec<usize>)>,
}

/// Limits imposed from outside the partition.
pub(crate) struct Limits<'a> {
    pub deadline: Option<Instant>,
    pub stop: &'a AtomicBool,
    /// Keep the longest partial linearization (costs a copy each time it grows).
    pub track: bool,
    /// Bytes the memo of one partition may take.
    pub memory_max: usize,
    /// Threads for one partition.
    pub threads: usize,
    /// Model steps on one thread before several threads start over together.
    pub parallel_after_steps: u64,
}

/// How a worker's search ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Every returned operation is linearized.
    Found,
    /// Nothing left to try from where this worker started.
    Exhausted,
    /// Timeout, stop, or another thread's verdict.
    Interrupted,
    /// The memo is full.
    Full,
}

/// The entry list: node 0 is the head sentinel, the last node the tail sentinel.
#[derive(Clone)]
struct Entries {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// For each node, the operation it belongs to (`NONE` for sentinels).
    op: Vec<u32>,
    is_call: Vec<bool>,
    /// For each operation, its return node (`NONE`: never returned).
    ret_node: Vec<u32>,
}

impl Entries {
    fn new<I, O>(ops: &[&Operation<I, O>]) -> Entries {
        // (time, is_return, op): calls sort before returns at equal times.
        let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            events.push((op.call, false, i as u32));
            if let Some(ret) = op.ret {
                debug_assert!(ret >= op.call, "operation returns before its call");
                events.push((ret.max(op.call), true, i as u32));
            }
        }
        events.sort_unstable();
        let len = events.len() + 2;
        let mut entries = Entries {
            next: (1..=len as u32).collect(),
            prev: (0..len as u32).map(|i| i.wrapping_sub(1)).collect(),
            op: vec![NONE; len],
            is_call: vec![false; len],
            ret_node: vec![NONE; ops.len()],
        };
        for (k, &(_, is_return, op)) in events.iter().enumerate() {
            let node = k + 1;
            entries.op[node] = op;
            entries.is_call[node] = !is_return;
            if is_return {
                entries.ret_node[op as usize] = node as u32;
            }
        }
        entries
    }

    #[inline]
    fn unlink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }

    #[inline]
    fn relink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = node;
        self.prev[n as usize] = node;
    }

    /// Removes a call and its return (if any) from the list.
    #[inline]
    fn lift(&mut self, call: u32) {
        self.unlink(call);
        let ret = self.ret_node[self.op[call as usize] as usize];
        if ret != NONE {
            self.unlink(ret);
        }
    }

    /// Undoes the most recent [`Entries::lift`].
    #[inline]
    fn unlift(&mut self, call: u32) {
        let ret = self.ret_node[self.op[call as usize] as usize];
        if ret != NONE {
            self.relink(ret);
        }
        self.relink(call);
    }
}

/// Links each never-returned operation with unknown output to the latest earlier-called
/// one with an equal input.
///
/// Such twins are interchangeable, and the search only linearizes a twin after the ones
/// called before it. This loses no linearization: if a history is linearizable, it has a
/// linearization in which linearized twins are the earliest-called ones, in call order
/// (give the j-th earliest linearization point among the twins to the j-th earliest-called
/// twin: at least j twins were called before that point, so that twin was too; no twin has a
/// return to respect, and the model sees the same inputs and outputs). It removes the
/// factorial blow-up of, e.g., a dozen timed-out `write(3)`s in a Jepsen history.
fn twins<I: PartialEq, O>(ops: &[&Operation<I, O>]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| (ops[i].call, i));
    let pending = |i: usize| ops[i].ret.is_none() && ops[i].output.is_none();
    let mut twin_before = vec![NONE; ops.len()];
    for (k, &i) in order.iter().enumerate().filter(|&(_, &i)| pending(i)) {
        let earlier = order[..k]
            .iter()
            .rev()
            .find(|&&j| pending(j) && ops[j].input == ops[i].input);
        twin_before[i] = earlier.map_or(NONE, |&j| j as u32);
    }
    twin_before
}

/// The partition as the search sees it: the operations kept, and per-operation facts.
struct Problem<'a, M: Model> {
    model: &'a M,
    /// Kept operations, in call order.
    ops: Vec<&'a Operation<M::Input, M::Output>>,
    /// For each kept operation, its index in the partition.
    index: Vec<usize>,
    /// For each kept operation, its bit in linearized sets (returned operations first).
    bit: Vec<u32>,
    zobrist: Vec<u64>,
    twin_before: Vec<u32>,
    read_only: Vec<bool>,
    /// For each kept operation, its call node in `entries`.
    call_node: Vec<u32>,
    entries: Entries,
    returned: usize,
    words: usize,
}

impl<'a, M: Model> Problem<'a, M> {
    fn new(model: &'a M, partition: &[&'a Operation<M::Input, M::Output>]) -> Self {
        // A never-returned read changes nothing: leaving it out loses no linearization.
        let unneeded = model.unneeded(partition);
        let pending_read = |o: &Operation<M::Input, M::Output>| {
            o.ret.is_none() && model.is_read_only(&o.input, o.output.as_ref())
        };
        let index: Vec<usize> = (0..partition.len())
            .filter(|&i| !unneeded[i] && !pending_read(partition[i]))
            .collect();
        let ops: Vec<_> = index.iter().map(|&i| partition[i]).collect();
        let mut order: Vec<usize> = (0..ops.len()).collect();
        order.sort_by_key(|&i| (ops[i].ret.is_none(), i));
        let mut bit = vec![0u32; ops.len()];
        for (b, &i) in order.iter().enumerate() {
            bit[i] = b as u32;
        }
        let entries = Entries::new(&ops);
        let mut call_node = vec![NONE; ops.len()];
        for node in 1..entries.op.len() - 1 {
            if entries.is_call[node] {
                call_node[entries.op[node] as usize] = node as u32;
            }
        }
        Problem {
            model,
            zobrist: zobrist_words(ops.len()),
            twin_before: twins(&ops),
            read_only: ops
                .iter()
                .map(|o| model.is_read_only(&o.input, o.output.as_ref()))
                .collect(),
            returned: ops.iter().filter(|o| o.ret.is_some()).count(),
            words: ops.len().div_ceil(64).max(1),
            call_node,
            entries,
            bit,
            index,
            ops,
        }
    }
}

/// One step of the search: the call node of the operation linearized, and flags (the state
/// to restore when undoing it is kept beside, in `Worker::befores`).
///
/// One word, not a struct of fields: a struct built in separate stores and then copied into
/// the stack as one wider load stalls on store forwarding (perf: a third of `try_step`'s
/// samples on porcupine/kv/c50-ok); a word is built in a register.
#[derive(Clone, Copy)]
struct Frame(u64);

impl Frame {
    /// Taken as a read placed eagerly: undoing it also fails the configuration before it.
    const FORCED: u64 = 1 << 32;
    /// The operation never returned.
    const PENDING: u64 = 2 << 32;
    /// Its untried alternatives were handed to another thread.
    const DONATED: u64 = 4 << 32;

    fn new(call: u32, forced: bool, pending: bool) -> Frame {
        Frame(call as u64 | (forced as u64 * Self::FORCED) | (pending as u64 * Self::PENDING))
    }

    fn call(self) -> u32 {
        self.0 as u32
    }

    fn pending(self) -> bool {
        self.0 & Self::PENDING != 0
    }

    /// Whether backtracking to this frame goes on to the alternatives after it.
    fn has_alternatives(self) -> bool {
        self.0 & (Self::FORCED | Self::DONATED) == 0
    }
}

/// A configuration to resume from: the path to it and where to go on scanning.
pub(crate) struct Task<S> {
    /// Operations linearized, in order.
    path: Vec<u32>,
    /// The state after them.
    state: S,
    /// Scanning resumes after this call node.
    resume: u32,
}

/// What trying one operation found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Linearized; a new configuration.
    New,
    /// The configuration was visited before.
    Seen,
    /// The model rejects it here (or it need not be tried here).
    Illegal,
    /// The memo is full.
    Full,
}

/// Counters of one search, for profiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Calls of [`Model::step`].
    pub steps: u64,
    /// Configurations recorded in the memo.
    pub configurations: u64,
    /// Configurations found already visited (memo hits).
    pub seen: u64,
    /// Reads placed eagerly.
    pub forced: u64,
    /// Never-returned operations left out before the search.
    pub dropped: u64,
    /// Alternatives handed to another thread.
    pub donated: u64,
    /// Bytes the memo took at the end (charged against the memory budget).
    pub memo_bytes: u64,
}

impl SearchStats {
    fn add(&mut self, o: &SearchStats) {
        self.steps += o.steps;
        self.configurations += o.configurations;
        self.seen += o.seen;
        self.forced += o.forced;
        self.dropped += o.dropped;
        self.donated += o.donated;
        self.memo_bytes = self.memo_bytes.max(o.memo_bytes);
    }
}

/// What a forced-read pass found.
enum Forced {
    Took,
    Dead,
    None,
    Full,
}

/// One thread's search.
struct Worker<'p, 'a, M: Model, T> {
    p: &'p Problem<'a, M>,
    tables: T,
    entries: Entries,
    bits: Vec<u64>,
    set_hash: u64,
    state: M::State,
    remaining: usize,
    /// Operations linearized before this worker's task began.
    base: Vec<u32>,
    stack: Vec<Frame>,
    /// For each frame, the state before its step.
    befores: Vec<M::State>,
    /// Longest linearization seen (with `track`).
    best: Vec<u32>,
    track: bool,
    /// Whether an operation directly after a never-returned one must depend on it (see
    /// [`Worker::try_step`]).
    prune_pending: bool,
    stats: SearchStats,
    /// Where an interrupted search stood (`Some(None)`: at a configuration just reached).
    paused: Option<Option<Scan>>,
    /// The latest return entry (in time) at which a scan stopped and backtracked; 0: none.
    ///
    /// When the search is exhaustive (the verdict is Illegal), the operations searched that
    /// were called before this return are an illegal sub-history on their own: the search
    /// of just those operations reaches the same configurations (a scan reads the list
    /// only up to the first return in it, never past this one, and the prunings depend on
    /// operations called earlier only), every one of them fails the same way (none can have
    /// every returned operation of the sub-history linearized, or its scan would have
    /// reached a later return), and the search is complete. So a counterexample can start
    /// from there instead of searching prefixes of the history again.
    frontier: u32,
}

impl<'p, 'a, M: Model, T> Worker<'p, 'a, M, T> {
    /// The same search, from where it stands, with other tables; and the old tables.
    fn retable<U>(self, tables: U) -> (Worker<'p, 'a, M, U>, T) {
        let worker = Worker {
            p: self.p,
            tables,
            entries: self.entries,
            bits: self.bits,
            set_hash: self.set_hash,
            state: self.state,
            remaining: self.remaining,
            base: self.base,
            stack: self.stack,
            befores: self.befores,
            best: self.best,
            track: self.track,
            prune_pending: self.prune_pending,
            stats: self.stats,
            paused: self.paused,
            frontier: self.frontier,
        };
        (worker, self.tables)
    }
}

impl<'p, 'a, M: Model, T: Tables<M::State>> Worker<'p, 'a, M, T> {
    fn new(p: &'p Problem<'a, M>, tables: T, track: bool) -> Self {
        Worker {
            p,
            tables,
            entries: p.entries.clone(),
            bits: vec![0; p.words],
            set_hash: 0,
            state: p.model.init(),
            remaining: p.returned,
            base: Vec::new(),
            stack: Vec::new(),
            befores: Vec::new(),
            best: Vec::new(),
            track,
            prune_pending: true,
            stats: SearchStats::default(),
            paused: None,
            frontier: 0,
        }
    }

    fn flip(&mut self, op: usize) {
        let b = self.p.bit[op] as usize;
        self.bits[b / 64] ^= 1 << (b % 64);
        self.set_hash ^= self.p.zobrist[op];
    }

    /// Moves this worker to the configuration of `task` (from a fresh worker's state).
    fn start(&mut self, task: Task<M::State>) -> Scan {
        self.entries = self.p.entries.clone();
        self.bits.iter_mut().for_each(|w| *w = 0);
        self.set_hash = 0;
        self.remaining = self.p.returned;
        self.stack.clear();
        self.befores.clear();
        for &op in &task.path {
            self.flip(op as usize);
            self.remaining -= self.p.ops[op as usize].ret.is_some() as usize;
            self.entries.lift(self.p.call_node[op as usize]);
        }
        self.base = task.path;
        self.state = task.state;
        self.after(task.resume)
    }

    /// The operations linearized so far, in order.
    fn linearization(&self) -> Vec<u32> {
        let ops = self
            .stack
            .iter()
            .map(|f| self.entries.op[f.call() as usize]);
        self.base.iter().copied().chain(ops).collect()
    }

    /// A never-returned operation whose earlier twin is not linearized yet must wait.
    fn twin_waits(&self, op: usize) -> bool {
        let twin = self.p.twin_before[op];
        if twin == NONE {
            return false;
        }
        let b = self.p.bit[twin as usize] as usize;
        self.bits[b / 64] & (1 << (b % 64)) == 0
    }

    /// Tries to linearize the operation of `node` now.
    ///
    /// Right after a never-returned operation p, taken in state s0 to s1, an operation q
    /// that would reach the same state from s0 as from s1 is not tried: any linearization
    /// in which p is directly followed by such a q stays one with p left out (p has no
    /// return to respect), so the search only needs linearizations in which every
    /// never-returned operation matters to the one after it. The configuration after p
    /// is recorded tagged with s0, since what may follow it depends on s0. (Without
    /// `prune_pending`, every operation may follow, and no configuration is tagged.)
    fn try_step(&mut self, node: u32, forced: bool) -> Step {
        let p = self.p;
        let op = self.entries.op[node as usize] as usize;
        let (input, output) = (&p.ops[op].input, p.ops[op].output.as_ref());
        self.stats.steps += 1;
        let Some(next) = p.model.step(&self.state, input, output) else {
            return Step::Illegal;
        };
        if let Some(before) = self
            .stack
            .last()
            .filter(|f| f.pending() && self.prune_pending)
            .and(self.befores.last())
        {
            self.stats.steps += 1;
            if p.model.step(before, input, output).as_ref() == Some(&next) {
                return Step::Illegal;
            }
        }
        let pending = p.ops[op].ret.is_none();
        self.flip(op);
        let tag = (pending && self.prune_pending).then_some(&self.state);
        let visit = self.tables.visit(&next, tag, &self.bits, self.set_hash);
        if visit != Visit::New {
            self.flip(op);
            self.stats.seen += (visit == Visit::Seen) as u64;
            return if visit == Visit::Seen {
                Step::Seen
            } else {
                Step::Full
            };
        }
        self.stats.configurations += 1;
        let before = std::mem::replace(&mut self.state, next);
        self.befores.push(before);
        self.stack.push(Frame::new(node, forced, pending));
        self.remaining -= !pending as usize;
        self.entries.lift(node);
        if self.track && self.base.len() + self.stack.len() > self.best.len() {
            self.best = self.linearization();
        }
        Step::New
    }

    /// Places a read eagerly. Sound: if the configuration C has a linearizable extension
    /// and r is a callable read-only operation the model accepts in C's state, moving r to
    /// the front of that extension gives another one (r changes no state, and every
    /// operation that must precede r already does), so C extends iff C + r does. Hence if
    /// C + r was visited before (and failed, or is being searched), C fails too.
    fn forced(&mut self) -> Forced {
        let mut node = self.entries.next[HEAD as usize];
        while self.entries.is_call[node as usize] {
            let op = self.entries.op[node as usize] as usize;
            if self.p.read_only[op] && !self.twin_waits(op) {
                match self.try_step(node, true) {
                    Step::New => {
                        self.stats.forced += 1;
                        return Forced::Took;
                    }
                    Step::Seen => return Forced::Dead,
                    Step::Full => return Forced::Full,
                    Step::Illegal => {}
                }
            }
            node = self.entries.next[node as usize];
        }
        Forced::None
    }

    /// Undoes choices up to the most recent one with alternatives left; returns where to
    /// scan next, or `None` when this worker's task is exhausted.
    fn backtrack(&mut self) -> Option<Scan> {
        loop {
            let frame = self.stack.pop()?;
            let op = self.entries.op[frame.call() as usize] as usize;
            self.flip(op);
            self.state = self.befores.pop().expect("a state before each frame");
            self.remaining += self.p.ops[op].ret.is_some() as usize;
            self.entries.unlift(frame.call());
            if frame.has_alternatives() {
                return Some(self.after(frame.call()));
            }
        }
    }

    /// Where scanning goes on after trying the call `node`.
    fn after(&self, node: u32) -> Scan {
        Scan {
            node: self.entries.next[node as usize],
        }
    }

    /// Hands the untried alternatives of the oldest choice that has any to another thread.
    fn donate(&mut self) -> Option<Task<M::State>> {
        let k = self.stack.iter().position(|f| f.has_alternatives())?;
        self.stack[k].0 |= Frame::DONATED;
        self.stats.donated += 1;
        let ops = self.stack[..k]
            .iter()
            .map(|f| self.entries.op[f.call() as usize]);
        Some(Task {
            path: self.base.iter().copied().chain(ops).collect(),
            state: self.befores[k].clone(),
            resume: self.stack[k].call(),
        })
    }

    /// Searches from `at` (`None`: a configuration just reached, scan from the front).
    ///
    /// Callable operations are tried in call order. (Trying the never-returned ones last
    /// was measured: it helps some versioned-KV histories and makes append-heavy KV
    /// histories, whose timed-out appends took effect soon after their call, far slower.)
    fn search(&mut self, at: Option<Scan>, poll: &mut dyn FnMut(&mut Self) -> bool) -> End {
        let mut steps = 0u32;
        let mut fresh = at.is_none();
        let mut scan = at.unwrap_or(Scan { node: HEAD });
        loop {
            if self.remaining == 0 {
                return End::Found;
            }
            steps += 1;
            if steps == STEPS_PER_POLL {
                steps = 0;
                if !poll(self) {
                    self.paused = Some((!fresh).then_some(scan));
                    return End::Interrupted;
                }
            }
            if fresh {
                fresh = false;
                scan = match self.forced() {
                    Forced::Took => {
                        fresh = true;
                        continue;
                    }
                    Forced::Dead => match self.backtrack() {
                        Some(next) => next,
                        None => return End::Exhausted,
                    },
                    Forced::Full => return End::Full,
                    Forced::None => Scan {
                        node: self.entries.next[HEAD as usize],
                    },
                };
                continue;
            }
            let node = scan.node;
            if !self.entries.is_call[node as usize] {
                if self.entries.op[node as usize] != NONE {
                    self.frontier = self.frontier.max(node);
                }
                scan = match self.backtrack() {
                    Some(next) => next,
                    None => return End::Exhausted,
                };
                continue;
            }
            let op = self.entries.op[node as usize] as usize;
            if !self.p.read_only[op] && !self.twin_waits(op) {
                match self.try_step(node, false) {
                    Step::New => {
                        fresh = true;
                        continue;
                    }
                    Step::Full => return End::Full,
                    Step::Seen | Step::Illegal => {}
                }
            }
            scan.node = self.entries.next[node as usize];
        }
    }
}

/// A position of the scan over the callable operations of a configuration.
#[derive(Clone, Copy, Debug)]
struct Scan {
    node: u32,
}

/// Checks one partition's operations.
///
/// When some operations never returned, a first pass searches without the pruning of
/// operations that do not depend on the never-returned one before them, for at most
/// [`FIRST_PASS_STEPS_PER_OP`] model steps per operation, and its verdict stands if it
/// reaches one (each search is sound on its own). The pruning cuts the configurations of a
/// hard search by up to ten times, but it tries every callable operation after each
/// never-returned one twice, which on an easy partition costs far more than it saves: a
/// 400-operation versioned-KV history with 92 timed-out puts is decided in 800 to 1,200
/// steps without it and 150,000 to 270,000 with it, a 300-operation CAS history in 4,000
/// steps without it and 200,000 with it. A hard partition pays the first pass's steps.
pub(crate) fn check_partition<M: Model>(
    model: &M,
    ops: &[&Operation<M::Input, M::Output>],
    limits: &Limits,
) -> Outcome {
    let problem = Problem::new(model, ops);
    let mut first = SearchStats::default();
    if problem.returned < problem.ops.len() {
        let steps = FIRST_PASS_STEPS_PER_OP * problem.ops.len() as u64;
        let budget = tables::Budget::new(limits.memory_max);
        match sequential(&problem, limits, Some(steps), &budget, false) {
            Sequential::Ran((result, false, order, stats, frontier))
                if result != CheckResult::Unknown =>
            {
                return outcome(
                    &problem,
                    ops,
                    limits,
                    (result, false, order, stats, frontier),
                );
            }
            Sequential::Ran((.., stats, _)) => first = stats,
            Sequential::Over(worker) => first = worker.stats,
        }
    }
    let steps_max = (limits.threads > 1).then_some(limits.parallel_after_steps);
    let budget = tables::Budget::new(limits.memory_max);
    let mut ran = match sequential(&problem, limits, steps_max, &budget, true) {
        Sequential::Ran(ran) => ran,
        Sequential::Over(worker) => parallel::run(&problem, limits, *worker),
    };
    first.memo_bytes = 0;
    ran.3.add(&first);
    outcome(&problem, ops, limits, ran)
}

/// Model steps per operation that the first pass over a partition with never-returned
/// operations may take (see [`check_partition`]). Measured on the hard set: 8 decided the
/// versioned-KV histories; 64 also three of the six 300-operation CAS histories (4,000 to
/// 17,000 steps instead of 200,000 to 850,000), and costs the others at most 64 steps per
/// operation (under 1 ms for 400 operations).
const FIRST_PASS_STEPS_PER_OP: u64 = 64;

/// The outcome of a search of `problem`, the partition `ops`.
fn outcome<M: Model>(
    problem: &Problem<'_, M>,
    ops: &[&Operation<M::Input, M::Output>],
    limits: &Limits,
    (result, out_of_memory, order, mut stats, frontier): Ran,
) -> Outcome {
    stats.dropped = (ops.len() - problem.ops.len()) as u64;
    let core = (result == CheckResult::Illegal && frontier != 0).then(|| {
        let stuck = problem.index[problem.entries.op[frontier as usize] as usize];
        let before = (0..problem.ops.len())
            .filter(|&k| problem.call_node[k] < frontier)
            .map(|k| problem.index[k])
            .collect();
        (stuck, before)
    });
    Outcome {
        core,
        result,
        stopped: result == CheckResult::Unknown && limits.stop.load(Ordering::Relaxed),
        out_of_memory,
        stats,
        linearization: order.iter().map(|&k| problem.index[k as usize]).collect(),
    }
}

/// Whether the search may go on (no timeout, no stop).
fn within(limits: &Limits) -> bool {
    !limits.stop.load(Ordering::Relaxed) && limits.deadline.is_none_or(|d| Instant::now() < d)
}

/// Verdict, whether the memory ran out, the (partial) linearization, counters, and the
/// search's frontier ([`Worker::frontier`]).
type Ran = (CheckResult, bool, Vec<u32>, SearchStats, u32);

/// How the search on one thread ended.
enum Sequential<'p, 'a, 'b, M: Model> {
    Ran(Ran),
    /// Past its model steps: the search as it stands, to go on with more threads.
    Over(Box<Worker<'p, 'a, M, tables::Local<'b, M::State>>>),
}

/// Searches on this thread, at most `steps_max` model steps (about: the steps are
/// looked at every [`STEPS_PER_POLL`]).
fn sequential<'p, 'a, 'b, M: Model>(
    p: &'p Problem<'a, M>,
    limits: &Limits,
    steps_max: Option<u64>,
    budget: &'b tables::Budget,
    prune_pending: bool,
) -> Sequential<'p, 'a, 'b, M> {
    let tables = tables::Local::new(budget, p.model.states_recur());
    let mut worker = Worker::new(p, tables, limits.track);
    worker.prune_pending = prune_pending;
    let mut over = false;
    let end = worker.search(None, &mut |w| {
        over = steps_max.is_some_and(|m| w.stats.steps > m);
        !over && within(limits)
    });
    if over {
        return Sequential::Over(Box::new(worker));
    }
    let mut stats = worker.stats;
    stats.memo_bytes = budget.used() as u64;
    let frontier = worker.frontier;
    Sequential::Ran(match end {
        End::Found => (CheckResult::Ok, false, worker.linearization(), stats, 0),
        End::Exhausted => (CheckResult::Illegal, false, worker.best, stats, frontier),
        End::Interrupted => (CheckResult::Unknown, false, worker.best, stats, 0),
        End::Full => (CheckResult::Unknown, true, worker.best, stats, 0),
    })
}
