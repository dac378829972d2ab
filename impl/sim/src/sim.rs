//! The deterministic simulator: virtual time, a labrpc-equivalent network, simulated disks,
//! and Raft nodes run through the same [`Driver`] the real runtime uses.
//!
//! # Determinism
//!
//! Every random choice comes from one `ChaCha8Rng` seeded by the run's seed. Events are
//! ordered by `(virtual time, sequence number)`; only `Vec`s and `BTreeMap`s are iterated.
//! Every processed event is folded into [`Sim::trace_hash`], so two runs of one seed can be
//! compared by a single number, and `trace` prints each event as one line.
//!
//! # Network (labrpc, `src/labrpc/labrpc.go`, mapped onto messages)
//!
//! `enabled[a][b]` is server `a`'s client end towards `b`. A *request* (`is_request()`) from
//! `a` to `b` travels only if that end is enabled and `b` is up at send time; on an unreliable
//! network it is delayed 0–26 ms and dropped with probability 10% before the handler runs. It
//! is delivered only to the incarnation of `b` that was up at send time (a crash replaces the
//! labrpc server object). A *reply* sent by `b` to `a` is suppressed if `a`'s end towards `b`
//! is disabled at reply time (labrpc's "dead server" check after the handler returns); then it
//! is dropped with probability 10% (unreliable), or delayed 200–2199 ms with probability 2/3
//! (long reordering); it reaches `a` only if `a` has not crashed meanwhile.
//!
//! labrpc's *long delays* (a call to an unreachable peer fails after 0–7 s) have no observable
//! effect on a message-based core: the request is simply lost, and the core never blocks on
//! it. They are therefore modelled as loss.
//!
//! Every delivery takes at least [`LATENCY_MIN`] (10 µs), standing for the real cost of a Go
//! RPC; see its docs for the zero-time livelock this floor rules out.
//!
//! Accounting as labrpc: `rpc_count[b]` counts requests dispatched to `b`'s current
//! incarnation (reset on restart, as `GetCount`); `bytes` adds the postcard size of every
//! request sent (even to a disabled end) and of every reply when it is delivered. Per-link
//! counts and bytes are kept in `links`.
//!
//! # Disk
//!
//! Each node has a disk with written-but-unsynced ops and a synced [`Durable`], folded with
//! the core's own [`Durable::apply`]. A crash keeps only what was synced; a restart builds a
//! fresh `Raft::new(config, synced.clone())` behind a fresh `Driver`. The driver syncs every
//! `Ready` right after writing it, so the lab's crashes (between inputs) never find unsynced
//! writes; [`Sim::crash_at_next_write`] injects the one crash that does — after a `Ready`'s
//! write, before its sync — losing the write and every message, apply and timer of that
//! `Ready` (the "durable before send" fault).
//!
//! # Timers
//!
//! Heartbeat 100 ms (the lab allows at most 10 per second); election timeouts uniform in
//! 300–600 ms, drawn from the run's RNG each time the timer is set. Setting a timer bumps its
//! generation, so a stale firing is ignored.

use aver_core::contract::NodeId;
use aver_core::raft::{Apply, Bugs, Config, Durable, Message, PersistOp, Raft, Timer};
use aver_runtime::driver::{Driver, Environment};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

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

/// Heartbeat interval (at most 10 per second, as the lab requires).
pub const HEARTBEAT_MS: u64 = 100;
/// Smallest election timeout.
pub const ELECTION_MS_MIN: u64 = 300;
/// Largest election timeout.
pub const ELECTION_MS_MAX: u64 = 600;

/// The command type of every Raft test: the lab's `int`s and `Randstring(5000)` payloads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Cmd {
    /// An integer command (most tests).
    Int(u64),
    /// An opaque payload (TestRPCBytes3B's 5000-byte strings).
    Blob(Arc<[u8]>),
}

/// A Raft node as the simulator runs it.
pub type Node = Raft<Cmd>;

