//! The memo of visited configurations (linearized set, state), compact and capped.
//!
//! States are interned: each distinct state is stored once and a configuration refers to it
//! by a `u32` id. For a model whose states rarely recur ([`crate::Model::states_recur`]), a
//! one-thread search instead keeps a copy of each configuration's state and compares it by
//! `Eq` (memo keys come from state hashes, so a lookup needs no id): on porcupine/kv/c50-ok,
//! where nearly every configuration brings a new state, that saves the interner's lookup
//! and insertion (14% of the samples) and 9% of the CPU.
//!
//! Linearized sets are bitsets whose bit order puts operations that returned first (in call
//! order) and never-returned ones last; a set is stored without its leading
//! all-ones words (everything long finished) and its trailing zero words (not yet called),
//! so a configuration of a 2,000-operation history usually takes two or three words, not
//! thirty-two. Entries live in fixed-size chunks (no reallocation spikes), found through a
//! hash of (set, state) whose collisions are chained and always confirmed word by word.
//!
//! Threads searching one partition share the memo without locks: each appends its entries
//! to chunks of its own, and a sharded index of atomic slots, grown by copying, links them
//! (see [`Index`]; measured on hard/cas-stale-s13, two threads on the locked shards it
//! replaces took 830 ms of CPU for a search one thread does in 420 to 480 ms; on the
//! lock-free index, 560 ms). States new to
//! the search are interned under a lock; each thread caches the ids it has used.
//!
//! Every allocation that grows a table is first charged to a [`Budget`]; when the budget
//! would be exceeded, the table refuses ([`Visit::Full`]) and the search ends as Unknown.
//! The charge counts the tables and each state at its inline size plus a fixed estimate of
//! the heap it owns ([`STATE_HEAP_BYTES`]).

use super::interner::Interner;
use crate::hash::{FxBuild, mix};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

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

/// Asks the processor to start loading `word`'s cache line (a hint; nothing elsewhere than
/// on x86-64).
#[inline]
fn prefetch<T>(word: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and changes no memory; SSE, the
    // feature `_mm_prefetch` needs, is part of every x86-64 processor.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (word as *const T).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = word;
}

/// A linearized set without its leading all-ones and trailing zero words.
pub(crate) fn packed(bits: &[u64]) -> (u32, &[u64]) {
    let lead = bits.iter().take_while(|&&w| w == u64::MAX).count();
    let end = bits.iter().rposition(|&w| w != 0).map_or(lead, |i| i + 1);
    (lead as u32, &bits[lead..end.max(lead)])
}

/// The first entry of each memo key's chain: an open-addressed table (linear probing, at
/// most half full) of `u64` slots, each the key's top 32 bits and the entry's address plus
/// one (0: empty). The keys are well-mixed hashes, so their top bits place them. Keys that
/// share their top 32 bits share a chain, whose entries are always confirmed word by word.
/// One probe finds a key or where it goes, and growing moves slots without hashing anything.
struct Heads {
    slots: Vec<u64>,
    len: usize,
}

impl Heads {
    const FIRST_SLOTS: usize = 16;
    /// The most slots: a slot's place comes from the key's top 32 bits.
    const MAX_SLOTS: usize = 1 << 32;

    fn new() -> Heads {
        Heads {
            slots: Vec::new(),
            len: 0,
        }
    }

    /// Where the probe for `key` starts (the table is not empty).
    #[inline]
    fn home(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        ((key >> 32) >> (32 - mask.count_ones())) as usize
    }

    /// The slot holding `key`'s top bits, or the empty one where they would go (the table
    /// is not empty).
    #[inline]
    fn slot(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        let tag = key >> 32;
        let mut i = self.home(key);
        while self.slots[i] != 0 && self.slots[i] >> 32 != tag {
            i = (i + 1) & mask;
        }
        i
    }

    /// The chain head in slot `i` (`NONE`: empty).
    #[inline]
    fn head(&self, i: usize) -> u32 {
        (self.slots[i] as u32).wrapping_sub(1)
    }

    fn get(&self, key: u64) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        Some(self.head(self.slot(key))).filter(|&at| at != NONE)
    }

    /// Makes room for one more key (charged to `budget`); false when over budget.
    fn reserve_one(&mut self, budget: &Budget) -> bool {
        if 2 * (self.len + 1) <= self.slots.len() {
            return true;
        }
        let size = (self.slots.len() * 2).max(Self::FIRST_SLOTS);
        if size > Self::MAX_SLOTS || !budget.charge(size * 8) {
            return false;
        }
        budget.release(self.slots.len() * 8);
        // Written, not zero-mapped: see `Interner::grow`.
        #[allow(clippy::slow_vector_initialization)]
        let mut slots = Vec::with_capacity(size);
        slots.resize(size, 0u64);
        let old = std::mem::replace(&mut self.slots, slots);
        for slot in old.into_iter().filter(|&s| s != 0) {
            let i = self.slot(slot);
            self.slots[i] = slot;
        }
        true
    }

    /// Sets slot `i` (from [`Heads::slot`] of `key`, with room reserved) to the chain
    /// head `at`.
    #[inline]
    fn set(&mut self, i: usize, key: u64, at: u32) {
        self.len += (self.slots[i] == 0) as usize;
        self.slots[i] = key >> 32 << 32 | (at as u64 + 1);
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        (0..self.slots.len())
            .filter(|&i| self.slots[i] != 0)
            .map(|i| (self.slots[i] >> 32, self.head(i)))
    }
}

