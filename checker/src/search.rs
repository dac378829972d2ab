//! Wing–Gong search with Lowe's memoisation, over one partition.
//!
//! The history becomes a doubly linked list of call and return entries in time order (calls
//! before returns at equal times: intervals are closed). The search walks the list from the
//! front: at a call it tries to linearize that operation now (the model accepts it and the
//! resulting (linearized set, state) pair is new), and if so removes the call and its return
//! from the list and starts again at the front; at a return, the operation returning was not
//! linearized in time, so it undoes the most recent choice and tries the next call after it.
//! Removal and re-insertion are the "dancing links" O(1) operations, undone in LIFO order.
//!
//! Operations that never returned have no return entry, so they never force a backtrack:
//! the search succeeds once every operation *with* a return is linearized, and whichever
//! never-returned operations are still unlinearized then simply never took effect.
//!
//! Memory: states are interned (each distinct state stored once, referred to by a `u32`
//! id), and visited pairs are (bitset, state id), found through a Zobrist hash of the bitset
//! that is updated in O(1) per step.

use crate::hash::{FxBuild, IdentityBuild, mix, zobrist_words};
use crate::{CheckResult, Model, Operation};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

const NONE: u32 = u32::MAX;
const HEAD: u32 = 0;
/// How many steps pass between looks at the clock and at the stop flag.
const STEPS_PER_POLL: u32 = 1 << 12;

/// Why a search ended, and the longest linearization it found.
pub(crate) struct Outcome {
    /// `Unknown` when timed out or stopped.
    pub result: CheckResult,
    /// Set when the search was stopped because another partition was illegal.
    pub stopped: bool,
    /// Indices into the partition's operations, in linearization order: the whole
    /// linearization when `Ok`, the longest partial one when `Illegal`.
    pub linearization: Vec<usize>,
}

/// Limits imposed from outside the partition.
pub(crate) struct Limits<'a> {
    pub deadline: Option<Instant>,
    pub stop: &'a AtomicBool,
    /// Keep the longest partial linearization (costs a copy each time it grows).
    pub track: bool,
}

/// The entry list: node 0 is the head sentinel, the last node the tail sentinel.
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

/// Each distinct model state, stored once.
struct Interner<S> {
    ids: HashMap<S, u32, FxBuild>,
    states: Vec<S>,
}

impl<S: Clone + Eq + std::hash::Hash> Interner<S> {
    fn intern(&mut self, state: S) -> u32 {
        match self.ids.entry(state) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                let id = self.states.len() as u32;
                self.states.push(e.key().clone());
                e.insert(id);
                id
            }
        }
    }
}

/// The visited (linearized set, state) pairs; bitsets live in one flat arena.
struct Visited {
    heads: HashMap<u64, u32, IdentityBuild>,
    words: Vec<u64>,
    state: Vec<u32>,
    chain: Vec<u32>,
    stride: usize,
}

impl Visited {
    /// Records the pair; false if it was already visited.
    fn insert(&mut self, bits: &[u64], set_hash: u64, state: u32) -> bool {
        let key = mix(set_hash, state);
        let fresh = self.state.len() as u32;
        let head = match self.heads.entry(key) {
            Entry::Vacant(e) => {
                e.insert(fresh);
                NONE
            }
            Entry::Occupied(mut e) => {
                let mut at = *e.get();
                while at != NONE {
                    let start = at as usize * self.stride;
                    if self.state[at as usize] == state
                        && self.words[start..start + self.stride] == *bits
                    {
                        return false;
                    }
                    at = self.chain[at as usize];
                }
                std::mem::replace(e.get_mut(), fresh)
            }
        };
        self.words.extend_from_slice(bits);
        self.state.push(state);
        self.chain.push(head);
        true
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

/// Checks one partition's operations.
pub(crate) fn check_partition<M: Model>(
    model: &M,
    ops: &[&Operation<M::Input, M::Output>],
    limits: &Limits,
) -> Outcome {
    Search::new(model, ops).run(limits)
}

struct Search<'a, M: Model> {
    model: &'a M,
    ops: &'a [&'a Operation<M::Input, M::Output>],
    entries: Entries,
    interner: Interner<M::State>,
    visited: Visited,
    zobrist: Vec<u64>,
    bits: Vec<u64>,
    /// For a never-returned operation, the previous never-returned one with an equal
    /// input (`NONE` if none); see [`twins`].
    twin_before: Vec<u32>,
}

