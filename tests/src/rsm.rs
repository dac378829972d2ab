//! The 8 rsm tests of 6.5840 Lab 4 (`src/kvraft1/rsm/rsm_test.go`, 4A and 4C) on the
//! simulator, with the lab's harness (`rsm/test.go`): 3 servers on a reliable network, each
//! an [`aver_core::rsm::Rsm`] on Raft — the rsm core under the kvraft server — above the
//! lab's test state machine, an integer counter ([`Counter`]: `Inc`, `Null`, and `Dec`,
//! which must never execute).
//!
//! `Submit` blocks in the lab; here the rsm answers a submission later with `Done` (OK) or
//! `Failed` (`ErrWrongLeader`), and the harness's submitters are tasks that wait for that
//! answer. A shut-down server's core is gone, so its waiting submissions end with the crash
//! as `ErrWrongLeader` — what the lab requires of `Submit` once Raft is killed
//! (`TestShutdown4A`). Raft's cluster invariants are checked after every event.

use aver_core::codec::{Decode, DecodeError, Encode, Reader};
use aver_core::contract::{Core, NodeId, Ready, Violation};
use aver_core::raft::{self, LogIndex, Raft};
use aver_core::rsm::{Refused, Rsm, RsmConfig, RsmEntry, RsmOutput, StateMachine};
use aver_sim::cluster::{ClusterCheck, RaftHost};
use aver_sim::raft::{ELECTION_MS_MAX, ELECTION_MS_MIN, HEARTBEAT_MS, RaftDisk};
use aver_sim::sim::{MS, Micros, NodeKind, Processed, Sim, TraceHash, Wire, postcard_size};
use aver_sim::{Failure, Outcome, Report};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;

/// The lab's test operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum CounterOp {
    /// Increment; answers the new value.
    Inc,
    /// Nothing.
    Null,
    /// Never allowed to execute (the lab's `DoOp` is fatal on it).
    Dec,
}

impl Encode for CounterOp {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
}

/// What the counter answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CounterOut {
    /// `IncRep{N}`: the counter after the increment (also the answer to a query).
    N(u64),
    /// `NullRep{}`.
    Null,
    /// A `Dec` executed: the lab's fatal error.
    DecExecuted,
}

/// The lab's `rsmSrv` state: an integer counter; snapshot = the counter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counter {
    /// The counter.
    pub n: u64,
    /// `Dec`s executed (must stay 0).
    pub decs: u64,
}

impl StateMachine for Counter {
    type Command = CounterOp;
    type Query = ();
    type Output = CounterOut;

    fn apply(&mut self, _index: LogIndex, op: &CounterOp) -> CounterOut {
        match op {
            CounterOp::Inc => {
                self.n += 1;
                CounterOut::N(self.n)
            }
            CounterOp::Null => CounterOut::Null,
            CounterOp::Dec => {
                self.decs += 1;
                CounterOut::DecExecuted
            }
        }
    }
    fn query(&self, _: &()) -> CounterOut {
        CounterOut::N(self.n)
    }
    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.n.encode(&mut out);
        self.decs.encode(&mut out);
        out
    }
    fn restore(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader::new(data);
        self.n = u64::decode(&mut r)?;
        self.decs = u64::decode(&mut r)?;
        r.finish()
    }
}

type Entry = RsmEntry<CounterOp>;
type Server = Rsm<Counter, Raft<Entry>, u64>;

/// Raft's messages between rsm servers, on the simulated network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Wm(pub raft::Message<Entry>);

impl Wire for Wm {
    fn is_request(&self) -> bool {
        self.0.is_request()
    }
    fn size(&self) -> u64 {
        postcard_size(&self.0)
    }
    fn fingerprint(&self, hash: &mut TraceHash) {
        hash.word(self.0.kind().len() as u64);
        hash.word(self.0.term().0);
    }
    fn label(&self) -> &'static str {
        self.0.kind()
    }
}

/// One rsm server as a simulated node: the rsm core, its messages wrapped for the network.
#[derive(Clone, Debug)]
pub struct RsmNode {
    /// The rsm.
    pub rsm: Server,
}

impl RsmNode {
    /// The lab's `Submit`: `Err` at once if not leading; else the answer comes later.
    pub fn submit(&mut self, tag: u64, op: CounterOp) -> Result<(), Refused> {
        self.rsm.submit(tag, op).map(|_| ())
    }
}

