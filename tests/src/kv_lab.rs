//! The 6.5840 kvsrv1 and lock tester (`src/kvtest1`, `src/kvsrv1/test.go`, `lock_test.go`)
//! on the simulator: one server (node 0) and clients (nodes 1…) that are kvsrv clerks or
//! lock clients, a history of every clerk operation checked with `aver-checker` at the end,
//! and the lock's mutual exclusion checked after every event.
//!
//! Timings: clerks retransmit every [`RETRY`] (the handout's 100 ms hint); a lock client
//! waiting for the lock reads it again every [`POLL`]. Both are longer than the longest round
//! trip of the lab's unreliable network (26 ms of request delay, replies undelayed, as the KV
//! tests never turn on long reordering), so a clerk retransmits only once the previous copy
//! is resolved — the assumption of the `ErrMaybe` rule (specs/kvsrv.md §3.1).

use aver_checker::PowerSet;
use aver_checker::models::VersionedKv;
use aver_core::contract::{Core, NodeId};
use aver_core::kvsrv::{
    Bug, Bugs, Clerk, ClerkEvent, ClerkTimer, GetResult, LockClient, LockEvent, LockTimer, Message,
    Never, Op, Output, PutOutcome, Server, invariants,
};
use aver_sim::history::{Call, History};
use aver_sim::pair::{Member, Pair};
use aver_sim::sim::{MS, Micros, NodeKind, Processed, Sim};
use aver_sim::{Failure, Outcome, Report};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;

/// The least time a message takes, per direction, on the KV tests' networks (the engine's
/// floor is 10 µs). labrpc's sequential round trip costs ≈22 µs of real time, and a Go KV
/// client also spends time in JSON and gob encoding and in the scheduler, racing nine others
/// on two cores. At 10 µs, `TestPutConcurrentReliable`'s ten clients would finish ≈500 000
/// operations in its one second, a history far beyond what the lab's Go clients record
/// there; at 100 µs they finish ≈50 000, which the checker decides in about a second. Far below
/// every timer here, and far below the unreliable network's 0–26 ms, it changes no ordering
/// the tests depend on.
pub const LATENCY: Micros = 100;
/// A clerk's retransmission interval.
pub const RETRY: Micros = 100 * MS;
/// How often a lock client waiting for the lock reads it again.
pub const POLL: Micros = 10 * MS;
/// The lab's per-test limit (`CheckTimeout`: 120 s).
pub const TEST_LIMIT: Micros = 120_000 * MS;
/// The lock's key in the lock tests.
pub const LOCK_KEY: &str = "l";
/// The most wall time the history check may take before its verdict is `Unknown` (a
/// failure). Generous: the lab gives Porcupine 1 s (10 s in `TestPutConcurrentReliable`);
/// this only stops a pathological history from hanging the run.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

thread_local! {
    static BUGS: std::cell::Cell<Bugs> = const { std::cell::Cell::new(Bugs::NONE) };
}

/// Clerks and lock clients created on this thread from now on run with `bugs` (`aver sim kv
/// --bug NAME`, the seeded-bug tests).
pub fn seed_bugs(bugs: Bugs) {
    BUGS.with(|b| b.set(bugs));
}

/// The bugs [`seed_bugs`] set on this thread.
pub fn seeded_bugs() -> Bugs {
    BUGS.with(|b| b.get())
}

/// The `aver sim` flags that seed `bugs` (for replay commands).
pub fn bug_flags(bugs: Bugs) -> String {
    bugs.list()
        .iter()
        .map(|b: &Bug| format!(" --bug {b}"))
        .collect()
}

// ---- node kinds ------------------------------------------------------------------------------

/// The kvsrv server (node 0): no disk, no timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerKind;

impl NodeKind for ServerKind {
    type Core = Server;
    type Disk = ();

    fn boot(&self, _node: usize, _disk: &()) -> Server {
        Server::new()
    }
    fn write(&self, _disk: &mut (), op: &Never) {
        match *op {}
    }
    fn timer_delay(&self, timer: Never, _rng: &mut ChaCha8Rng) -> Micros {
        match timer {}
    }
    fn timer_code(&self, timer: Never) -> u64 {
        match timer {}
    }
    fn violation<'a>(&self, core: &'a Server) -> Option<&'a aver_core::Violation> {
        core.violation()
    }
}