/// Where [`Memo::record`] puts an entry: the heads slot of its key, and the chain it
/// extends.
struct Spot {
    slot: usize,
    head: u32,
}

/// The visited configurations: (packed set, state id), chained by hash.
pub(crate) struct Memo {
    heads: Heads,
    chunks: Vec<Vec<u64>>,
}

impl Memo {
    pub(crate) fn new() -> Memo {
        Memo {
            heads: Heads::new(),
            chunks: Vec::new(),
        }
    }

    /// The entry under `key` of the set `bits`, tagged or not, whose stored (state, tag)
    /// ids `same` accepts.
    fn find(
        &self,
        key: u64,
        tagged: bool,
        bits: &[u64],
        same: impl Fn(u32, u32) -> bool,
    ) -> Option<u32> {
        let (lead, words) = packed(bits);
        find_in(self, self.heads.get(key)?, same, tagged, lead, words)
    }

    /// Whether (set, state) was recorded untagged.
    pub(crate) fn contains(&self, key: u64, state: u32, bits: &[u64]) -> bool {
        self.find(key, false, bits, |s, _| s == state).is_some()
    }

    /// Whether (set, state, tag) was recorded; `key` is the hash of the three.
    fn has(&self, key: u64, state: u32, tag: u32, bits: &[u64]) -> bool {
        self.find(key, tag != NONE, bits, |s, t| s == state && t == tag)
            .is_some()
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
        match self.probe(key, tag != NONE, bits, budget, |s, t| {
            s == state && t == tag
        }) {
            Ok(spot) => self.record(spot, key, state, tag, bits, budget),
            Err(visit) => visit,
        }
    }

    /// Looks up the set `bits` under `key`, tagged or not, with a stored (state, tag) that
    /// `same` accepts: `Seen` (or `Full` when there is no room for one more key), or where
    /// to record it. One probe of the heads serves the lookup and the insertion (room is
    /// made first, so the slot found stays valid).
    fn probe(
        &mut self,
        key: u64,
        tagged: bool,
        bits: &[u64],
        budget: &Budget,
        same: impl Fn(u32, u32) -> bool,
    ) -> Result<Spot, Visit> {
        if !self.heads.reserve_one(budget) {
            return Err(Visit::Full);
        }
        let slot = self.heads.slot(key);
        let head = self.heads.head(slot);
        let (lead, words) = packed(bits);
        if head != NONE && find_in(self, head, same, tagged, lead, words).is_some() {
            return Err(Visit::Seen);
        }
        Ok(Spot { slot, head })
    }

    /// Records (set, state, tag) at `spot`, from [`Memo::probe`] of the same key and set
    /// with nothing recorded since; `New`, or `Full` when over budget.
    fn record(
        &mut self,
        spot: Spot,
        key: u64,
        state: u32,
        tag: u32,
        bits: &[u64],
        budget: &Budget,
    ) -> Visit {
        let (lead, words) = packed(bits);
        let need = 3 + words.len();
        assert!(need <= CHUNK_WORDS, "a linearized set longer than a chunk");
        if self
            .chunks
            .last()
            .is_none_or(|c| c.len() + need > c.capacity())
        {
            let size = (FIRST_CHUNK_WORDS << self.chunks.len().min(8)).clamp(need, CHUNK_WORDS);
            if self.chunks.len() == 1 << 16 || !budget.charge(size * 8) {
                return Visit::Full;
            }
            self.chunks.push(Vec::with_capacity(size));
        }
        let index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[index];
        let at = (index << 16 | chunk.len()) as u32;
        chunk.push(state as u64 | (spot.head as u64) << 32);
        chunk.push(shape_word(tag != NONE, lead, words.len()));
        chunk.push(tag as u64);
        chunk.extend_from_slice(words);
        self.heads.set(spot.slot, key, at);
        Visit::New
    }

    /// Gives every entry's state and tag the ids `map` gives their present ones.
    fn rename(&mut self, map: &[u32]) {
        for chunk in &mut self.chunks {
            let mut at = 0;
            while at < chunk.len() {
                let header = chunk[at];
                chunk[at] = header >> 32 << 32 | map[header as u32 as usize] as u64;
                let tag = chunk[at + 2] as u32;
                if tag != NONE {
                    chunk[at + 2] = map[tag as usize] as u64;
                }
                at += 3 + (chunk[at + 1] >> 32) as usize;
            }
        }
    }