impl Core for RsmNode {
    type Persist = raft::PersistOp<Entry>;
    type Msg = Wm;
    type Apply = RsmOutput<u64, CounterOut>;
    type Timer = raft::Timer;

    fn on_message(&mut self, from: NodeId, Wm(m): Wm) {
        self.rsm.on_message(from, m);
    }
    fn on_timeout(&mut self, timer: raft::Timer) {
        self.rsm.on_timeout(timer);
    }
    fn take_ready(&mut self) -> Ready<Self::Persist, Wm, Self::Apply, raft::Timer> {
        let r = self.rsm.take_ready();
        Ready {
            persist: r.persist,
            messages: r.messages.into_iter().map(|(to, m)| (to, Wm(m))).collect(),
            apply: r.apply,
            timers: r.timers,
        }
    }
    fn must_follow_writes(&self, Wm(m): &Wm) -> bool {
        self.rsm.engine().must_follow_writes(m)
    }
}

/// The rsm servers `0..n`, with `maxraftstate`.
#[derive(Clone, Debug)]
pub struct RsmKind {
    n: usize,
    max_raft_state: Option<usize>,
}

impl NodeKind for RsmKind {
    type Core = RsmNode;
    type Disk = RaftDisk<Entry>;

    fn boot(&self, node: usize, disk: &Self::Disk) -> RsmNode {
        let voters = (0..self.n as u32).map(NodeId).collect();
        let raft = Raft::new(
            raft::Config::new(NodeId(node as u32), voters),
            disk.durable().clone(),
        );
        let config = RsmConfig {
            max_raft_state: self.max_raft_state,
            ..RsmConfig::default()
        };
        RsmNode {
            rsm: Rsm::new(config, raft, Counter::default()),
        }
    }
    fn write(&self, disk: &mut Self::Disk, op: &raft::PersistOp<Entry>) {
        disk.write(op);
    }
    fn timer_delay(&self, timer: raft::Timer, rng: &mut ChaCha8Rng) -> Micros {
        let ms = match timer {
            raft::Timer::Heartbeat => HEARTBEAT_MS,
            raft::Timer::Election => rng.random_range(ELECTION_MS_MIN..=ELECTION_MS_MAX),
        };
        ms * MS
    }
    fn timer_code(&self, timer: raft::Timer) -> u64 {
        u64::from(matches!(timer, raft::Timer::Heartbeat))
    }
    fn violation<'a>(&self, core: &'a RsmNode) -> Option<&'a Violation> {
        core.rsm.violation()
    }
}

impl RaftHost for RsmKind {
    type Command = Entry;
    fn raft<'a>(&self, _node: usize, core: &'a RsmNode) -> Option<&'a Raft<Entry>> {
        Some(core.rsm.engine())
    }
    fn raft_disk<'a>(&self, _node: usize, disk: &'a Self::Disk) -> Option<&'a Self::Disk> {
        Some(disk)
    }
}

/// What a submitter task is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Task {
    /// `onePartition`: trying servers (`next`: position in the pass), or waiting for `tag`.
    One {
        op: CounterOp,
        side: Option<Vec<usize>>,
        next: usize,
        waiting: Option<(u64, usize)>,
        sleep_until: Micros,
        deadline: Micros,
    },
    /// A raw `Submit` on one server, waiting.
    Raw { tag: u64, server: usize },
    /// Returned: `Some(output)` for OK, `None` for `ErrWrongLeader` / gave up.
    Done(Option<CounterOut>),
}

/// One rsm tester run.
pub struct RsmLab {
    /// The simulation.
    pub sim: Sim<RsmKind>,
    check: ClusterCheck<RsmKind>,
    test: &'static str,
    seed: u64,
    tasks: Vec<Task>,
    /// Submission tag → task.
    tags: BTreeMap<u64, usize>,
    next_tag: u64,
    connected: Vec<bool>,
    last_leader: usize,
}

/// `NSEC`: how long `onePartition` keeps trying.
const NSEC: Micros = 10_000 * MS;
/// The lab's per-test limit.
const TEST_LIMIT: Micros = 120_000 * MS;

impl RsmLab {
    /// `makeTest`: 3 servers, reliable, all connected.
    pub fn new(test: &'static str, seed: u64, max_raft_state: Option<usize>) -> Self {
        let kind = RsmKind {
            n: 3,
            max_raft_state,
        };
        let mut sim = Sim::new(kind, 3, seed);
        sim.net_mut().latency_min = crate::kvraft_lab::LATENCY;
        let check = ClusterCheck::new(&sim);
        let mut lab = RsmLab {
            sim,
            check,
            test,
            seed,
            tasks: Vec::new(),
            tags: BTreeMap::new(),
            next_tag: 0,
            connected: vec![false; 3],
            last_leader: 0,
        };
        lab.connect_all();
        lab
    }

