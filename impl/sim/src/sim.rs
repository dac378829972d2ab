//! The engine: virtual time, a labrpc-equivalent network and crashing disks, generic over the
//! cores it runs. Each node is an [`aver_core::Core`] run through the same [`Driver`] the
//! real runtime uses; what differs between protocols sits behind two small traits:
//!
//! * [`NodeKind`]: how a node boots (from its disk), how its writes fold into that disk,
//!   how long its named timers run, and where it records a violated step check;
//! * [`Wire`], on the message type: request or reply, size in bytes, and how it shows in
//!   traces and in the trace hash.
//!
//! A harness (the Raft tester in [`crate::lab`], a KV tester, a test) owns a [`Sim`], sets
//! links with [`Sim::net_mut`], feeds client inputs with [`Sim::input`], advances time with
//! [`Sim::step`], drains outputs with [`Sim::take_applied`], and checks properties outside
//! the nodes. See the crate docs for a worked example.
//!
//! # Determinism
//!
//! Every random choice comes from one `ChaCha8Rng` seeded by the run's seed. Events are
//! ordered by `(virtual time, sequence number)`; only `Vec`s and `BTreeMap`s are iterated.
//! Every processed event is folded into [`Sim::trace_hash`], so two runs of one seed can be
//! compared by a single number, and tracing prints each event as one line.
//!
//! # Network (labrpc, `src/labrpc/labrpc.go`, mapped onto messages)
//!
//! `enabled[a][b]` is node `a`'s client end towards `b`. A *request* ([`Wire::is_request`])
//! from `a` to `b` travels only if that end is enabled and `b` is up at send time; on an
//! unreliable network it is delayed 0–26 ms and dropped with probability 10% before the
//! handler runs. It is delivered only to the incarnation of `b` that was up at send time (a
//! crash replaces the labrpc server object). A *reply* sent by `b` to `a` is suppressed if
//! `a`'s end towards `b` is disabled at reply time (labrpc's "dead server" check after the
//! handler returns); then it is dropped with probability 10% (unreliable), or delayed
//! 200–2199 ms with probability 2/3 (long reordering); it reaches `a` only if `a` has not
//! crashed meanwhile.
//!
//! labrpc's *long delays* (a call to an unreachable peer fails after 0–7 s) have no observable
//! effect on a message-based core: the request is simply lost, and the core never blocks on
//! it. They are therefore modelled as loss.
//!
//! Every delivery takes at least [`LATENCY_MIN`] (10 µs), standing for the real cost of a Go
//! RPC; see its docs for the zero-time livelock this floor rules out.
//!
//! Accounting as labrpc: `rpc_count[b]` counts requests dispatched to `b`'s current
//! incarnation (reset on restart, as `GetCount`); `bytes` adds [`Wire::size`] of every request
//! sent (even to a disabled end) and of every reply when it is delivered. Per-link counts and
//! bytes are kept in `links`.
//!
//! # Disk
//!
//! Each node has a [`Disk`]: written-but-unsynced operations and a synced [`NodeKind::Disk`],
//! folded with [`NodeKind::write`]. A crash keeps only what was synced; a restart boots a
//! fresh core from the synced disk ([`NodeKind::boot`]) behind a fresh `Driver`. The driver
//! syncs every `Ready` right after writing it, so crashes between inputs never find unsynced
//! writes; two faults crash a node *inside* a `Ready`'s persist step:
//!
//! * [`Sim::crash_at_next_write`]: after the write, before the sync: nothing of that `Ready`
//!   survives (the "durable before send" fault);
//! * [`Sim::tear_next_write`]: the write is torn: a prefix of its operations drawn from the
//!   run's RNG (none, some, or all of them) is durable, the rest is lost, as a crash in the
//!   middle of appending records to a log file leaves it.
//!
//! Either way none of that `Ready`'s messages, applies or timers happen, and the node stays
//! down until the harness restarts it.
//!
//! # Timers
//!
//! Named, as the core asks; [`NodeKind::timer_delay`] draws each duration from the run's RNG.
//! Setting a timer bumps its generation, so a stale firing is ignored.
//!
//! # Limits: a run always ends
//!
//! A buggy core must never hang the simulator. The engine halts the run ([`Sim::halt`]) at the
//! first of: a node recording a violated step check ([`NodeKind::violation`]); more than the
//! run's event budget ([`Sim::set_events_max`]); more than [`EVENTS_PER_INSTANT_MAX`] events
//! at one virtual instant (nodes ping-ponging without time passing). Once halted, [`Sim::step`]
//! processes nothing more and virtual time jumps to each `until`, so every harness loop that
//! waits for a virtual deadline ends; the harness reports the halt as a failure with its seed.

