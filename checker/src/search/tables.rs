//! The memo of visited configurations (linearized set, state), compact and capped.
//!
//! States are interned: each distinct state is stored once and a configuration refers to it
//! by a `u32` id. Linearized sets are bitsets whose bit order puts operations that returned
//! first (in call order) and never-returned ones last; a set is stored without its leading
//! all-ones words (everything long finished) and its trailing zero words (not yet called),
//! so a configuration of a 2,000-operation history usually takes two or three words, not
//! thirty-two. Entries live in fixed-size chunks (no reallocation spikes), found through a
//! hash of (set, state) whose collisions are chained and always confirmed word by word.
//!
//! Every allocation that grows a table is first charged to a [`Budget`]; when the budget
//! would be exceeded, the table refuses ([`Visit::Full`]) and the search ends as Unknown.
//! The charge counts the tables and each state at its inline size plus a fixed estimate of
//! the heap it owns ([`STATE_HEAP_BYTES`]).

use super::interner::Interner;
use crate::hash::{FxBuild, mix};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Words per arena chunk at most (512 KiB); an entry's address is its chunk (high 16
/// bits) and its offset in the chunk (low 16 bits).
const CHUNK_WORDS: usize = 1 << 16;
/// Words of the first chunk; each next one doubles, up to [`CHUNK_WORDS`], so that the
/// many tiny searches of counterexample shrinking stay tiny.
const FIRST_CHUNK_WORDS: usize = 1 << 9;
/// Estimate of the heap an interned state owns beyond its inline size (e.g. a KV value's
/// newest chunk), charged per state.
pub(crate) const STATE_HEAP_BYTES: usize = 48;
/// Shards of the shared tables: enough that two to sixteen threads rarely meet on a lock.
const SHARDS: usize = 64;
const NONE: u32 = u32::MAX;

/// What visiting a configuration found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Not seen before; now recorded.
    New,
    /// Already recorded.
    Seen,
    /// Recording it would exceed the memory budget.
    Full,
}