    /// A failure of this run, with its seed and replay command.
    pub fn fail<T>(&self, message: impl Into<String>) -> Outcome<T> {
        Err(Failure::sim(
            "kv",
            self.test,
            self.seed,
            self.sim.now(),
            message.into(),
            "",
        ))
    }

    /// `ConnectOne(i)`.
    pub fn connect_one(&mut self, i: usize) {
        self.connected[i] = true;
        for j in 0..3 {
            if j != i && self.connected[j] {
                self.sim.net_mut().enabled[i][j] = true;
                self.sim.net_mut().enabled[j][i] = true;
            }
        }
    }

    /// `ConnectAll()`.
    pub fn connect_all(&mut self) {
        (0..3).for_each(|i| self.connect_one(i));
    }

    /// `DisconnectAll(i)`.
    pub fn disconnect_all(&mut self, i: usize) {
        self.connected[i] = false;
        for j in (0..3).filter(|&j| j != i) {
            self.sim.net_mut().enabled[i][j] = false;
            self.sim.net_mut().enabled[j][i] = false;
        }
    }

    /// `Shutdown()`: every server cut off and crashed; their submissions fail.
    pub fn shutdown_all(&mut self) -> Outcome<()> {
        for i in 0..3 {
            self.disconnect_all(i);
            self.sim.crash(i);
        }
        for t in &mut self.tasks {
            match t {
                Task::Raw { .. } => *t = Task::Done(None),
                Task::One { waiting, .. } => *waiting = None,
                Task::Done(_) => {}
            }
        }
        self.tags.clear();
        self.poll_tasks()
    }

    /// `StartServers()`: every server from its disk, all connected.
    pub fn start_all(&mut self) {
        (0..3).for_each(|i| self.sim.start(i));
        self.connect_all();
    }

    /// `Leader()`: the first server that believes it leads.
    pub fn leader(&self) -> Option<usize> {
        (0..3).find(|&i| self.sim.node(i).is_some_and(|n| n.rsm.engine().is_leader()))
    }

    /// Runs until `until`, checking after every event.
    pub fn run_until(&mut self, until: Micros) -> Outcome<()> {
        loop {
            if self.sim.now() > TEST_LIMIT {
                return self.fail("test took longer than 120 seconds");
            }
            let wake = self.next_wake().map_or(until, |w| w.min(until));
            match self.sim.step(wake) {
                Some(Processed::Node(_)) => self.after_event()?,
                Some(_) => {}
                None if self.sim.now() >= until || self.sim.halt().is_some() => break,
                None => self.poll_tasks()?,
            }
        }
        match self.sim.halt() {
            Some(h) => self.fail(h.to_string()),
            None => Ok(()),
        }
    }

    /// Runs for `ms`.
    pub fn sleep(&mut self, ms: u64) -> Outcome<()> {
        self.run_until(self.sim.now() + ms * MS)
    }

    fn next_wake(&self) -> Option<Micros> {
        self.tasks
            .iter()
            .filter_map(|t| match t {
                Task::One {
                    waiting: None,
                    sleep_until,
                    ..
                } => Some(*sleep_until),
                _ => None,
            })
            .min()
    }

    fn after_event(&mut self) -> Outcome<()> {
        if let Err(v) = self.check.after_event(&self.sim) {
            return self.fail(v.to_string());
        }
        for a in self.sim.take_applied() {
            let (tag, out) = match a.apply {
                RsmOutput::Applied {
                    output: CounterOut::DecExecuted,
                    ..
                } => return self.fail(format!("server {} executed a Dec", a.node)),
                RsmOutput::Done { tag, output } => (tag, Some(output)),
                RsmOutput::Failed { tag } => (tag, None),
                _ => continue,
            };
            let Some(t) = self.tags.remove(&tag) else {
                continue;
            };
            if out.is_some() {
                self.last_leader = a.node;
            }
            match &mut self.tasks[t] {
                Task::Raw { .. } => self.tasks[t] = Task::Done(out),
                Task::One { waiting, .. } if out.is_some() => {
                    let _ = waiting;
                    self.tasks[t] = Task::Done(out);
                }
                Task::One { waiting, .. } => *waiting = None,
                Task::Done(_) => {}
            }
        }
        self.poll_tasks()
    }