/// Plain kvsrv clerks.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClerkKind {
    /// Seeded bugs of every clerk.
    pub bugs: Bugs,
}

impl NodeKind for ClerkKind {
    type Core = Clerk;
    type Disk = ();

    fn boot(&self, _node: usize, _disk: &()) -> Clerk {
        Clerk::new(NodeId(0), self.bugs)
    }
    fn write(&self, _disk: &mut (), op: &Never) {
        match *op {}
    }
    fn timer_delay(&self, _timer: ClerkTimer, _rng: &mut ChaCha8Rng) -> Micros {
        RETRY
    }
    fn timer_code(&self, _timer: ClerkTimer) -> u64 {
        0
    }
}

/// Lock clients of the lock [`LOCK_KEY`]; node `i`'s id is `c<i>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LockKind {
    /// Seeded bugs of every lock client (and its clerk).
    pub bugs: Bugs,
}

impl NodeKind for LockKind {
    type Core = LockClient;
    type Disk = ();

    fn boot(&self, node: usize, _disk: &()) -> LockClient {
        LockClient::new(NodeId(0), LOCK_KEY, &format!("c{node}"), self.bugs)
    }
    fn write(&self, _disk: &mut (), op: &Never) {
        match *op {}
    }
    fn timer_delay(&self, timer: LockTimer, _rng: &mut ChaCha8Rng) -> Micros {
        match timer {
            LockTimer::Clerk(ClerkTimer::Retry) => RETRY,
            LockTimer::Poll => POLL,
        }
    }
    fn timer_code(&self, timer: LockTimer) -> u64 {
        match timer {
            LockTimer::Clerk(ClerkTimer::Retry) => 0,
            LockTimer::Poll => 1,
        }
    }
}

/// What the tester needs of a client core: start a plain operation, and read its outputs.
pub trait ClientCore: Core<Msg = Message, Persist = Never> {
    /// Starts a plain KV operation; `false` if the client is busy.
    fn start_op(&mut self, op: Op) -> bool;
    /// One output, as the tester sees it.
    fn event(apply: &Self::Apply) -> ClientEvent<'_>;
    /// The lock client, if this is one (for the lock invariants).
    fn lock(&self) -> Option<&LockClient>;
}

/// A client's output as the tester sees it.
pub enum ClientEvent<'a> {
    /// A call or return of the client's clerk.
    Kv(&'a ClerkEvent),
    /// The lock was acquired.
    Acquired,
    /// The lock was released.
    Released,
}

impl ClientCore for Clerk {
    fn start_op(&mut self, op: Op) -> bool {
        self.start(op).is_ok()
    }
    fn event(apply: &ClerkEvent) -> ClientEvent<'_> {
        ClientEvent::Kv(apply)
    }
    fn lock(&self) -> Option<&LockClient> {
        None
    }
}

impl ClientCore for LockClient {
    fn start_op(&mut self, op: Op) -> bool {
        self.start(op).is_ok()
    }
    fn event(apply: &LockEvent) -> ClientEvent<'_> {
        match apply {
            LockEvent::Kv(e) => ClientEvent::Kv(e),
            LockEvent::Acquired => ClientEvent::Acquired,
            LockEvent::Released => ClientEvent::Released,
        }
    }
    fn lock(&self) -> Option<&LockClient> {
        Some(self)
    }
}

// ---- history vocabulary ----------------------------------------------------------------------

/// An operation in the checker's `versioned-kv` vocabulary (specs/history-format.md).
pub fn call_of(op: &Op) -> Call {
    match op {
        Op::Get { key } => Call::new("get").key(key),
        Op::Put {
            key,
            value,
            version,
        } => Call::new("put")
            .key(key)
            .value(value.as_str())
            .arg("version", version.0),
    }
}

/// An output in the checker's `versioned-kv` vocabulary.
pub fn output_of(output: &Output) -> Value {
    match output {
        Output::Get(GetResult::Value { value, version }) => {
            json!({"value": value, "version": version.0})
        }
        other => json!(other.to_string()),
    }
}

// ---- the tester ------------------------------------------------------------------------------

/// What happened to a client, as the tests see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabEvent {
    /// Client `client`'s operation returned.
    Returned {
        /// The client (node index).
        client: usize,
        /// The operation.
        op: Op,
        /// What the clerk reported.
        output: Output,
    },
    /// Client `client` acquired the lock.
    Acquired(usize),
    /// Client `client` released the lock.
    Released(usize),
    /// Client `client`'s sleep ended ([`KvLab::sleep_client`]).
    Wake(usize),
}