/// Bytes the tables may take, shared by every table of one check.
pub(crate) struct Budget {
    max: usize,
    used: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Budget {
        Budget {
            max,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes `bytes` from the budget, or refuses.
    pub(crate) fn charge(&self, bytes: usize) -> bool {
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes > self.max {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub(crate) fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Bytes in use.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// Approximate bytes of a hash table holding `capacity` entries of `entry` bytes.
fn table_bytes(capacity: usize, entry: usize) -> usize {
    (capacity * 8 / 7 + 1) * (entry + 1)
}

/// Charges the growth of `map` if inserting one more entry would grow it.
fn reserve_one<K, V, B>(map: &mut HashMap<K, V, B>, budget: &Budget, extra: usize) -> bool
where
    K: Eq + Hash,
    B: BuildHasher,
{
    let entry = std::mem::size_of::<(K, V)>() + extra;
    if map.len() < map.capacity() {
        return true;
    }
    let old = table_bytes(map.capacity(), entry);
    let new = table_bytes((map.capacity() * 2).max(4), entry);
    if !budget.charge(new) {
        return false;
    }
    map.reserve(map.capacity().max(4));
    budget.release(old);
    true
}

/// A linearized set without its leading all-ones and trailing zero words.
pub(crate) fn packed(bits: &[u64]) -> (u32, &[u64]) {
    let lead = bits.iter().take_while(|&&w| w == u64::MAX).count();
    let end = bits.iter().rposition(|&w| w != 0).map_or(lead, |i| i + 1);
    (lead as u32, &bits[lead..end.max(lead)])
}

/// The first entry of each memo key's chain: an open-addressed table (linear probing, at
/// most half full) of (key, entry address) slots, `NONE` marking an empty one. The keys are
/// well-mixed hashes, so their top bits place them. One probe finds a key or where it goes,
/// and growing moves slots without hashing anything.
struct Heads {
    slots: Vec<(u64, u32)>,
    len: usize,
}

impl Heads {
    const FIRST_SLOTS: usize = 16;

    /// The slot holding `key`, or the empty one where it would go (the table is not empty).
    fn slot(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = (key >> (64 - mask.count_ones())) as usize;
        while self.slots[i].1 != NONE && self.slots[i].0 != key {
            i = (i + 1) & mask;
        }
        i
    }

    fn get(&self, key: u64) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        Some(self.slots[self.slot(key)].1).filter(|&at| at != NONE)
    }

    /// Makes room for one more key (charged to `budget`); false when over budget.
    fn reserve_one(&mut self, budget: &Budget) -> bool {
        if 2 * (self.len + 1) <= self.slots.len() {
            return true;
        }
        let size = (self.slots.len() * 2).max(Self::FIRST_SLOTS);
        let entry = std::mem::size_of::<(u64, u32)>();
        if !budget.charge(size * entry) {
            return false;
        }
        budget.release(self.slots.len() * entry);
        let old = std::mem::replace(&mut self.slots, vec![(0, NONE); size]);
        for (key, at) in old.into_iter().filter(|&(_, at)| at != NONE) {
            let i = self.slot(key);
            self.slots[i] = (key, at);
        }
        true
    }

    /// Sets the chain head of `key` (room reserved before).
    fn set(&mut self, key: u64, at: u32) {
        let i = self.slot(key);
        self.len += (self.slots[i].1 == NONE) as usize;
        self.slots[i] = (key, at);
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.slots.iter().copied().filter(|&(_, at)| at != NONE)
    }
}

/// The visited configurations: (packed set, state id), chained by hash.
pub(crate) struct Memo {
    heads: Heads,
    chunks: Vec<Vec<u64>>,
}

impl Memo {
    pub(crate) fn new() -> Memo {
        Memo {
            heads: Heads {
                slots: Vec::new(),
                len: 0,
            },
            chunks: Vec::new(),
        }
    }

    fn word(&self, at: u32) -> u64 {
        self.chunks[at as usize >> 16][at as usize & 0xffff]
    }

    fn matches(&self, at: u32, state: u32, tag: u32, lead: u32, words: &[u64]) -> bool {
        let header = self.word(at);
        let shape = self.word(at + 1);
        if header as u32 != state || shape != shape_word(tag, lead, words.len()) {
            return false;
        }
        let start = (at as usize & 0xffff) + 3;
        let chunk = &self.chunks[at as usize >> 16];
        chunk[start - 1] == tag as u64 && chunk[start..start + words.len()] == *words
    }

    /// The entry of (set, state, tag), if recorded; `key` is the hash of the three.
    fn find(&self, key: u64, state: u32, tag: u32, lead: u32, words: &[u64]) -> Option<u32> {
        let mut at = self.heads.get(key)?;
        while at != NONE {
            if self.matches(at, state, tag, lead, words) {
                return Some(at);
            }
            at = (self.word(at) >> 32) as u32;
        }
        None
    }

    /// Whether (set, state) was recorded untagged.
    pub(crate) fn contains(&self, key: u64, state: u32, bits: &[u64]) -> bool {
        self.has(key, state, NONE, bits)
    }

    /// Whether (set, state, tag) was recorded; `key` is the hash of the three.
    fn has(&self, key: u64, state: u32, tag: u32, bits: &[u64]) -> bool {
        let (lead, words) = packed(bits);
        self.find(key, state, tag, lead, words).is_some()
    }

    /// Records (set, state, tag); `key` is the hash of the three. The tag tells apart
    /// configurations with the same set and state that the search may continue
    /// differently (`NONE`: untagged).
    pub(crate) fn visit(
        &mut self,
        key: u64,
        state: u32,
        tag: u32,
        bits: &[u64],
        budget: &Budget,
    ) -> Visit {
        let (lead, words) = packed(bits);
        if self.find(key, state, tag, lead, words).is_some() {
            return Visit::Seen;
        }
        if self.insert(key, state, tag, lead, words, budget) {
            Visit::New
        } else {
            Visit::Full
        }
    }

    /// Records a packed (set, state, tag) known to be absent; false when over budget.
    fn insert(
        &mut self,
        key: u64,
        state: u32,
        tag: u32,
        lead: u32,
        words: &[u64],
        budget: &Budget,
    ) -> bool {
        let head = self.heads.get(key).unwrap_or(NONE);
        if !self.heads.reserve_one(budget) {
            return false;
        }
        let need = 3 + words.len();
        assert!(need <= CHUNK_WORDS, "a linearized set longer than a chunk");
        if self
            .chunks
            .last()
            .is_none_or(|c| c.len() + need > c.capacity())
        {
            let size = (FIRST_CHUNK_WORDS << self.chunks.len().min(8)).clamp(need, CHUNK_WORDS);
            if self.chunks.len() == 1 << 16 || !budget.charge(size * 8) {
                return false;
            }
            self.chunks.push(Vec::with_capacity(size));
        }
        let index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[index];
        let at = (index << 16 | chunk.len()) as u32;
        chunk.push(state as u64 | (head as u64) << 32);
        chunk.push(shape_word(tag, lead, words.len()));
        chunk.push(tag as u64);
        chunk.extend_from_slice(words);
        self.heads.set(key, at);
        true
    }

    /// Every entry: (key, state, tag, lead, packed words).
    #[cfg(test)]
    fn entries(&self) -> impl Iterator<Item = (u64, u32, u32, u32, &[u64])> + '_ {
        self.heads.iter().flat_map(move |(key, head)| {
            std::iter::successors(Some(head), move |&at| {
                Some((self.word(at) >> 32) as u32).filter(|&n| n != NONE)
            })
            .map(move |at| {
                let shape = self.word(at + 1);
                let (lead, len) = (shape as u32 & 0x7fff_ffff, (shape >> 32) as usize);
                let start = (at as usize & 0xffff) + 3;
                let words = &self.chunks[at as usize >> 16][start..start + len];
                (
                    key,
                    self.word(at) as u32,
                    self.word(at + 2) as u32,
                    lead,
                    words,
                )
            })
        })
    }
}

fn shape_word(tag: u32, lead: u32, len: usize) -> u64 {
    debug_assert!(lead < 1 << 31);
    lead as u64 | ((tag != NONE) as u64) << 31 | (len as u64) << 32
}

/// The memo key of a configuration.
fn key_of(set_hash: u64, state: u32, tag: u32) -> u64 {
    let key = mix(set_hash, state);
    if tag == NONE {
        key
    } else {
        mix(key.rotate_left(17), tag)
    }
}

/// The shard of the shared memo that holds `key`: chosen by its low bits, because a
/// shard's [`Heads`] places keys by their top bits (sharding by the top bits too would put
/// every key of a shard into one sixty-fourth of its slots, one long probe run).
fn memo_shard(key: u64) -> usize {
    key as usize % SHARDS
}

/// Interns states: the id of `state`, creating one with `fresh` when new.
fn intern<S: Clone + Eq + Hash>(
    ids: &mut HashMap<S, u32, FxBuild>,
    state: &S,
    budget: &Budget,
    fresh: impl FnOnce() -> u32,
) -> Option<u32> {
    if let Some(&id) = ids.get(state) {
        return Some(id);
    }
    if !reserve_one(ids, budget, STATE_HEAP_BYTES) {
        return None;
    }
    let id = fresh();
    ids.insert(state.clone(), id);
    Some(id)
}

/// The tables one worker uses: its own (one thread) or a handle on shared ones.
pub(crate) trait Tables<S> {
    /// Records the configuration (set `bits` with hash `set_hash`, `state`). With a `tag`
    /// (a state), the configuration is recorded apart from the untagged one, and counts as
    /// seen when the untagged one was.
    fn visit(&mut self, state: &S, tag: Option<&S>, bits: &[u64], set_hash: u64) -> Visit;
}

/// Tables of a search that runs on one thread: no locks.
pub(crate) struct Local<'b, S> {
    ids: Interner<S>,
    memo: Memo,
    budget: &'b Budget,
}

impl<'b, S> Local<'b, S> {
    pub(crate) fn new(budget: &'b Budget) -> Self {
        Local {
            ids: Interner::new(),
            memo: Memo::new(),
            budget,
        }
    }
}

impl<S: Clone + Eq + Hash> Local<'_, S> {
    /// The same tables, shared by threads from now on (same state ids and entries, charged
    /// to `budget`); `None` when they do not fit in it. They move as they are, as a
    /// read-only layer under the shared tables (no entry is copied): the switch costs no
    /// more for a big one-thread search than for a small one.
    pub(crate) fn into_shared(self, budget: Budget) -> Option<Shared<S>> {
        if !budget.charge(self.budget.used()) {
            return None;
        }
        let mut shared = Shared::new(budget);
        *shared.next_id.get_mut() = self.ids.len() as u32;
        shared.frozen_ids = self.ids;
        shared.frozen_memo = self.memo;
        Some(shared)
    }

    fn id(&mut self, state: &S) -> Option<u32> {
        self.ids.id(state, self.budget)
    }
}

impl<S: Clone + Eq + Hash> Tables<S> for Local<'_, S> {
    fn visit(&mut self, state: &S, tag: Option<&S>, bits: &[u64], set_hash: u64) -> Visit {
        let Some(id) = self.id(state) else {
            return Visit::Full;
        };
        let tag = match tag {
            None => NONE,
            Some(t) => match self.id(t) {
                Some(t) => t,
                None => return Visit::Full,
            },
        };
        if tag != NONE && self.memo.contains(key_of(set_hash, id, NONE), id, bits) {
            return Visit::Seen;
        }
        let key = key_of(set_hash, id, tag);
        self.memo.visit(key, id, tag, bits, self.budget)
    }
}