use aver_core::contract::{Core, NodeId, Violation};
use aver_runtime::driver::{Driver, Environment};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;

/// Virtual time in microseconds.
pub type Micros = u64;

/// One millisecond of virtual time.
pub const MS: Micros = 1_000;

/// Every delivered message takes at least this long (per direction). labrpc adds no delay on
/// a reliable network, but a Go RPC still costs real time (labrpc's `TestBenchmark`: ≈22 µs
/// per round trip). Without a floor, zero-latency delivery lets a test loop that never
/// sleeps — a churn client re-proposing to a stale leader whose next index is always already
/// committed elsewhere — spin forever at one virtual instant (Zeno), which Go's real clock
/// rules out.
pub const LATENCY_MIN: Micros = 10;

/// Most events one virtual instant may hold: more means nodes ping-pong without time passing
/// (a livelock), which would otherwise hang the run.
pub const EVENTS_PER_INSTANT_MAX: u64 = 100_000;

/// The event budget of a run whose harness sets none ([`Sim::set_events_max`]).
pub const EVENTS_MAX_DEFAULT: u64 = 50_000_000;

/// A message as the network sees it. Implement it on your protocol's message type (in this
/// crate or in the crate that defines the type).
pub trait Wire {
    /// A request (goes through the caller's end; may be lost before the handler runs) or a
    /// reply (suppressed when the caller's end is disabled; may be long-reordered).
    fn is_request(&self) -> bool;
    /// Bytes on the wire, for labrpc's accounting ([`postcard_size`] for serde types).
    fn size(&self) -> u64;
    /// Folds what identifies this message (its kind, its term…) into the trace hash. Two
    /// runs that deliver different messages should differ here; cheap, it runs per delivery.
    fn fingerprint(&self, hash: &mut TraceHash);
    /// One word naming the message's kind, for trace lines (`AppendEntries`).
    fn label(&self) -> &'static str;
    /// One line for the trace (payloads elided). Only called when tracing.
    fn describe(&self) -> String {
        self.label().to_string()
    }
}

/// The postcard-encoded size of `value` (without encoding it).
pub fn postcard_size<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .expect("postcard sizes every serde value") as u64
}

/// What the simulator needs to know about the nodes of one protocol besides their core.
///
/// A simulation runs one `NodeKind`; when nodes play different roles (servers and clerks),
/// its core is an enum of the roles: [`crate::pair::Pair`] builds one from two kinds.
pub trait NodeKind {
    /// The core each node runs.
    type Core: Core<Msg: Wire, Persist: Clone, Timer: Eq + fmt::Debug>;
    /// What survives a crash: the fold of every synced write (`Default`: a blank disk).
    type Disk: Clone + fmt::Debug + Default;

    /// Node `node`'s core, started (or restarted after a crash) from what its disk holds.
    fn boot(&self, node: usize, disk: &Self::Disk) -> Self::Core;
    /// Folds one durable write into a disk (the same function the core uses on its own copy,
    /// so "what survives" and "what the core believes it persisted" cannot drift apart).
    fn write(&self, disk: &mut Self::Disk, op: &Persist<Self>);
    /// How long `timer` runs this time; draw any randomness from `rng`.
    fn timer_delay(&self, timer: Timer<Self>, rng: &mut ChaCha8Rng) -> Micros;
    /// A number identifying `timer`, for the trace hash.
    fn timer_code(&self, timer: Timer<Self>) -> u64;
    /// The first invariant violation the core's own step checks recorded, if any. The engine
    /// reads it after every input of the node and halts the run on the first one.
    fn violation<'a>(&self, core: &'a Self::Core) -> Option<&'a Violation> {
        let _ = core;
        None
    }
}