/// What the simulator hands to the harness after each node input.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The node.
    pub node: usize,
    /// Its output.
    pub apply: Apply<Cmd>,
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
    /// `enabled[a][b]`: server `a`'s end towards `b`.
    pub enabled: Vec<Vec<bool>>,
    /// Requests dispatched to each server's current incarnation.
    pub rpc_count: Vec<u64>,
    /// Total requests sent (labrpc `GetTotalCount`).
    pub total_count: u64,
    /// Total bytes (labrpc `GetTotalBytes`).
    pub bytes: u64,
    /// Per-link accounting.
    pub links: Vec<Vec<LinkStats>>,
}

/// One node's simulated disk.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// What survives a crash.
    pub synced: Durable<Cmd>,
    /// Written, not yet synced.
    pub unsynced: Vec<PersistOp<Cmd>>,
    /// Number of syncs.
    pub syncs: u64,
}

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        from: usize,
        to: usize,
        incarnation: u64,
        msg: Message<Cmd>,
    },
    Timer {
        node: usize,
        timer: Timer,
        generation: u64,
    },
    Wake {
        task: usize,
    },
}

#[derive(Debug)]
struct Scheduled {
    at: Micros,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest event must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Everything but the drivers, so a node's driver and its environment borrow disjoint parts.
struct World {
    now: Micros,
    seq: u64,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Scheduled>,
    net: Net,
    disks: Vec<Disk>,
    /// Generation per node and timer (`[Election, Heartbeat]`).
    timer_generation: Vec<[u64; 2]>,
    incarnation: Vec<u64>,
    up: Vec<bool>,
    /// Armed: the node's next write is torn off by a crash before its sync.
    torn: Vec<bool>,
    /// The node is crashing inside the current input: its Ready is not carried out.
    dying: Vec<bool>,
    applied: Vec<Applied>,
    events: u64,
    torn_crashes: u64,
    hash: u64,
    trace: bool,
}

impl World {
    fn schedule(&mut self, at: Micros, event: Event) {
        self.seq += 1;
        let seq = self.seq;
        self.queue.push(Scheduled { at, seq, event });
    }

    fn mix(&mut self, words: &[u64]) {
        for &w in words {
            self.hash = (self.hash ^ w).wrapping_mul(0x0000_0100_0000_01b3);
            self.hash ^= self.hash >> 29;
        }
    }

    fn line(&self, text: std::fmt::Arguments) {
        if self.trace {
            println!("{:>10.3} {text}", self.now as f64 / 1000.0);
        }
    }
}

fn timer_slot(t: Timer) -> usize {
    match t {
        Timer::Election => 0,
        Timer::Heartbeat => 1,
    }
}

fn msg_size(msg: &Message<Cmd>) -> u64 {
    postcard::serialize_with_flavor(msg, postcard::ser_flavors::Size::default())
        .expect("messages encode") as u64
}

fn kind_code(msg: &Message<Cmd>) -> u64 {
    match msg {
        Message::RequestVote(_) => 1,
        Message::RequestVoteReply(_) => 2,
        Message::AppendEntries(_) => 3,
        Message::AppendEntriesReply(_) => 4,
        Message::InstallSnapshot(_) => 5,
        Message::InstallSnapshotReply(_) => 6,
    }
}

/// The environment of one node: a view into the world.
struct SimEnv<'a> {
    world: &'a mut World,
    node: usize,
}