    /// Starts loading the heads slot where `key`'s probe begins.
    #[inline]
    fn prefetch(&self, key: u64) {
        if !self.heads.slots.is_empty() {
            prefetch(&self.heads.slots[self.heads.home(key)]);
        }
    }

    /// Every entry: (state, tag, lead, packed words).
    #[cfg(test)]
    fn entries(&self) -> Vec<Entry> {
        self.heads
            .iter()
            .flat_map(|(_, head)| chain(self, head))
            .collect()
    }
}

impl Words for Memo {
    fn word(&self, at: u32) -> u64 {
        self.chunks[at as usize >> 16][at as usize & 0xffff]
    }

    fn equal(&self, at: u32, words: &[u64]) -> bool {
        let start = at as usize & 0xffff;
        self.chunks[at as usize >> 16][start..start + words.len()] == *words
    }
}

/// Where a memo's entries live. An entry at address `at` (chunk in the high 16 bits,
/// offset in the low 16; an entry never straddles chunks) is: the state id with the next
/// entry of its chain in the high half, the shape word, the tag, the packed set's words.
trait Words {
    fn word(&self, at: u32) -> u64;
    /// Whether the words from `at` on equal `words`.
    fn equal(&self, at: u32, words: &[u64]) -> bool;
}

/// The entry of the set (`lead`, `words`), tagged or not, whose stored (state, tag) ids
/// `same` accepts, in the chain that starts at `at`.
fn find_in(
    arena: &impl Words,
    mut at: u32,
    same: impl Fn(u32, u32) -> bool,
    tagged: bool,
    lead: u32,
    words: &[u64],
) -> Option<u32> {
    let shape = shape_word(tagged, lead, words.len());
    while at != NONE {
        let header = arena.word(at);
        if arena.word(at + 1) == shape
            && arena.equal(at + 3, words)
            && same(header as u32, arena.word(at + 2) as u32)
        {
            return Some(at);
        }
        at = (header >> 32) as u32;
    }
    None
}

/// A memo entry as tests see it: (state, tag, lead, packed words).
#[cfg(test)]
type Entry = (u32, u32, u32, Vec<u64>);

/// The entries of the chain that starts at `head`.
#[cfg(test)]
fn chain(arena: &impl Words, head: u32) -> Vec<Entry> {
    std::iter::successors(Some(head), |&at| {
        Some((arena.word(at) >> 32) as u32).filter(|&n| n != NONE)
    })
    .map(|at| {
        let shape = arena.word(at + 1);
        let (lead, len) = (shape as u32 & 0x7fff_ffff, (shape >> 32) as usize);
        let words = (0..len as u32).map(|k| arena.word(at + 3 + k)).collect();
        (
            arena.word(at) as u32,
            arena.word(at + 2) as u32,
            lead,
            words,
        )
    })
    .collect()
}

fn shape_word(tagged: bool, lead: u32, len: usize) -> u64 {
    debug_assert!(lead < 1 << 31);
    lead as u64 | (tagged as u64) << 31 | (len as u64) << 32
}

/// The memo key of a configuration, from the hashes of its set, its state and its tag
/// state (if tagged). Built from hashes, not state ids, so that it is known before the
/// state is interned: the probes of the interner and of the memo can then overlap.
fn key_of(set_hash: u64, state_hash: u64, tag_hash: Option<u64>) -> u64 {
    let key = mix(set_hash, state_hash);
    match tag_hash {
        None => key,
        Some(t) => mix(key.rotate_left(17), t),
    }
}

/// The hash of a state, as the interners and memo keys use it.
fn state_hash<S: Hash>(state: &S) -> u64 {
    FxBuild::default().hash_one(state)
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
    /// With `intern`, each distinct state once; without, a copy of the state (and of the
    /// tag) of each recorded configuration, in order.
    ids: Interner<S>,
    memo: Memo,
    budget: &'b Budget,
    /// Whether states are interned ([`crate::Model::states_recur`]). Without, a
    /// configuration is looked up by its key and its stored state compared by `Eq`: no
    /// interner lookup (a cache miss) and no insertion for each new state, when nearly
    /// every configuration brings one.
    intern: bool,
}

impl<'b, S> Local<'b, S> {
    pub(crate) fn new(budget: &'b Budget, intern: bool) -> Self {
        Local {
            ids: Interner::new(),
            memo: Memo::new(),
            budget,
            intern,
        }
    }
}