/// One kvsrv tester run: the simulation, the history, the test's identity.
pub struct KvLab<K: NodeKind>
where
    K::Core: ClientCore,
{
    /// The simulation: node 0 the server, nodes `1..=clients` the clients.
    pub sim: Sim<Pair<ServerKind, K>>,
    history: History,
    test: &'static str,
    seed: u64,
    events: VecDeque<LabEvent>,
    /// Check LOCK-1/LOCK-2 after every event (the lock tests).
    lock_checks: bool,
}

impl<K: NodeKind> KvLab<K>
where
    K::Core: ClientCore,
{
    /// `MakeTestKV`: one server and `clients` clients of `kind`, every client connected to
    /// the server, on a reliable or unreliable network.
    pub fn new(test: &'static str, seed: u64, clients: usize, reliable: bool, kind: K) -> Self {
        let pair = Pair {
            server: ServerKind,
            client: kind,
            servers: 1,
        };
        let mut sim = Sim::new(pair, 1 + clients, seed);
        let net = sim.net_mut();
        for c in 1..=clients {
            net.enabled[c][0] = true;
            net.enabled[0][c] = true;
        }
        net.reliable = reliable;
        net.latency_min = LATENCY;
        KvLab {
            sim,
            history: History::new(),
            test,
            seed,
            events: VecDeque::new(),
            lock_checks: false,
        }
    }

    /// Checks the lock's mutual exclusion (LOCK-1) after every event from now on.
    pub fn check_lock(&mut self) {
        self.lock_checks = true;
    }

    /// Number of clients.
    pub fn clients(&self) -> usize {
        self.sim.n() - 1
    }

    /// Current virtual time.
    pub fn now(&self) -> Micros {
        self.sim.now()
    }

    /// A failure of this test now, naming its seed and replay command.
    pub fn fail<T>(&self, message: impl Into<String>) -> Outcome<T> {
        Err(self.failure(message.into()))
    }

    /// A failure naming the seed and replay command; the history so far is written out, and
    /// the message names the file and the `aver lin --html` command that shows it.
    fn failure(&self, message: String) -> Failure {
        let flags = bug_flags(seeded_bugs());
        let failure = Failure::sim(
            "kv",
            self.test,
            self.seed,
            self.now(),
            String::new(),
            &flags,
        );
        self.history.failure(&message, "versioned-kv", failure)
    }

    /// The server's core.
    pub fn server(&self) -> &Server {
        match self.sim.node_or_frozen(0) {
            Some(Member::Server(s)) => s,
            _ => unreachable!("node 0 is the server"),
        }
    }

    /// Client `c` starts `op` (its call is recorded).
    pub fn start(&mut self, c: usize, op: Op) -> Outcome<()> {
        let started = self.sim.input(c, |m| match m {
            Member::Client(client) => client.start_op(op),
            Member::Server(_) => false,
        });
        if started != Some(true) {
            return self.fail(format!("client {c} cannot start an operation now"));
        }
        self.drain();
        Ok(())
    }

    /// Runs `f` on client `c`'s core as one input (acquire, release).
    pub fn input(&mut self, c: usize, f: impl FnOnce(&mut K::Core) -> bool) -> Outcome<()> {
        let ok = self.sim.input(c, |m| match m {
            Member::Client(client) => f(client),
            Member::Server(_) => false,
        });
        if ok != Some(true) {
            return self.fail(format!("client {c} refused the input"));
        }
        self.drain();
        Ok(())
    }

    /// Client `c` sleeps for `d`; a [`LabEvent::Wake`] follows.
    pub fn sleep_client(&mut self, c: usize, d: Micros) {
        self.sim.wake_after(c, d);
    }

    /// Moves the nodes' outputs into the history and the event queue.
    fn drain(&mut self) {
        let now = self.sim.now();
        for a in self.sim.take_applied() {
            let Member::Client(apply) = &a.apply else {
                continue;
            };
            let c = a.node;
            match K::Core::event(apply) {
                ClientEvent::Kv(ClerkEvent::Call { op, .. }) => {
                    self.history.call(c as u64, now, call_of(op));
                }
                ClientEvent::Kv(ClerkEvent::Return { op, output, .. }) => {
                    self.history.ret(c as u64, now, output_of(output));
                    self.events.push_back(LabEvent::Returned {
                        client: c,
                        op: op.clone(),
                        output: output.clone(),
                    });
                }
                ClientEvent::Acquired => self.events.push_back(LabEvent::Acquired(c)),
                ClientEvent::Released => self.events.push_back(LabEvent::Released(c)),
            }
        }
    }

    /// LOCK-1 over every lock client. (LOCK-2, a holder's id is stored, is the model's: it
    /// breaks a step before LOCK-1 under every seeded lock bug, and the simulator reports
    /// what a user loses — two clients inside the lock.)
    fn lock_violation(&self) -> Option<String> {
        let clients: Vec<&LockClient> = (1..self.sim.n())
            .filter_map(|i| match self.sim.node_or_frozen(i) {
                Some(Member::Client(c)) => c.lock(),
                _ => None,
            })
            .collect();
        invariants::mutual_exclusion(&clients)
            .err()
            .map(|v| v.to_string())
    }

    /// The next event at or before `until`; `None` once virtual time reaches `until`.
    pub fn next(&mut self, until: Micros) -> Outcome<Option<LabEvent>> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if let Some(halt) = self.sim.halt() {
                return self.fail(halt.to_string());
            }
            if self.now() > TEST_LIMIT {
                return self.fail("test took longer than 120 seconds");
            }
            match self.sim.step(until) {
                None => return Ok(None),
                Some(Processed::Wake(c)) => self.events.push_back(LabEvent::Wake(c)),
                Some(_) => {
                    self.drain();
                    if let Some(v) = self.lock_checks.then(|| self.lock_violation()).flatten() {
                        return self.fail(v);
                    }
                }
            }
        }
    }

    /// Client `c` runs `op` to completion (no other client may be active).
    pub fn call(&mut self, c: usize, op: Op) -> Outcome<Output> {
        self.start(c, op)?;
        match self.next(TEST_LIMIT + 1)? {
            Some(LabEvent::Returned { client, output, .. }) if client == c => Ok(output),
            Some(other) => self.fail(format!("unexpected {other:?} during a call")),
            None => self.fail(format!("client {c}'s operation never returned")),
        }
    }

    /// `Put` through client `c`, to completion.
    pub fn put(&mut self, c: usize, key: &str, value: &str, version: u64) -> Outcome<PutOutcome> {
        let op = Op::Put {
            key: key.into(),
            value: value.into(),
            version: aver_core::kvsrv::Version(version),
        };
        match self.call(c, op)? {
            Output::Put(p) => Ok(p),
            other => self.fail(format!("a put returned {other}")),
        }
    }

    /// `Get` through client `c`, to completion.
    pub fn get(&mut self, c: usize, key: &str) -> Outcome<GetResult> {
        match self.call(c, Op::Get { key: key.into() })? {
            Output::Get(r) => Ok(r),
            other => self.fail(format!("a get returned {other}")),
        }
    }

    /// Operations recorded so far.
    pub fn ops(&self) -> usize {
        self.history.len()
    }

    /// Checks the history so far for linearizability (KVSRV-2); `Unknown` is a failure.
    pub fn check_history(&self) -> Outcome<()> {
        let flags = bug_flags(seeded_bugs());
        let failure = Failure::sim(
            "kv",
            self.test,
            self.seed,
            self.now(),
            String::new(),
            &flags,
        );
        self.history.check_or_fail(
            &PowerSet(VersionedKv),
            "versioned-kv",
            CHECK_TIMEOUT,
            failure,
        )
    }

    /// Checks the history (KVSRV-2) and the time limit; the run's report.
    pub fn finish(self) -> Outcome<Report> {
        if self.now() > TEST_LIMIT {
            return self.fail("test took longer than 120 seconds");
        }
        self.check_history()?;
        Ok(Report {
            virtual_us: self.now(),
            events: self.sim.events(),
            trace_hash: self.sim.trace_hash(),
            rpcs: self.sim.net().total_count,
            bytes: self.sim.net().bytes,
            log_size_max: 0,
        })
    }
}

/// `true` if `op` is a put.
pub fn is_put(op: &Op) -> bool {
    matches!(op, Op::Put { .. })
}