impl<'a, M: Model> Search<'a, M> {
    fn new(model: &'a M, ops: &'a [&'a Operation<M::Input, M::Output>]) -> Self {
        let stride = ops.len().div_ceil(64).max(1);
        Search {
            model,
            ops,
            entries: Entries::new(ops),
            interner: Interner {
                ids: HashMap::default(),
                states: Vec::new(),
            },
            visited: Visited {
                heads: HashMap::default(),
                words: Vec::new(),
                state: Vec::new(),
                chain: Vec::new(),
                stride,
            },
            zobrist: zobrist_words(ops.len()),
            bits: vec![0; stride],
            twin_before: twins(ops),
        }
    }

    /// Tries to linearize the operation of call node `node` from state `state`; returns the
    /// new state id if the model accepts it and the configuration was not visited before.
    #[inline]
    fn try_linearize(&mut self, node: u32, state: u32, set_hash: u64) -> Option<u32> {
        let op = self.entries.op[node as usize] as usize;
        let twin = self.twin_before[op] as usize;
        if twin != NONE as usize && self.bits[twin / 64] & (1 << (twin % 64)) == 0 {
            return None;
        }
        let current = &self.interner.states[state as usize];
        let next = self
            .model
            .step(current, &self.ops[op].input, self.ops[op].output.as_ref())?;
        let next = self.interner.intern(next);
        self.bits[op / 64] |= 1 << (op % 64);
        if self
            .visited
            .insert(&self.bits, set_hash ^ self.zobrist[op], next)
        {
            Some(next)
        } else {
            self.bits[op / 64] &= !(1 << (op % 64));
            None
        }
    }

    fn run(mut self, limits: &Limits) -> Outcome {
        let mut remaining = self.ops.iter().filter(|op| op.ret.is_some()).count();
        let mut state = self.interner.intern(self.model.init());
        let mut set_hash = 0u64;
        let mut stack: Vec<(u32, u32)> = Vec::new(); // (call node, state before it)
        let mut best: Vec<u32> = Vec::new();
        let mut node = self.entries.next[HEAD as usize];
        let mut polls = 0u32;
        while remaining > 0 {
            polls += 1;
            if polls == STEPS_PER_POLL {
                polls = 0;
                if let Some(outcome) = self.interrupted(limits, &best) {
                    return outcome;
                }
            }
            debug_assert!(
                node as usize != self.entries.next.len() - 1,
                "walked off the list"
            );
            if self.entries.is_call[node as usize] {
                let Some(next) = self.try_linearize(node, state, set_hash) else {
                    node = self.entries.next[node as usize];
                    continue;
                };
                let op = self.entries.op[node as usize] as usize;
                stack.push((node, state));
                if limits.track && stack.len() > best.len() {
                    best = stack
                        .iter()
                        .map(|&(n, _)| self.entries.op[n as usize])
                        .collect();
                }
                state = next;
                set_hash ^= self.zobrist[op];
                remaining -= self.ops[op].ret.is_some() as usize;
                self.entries.lift(node);
                node = self.entries.next[HEAD as usize];
            } else {
                let Some((call, before)) = stack.pop() else {
                    return self.finish(CheckResult::Illegal, &best);
                };
                let op = self.entries.op[call as usize] as usize;
                self.bits[op / 64] &= !(1 << (op % 64));
                set_hash ^= self.zobrist[op];
                state = before;
                remaining += self.ops[op].ret.is_some() as usize;
                self.entries.unlift(call);
                node = self.entries.next[call as usize];
            }
        }
        let order: Vec<u32> = stack
            .iter()
            .map(|&(n, _)| self.entries.op[n as usize])
            .collect();
        self.finish(CheckResult::Ok, &order)
    }

    fn interrupted(&self, limits: &Limits, best: &[u32]) -> Option<Outcome> {
        let stopped = limits.stop.load(Ordering::Relaxed);
        let late = limits.deadline.is_some_and(|d| Instant::now() >= d);
        (stopped || late).then(|| Outcome {
            stopped,
            ..self.finish(CheckResult::Unknown, best)
        })
    }

    fn finish(&self, result: CheckResult, order: &[u32]) -> Outcome {
        Outcome {
            result,
            stopped: false,
            linearization: order.iter().map(|&op| op as usize).collect(),
        }
    }
}