impl<S: Clone + Eq + Hash> Local<'_, S> {
    /// The same tables, shared by threads from now on (the same entries, charged to
    /// `budget`); `None` when they do not fit in it. They move as they are, as a read-only
    /// layer under the shared tables (no entry is copied; states kept per configuration are
    /// interned first and the entries' state ids renamed, since shared tables compare ids).
    pub(crate) fn into_shared(mut self, budget: Budget) -> Option<Shared<S>> {
        if !budget.charge(self.budget.used()) {
            return None;
        }
        if !self.intern {
            let copies = std::mem::replace(&mut self.ids, Interner::new()).into_states();
            let map: Option<Vec<u32>> = copies.iter().map(|s| self.ids.id(s, &budget)).collect();
            self.memo.rename(&map?);
        }
        let mut shared = Shared::new(budget)?;
        *shared.next_id.get_mut() = self.ids.len() as u32;
        shared.frozen_ids = self.ids;
        shared.frozen_memo = self.memo;
        Some(shared)
    }

    /// [`Tables::visit`] without interning: the stored states are compared by value.
    fn visit_copies(&mut self, state: &S, tag: Option<&S>, bits: &[u64], set_hash: u64) -> Visit {
        let hash = state_hash(state);
        let states = &self.ids;
        if tag.is_some() {
            let untagged = key_of(set_hash, hash, None);
            let same = |s, _| states.state(s) == state;
            if self.memo.find(untagged, false, bits, same).is_some() {
                return Visit::Seen;
            }
        }
        let key = key_of(set_hash, hash, tag.map(state_hash));
        let same = |s, t| states.state(s) == state && tag.is_none_or(|g| states.state(t) == g);
        let spot = match self.memo.probe(key, tag.is_some(), bits, self.budget, same) {
            Ok(spot) => spot,
            Err(visit) => return visit,
        };
        let Some(id) = self.ids.push(state, self.budget) else {
            return Visit::Full;
        };
        let tag = match tag {
            None => NONE,
            Some(t) => match self.ids.push(t, self.budget) {
                Some(t) => t,
                None => return Visit::Full,
            },
        };
        self.memo.record(spot, key, id, tag, bits, self.budget)
    }
}

impl<S: Clone + Eq + Hash> Tables<S> for Local<'_, S> {
    fn visit(&mut self, state: &S, tag: Option<&S>, bits: &[u64], set_hash: u64) -> Visit {
        if !self.intern {
            return self.visit_copies(state, tag, bits, set_hash);
        }
        let hash = state_hash(state);
        let tag_hash = tag.map(state_hash);
        let key = key_of(set_hash, hash, tag_hash);
        // Both tables are probed at random places, usually missing the cache: start
        // loading the memo's slot while the interner looks up the state.
        self.memo.prefetch(key);
        let Some(id) = self.ids.id_hashed(state, hash, self.budget) else {
            return Visit::Full;
        };
        let tag = match (tag, tag_hash) {
            (Some(t), Some(h)) => match self.ids.id_hashed(t, h, self.budget) {
                Some(t) => t,
                None => return Visit::Full,
            },
            _ => NONE,
        };
        if tag != NONE && self.memo.contains(key_of(set_hash, hash, None), id, bits) {
            return Visit::Seen;
        }
        self.memo.visit(key, id, tag, bits, self.budget)
    }
}

/// The entries of the shared memo: chunks of [`CHUNK_WORDS`] words that never move once
/// allocated, each thread appending to one of its own. A thread's consecutive entries thus
/// sit side by side, as in the one-thread [`Memo`] (measured: entries spread over one arena
/// per shard made one thread's search 15% slower with 64 shards and 75% with 512). Words are
/// atomics so that a thread may read a chunk another one is writing. An entry's words are
/// stored (relaxed) before the compare-and-swap that links it into an index slot, and read
/// only after loading that slot or a later value of it, so those sequentially consistent
/// slot accesses order them.
struct Arena {
    chunks: Box<[OnceLock<Box<[AtomicU64]>>]>,
    /// The next chunk to allocate.
    next: AtomicUsize,
}