/// The message type of kind `K`.
pub type Msg<K> = <<K as NodeKind>::Core as Core>::Msg;
/// The storage operation type of kind `K`.
pub type Persist<K> = <<K as NodeKind>::Core as Core>::Persist;
/// The output type of kind `K` (applies, replies).
pub type Apply<K> = <<K as NodeKind>::Core as Core>::Apply;
/// The timer type of kind `K`.
pub type Timer<K> = <<K as NodeKind>::Core as Core>::Timer;

/// The run's fingerprint: every processed event folds a few words into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceHash(u64);

impl TraceHash {
    fn new(seed: u64) -> TraceHash {
        TraceHash(0xcbf2_9ce4_8422_2325 ^ seed)
    }

    /// Folds one word in.
    pub fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(0x0000_0100_0000_01b3);
        self.0 ^= self.0 >> 29;
    }

    fn words(&mut self, words: &[u64]) {
        for &w in words {
            self.word(w);
        }
    }
}

/// What a node handed to its service above the core (an apply, a reply to its client).
#[derive(Clone, Debug)]
pub struct Applied<A> {
    /// The node.
    pub node: usize,
    /// Its output.
    pub apply: A,
}

/// Per-link accounting (`links[from][to]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Messages sent on the link.
    pub sent: u64,
    /// Messages delivered on the link.
    pub delivered: u64,
    /// Bytes counted on the link (requests on send, replies on delivery).
    pub bytes: u64,
}

/// The network's state and counters.
#[derive(Clone, Debug)]
pub struct Net {
    /// `false`: the lab's unreliable network (delays and drops).
    pub reliable: bool,
    /// Long reordering of replies (TestFigure8Unreliable3C from iteration 200).
    pub long_reordering: bool,
    /// `enabled[a][b]`: node `a`'s end towards `b`. All `false` at first.
    pub enabled: Vec<Vec<bool>>,
    /// Requests dispatched to each node's current incarnation.
    pub rpc_count: Vec<u64>,
    /// Total requests sent (labrpc `GetTotalCount`).
    pub total_count: u64,
    /// Total bytes (labrpc `GetTotalBytes`).
    pub bytes: u64,
    /// Per-link accounting.
    pub links: Vec<Vec<LinkStats>>,
}

/// One node's simulated disk.
pub struct Disk<K: NodeKind> {
    /// What survives a crash.
    pub synced: K::Disk,
    /// Written, not yet synced.
    pub unsynced: Vec<Persist<K>>,
    /// Number of syncs.
    pub syncs: u64,
}

impl<K: NodeKind> Clone for Disk<K> {
    fn clone(&self) -> Self {
        Disk {
            synced: self.synced.clone(),
            unsynced: self.unsynced.clone(),
            syncs: self.syncs,
        }
    }
}

impl<K: NodeKind> Default for Disk<K> {
    fn default() -> Self {
        Disk {
            synced: K::Disk::default(),
            unsynced: Vec::new(),
            syncs: 0,
        }
    }
}

/// Why the engine stopped a run (see "Limits" in the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Halt {
    /// A node's own step checks recorded a violated invariant.
    Violation {
        /// The node.
        node: usize,
        /// What it recorded.
        violation: Violation,
    },
    /// The run processed more events than its budget.
    Budget {
        /// The budget.
        events_max: u64,
    },
    /// Too many events at one virtual instant.
    Livelock {
        /// The instant.
        at: Micros,
    },
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Halt::Violation { node, violation } => {
                write!(f, "{violation} (found by n{node}'s own step checks)")
            }
            Halt::Budget { events_max } => write!(
                f,
                "event budget exceeded: more than {events_max} events (a livelock or a message \
                 storm)"
            ),
            Halt::Livelock { at } => write!(
                f,
                "livelock: more than {EVENTS_PER_INSTANT_MAX} events at virtual time {:.6} s",
                *at as f64 / 1e6
            ),
        }
    }
}