    /// Moves every `onePartition` task that is not waiting to its next server.
    fn poll_tasks(&mut self) -> Outcome<()> {
        for t in 0..self.tasks.len() {
            self.poll_task(t)?;
        }
        Ok(())
    }

    fn poll_task(&mut self, t: usize) -> Outcome<()> {
        let now = self.sim.now();
        let Task::One {
            op,
            side,
            next,
            waiting: None,
            sleep_until,
            deadline,
        } = self.tasks[t].clone()
        else {
            return Ok(());
        };
        if now >= deadline {
            self.tasks[t] = Task::Done(None);
            return Ok(());
        }
        if now < sleep_until {
            return Ok(());
        }
        let mut pos = next;
        while pos < 3 {
            let i = (self.last_leader + pos) % 3;
            pos += 1;
            let eligible = self.connected[i]
                && self.sim.is_up(i)
                && side.as_ref().is_none_or(|s| s.contains(&i));
            if !eligible {
                continue;
            }
            let tag = self.next_tag;
            self.next_tag += 1;
            if self.sim.input(i, |n| n.submit(tag, op)) == Some(Ok(())) {
                self.tags.insert(tag, t);
                if let Task::One { next, waiting, .. } = &mut self.tasks[t] {
                    *next = pos;
                    *waiting = Some((tag, i));
                }
                return self.after_input();
            }
        }
        // A full pass without success: sleep 50 ms and start over.
        if let Task::One {
            next, sleep_until, ..
        } = &mut self.tasks[t]
        {
            *next = 0;
            *sleep_until = now + 50 * MS;
        }
        Ok(())
    }

    fn after_input(&mut self) -> Outcome<()> {
        if let Err(v) = self.check.after_event(&self.sim) {
            return self.fail(v.to_string());
        }
        Ok(())
    }

    /// Starts `onePartition(side, op)` as a task.
    pub fn spawn_one(&mut self, op: CounterOp, side: Option<Vec<usize>>) -> Outcome<usize> {
        self.tasks.push(Task::One {
            op,
            side,
            next: 0,
            waiting: None,
            sleep_until: 0,
            deadline: self.sim.now() + NSEC,
        });
        let t = self.tasks.len() - 1;
        self.poll_task(t)?;
        Ok(t)
    }

    /// A raw `Submit(op)` on server `i` (which must accept it), as a task.
    pub fn spawn_raw(&mut self, i: usize, op: CounterOp) -> Outcome<usize> {
        let tag = self.next_tag;
        self.next_tag += 1;
        match self.sim.input(i, |n| n.submit(tag, op)) {
            Some(Ok(())) => {}
            other => return self.fail(format!("Submit on server {i}: {other:?}")),
        }
        self.tasks.push(Task::Raw { tag, server: i });
        self.tags.insert(tag, self.tasks.len() - 1);
        self.after_input()?;
        Ok(self.tasks.len() - 1)
    }

    /// The task's result once returned: `Some(Some(out))` OK, `Some(None)` failed.
    pub fn result(&self, t: usize) -> Option<Option<CounterOut>> {
        match &self.tasks[t] {
            Task::Done(r) => Some(*r),
            _ => None,
        }
    }

    /// Runs until task `t` returns, within `within_ms`.
    pub fn wait(&mut self, t: usize, within_ms: u64) -> Outcome<Option<CounterOut>> {
        let deadline = self.sim.now() + within_ms * MS;
        loop {
            if let Some(r) = self.result(t) {
                return Ok(r);
            }
            if self.sim.now() >= deadline {
                return self.fail(format!("a submission did not return within {within_ms} ms"));
            }
            self.run_until((self.sim.now() + 10 * MS).min(deadline))?;
        }
    }

    /// Runs until every task in `ts` returned, within `within_ms`; false if not.
    pub fn all_return(&mut self, ts: &[usize], within_ms: u64) -> Outcome<bool> {
        let deadline = self.sim.now() + within_ms * MS;
        while ts.iter().any(|&t| self.result(t).is_none()) {
            if self.sim.now() >= deadline {
                return Ok(false);
            }
            self.run_until((self.sim.now() + 10 * MS).min(deadline))?;
        }
        Ok(true)
    }