impl Arena {
    /// Room for `bytes` of chunks (at most the 2^16 an address can name).
    fn new(bytes: usize) -> Arena {
        let chunks = (bytes / (CHUNK_WORDS * 8) + 1).min(1 << 16);
        Arena {
            chunks: (0..chunks).map(|_| OnceLock::new()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    fn chunk(&self, at: u32) -> &[AtomicU64] {
        self.chunks[at as usize >> 16]
            .get()
            .expect("memo addresses name allocated chunks")
    }

    /// A new chunk (charged to `budget`): its index, or `None` when over budget.
    fn allocate(&self, budget: &Budget) -> Option<u32> {
        if !budget.charge(CHUNK_WORDS * 8) {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = self.chunks.get(index) else {
            budget.release(CHUNK_WORDS * 8);
            return None;
        };
        // Every word written now (see `Interner::grow` on zero-mapped pages).
        let _ = slot.set((0..CHUNK_WORDS).map(|_| AtomicU64::new(0)).collect());
        Some(index as u32)
    }
}

impl Words for Arena {
    fn word(&self, at: u32) -> u64 {
        self.chunk(at)[at as usize & 0xffff].load(Ordering::Relaxed)
    }

    fn equal(&self, at: u32, words: &[u64]) -> bool {
        let start = at as usize & 0xffff;
        let stored = &self.chunk(at)[start..start + words.len()];
        stored
            .iter()
            .zip(words)
            .all(|(a, &w)| a.load(Ordering::Relaxed) == w)
    }
}

/// Slots of a shard's first index table (tests start small, to grow often).
const INDEX_FIRST_SLOTS: usize = if cfg!(test) { 16 } else { 1 << 10 };

/// One table of a shard's index: open addressing with linear probing, at most half full
/// (up to 15/16 when the budget refuses to grow it). A slot holds the top 32 bits of a memo
/// key and, in its low half, 1 + the address of the newest entry whose key has those bits
/// (the entries chain through their headers); 0 marks an empty slot. A slot is claimed, and
/// an entry prepended to its chain, by one compare-and-swap.
struct Table {
    slots: Box<[AtomicU64]>,
    used: AtomicUsize,
}

impl Table {
    fn new(size: usize) -> Table {
        Table {
            // Every slot written now (see `Interner::grow` on zero-mapped pages).
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
            used: AtomicUsize::new(0),
        }
    }

    /// Where the probe for `high` (a key's top 32 bits) starts.
    fn home(&self, high: u32) -> usize {
        let bits = self.slots.len().trailing_zeros();
        (high as usize) >> (32 - bits)
    }

    /// The most slots that may be used.
    fn limit(&self) -> usize {
        self.slots.len() / 16 * 15
    }
}

fn slot_word(high: u32, at: u32) -> u64 {
    (high as u64) << 32 | (at as u64 + 1)
}

/// The head of the chain a non-empty slot holds.
fn slot_head(slot: u64) -> u32 {
    (slot as u32).wrapping_sub(1)
}

/// One shard of the shared memo's index, read and written without a lock. When a table
/// is half full, a thread copies it into one twice the size: `seq` turns odd while it copies
/// (threads then wait), and even again once the copy is the current table. Tables are never
/// freed before the search ends (and stay charged to the budget), so a thread still reading
/// an old one reads valid slots.
///
/// Why nothing recorded is lost: a thread that records an entry in a table reads `seq`
/// before, and again after, its compare-and-swap; all these accesses are sequentially
/// consistent. If `seq` is unchanged, the swap came before the copier's first store, hence
/// before the copier read that slot, and the copy holds the entry. Otherwise the thread
/// records the entry again in the new table, unless it finds it there (copied: recorded
/// once, by this thread) or finds an equal entry of another thread (then it reports `Seen`,
/// and that thread searches the configuration). A thread that finds an entry in any table
/// reports `Seen` rightly: whoever recorded it searches it.
struct Index {
    /// Tables by generation; the current one is `gens[seq / 2]`.
    gens: Box<[OnceLock<Table>]>,
    seq: AtomicU64,
    /// Held by the thread that copies.
    grow: Mutex<()>,
}

impl Index {
    /// Generations of tables a shard may go through, each twice the size of the last: the
    /// last has 2^32 slots, as many as a slot's 32 key bits can place (`Table::home`).
    const GENERATIONS: usize = 33 - INDEX_FIRST_SLOTS.trailing_zeros() as usize;

    fn new(budget: &Budget) -> Option<Index> {
        if !budget.charge(INDEX_FIRST_SLOTS * 8) {
            return None;
        }
        let gens: Box<[OnceLock<Table>]> =
            (0..Self::GENERATIONS).map(|_| OnceLock::new()).collect();
        let _ = gens[0].set(Table::new(INDEX_FIRST_SLOTS));
        Some(Index {
            gens,
            seq: AtomicU64::new(0),
            grow: Mutex::new(()),
        })
    }

    /// The current table and the `seq` it belongs to (waits while a copy is made).
    fn current(&self) -> (u64, &Table) {
        let mut spins = 0u32;
        loop {
            let seq = self.seq.load(Ordering::SeqCst);
            if seq & 1 == 0 {
                let table = self.gens[seq as usize / 2]
                    .get()
                    .expect("an even seq names a published table");
                return (seq, table);
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Makes the current table at most half full, copying it into a larger one if no other
    /// thread has; false when the budget or the generations run out.
    fn grow(&self, budget: &Budget) -> bool {
        let _copier = self.grow.lock().unwrap_or_else(|e| e.into_inner());
        let seq = self.seq.load(Ordering::SeqCst);
        let old = self.gens[seq as usize / 2].get().expect("current table");
        if 2 * old.used.load(Ordering::SeqCst) <= old.slots.len() {
            return true;
        }
        let size = old.slots.len() * 2;
        let next = seq as usize / 2 + 1;
        if next == self.gens.len() || !budget.charge(size * 8) {
            return false;
        }
        let new = Table::new(size);
        let mask = size - 1;
        self.seq.store(seq + 1, Ordering::SeqCst);
        let mut used = 0;
        for slot in old.slots.iter() {
            let word = slot.load(Ordering::SeqCst);
            if word == 0 {
                continue;
            }
            let mut i = new.home((word >> 32) as u32);
            while new.slots[i].load(Ordering::Relaxed) != 0 {
                i = (i + 1) & mask;
            }
            new.slots[i].store(word, Ordering::Relaxed);
            used += 1;
        }
        new.used.store(used, Ordering::Relaxed);
        let _ = self.gens[next].set(new);
        self.seq.store(seq + 2, Ordering::SeqCst);
        true
    }
}

/// Tables shared by the threads searching one partition: the tables of the one-thread
/// search that came before, read-only, and over them the states and entries recorded since,
/// their index sharded by hash. A state or entry is in one of the two, never both.
pub(crate) struct Shared<S> {
    frozen_ids: Interner<S>,
    frozen_memo: Memo,
    ids: Vec<Mutex<HashMap<S, u32, FxBuild>>>,
    next_id: AtomicU32,
    /// Per shard, the index of the entries in `arena`.
    index: Vec<Index>,
    arena: Arena,
    pub(crate) budget: Budget,
}

impl<S: Clone + Eq + Hash> Shared<S> {
    /// Empty tables, or `None` when even those exceed `budget`.
    pub(crate) fn new(budget: Budget) -> Option<Self> {
        let index = (0..SHARDS)
            .map(|_| Index::new(&budget))
            .collect::<Option<Vec<_>>>()?;
        Some(Shared {
            frozen_ids: Interner::new(),
            frozen_memo: Memo::new(),
            ids: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            next_id: AtomicU32::new(0),
            index,
            arena: Arena::new(budget.max),
            budget,
        })
    }

    /// A handle for one thread, with its own cache of state ids.
    pub(crate) fn handle(&self) -> Handle<'_, S> {
        Handle {
            shared: self,
            cache: HashMap::default(),
            fill: None,
        }
    }
}

/// One thread's access to [`Shared`] tables. State ids never change once given, so each
/// thread caches the ones it has used and locks the shared interner only for new states.
pub(crate) struct Handle<'s, S> {
    shared: &'s Shared<S>,
    cache: HashMap<S, u32, FxBuild>,
    /// The chunk this thread appends entries to, and its first free word.
    fill: Option<(u32, usize)>,
}

impl<S: Clone + Eq + Hash> Handle<'_, S> {
    fn id(&mut self, state: &S) -> Option<u32> {
        let shared = self.shared;
        if let Some(&id) = self.cache.get(state) {
            return Some(id);
        }
        let id = match shared.frozen_ids.get(state) {
            Some(id) => id,
            None => {
                let shard = FxBuild::default().hash_one(state) as usize % SHARDS;
                let mut ids = shared.ids[shard].lock().unwrap_or_else(|e| e.into_inner());
                intern(&mut ids, state, &shared.budget, || {
                    shared.next_id.fetch_add(1, Ordering::Relaxed)
                })?
            }
        };
        if !reserve_one(&mut self.cache, &shared.budget, 0) {
            return None;
        }
        self.cache.insert(state.clone(), id);
        Some(id)
    }

    /// Room for `need` words in this thread's chunk: the address of the first.
    fn room(&mut self, need: usize) -> Option<u32> {
        assert!(need <= CHUNK_WORDS, "a linearized set longer than a chunk");
        let (chunk, start) = match self.fill {
            Some((chunk, start)) if start + need <= CHUNK_WORDS => (chunk, start),
            _ => (self.shared.arena.allocate(&self.shared.budget)?, 0),
        };
        self.fill = Some((chunk, start + need));
        Some(chunk << 16 | start as u32)
    }

    /// Records (set, state, tag) in the shared memo; `key` is the hash of the three.
    fn visit_shared(&mut self, key: u64, state: u32, tag: u32, bits: &[u64]) -> Visit {
        let shared = self.shared;
        let arena = &shared.arena;
        let (lead, words) = packed(bits);
        let index = &shared.index[memo_shard(key)];
        let high = (key >> 32) as u32;
        // Our entry, once written, and whether some table's slot has pointed to it.
        let mut ours: Option<u32> = None;
        let mut published = false;
        'tables: loop {
            let (seq, table) = index.current();
            let mask = table.slots.len() - 1;
            let mut i = table.home(high);
            loop {
                let slot = table.slots[i].load(Ordering::SeqCst);
                if slot != 0 && (slot >> 32) as u32 != high {
                    i = (i + 1) & mask;
                    continue;
                }
                let head = if slot == 0 { NONE } else { slot_head(slot) };
                let same = |s, t| s == state && t == tag;
                if let Some(at) = find_in(arena, head, same, tag != NONE, lead, words) {
                    if Some(at) == ours {
                        return Visit::New;
                    }
                    if let (Some(at), false) = (ours, published) {
                        // Never seen by another thread: give its words back.
                        self.fill = self.fill.map(|(chunk, _)| (chunk, at as usize & 0xffff));
                    }
                    return Visit::Seen;
                }
                if slot == 0 && table.used.load(Ordering::SeqCst) >= table.limit() {
                    if !index.grow(&shared.budget) {
                        return Visit::Full;
                    }
                    continue 'tables;
                }
                let at = match ours {
                    Some(at) => at,
                    None => {
                        let Some(at) = self.room(3 + words.len()) else {
                            return Visit::Full;
                        };
                        let stored = &arena.chunk(at)[at as usize & 0xffff..];
                        let shape = shape_word(tag != NONE, lead, words.len());
                        stored[1].store(shape, Ordering::Relaxed);
                        stored[2].store(tag as u64, Ordering::Relaxed);
                        for (a, &w) in stored[3..].iter().zip(words) {
                            a.store(w, Ordering::Relaxed);
                        }
                        ours = Some(at);
                        at
                    }
                };
                arena.chunk(at)[at as usize & 0xffff]
                    .store(state as u64 | (head as u64) << 32, Ordering::Relaxed);
                let swapped = table.slots[i].compare_exchange(
                    slot,
                    slot_word(high, at),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                if swapped.is_err() {
                    // Another thread claimed the slot or grew its chain: look again.
                    continue;
                }
                published = true;
                if index.seq.load(Ordering::SeqCst) != seq {
                    // A copy began meanwhile and may have missed it.
                    continue 'tables;
                }
                if slot == 0 {
                    let used = table.used.fetch_add(1, Ordering::SeqCst) + 1;
                    if 2 * used > table.slots.len() {
                        index.grow(&shared.budget);
                    }
                }
                return Visit::New;
            }
        }
    }

    /// Whether (set, state) was recorded untagged in the shared memo.
    fn contains_shared(&self, key: u64, state: u32, bits: &[u64]) -> bool {
        let (lead, words) = packed(bits);
        let index = &self.shared.index[memo_shard(key)];
        let high = (key >> 32) as u32;
        let (_, table) = index.current();
        let mask = table.slots.len() - 1;
        let mut i = table.home(high);
        loop {
            let slot = table.slots[i].load(Ordering::SeqCst);
            if slot == 0 {
                return false;
            }
            if (slot >> 32) as u32 == high {
                // One slot per key's top bits: the chain holds every such entry.
                let head = slot_head(slot);
                let same = |s, _| s == state;
                return find_in(&self.shared.arena, head, same, false, lead, words).is_some();
            }
            i = (i + 1) & mask;
        }
    }
}

impl<S: Clone + Eq + Hash> Tables<S> for Handle<'_, S> {
    fn visit(&mut self, state: &S, tag: Option<&S>, bits: &[u64], set_hash: u64) -> Visit {
        let Some(id) = self.id(state) else {
            return Visit::Full;
        };
        let tag_state = tag;
        let tag = match tag {
            None => NONE,
            Some(t) => match self.id(t) {
                Some(t) => t,
                None => return Visit::Full,
            },
        };
        let frozen = &self.shared.frozen_memo;
        let hash = state_hash(state);
        if tag != NONE {
            let untagged = key_of(set_hash, hash, None);
            if frozen.contains(untagged, id, bits) || self.contains_shared(untagged, id, bits) {
                return Visit::Seen;
            }
        }
        let key = key_of(set_hash, hash, tag_state.map(state_hash));
        if frozen.has(key, id, tag, bits) {
            return Visit::Seen;
        }
        self.visit_shared(key, id, tag, bits)
    }
}

impl<S> Handle<'_, S> {
    /// The shared memo's entries (state ids and packed sets), sorted.
    #[cfg(test)]
    fn snapshot(&self) -> Vec<Entry> {
        let shared = self.shared;
        let mut all = shared.frozen_memo.entries();
        for index in &shared.index {
            let (_, table) = index.current();
            for slot in table.slots.iter() {
                let slot = slot.load(Ordering::SeqCst);
                if slot != 0 {
                    all.extend(chain(&shared.arena, slot_head(slot)));
                }
            }
        }
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
        let mut local: Local<'_, u8> = Local::new(&budget, true);
        let sets: [&[u64]; 3] = [&[u64::MAX, 3], &[1], &[u64::MAX, u64::MAX, 0, 7]];
        for (i, bits) in sets.iter().enumerate() {
            let tag = (i == 1).then_some(&9u8);
            assert_eq!(
                local.visit(&(i as u8), tag, bits, 11 * i as u64),
                Visit::New
            );
        }
        let mut before = local.memo.entries();
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
    fn local_tables_that_keep_state_copies_find_configurations_by_value_and_share_them() {
        // States recur across sets here (7 values over 3,000 configurations), some tagged,
        // so copies of one state stand in different entries and one chain.
        let configs: Vec<(u8, Option<u8>, [u64; 2], u64)> = (0..3_000u64)
            .map(|i| {
                let tag = (i % 5 == 0).then_some((i % 3) as u8);
                (
                    (i % 7) as u8,
                    tag,
                    [u64::MAX, i / 2],
                    (i / 2).wrapping_mul(0x9e37),
                )
            })
            .collect();
        let budget = Budget::new(1 << 30);
        let mut interned: Local<'_, u8> = Local::new(&budget, true);
        let mut copies: Local<'_, u8> = Local::new(&budget, false);
        for (state, tag, bits, set_hash) in configs.iter().chain(&configs) {
            assert_eq!(
                copies.visit(state, tag.as_ref(), bits, *set_hash),
                interned.visit(state, tag.as_ref(), bits, *set_hash),
                "configuration {state} {tag:?} {bits:?}"
            );
        }
        // An untagged configuration makes the tagged one with its set and state seen.
        let (state, bits, set_hash) = (1u8, [u64::MAX, 5_000], 77);
        assert_eq!(copies.visit(&state, None, &bits, set_hash), Visit::New);
        assert_eq!(copies.visit(&state, Some(&2), &bits, set_hash), Visit::Seen);
        let entries = copies.memo.entries().len();
        let shared = copies.into_shared(Budget::new(1 << 30)).expect("fits");
        assert_eq!(shared.frozen_ids.len(), 7, "the copies are interned");
        let mut handle = shared.handle();
        assert_eq!(handle.snapshot().len(), entries);
        for (state, tag, bits, set_hash) in &configs {
            assert_eq!(
                handle.visit(state, tag.as_ref(), bits, *set_hash),
                Visit::Seen
            );
        }
        assert_eq!(handle.visit(&state, Some(&0), &bits, set_hash), Visit::Seen);
        assert_eq!(handle.visit(&3u8, None, &bits, set_hash), Visit::New);
    }

    #[test]
    fn threads_racing_on_the_shared_memo_record_each_configuration_once() {
        // Configurations in groups of four that share a memo key (so chains form), a fifth
        // of the groups tagged; four threads visit every one, each in its own order, while
        // every shard's index grows from 16 slots several times.
        let configs: Vec<(u8, Option<u8>, [u64; 2], u64)> = (0..60_000u64)
            .map(|i| {
                let group = i / 4;
                let tag = (group % 5 == 0).then_some((group % 3) as u8);
                let set_hash = group.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                ((group % 7) as u8, tag, [u64::MAX, i], set_hash)
            })
            .collect();
        for round in 0..3 {
            let shared: Shared<u8> = Shared::new(Budget::new(1 << 30)).expect("fits");
            let news: Vec<Vec<bool>> = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..4)
                    .map(|t| {
                        let (shared, configs) = (&shared, &configs);
                        scope.spawn(move || {
                            let mut handle = shared.handle();
                            let n = configs.len();
                            let mut new = vec![false; n];
                            for k in 0..n {
                                let i = match t % 2 {
                                    0 => (k + t * n / 4 + round * 7) % n,
                                    _ => n - 1 - (k + t * n / 4) % n,
                                };
                                let (state, tag, bits, set_hash) = &configs[i];
                                match handle.visit(state, tag.as_ref(), bits, *set_hash) {
                                    Visit::New => new[i] = true,
                                    Visit::Seen => {}
                                    Visit::Full => panic!("the budget is ample"),
                                }
                            }
                            new
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap()).collect()
            });
            for i in 0..configs.len() {
                let count = news.iter().filter(|n| n[i]).count();
                assert_eq!(count, 1, "configuration {i} recorded {count} times");
            }
            let mut handle = shared.handle();
            for (state, tag, bits, set_hash) in &configs {
                assert_eq!(
                    handle.visit(state, tag.as_ref(), bits, *set_hash),
                    Visit::Seen
                );
            }
            assert_eq!(handle.snapshot().len(), configs.len());
            let grown = shared
                .index
                .iter()
                .map(|x| x.seq.load(Ordering::SeqCst) / 2);
            assert!(
                grown.min() >= Some(3),
                "every shard's index grew three times or more"
            );
        }
    }

    #[test]
    fn a_full_budget_refuses_new_entries() {
        let budget = Budget::new(1024);
        let mut memo = Memo::new();
        assert_eq!(memo.visit(1, 0, NONE, &[1], &budget), Visit::Full);
        assert!(budget.used() <= 1024);
    }
}