/// How an armed crash treats the next write of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tear {
    /// Nothing of the write survives.
    Whole,
    /// A random prefix of its operations survives.
    Prefix,
}

enum Event<M, T> {
    Deliver {
        from: usize,
        to: usize,
        incarnation: u64,
        msg: M,
    },
    Timer {
        node: usize,
        timer: T,
        generation: u64,
    },
    Wake {
        task: usize,
    },
}

struct Scheduled<M, T> {
    at: Micros,
    seq: u64,
    event: Event<M, T>,
}

impl<M, T> PartialEq for Scheduled<M, T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<M, T> Eq for Scheduled<M, T> {}
impl<M, T> PartialOrd for Scheduled<M, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M, T> Ord for Scheduled<M, T> {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest event must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Everything but the drivers, so a node's driver and its environment borrow disjoint parts.
struct World<K: NodeKind> {
    kind: K,
    now: Micros,
    seq: u64,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Scheduled<Msg<K>, Timer<K>>>,
    net: Net,
    disks: Vec<Disk<K>>,
    /// Generation per node and timer name.
    timers: Vec<Vec<(Timer<K>, u64)>>,
    incarnation: Vec<u64>,
    up: Vec<bool>,
    /// Armed: the node's next write is torn by a crash.
    torn: Vec<Option<Tear>>,
    /// The node is crashing inside the current input: its Ready is not carried out.
    dying: Vec<bool>,
    applied: Vec<Applied<Apply<K>>>,
    events: u64,
    events_max: u64,
    /// `(instant, events at it)`, for the livelock limit.
    instant: (Micros, u64),
    halt: Option<Halt>,
    torn_crashes: u64,
    hash: TraceHash,
    trace: bool,
}

impl<K: NodeKind> World<K> {
    fn schedule(&mut self, at: Micros, event: Event<Msg<K>, Timer<K>>) {
        self.seq += 1;
        let seq = self.seq;
        self.queue.push(Scheduled { at, seq, event });
    }

    fn line(&self, text: fmt::Arguments) {
        if self.trace {
            println!("{:>10.3} {text}", self.now as f64 / 1000.0);
        }
    }

    /// The current generation of `node`'s `timer`, bumped when `bump`.
    fn timer_generation(&mut self, node: usize, timer: Timer<K>, bump: bool) -> u64 {
        let slots = &mut self.timers[node];
        let k = match slots.iter().position(|(t, _)| *t == timer) {
            Some(k) => k,
            None => {
                slots.push((timer, 0));
                slots.len() - 1
            }
        };
        if bump {
            slots[k].1 += 1;
        }
        slots[k].1
    }

    fn halt(&mut self, halt: Halt) {
        if self.halt.is_none() {
            self.line(format_args!("halt: {halt}"));
            self.halt = Some(halt);
        }
    }
}

/// The environment of one node: a view into the world.
struct SimEnv<'a, K: NodeKind> {
    world: &'a mut World<K>,
    node: usize,
}