/// Tables shared by the threads searching one partition: the tables of the one-thread
/// search that came before, read-only (no lock), and over them the states and entries
/// recorded since, sharded by hash. A state or entry is in one of the two, never both.
pub(crate) struct Shared<S> {
    frozen_ids: Interner<S>,
    frozen_memo: Memo,
    ids: Vec<Mutex<HashMap<S, u32, FxBuild>>>,
    next_id: AtomicU32,
    memo: Vec<Mutex<Memo>>,
    pub(crate) budget: Budget,
}

impl<S: Clone + Eq + Hash> Shared<S> {
    pub(crate) fn new(budget: Budget) -> Self {
        Shared {
            frozen_ids: Interner::new(),
            frozen_memo: Memo::new(),
            ids: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            next_id: AtomicU32::new(0),
            memo: (0..SHARDS).map(|_| Mutex::new(Memo::new())).collect(),
            budget,
        }
    }

    /// A handle for one thread, with its own cache of state ids.
    pub(crate) fn handle(&self) -> Handle<'_, S> {
        Handle {
            shared: self,
            cache: HashMap::default(),
        }
    }
}

/// One thread's access to [`Shared`] tables. State ids never change once given, so each
/// thread caches the ones it has seen and locks the shared interner only for new states.
pub(crate) struct Handle<'s, S> {
    shared: &'s Shared<S>,
    cache: HashMap<S, u32, FxBuild>,
}