    /// `onePartition(side, op)` to completion: the reply (a failure after `NSEC`).
    pub fn one(&mut self, op: CounterOp, side: Option<Vec<usize>>) -> Outcome<CounterOut> {
        let t = self.spawn_one(op, side)?;
        match self.wait(t, NSEC / MS + 1_000)? {
            Some(out) => Ok(out),
            None => self.fail(format!("{op:?} did not complete within 10 s")),
        }
    }

    /// `oneInc()`: the counter after the increment.
    pub fn one_inc(&mut self) -> Outcome<u64> {
        match self.one(CounterOp::Inc, None)? {
            CounterOut::N(n) => Ok(n),
            other => self.fail(format!("Inc answered {other:?}")),
        }
    }

    /// `checkCounter(v, n)`: within about 24 s, at least `n` servers' counters are `v`.
    pub fn check_counter(&mut self, v: u64, n: usize) -> Outcome<()> {
        let mut pause = 10 * MS;
        for _ in 0..30 {
            let count = (0..3)
                .filter_map(|i| self.sim.node(i))
                .filter(|s| s.rsm.machine().n == v)
                .count();
            if count >= n {
                return Ok(());
            }
            self.run_until(self.sim.now() + pause)?;
            pause = (pause * 2).min(1_000 * MS);
        }
        self.fail(format!("fewer than {n} servers reached counter {v}"))
    }

    /// `LogSize()`: the largest persisted Raft state on any disk.
    pub fn log_size(&self) -> usize {
        (0..3)
            .map(|i| aver_core::rsm::raft_state_size(self.sim.disk(i).synced.durable()))
            .max()
            .unwrap_or(0)
    }

    /// Raft's invariants from scratch; the report.
    pub fn finish(mut self) -> Outcome<Report> {
        if let Err(v) = self.check.full(&self.sim) {
            return self.fail(v.to_string());
        }
        Ok(Report {
            virtual_us: self.sim.now(),
            events: self.sim.events(),
            trace_hash: self.sim.trace_hash(),
            rpcs: self.sim.net().total_count,
            bytes: self.sim.net().bytes,
            log_size_max: self.log_size(),
        })
    }
}

// ---- the tests ---------------------------------------------------------------------------------

/// `TestBasic4A`: 10 sequential increments, each answered with the new count.
pub fn rsm_basic_4a(seed: u64) -> Outcome<Report> {
    let mut lab = RsmLab::new("rsm_basic_4a", seed, None);
    for i in 0..10 {
        let n = lab.one_inc()?;
        if n != i + 1 {
            return lab.fail(format!("expected {}, got {n}", i + 1));
        }
        lab.check_counter(n, 3)?;
    }
    lab.finish()
}

/// `TestConcurrent4A`: 50 concurrent increments.
pub fn rsm_concurrent_4a(seed: u64) -> Outcome<Report> {
    let mut lab = RsmLab::new("rsm_concurrent_4a", seed, None);
    let mut ts = Vec::new();
    for _ in 0..50 {
        ts.push(lab.spawn_one(CounterOp::Inc, None)?);
    }
    for t in ts {
        if lab.wait(t, NSEC / MS + 1_000)?.is_none() {
            return lab.fail("an increment did not complete within 10 s");
        }
    }
    lab.check_counter(50, 3)?;
    lab.finish()
}

/// `TestLeaderFailure4A`: the counter goes on with the leader cut off.
pub fn rsm_leader_failure_4a(seed: u64) -> Outcome<Report> {
    let mut lab = RsmLab::new("rsm_leader_failure_4a", seed, None);
    let n = lab.one_inc()?;
    lab.check_counter(n, 3)?;
    let l = lab.last_leader;
    lab.disconnect_all(l);
    let n = lab.one_inc()?;
    lab.check_counter(n, 2)?;
    lab.connect_one(l);
    lab.check_counter(n, 3)?;
    lab.finish()
}

