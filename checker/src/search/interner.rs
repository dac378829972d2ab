//! Interned states: each distinct state stored once, in creation order, named by its index.
//!
//! The states live in one vector (an arena: dropped front to back in one go at the end,
//! in the order they were allocated), and an open-addressed index of `u64` slots finds
//! them: a slot holds 32 bits of the state's hash and its id plus one (0: empty). Growing
//! the index re-places slots by their stored hash bits alone, without touching a state, and
//! one hash and one probe sequence serve both the lookup and the insertion. Every hit is
//! confirmed by comparing states. [`Interner::push`] appends a copy without a lookup: a
//! one-thread search of a model whose states rarely recur keeps one copy per configuration
//! that way (see `tables.rs`), and interns the copies only if it goes parallel.

use super::tables::{Budget, STATE_HEAP_BYTES};
use crate::hash::FxBuild;
use std::hash::{BuildHasher, Hash};

/// Slots of the first index (the many tiny searches of shrinking stay tiny).
const FIRST_SLOTS: usize = 16;

/// States whose heap estimate is charged at once.
const HEAP_BATCH: usize = 64;

/// The states of one search, interned.
pub(crate) struct Interner<S> {
    states: Vec<S>,
    /// Power-of-two open-addressed table (linear probing, at most half full).
    slots: Vec<u64>,
}

impl<S> Interner<S> {
    pub(crate) fn new() -> Self {
        Interner {
            states: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// Number of states.
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }

    /// The states, by id.
    pub(crate) fn into_states(self) -> Vec<S> {
        self.states
    }

    /// The state of id `id`.
    #[inline]
    pub(crate) fn state(&self, id: u32) -> &S {
        &self.states[id as usize]
    }

    /// Where the probe sequence of a 32-bit hash starts (Fibonacci hashing: the top bits
    /// of the product depend on every bit of the hash).
    fn home(tag: u32, mask: usize) -> usize {
        let bits = mask.count_ones();
        ((tag as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits.max(1))) as usize & mask
    }

    /// Doubles the index (charged to `budget`); false when over budget.
    fn grow(&mut self, budget: &Budget) -> bool {
        let size = (self.slots.len() * 2).max(FIRST_SLOTS);
        if !budget.charge(size * 8) {
            return false;
        }
        budget.release(self.slots.len() * 8);
        // Written, not `vec![0; size]`: a zeroed allocation maps the kernel's zero page, and
        // the first write to each page then replaces it, which on a process with several
        // threads flushes every core's TLB (perf: 11% of two-thread CPU on porcupine/kv/c50-ok).
        // Pages written first are mapped once, with no flush.
        #[allow(clippy::slow_vector_initialization)]
        let mut slots = Vec::with_capacity(size);
        slots.resize(size, 0);
        let old = std::mem::replace(&mut self.slots, slots);
        let mask = size - 1;
        for slot in old.into_iter().filter(|&s| s != 0) {
            let mut i = Self::home((slot >> 32) as u32, mask);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
        }
        true
    }
}

impl<S: Clone + Eq + Hash> Interner<S> {
    /// The id of `state`, if interned (no change to the tables).
    pub(crate) fn get(&self, state: &S) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let tag = (FxBuild::default().hash_one(state) >> 32) as u32;
        let mask = self.slots.len() - 1;
        let mut i = Self::home(tag, mask);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return None;
            }
            if (slot >> 32) as u32 == tag {
                let id = slot as u32 - 1;
                if self.states[id as usize] == *state {
                    return Some(id);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The id of `state`, interning a copy when new; `None` when over budget.
    pub(crate) fn id(&mut self, state: &S, budget: &Budget) -> Option<u32> {
        self.id_hashed(state, FxBuild::default().hash_one(state), budget)
    }

    /// [`Interner::id`] of a state whose Fx hash is `hash`.
    pub(crate) fn id_hashed(&mut self, state: &S, hash: u64, budget: &Budget) -> Option<u32> {
        let tag = (hash >> 32) as u32;
        if self.slots.is_empty() && !self.grow(budget) {
            return None;
        }
        let mut mask = self.slots.len() - 1;
        let mut i = Self::home(tag, mask);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                break;
            }
            if (slot >> 32) as u32 == tag {
                let id = slot as u32 - 1;
                if self.states[id as usize] == *state {
                    return Some(id);
                }
            }
            i = (i + 1) & mask;
        }
        if 2 * (self.states.len() + 1) > self.slots.len() {
            if !self.grow(budget) {
                return None;
            }
            mask = self.slots.len() - 1;
            i = Self::home(tag, mask);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
        }
        self.push(state, budget)?;
        let id = self.states.len() as u32;
        self.slots[i] = (tag as u64) << 32 | id as u64;
        Some(id - 1)
    }

    /// Appends a copy of `state` without looking it up (a table that keeps one state per
    /// entry of a memo, not one per distinct state): its id, or `None` when over budget.
    /// Charges its size and the vector's growth.
    pub(crate) fn push(&mut self, state: &S, budget: &Budget) -> Option<u32> {
        let size = std::mem::size_of::<S>();
        if self.states.len() == self.states.capacity() {
            let more = self.states.capacity().max(FIRST_SLOTS);
            if !budget.charge(more * size) {
                return None;
            }
            self.states.reserve_exact(more);
        }
        // The heap estimate is charged ahead for a batch of states: one atomic add per
        // batch, not per state (a locked add per new state was 15% of the interner's time on
        // porcupine/kv/c50-ok).
        if self.states.len().is_multiple_of(HEAP_BATCH)
            && !budget.charge(HEAP_BATCH * STATE_HEAP_BYTES)
        {
            return None;
        }
        self.states.push(state.clone());
        Some(self.states.len() as u32 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_states_get_one_id_and_ids_follow_creation() {
        let budget = Budget::new(1 << 20);
        let mut interner = Interner::new();
        let ids: Vec<u32> = (0..1000u64)
            .chain(0..1000)
            .map(|s| interner.id(&(s * 7919 % 1000), &budget).unwrap())
            .collect();
        assert_eq!(interner.len(), 1000);
        assert_eq!(ids[..1000], ids[1000..]);
        assert_eq!(ids[0], 0);
        let states = interner.into_states();
        for (k, &id) in ids[..1000].iter().enumerate() {
            assert_eq!(states[id as usize], k as u64 * 7919 % 1000);
        }
    }

    #[test]
    fn a_small_budget_refuses_instead_of_growing() {
        let budget = Budget::new(512);
        let mut interner = Interner::new();
        let last = (0..1000u64).map_while(|s| interner.id(&s, &budget)).count();
        assert!(last < 1000 && budget.used() <= 512);
    }
}