impl<S: Clone + Eq + Hash> Handle<'_, S> {
    fn id(&mut self, state: &S) -> Option<u32> {
        let shared = self.shared;
        if let Some(id) = shared.frozen_ids.get(state) {
            return Some(id);
        }
        if let Some(&id) = self.cache.get(state) {
            return Some(id);
        }
        let shard = FxBuild::default().hash_one(state) as usize % SHARDS;
        let id = {
            let mut ids = shared.ids[shard].lock().unwrap_or_else(|e| e.into_inner());
            intern(&mut ids, state, &shared.budget, || {
                shared.next_id.fetch_add(1, Ordering::Relaxed)
            })?
        };
        if !reserve_one(&mut self.cache, &shared.budget, 0) {
            return None;
        }
        self.cache.insert(state.clone(), id);
        Some(id)
    }
}

impl<S: Clone + Eq + Hash> Handle<'_, S> {
    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Memo> {
        self.shared.memo[memo_shard(key)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: Clone + Eq + Hash> Tables<S> for Handle<'_, S> {
    fn visit(&mut self, state: &S, tag: Option<&S>, bits: &[u64], set_hash: u64) -> Visit {
        let Some(id) = self.id(state) else {
            return Visit::Full;
        };
        let tag = match tag {
            None => NONE,
            Some(t) => match self.id(t) {
                Some(t) => t,
                None => return Visit::Full,
            },
        };
        let frozen = &self.shared.frozen_memo;
        if tag != NONE {
            let untagged = key_of(set_hash, id, NONE);
            if frozen.contains(untagged, id, bits)
                || self.shard(untagged).contains(untagged, id, bits)
            {
                return Visit::Seen;
            }
        }
        let key = key_of(set_hash, id, tag);
        if frozen.has(key, id, tag, bits) {
            return Visit::Seen;
        }
        self.shard(key)
            .visit(key, id, tag, bits, &self.shared.budget)
    }
}

impl<S> Handle<'_, S> {
    /// The shared memo's entries (state ids and packed sets), sorted.
    #[cfg(test)]
    fn snapshot(&self) -> Vec<(u64, u32, u32, u32, Vec<u64>)> {
        let frozen = self.shared.frozen_memo.entries();
        let mut all: Vec<_> = frozen
            .map(|(k, s, t, l, w)| (k, s, t, l, w.to_vec()))
            .chain(self.shared.memo.iter().flat_map(|m| {
                let m = m.lock().unwrap();
                m.entries()
                    .map(|(k, s, t, l, w)| (k, s, t, l, w.to_vec()))
                    .collect::<Vec<_>>()
            }))
            .collect();
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_sets_drop_leading_ones_and_trailing_zeros() {
        assert_eq!(packed(&[u64::MAX, u64::MAX, 5, 0, 0]), (2, &[5u64][..]));
        assert_eq!(packed(&[0, 0]), (0, &[][..]));
        assert_eq!(packed(&[u64::MAX]), (1, &[][..]));
        assert_eq!(packed(&[1, 0, 2]), (0, &[1u64, 0, 2][..]));
    }

    #[test]
    fn the_memo_tells_equal_sets_apart_from_colliding_ones() {
        let budget = Budget::new(1 << 30);
        let mut memo = Memo::new();
        assert_eq!(memo.visit(7, 1, NONE, &[u64::MAX, 3], &budget), Visit::New);
        assert_eq!(memo.visit(7, 1, NONE, &[u64::MAX, 3], &budget), Visit::Seen);
        // Same hash, different set, state or tag: a collision, not a visit.
        assert_eq!(memo.visit(7, 1, NONE, &[u64::MAX, 1], &budget), Visit::New);
        assert_eq!(memo.visit(7, 2, NONE, &[u64::MAX, 3], &budget), Visit::New);
        assert_eq!(memo.visit(7, 1, 4, &[u64::MAX, 3], &budget), Visit::New);
        assert_eq!(memo.visit(7, 1, NONE, &[u64::MAX, 1], &budget), Visit::Seen);
        assert!(memo.contains(7, 1, &[u64::MAX, 3]) && !memo.contains(7, 3, &[u64::MAX, 3]));
    }

    #[test]
    fn local_tables_become_shared_ones_with_the_same_entries() {
        let budget = Budget::new(1 << 30);
        let mut local: Local<'_, u8> = Local::new(&budget);
        let sets: [&[u64]; 3] = [&[u64::MAX, 3], &[1], &[u64::MAX, u64::MAX, 0, 7]];
        for (i, bits) in sets.iter().enumerate() {
            let tag = (i == 1).then_some(&9u8);
            assert_eq!(
                local.visit(&(i as u8), tag, bits, 11 * i as u64),
                Visit::New
            );
        }
        let mut before: Vec<_> = local
            .memo
            .entries()
            .map(|(k, s, t, l, w)| (k, s, t, l, w.to_vec()))
            .collect();
        before.sort();
        let shared = local.into_shared(Budget::new(1 << 30)).expect("fits");
        let mut handle = shared.handle();
        assert_eq!(handle.snapshot(), before);
        for (i, bits) in sets.iter().enumerate() {
            let tag = (i == 1).then_some(&9u8);
            assert_eq!(
                handle.visit(&(i as u8), tag, bits, 11 * i as u64),
                Visit::Seen
            );
        }
        assert_eq!(handle.visit(&7u8, None, &[1], 5), Visit::New);
    }

    #[test]
    fn a_full_budget_refuses_new_entries() {
        let budget = Budget::new(1024);
        let mut memo = Memo::new();
        assert_eq!(memo.visit(1, 0, NONE, &[1], &budget), Visit::Full);
        assert!(budget.used() <= 1024);
    }
}