impl<K: NodeKind> Environment<K::Core> for SimEnv<'_, K> {
    fn persist(&mut self, ops: &[Persist<K>]) {
        let (node, w) = (self.node, &mut *self.world);
        match w.torn[node].take() {
            None => w.disks[node].unsynced.extend_from_slice(ops),
            Some(tear) => {
                let kept = match tear {
                    Tear::Whole => 0,
                    Tear::Prefix => w.rng.random_range(0..=ops.len()),
                };
                for op in &ops[..kept] {
                    w.kind.write(&mut w.disks[node].synced, op);
                }
                w.line(format_args!(
                    "n{node} crash tears a write: {kept} of {} operations durable",
                    ops.len()
                ));
                w.dying[node] = true;
            }
        }
    }

    fn sync(&mut self) {
        let w = &mut *self.world;
        if w.dying[self.node] {
            return;
        }
        let disk = &mut w.disks[self.node];
        for op in &disk.unsynced {
            w.kind.write(&mut disk.synced, op);
        }
        disk.unsynced.clear();
        disk.syncs += 1;
    }

    fn send(&mut self, to: NodeId, msg: Msg<K>) {
        if self.world.dying[self.node] {
            return;
        }
        let to = to.0 as usize;
        if to >= self.world.up.len() {
            self.world.line(format_args!(
                "n{}=>n{to} {} no such node",
                self.node,
                msg.label()
            ));
            return;
        }
        if msg.is_request() {
            self.send_request(to, msg);
        } else {
            self.send_reply(to, msg);
        }
    }

    fn apply(&mut self, output: Apply<K>) {
        if self.world.dying[self.node] {
            return;
        }
        self.world.applied.push(Applied {
            node: self.node,
            apply: output,
        });
    }

    fn set_timer(&mut self, timer: Timer<K>) {
        let (node, w) = (self.node, &mut *self.world);
        if w.dying[node] {
            return;
        }
        let generation = w.timer_generation(node, timer, true);
        let delay = w.kind.timer_delay(timer, &mut w.rng);
        let event = Event::Timer {
            node,
            timer,
            generation,
        };
        w.schedule(w.now + delay, event);
    }

    fn cancel_timer(&mut self, timer: Timer<K>) {
        if self.world.dying[self.node] {
            return;
        }
        self.world.timer_generation(self.node, timer, true);
    }
}

impl<K: NodeKind> SimEnv<'_, K> {
    fn send_request(&mut self, to: usize, msg: Msg<K>) {
        let (from, w) = (self.node, &mut *self.world);
        let bytes = msg.size();
        w.net.total_count += 1;
        w.net.bytes += bytes;
        let link = &mut w.net.links[from][to];
        link.sent += 1;
        link.bytes += bytes;
        if !w.net.enabled[from][to] || !w.up[to] {
            w.line(format_args!("n{from}=>n{to} {} unreachable", msg.label()));
            return;
        }
        let mut delay = 0;
        if !w.net.reliable {
            delay = w.rng.random_range(0..27u64) * MS;
            if w.rng.random_range(0..1000u32) < 100 {
                w.line(format_args!(
                    "n{from}=>n{to} {} request dropped",
                    msg.label()
                ));
                return;
            }
        }
        let incarnation = w.incarnation[to];
        let event = Event::Deliver {
            from,
            to,
            incarnation,
            msg,
        };
        w.schedule(w.now + LATENCY_MIN + delay, event);
    }

    fn send_reply(&mut self, to: usize, msg: Msg<K>) {
        let (from, w) = (self.node, &mut *self.world);
        w.net.links[from][to].sent += 1;
        // labrpc's "dead" check after the handler: the caller's end must still be enabled.
        if !w.net.enabled[to][from] {
            w.line(format_args!("n{from}=>n{to} {} suppressed", msg.label()));
            return;
        }
        if !w.net.reliable && w.rng.random_range(0..1000u32) < 100 {
            w.line(format_args!("n{from}=>n{to} {} reply dropped", msg.label()));
            return;
        }
        let mut delay = 0;
        if w.net.long_reordering && w.rng.random_range(0..900u32) < 600 {
            // labrpc: 200 + rand.Intn(1 + rand.Intn(2000)) ms, i.e. 200..=2199, skewed low.
            let upper = w.rng.random_range(0..2000u64);
            delay = (200 + w.rng.random_range(0..=upper)) * MS;
            w.line(format_args!(
                "n{from}=>n{to} {} reordered +{}ms",
                msg.label(),
                delay / MS
            ));
        }
        let incarnation = w.incarnation[to];
        let event = Event::Deliver {
            from,
            to,
            incarnation,
            msg,
        };
        w.schedule(w.now + LATENCY_MIN + delay, event);
    }
}

/// What one processed event was, for the harness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Processed {
    /// A node handled an input (message or timer).
    Node(usize),
    /// Nothing happened (lost message, stale timer).
    Nothing,
    /// A harness task is due.
    Wake(usize),
}