impl Environment<Node> for SimEnv<'_> {
    fn persist(&mut self, ops: &[PersistOp<Cmd>]) {
        let node = self.node;
        if std::mem::take(&mut self.world.torn[node]) {
            self.world.dying[node] = true;
        }
        self.world.disks[node].unsynced.extend_from_slice(ops);
    }

    fn sync(&mut self) {
        if self.world.dying[self.node] {
            return;
        }
        let disk = &mut self.world.disks[self.node];
        disk.synced.apply_all(&disk.unsynced);
        disk.unsynced.clear();
        disk.syncs += 1;
    }

    fn send(&mut self, to: NodeId, msg: Message<Cmd>) {
        if self.world.dying[self.node] {
            return;
        }
        let to = to.0 as usize;
        if msg.is_request() {
            self.send_request(to, msg);
        } else {
            self.send_reply(to, msg);
        }
    }

    fn apply(&mut self, output: Apply<Cmd>) {
        if self.world.dying[self.node] {
            return;
        }
        self.world.applied.push(Applied {
            node: self.node,
            apply: output,
        });
    }

    fn set_timer(&mut self, timer: Timer) {
        if self.world.dying[self.node] {
            return;
        }
        let w = &mut *self.world;
        let slot = &mut w.timer_generation[self.node][timer_slot(timer)];
        *slot += 1;
        let generation = *slot;
        let ms = match timer {
            Timer::Heartbeat => HEARTBEAT_MS,
            Timer::Election => w.rng.random_range(ELECTION_MS_MIN..=ELECTION_MS_MAX),
        };
        let event = Event::Timer {
            node: self.node,
            timer,
            generation,
        };
        w.schedule(w.now + ms * MS, event);
    }

    fn cancel_timer(&mut self, timer: Timer) {
        if self.world.dying[self.node] {
            return;
        }
        self.world.timer_generation[self.node][timer_slot(timer)] += 1;
    }
}