/// `TestLeaderPartition4A`: 100 `Dec`s submitted to a leader cut off in the minority never
/// succeed and never execute, do not all return while it is cut off, and all return within
/// 1 s of healing.
pub fn rsm_leader_partition_4a(seed: u64) -> Outcome<Report> {
    let mut lab = RsmLab::new("rsm_leader_partition_4a", seed, None);
    let n = lab.one_inc()?;
    lab.check_counter(n, 3)?;
    let Some(l) = lab.leader() else {
        return lab.fail("no leader");
    };
    let p1: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    for &i in &p1 {
        lab.sim.net_mut().enabled[i][l] = false;
        lab.sim.net_mut().enabled[l][i] = false;
    }
    let mut decs = Vec::new();
    for _ in 0..100 {
        decs.push(lab.spawn_raw(l, CounterOp::Dec)?);
    }
    lab.sleep(10)?;
    let n = match lab.one(CounterOp::Inc, Some(p1))? {
        CounterOut::N(n) => n,
        other => return lab.fail(format!("Inc answered {other:?}")),
    };
    lab.sleep(1_000)?;
    if decs.iter().all(|&t| lab.result(t).is_some()) {
        return lab.fail("Dec's in minority completed");
    }
    lab.connect_all();
    if !lab.all_return(&decs, 1_000)? {
        return lab.fail("Submit after healing didn't return");
    }
    if decs.iter().any(|&t| matches!(lab.result(t), Some(Some(_)))) {
        return lab.fail("a Dec returned OK");
    }
    lab.check_counter(n, 3)?;
    lab.finish()
}

/// 100 sequential increments, each checked.
fn hundred_incs(lab: &mut RsmLab) -> Outcome<()> {
    for i in 0..100 {
        let n = lab.one_inc()?;
        if n != i + 1 {
            return lab.fail(format!("expected {}, got {n}", i + 1));
        }
        lab.check_counter(n, 3)?;
    }
    Ok(())
}

/// `TestRestartReplay4A`: after a restart of every server, the count is rebuilt from the log.
pub fn rsm_restart_replay_4a(seed: u64) -> Outcome<Report> {
    let mut lab = RsmLab::new("rsm_restart_replay_4a", seed, None);
    hundred_incs(&mut lab)?;
    lab.shutdown_all()?;
    lab.sleep(1_000)?;
    lab.start_all();
    let n = lab.one_inc()?;
    if n != 101 {
        return lab.fail(format!("expected 101 after the restart, got {n}"));
    }
    lab.sleep(1_000)?;
    lab.check_counter(101, 3)?;
    lab.finish()
}

/// 100 concurrent `Null`s, a shutdown 20 ms later; all return within 11 s.
fn nulls_then_shutdown(lab: &mut RsmLab) -> Outcome<()> {
    let mut ts = Vec::new();
    for _ in 0..100 {
        ts.push(lab.spawn_one(CounterOp::Null, None)?);
    }
    lab.sleep(20)?;
    lab.shutdown_all()?;
    if !lab.all_return(&ts, NSEC / MS + 1_000)? {
        return lab.fail("Submit didn't stop after shutdown");
    }
    Ok(())
}

/// `TestShutdown4A`: submissions in flight return once the servers are shut down.
pub fn rsm_shutdown_4a(seed: u64) -> Outcome<Report> {
    let mut lab = RsmLab::new("rsm_shutdown_4a", seed, None);
    nulls_then_shutdown(&mut lab)?;
    lab.finish()
}

/// `TestRestartSubmit4A`: submissions before a restart are not confused with new ones.
pub fn rsm_restart_submit_4a(seed: u64) -> Outcome<Report> {
    let mut lab = RsmLab::new("rsm_restart_submit_4a", seed, None);
    hundred_incs(&mut lab)?;
    lab.shutdown_all()?;
    lab.sleep(1_000)?;
    lab.start_all();
    let n = lab.one_inc()?;
    if n != 101 {
        return lab.fail(format!("expected 101 after the restart, got {n}"));
    }
    lab.sleep(1_000)?;
    nulls_then_shutdown(&mut lab)?;
    lab.start_all();
    let n = lab.one_inc()?;
    lab.check_counter(n, 3)?;
    if n != 102 {
        return lab.fail(format!("expected 102 after the second restart, got {n}"));
    }
    lab.finish()
}

/// `TestSnapshot4C`: with maxraftstate 1000 the persisted Raft state stays within 2 × 1000
/// bytes, and a restart restores from the snapshot and the log's tail.
pub fn rsm_snapshot_4c(seed: u64) -> Outcome<Report> {
    let mut lab = RsmLab::new("rsm_snapshot_4c", seed, Some(1000));
    for _ in 0..100 {
        lab.one_inc()?;
    }
    lab.check_counter(100, 3)?;
    let size = lab.log_size();
    if size > 2 * 1000 {
        return lab.fail(format!("persisted Raft state {size} bytes > 2000"));
    }
    lab.shutdown_all()?;
    lab.start_all();
    lab.one_inc()?;
    lab.check_counter(101, 3)?;
    lab.finish()
}