thread_local! {
    static TRACE_NEXT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static EVENTS_MAX_NEXT: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// The next [`Sim`] created on this thread prints one line per event (`aver sim --trace`).
pub fn trace_next_run() {
    TRACE_NEXT.with(|t| t.set(true));
}

/// The next [`Sim`] created on this thread gets this event budget (a scenario runner sets
/// the scenario's budget before calling it; [`Sim::set_events_max`] overrides).
pub fn budget_next_run(events_max: u64) {
    EVENTS_MAX_NEXT.with(|b| b.set(Some(events_max)));
}

/// The simulated cluster: nodes `0..n` of one [`NodeKind`].
pub struct Sim<K: NodeKind> {
    drivers: Vec<Option<Driver<K::Core>>>,
    /// The last core of each crashed node, kept (frozen) for whole-cluster checkers.
    frozen: Vec<Option<K::Core>>,
    world: World<K>,
}

impl<K: NodeKind> Sim<K> {
    /// `n` nodes of `kind`, booted from blank disks in index order, on a reliable network
    /// with every end disabled (the harness connects them).
    pub fn new(kind: K, n: usize, seed: u64) -> Sim<K> {
        assert!(n >= 1, "a simulation needs a node");
        let world = World {
            kind,
            now: 0,
            seq: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            net: Net {
                reliable: true,
                long_reordering: false,
                enabled: vec![vec![false; n]; n],
                rpc_count: vec![0; n],
                total_count: 0,
                bytes: 0,
                links: vec![vec![LinkStats::default(); n]; n],
            },
            disks: (0..n).map(|_| Disk::default()).collect(),
            timers: vec![Vec::new(); n],
            incarnation: vec![0; n],
            up: vec![false; n],
            torn: vec![None; n],
            dying: vec![false; n],
            applied: Vec::new(),
            events: 0,
            events_max: EVENTS_MAX_NEXT
                .with(|b| b.take())
                .unwrap_or(EVENTS_MAX_DEFAULT),
            instant: (0, 0),
            halt: None,
            torn_crashes: 0,
            hash: TraceHash::new(seed),
            trace: TRACE_NEXT.with(|t| t.replace(false)),
        };
        let mut sim = Sim {
            drivers: (0..n).map(|_| None).collect(),
            frozen: (0..n).map(|_| None).collect(),
            world,
        };
        for i in 0..n {
            sim.start(i);
        }
        sim
    }

    /// Number of nodes.
    pub fn n(&self) -> usize {
        self.drivers.len()
    }
    /// The node kind (configuration shared by every node).
    pub fn kind(&self) -> &K {
        &self.world.kind
    }
    /// Current virtual time.
    pub fn now(&self) -> Micros {
        self.world.now
    }
    /// The run's random number generator (harnesses draw their own choices from it too).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.world.rng
    }
    /// Prints one line per event when on.
    pub fn set_trace(&mut self, on: bool) {
        self.world.trace = on;
    }
    /// True when tracing.
    pub fn tracing(&self) -> bool {
        self.world.trace
    }
    /// Prints one trace line (a harness event: a client call, a partition) when tracing.
    pub fn trace_line(&self, text: fmt::Arguments) {
        self.world.line(text);
    }
    /// Hash of every event so far.
    pub fn trace_hash(&self) -> u64 {
        self.world.hash.0
    }
    /// Events processed so far (deliveries, timers, wake-ups, harness inputs).
    pub fn events(&self) -> u64 {
        self.world.events
    }
    /// Sets the run's event budget (see "Limits" in the module docs).
    pub fn set_events_max(&mut self, events_max: u64) {
        self.world.events_max = events_max;
    }
    /// The run's event budget.
    pub fn events_max(&self) -> u64 {
        self.world.events_max
    }
    /// Why the engine stopped the run, if it did.
    pub fn halt(&self) -> Option<&Halt> {
        self.world.halt.as_ref()
    }
    /// Crashes that tore a write.
    pub fn torn_crashes(&self) -> u64 {
        self.world.torn_crashes
    }
    /// The network.
    pub fn net(&self) -> &Net {
        &self.world.net
    }
    /// The network, to change reliability or links.
    pub fn net_mut(&mut self) -> &mut Net {
        &mut self.world.net
    }
    /// A node's disk.
    pub fn disk(&self, i: usize) -> &Disk<K> {
        &self.world.disks[i]
    }
    /// The running core of node `i`, if it is up.
    pub fn node(&self, i: usize) -> Option<&K::Core> {
        self.drivers[i].as_ref().map(Driver::core)
    }
    /// Node `i`'s current core or, if crashed, its last one (frozen as it was at the crash;
    /// what it stored is on its [`Sim::disk`], not in this copy).
    pub fn node_or_frozen(&self, i: usize) -> Option<&K::Core> {
        self.node(i).or(self.frozen[i].as_ref())
    }
    /// True if node `i` is up.
    pub fn is_up(&self, i: usize) -> bool {
        self.world.up[i]
    }
    /// Node `i`'s incarnation: bumped by every crash, start and disk wipe.
    pub fn incarnation(&self, i: usize) -> u64 {
        self.world.incarnation[i]
    }
    /// Drains what nodes handed to their services since the last call.
    pub fn take_applied(&mut self) -> Vec<Applied<Apply<K>>> {
        std::mem::take(&mut self.world.applied)
    }

    /// Crashes node `i`: its core and unsynced writes are lost, messages to it are dropped.
    pub fn crash(&mut self, i: usize) {
        let Some(driver) = self.drivers[i].take() else {
            return;
        };
        self.frozen[i] = Some(driver.into_core());
        let w = &mut self.world;
        w.up[i] = false;
        w.torn[i] = None;
        w.incarnation[i] += 1;
        w.disks[i].unsynced.clear();
        for (_, generation) in &mut w.timers[i] {
            *generation += 1;
        }
        w.hash.words(&[7, i as u64]);
        w.line(format_args!("n{i} crash"));
    }

    /// Starts node `i` from its synced disk (a no-op if it is up). Links are unchanged.
    pub fn start(&mut self, i: usize) {
        if self.drivers[i].is_some() {
            return;
        }
        let w = &mut self.world;
        let mut driver = Driver::new(w.kind.boot(i, &w.disks[i].synced));
        w.up[i] = true;
        w.incarnation[i] += 1;
        w.net.rpc_count[i] = 0;
        w.hash.words(&[8, i as u64]);
        w.line(format_args!("n{i} start"));
        driver.flush(&mut SimEnv { world: w, node: i });
        self.drivers[i] = Some(driver);
        self.frozen[i] = None;
        self.check_violation(i);
    }

    /// Runs `f` on node `i`'s core as one driver input (a proposal, a client call). `None` if
    /// the node is down.
    pub fn input<R>(&mut self, i: usize, f: impl FnOnce(&mut K::Core) -> R) -> Option<R> {
        let driver = self.drivers[i].as_mut()?;
        let world = &mut self.world;
        world.events += 1;
        world.hash.words(&[9, i as u64, world.now]);
        let r = driver.input(&mut SimEnv { world, node: i }, f);
        self.after_input(i);
        Some(r)
    }

    /// Arms a crash inside node `i`'s next `Ready` with writes: after the write, before the
    /// sync, so the whole write is lost and none of that `Ready`'s messages, applies or
    /// timers happen. The node stays down until restarted.
    pub fn crash_at_next_write(&mut self, i: usize) {
        self.world.torn[i] = Some(Tear::Whole);
    }

    /// Arms a crash that tears node `i`'s next `Ready` with writes: a prefix of its
    /// operations drawn from the run's RNG (possibly none, possibly all) is durable, the rest
    /// is lost, and nothing else of that `Ready` happens. The node stays down until restarted.
    pub fn tear_next_write(&mut self, i: usize) {
        self.world.torn[i] = Some(Tear::Prefix);
    }

    /// Replaces crashed node `i`'s disk with a blank one (the machine and its disk are lost;
    /// a restart comes back empty). A no-op on a running node.
    pub fn wipe_disk(&mut self, i: usize) {
        if !self.world.up[i] {
            self.world.disks[i] = Disk::default();
            self.world.incarnation[i] += 1;
            self.world.hash.words(&[10, i as u64]);
            self.world.line(format_args!("n{i} disk wiped"));
        }
    }

    /// Disarms a crash armed by [`Sim::crash_at_next_write`] or [`Sim::tear_next_write`].
    pub fn cancel_torn_write(&mut self, i: usize) {
        self.world.torn[i] = None;
    }

    /// After an input of node `i`: read its step checks, and complete a crash that happened
    /// inside the input.
    fn after_input(&mut self, i: usize) {
        self.check_violation(i);
        if std::mem::take(&mut self.world.dying[i]) {
            self.world.torn_crashes += 1;
            self.crash(i);
        }
    }

    fn check_violation(&mut self, i: usize) {
        if self.world.halt.is_some() {
            return;
        }
        let Some(core) = self.drivers[i].as_ref().map(Driver::core) else {
            return;
        };
        if let Some(v) = self.world.kind.violation(core) {
            let halt = Halt::Violation {
                node: i,
                violation: v.clone(),
            };
            self.world.halt(halt);
        }
    }

    /// Schedules harness task `task` to wake after `delay`.
    pub fn wake_after(&mut self, task: usize, delay: Micros) {
        let at = self.world.now + delay;
        self.world.schedule(at, Event::Wake { task });
    }

    /// Processes the next event due at or before `until`; `None` when there is none, or when
    /// the run is halted (the clock then stands at `until`).
    pub fn step(&mut self, until: Micros) -> Option<Processed> {
        let w = &mut self.world;
        if w.halt.is_some() || w.queue.peek().is_none_or(|s| s.at > until) {
            w.now = w.now.max(until);
            return None;
        }
        let Scheduled { at, seq, event } = w.queue.pop()?;
        w.now = at;
        w.events += 1;
        w.hash.words(&[at, seq]);
        self.check_limits();
        Some(match event {
            Event::Deliver {
                from,
                to,
                incarnation,
                msg,
            } => self.deliver(from, to, incarnation, msg),
            Event::Timer {
                node,
                timer,
                generation,
            } => self.fire(node, timer, generation),
            Event::Wake { task } => Processed::Wake(task),
        })
    }

    fn check_limits(&mut self) {
        let w = &mut self.world;
        if w.instant.0 == w.now {
            w.instant.1 += 1;
        } else {
            w.instant = (w.now, 1);
        }
        if w.instant.1 > EVENTS_PER_INSTANT_MAX {
            w.halt(Halt::Livelock { at: w.now });
        }
        if w.events > w.events_max {
            let events_max = w.events_max;
            w.halt(Halt::Budget { events_max });
        }
    }

    fn deliver(&mut self, from: usize, to: usize, inc: u64, msg: Msg<K>) -> Processed {
        let w = &mut self.world;
        let request = msg.is_request();
        w.hash.words(&[1, from as u64, to as u64]);
        msg.fingerprint(&mut w.hash);
        let Some(driver) = self.drivers[to]
            .as_mut()
            .filter(|_| w.incarnation[to] == inc)
        else {
            w.line(format_args!(
                "n{from}->n{to} {} lost (crashed)",
                msg.label()
            ));
            return Processed::Nothing;
        };
        let link = &mut w.net.links[from][to];
        link.delivered += 1;
        if request {
            w.net.rpc_count[to] += 1;
        } else {
            let bytes = msg.size();
            w.net.bytes += bytes;
            link.bytes += bytes;
        }
        if w.trace {
            w.line(format_args!("n{from}->n{to} {}", msg.describe()));
        }
        let env = &mut SimEnv { world: w, node: to };
        driver.on_message(env, NodeId(from as u32), msg);
        self.after_input(to);
        Processed::Node(to)
    }

    fn fire(&mut self, node: usize, timer: Timer<K>, generation: u64) -> Processed {
        let w = &mut self.world;
        let current = w.timer_generation(node, timer, false) == generation;
        let Some(driver) = self.drivers[node].as_mut().filter(|_| current) else {
            return Processed::Nothing;
        };
        let code = w.kind.timer_code(timer);
        w.hash.words(&[2, node as u64, code]);
        w.line(format_args!("n{node} timeout {timer:?}"));
        driver.on_timeout(&mut SimEnv { world: w, node }, timer);
        self.after_input(node);
        Processed::Node(node)
    }
}