impl SimEnv<'_> {
    fn send_request(&mut self, to: usize, msg: Message<Cmd>) {
        let (from, w) = (self.node, &mut *self.world);
        let bytes = msg_size(&msg);
        w.net.total_count += 1;
        w.net.bytes += bytes;
        let link = &mut w.net.links[from][to];
        link.sent += 1;
        link.bytes += bytes;
        if !w.net.enabled[from][to] || !w.up[to] {
            w.line(format_args!("n{from}=>n{to} {} unreachable", msg.kind()));
            return;
        }
        let mut delay = 0;
        if !w.net.reliable {
            delay = w.rng.random_range(0..27u64) * MS;
            if w.rng.random_range(0..1000u32) < 100 {
                w.line(format_args!(
                    "n{from}=>n{to} {} request dropped",
                    msg.kind()
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

    fn send_reply(&mut self, to: usize, msg: Message<Cmd>) {
        let (from, w) = (self.node, &mut *self.world);
        w.net.links[from][to].sent += 1;
        // labrpc's "dead" check after the handler: the caller's end must still be enabled.
        if !w.net.enabled[to][from] {
            w.line(format_args!("n{from}=>n{to} {} suppressed", msg.kind()));
            return;
        }
        if !w.net.reliable && w.rng.random_range(0..1000u32) < 100 {
            w.line(format_args!("n{from}=>n{to} {} reply dropped", msg.kind()));
            return;
        }
        let mut delay = 0;
        if w.net.long_reordering && w.rng.random_range(0..900u32) < 600 {
            // labrpc: 200 + rand.Intn(1 + rand.Intn(2000)) ms, i.e. 200..=2199, skewed low.
            let upper = w.rng.random_range(0..2000u64);
            delay = (200 + w.rng.random_range(0..=upper)) * MS;
            w.line(format_args!(
                "n{from}=>n{to} {} reordered +{}ms",
                msg.kind(),
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
    static BUGS: std::cell::Cell<Bugs> = const { std::cell::Cell::new(Bugs::NONE) };
}

/// Every [`Sim`] created on this thread from now on runs servers with these seeded bugs
/// (`aver sim --bug NAME`: proof that the checkers catch them). `Bugs::NONE` to stop.
pub fn seed_bugs(bugs: Bugs) {
    BUGS.with(|b| b.set(bugs));
}

/// The next [`Sim`] created on this thread prints one line per event (`aver sim --trace`).
pub fn trace_next_run() {
    TRACE_NEXT.with(|t| t.set(true));
}

/// The simulated cluster.
pub struct Sim {
    drivers: Vec<Option<Driver<Node>>>,
    /// The last core of each crashed node, kept (frozen) for whole-cluster checkers.
    frozen: Vec<Option<Node>>,
    world: World,
}

impl Sim {
    /// A cluster of `n` servers, all up and fully connected, on a reliable network.
    pub fn new(n: usize, seed: u64) -> Sim {
        assert!((1..=64).contains(&n), "1..=64 servers");
        let world = World {
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
            disks: vec![Disk::default(); n],
            timer_generation: vec![[0; 2]; n],
            incarnation: vec![0; n],
            up: vec![false; n],
            torn: vec![false; n],
            dying: vec![false; n],
            applied: Vec::new(),
            events: 0,
            torn_crashes: 0,
            hash: 0xcbf2_9ce4_8422_2325 ^ seed,
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

    /// Number of servers.
    pub fn n(&self) -> usize {
        self.drivers.len()
    }
    /// Current virtual time.
    pub fn now(&self) -> Micros {
        self.world.now
    }
    /// The run's random number generator (tests draw their own choices from it too).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.world.rng
    }
    /// Prints one line per event when on.
    pub fn set_trace(&mut self, on: bool) {
        self.world.trace = on;
    }
    /// Hash of every event so far.
    pub fn trace_hash(&self) -> u64 {
        self.world.hash
    }
    /// Events processed so far.
    pub fn events(&self) -> u64 {
        self.world.events
    }
    /// Crashes that tore a write off before its sync.
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
    pub fn disk(&self, i: usize) -> &Disk {
        &self.world.disks[i]
    }
    /// The running core of node `i`, if it is up.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.drivers[i].as_ref().map(Driver::core)
    }
    /// Node `i`'s current core or, if crashed, its last one.
    pub fn node_or_frozen(&self, i: usize) -> Option<&Node> {
        self.node(i).or(self.frozen[i].as_ref())
    }
    /// True if node `i` is up.
    pub fn is_up(&self, i: usize) -> bool {
        self.world.up[i]
    }
    /// Drains what nodes handed to their services since the last call.
    pub fn take_applied(&mut self) -> Vec<Applied> {
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
        w.torn[i] = false;
        w.incarnation[i] += 1;
        w.disks[i].unsynced.clear();
        for g in &mut w.timer_generation[i] {
            *g += 1;
        }
        w.mix(&[7, i as u64]);
        w.line(format_args!("n{i} crash"));
    }

    /// Starts node `i` from its synced disk (a no-op if it is up). Links are unchanged.
    pub fn start(&mut self, i: usize) {
        if self.drivers[i].is_some() {
            return;
        }
        let voters = (0..self.n() as u32).map(NodeId).collect();
        let mut config = Config::new(NodeId(i as u32), voters);
        config.bugs = BUGS.with(|b| b.get());
        let durable = self.world.disks[i].synced.clone();
        let mut driver = Driver::new(Raft::new(config, durable));
        let w = &mut self.world;
        w.up[i] = true;
        w.incarnation[i] += 1;
        w.net.rpc_count[i] = 0;
        w.mix(&[8, i as u64]);
        w.line(format_args!("n{i} start"));
        driver.flush(&mut SimEnv { world: w, node: i });
        self.drivers[i] = Some(driver);
        self.frozen[i] = None;
    }

    /// Runs `f` on node `i`'s core as one driver input (a proposal, a snapshot). `None` if the
    /// node is down.
    pub fn input<R>(&mut self, i: usize, f: impl FnOnce(&mut Node) -> R) -> Option<R> {
        let driver = self.drivers[i].as_mut()?;
        let world = &mut self.world;
        world.events += 1;
        world.mix(&[9, i as u64, world.now]);
        let r = driver.input(&mut SimEnv { world, node: i }, f);
        self.reap(i);
        Some(r)
    }

    /// Arms a torn write on node `i`: its next `Ready` with writes crashes it after the write
    /// and before the sync, so the write is lost and none of that `Ready`'s messages,
    /// applies or timers happen. The node stays down until restarted.
    pub fn crash_at_next_write(&mut self, i: usize) {
        self.world.torn[i] = true;
    }

    /// Disarms a torn write armed by [`Sim::crash_at_next_write`].
    pub fn cancel_torn_write(&mut self, i: usize) {
        self.world.torn[i] = false;
    }

    /// Completes a crash that happened inside the last input of node `i`.
    fn reap(&mut self, i: usize) {
        if std::mem::take(&mut self.world.dying[i]) {
            self.world.torn_crashes += 1;
            self.crash(i);
        }
    }

    /// Schedules harness task `task` to wake after `delay`.
    pub fn wake_after(&mut self, task: usize, delay: Micros) {
        let at = self.world.now + delay;
        self.world.schedule(at, Event::Wake { task });
    }

    /// Processes the next event due at or before `until`; `None` when there is none (the
    /// clock then stands at `until`).
    pub fn step(&mut self, until: Micros) -> Option<Processed> {
        if self.world.queue.peek().is_none_or(|s| s.at > until) {
            self.world.now = self.world.now.max(until);
            return None;
        }
        let Scheduled { at, seq, event } = self.world.queue.pop()?;
        self.world.now = at;
        self.world.events += 1;
        self.world.mix(&[at, seq]);
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

    fn deliver(&mut self, from: usize, to: usize, inc: u64, msg: Message<Cmd>) -> Processed {
        let w = &mut self.world;
        let request = msg.is_request();
        w.mix(&[1, from as u64, to as u64, kind_code(&msg), msg.term().0]);
        let Some(driver) = self.drivers[to]
            .as_mut()
            .filter(|_| w.incarnation[to] == inc)
        else {
            w.line(format_args!("n{from}->n{to} {} lost (crashed)", msg.kind()));
            return Processed::Nothing;
        };
        let link = &mut w.net.links[from][to];
        link.delivered += 1;
        if request {
            w.net.rpc_count[to] += 1;
        } else {
            let bytes = msg_size(&msg);
            w.net.bytes += bytes;
            link.bytes += bytes;
        }
        if w.trace {
            w.line(format_args!("n{from}->n{to} {}", short(&msg)));
        }
        let env = &mut SimEnv { world: w, node: to };
        driver.on_message(env, NodeId(from as u32), msg);
        self.reap(to);
        Processed::Node(to)
    }

    fn fire(&mut self, node: usize, timer: Timer, generation: u64) -> Processed {
        let w = &mut self.world;
        let current = w.timer_generation[node][timer_slot(timer)] == generation;
        let Some(driver) = self.drivers[node].as_mut().filter(|_| current) else {
            return Processed::Nothing;
        };
        w.mix(&[2, node as u64, timer_slot(timer) as u64]);
        w.line(format_args!("n{node} timeout {timer:?}"));
        driver.on_timeout(&mut SimEnv { world: w, node }, timer);
        self.reap(node);
        Processed::Node(node)
    }

    /// Postcard size of a node's persisted Raft state (hard state + log, no snapshot data):
    /// the 3D tests' `RaftStateSize`.
    pub fn raft_state_size(&self, i: usize) -> usize {
        let d = &self.world.disks[i].synced;
        let state = (&d.hard, d.log.base(), d.log.entries());
        postcard::serialize_with_flavor(&state, postcard::ser_flavors::Size::default())
            .expect("state encodes")
    }

    /// Per-node summary for traces.
    pub fn describe(&self) -> BTreeMap<usize, String> {
        (0..self.n())
            .map(|i| {
                let s = match self.node(i) {
                    None => "down".to_string(),
                    Some(r) => format!(
                        "{:?} {} last={} commit={}",
                        r.role_kind(),
                        r.term(),
                        r.log().last_index(),
                        r.commit_index()
                    ),
                };
                (i, s)
            })
            .collect()
    }
}

/// A compact rendering of a message for traces (payloads elided).
fn short(msg: &Message<Cmd>) -> String {
    match msg {
        Message::AppendEntries(m) => format!(
            "AppendEntries {} prev={}/{} n={} commit={}",
            m.term,
            m.prev_log_index,
            m.prev_log_term,
            m.entries.len(),
            m.leader_commit
        ),
        Message::InstallSnapshot(m) => {
            format!("InstallSnapshot {} at {}", m.term, m.snapshot.meta.index)
        }
        other => format!("{other:?}"),
    }
}
