//! The 6.5840 Raft test harness (`src/raft1/test.go`, `src/tester1/*`) in virtual time.
//!
//! [`Lab`] owns a [`Sim`], the tester's connectivity flags, the per-server appliers and the
//! checkers that run outside the nodes after every event:
//!
//! * the appliers' checks: an index applied anywhere has one value everywhere; applies are in
//!   order without gaps; in snapshot mode the next entry after a snapshot is exactly
//!   `lastApplied + 1`, and a snapshot's encoded index equals its metadata;
//! * Election Safety over time: a ghost map term → leader, updated after every node input;
//! * every server's own step checks (`Raft::violation`), read by the engine after every node
//!   input: the first one halts the run ([`crate::sim::Halt`]);
//! * the cluster invariants of `aver_core::raft::invariants` (RAFT-1, 3, 4, 5, 7, 9) after
//!   every event, incrementally ([`ClusterCheck`]: only what the event changed is
//!   re-checked; crashed servers count with what their disks hold), and from scratch at the
//!   end of every scenario.
//!
//! Test code is straight-line, like the Go tests: `sleep`, `one`, `check_one_leader` advance
//! virtual time by running events. The tests' goroutines become [`Task`]s: state machines the
//! event loop wakes at their scheduled times.

use crate::cluster::ClusterCheck;
use crate::raft::{Cmd, RaftKind};
pub use crate::run::{Failure, Outcome};
use crate::sim::{MS, Micros, Processed, Sim};
use aver_core::raft::{Apply, LogIndex, Term};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The lab's `RaftElectionTimeout` (used for sleeps).
pub const ELECTION_TIMEOUT: Micros = 1_000 * MS;
/// The tester's per-test limit.
pub const TEST_LIMIT: Micros = 120_000 * MS;
/// The 3D tester's snapshot interval.
pub const SNAPSHOT_INTERVAL: u64 = 10;

/// Figures of one passing scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Report {
    /// Virtual time the scenario took.
    pub virtual_us: Micros,
    /// Simulated events.
    pub events: u64,
    /// Hash over every event.
    pub trace_hash: u64,
    /// Requests dispatched (labrpc total count).
    pub rpcs: u64,
    /// Bytes (labrpc accounting).
    pub bytes: u64,
    /// Largest persisted Raft state the test measured with `log_size` (3D), in bytes.
    pub log_size_max: usize,
}

/// What a task wants after a wake-up.
pub enum Poll<T> {
    /// Finished with a value.
    Done(T),
    /// Wake me after this delay.
    Sleep(Micros),
}

/// A test goroutine as a state machine.
pub trait Task {
    /// Runs until the next sleep (or the end).
    fn wake(&mut self, lab: &mut Lab) -> Outcome<Poll<()>>;
}

/// One server's applier (`applier` / `applierSnap`).
#[derive(Clone, Debug, Default)]
struct Applier {
    /// `logs[index]`: value applied at `index` by this incarnation.
    logs: Vec<Option<Cmd>>,
    last_applied: u64,
}

impl Applier {
    fn has(&self, index: u64) -> bool {
        self.logs.get(index as usize).is_some_and(Option::is_some)
    }
}

/// The Raft tester.
pub struct Lab {
    /// The simulated cluster.
    pub sim: Sim<RaftKind>,
    name: &'static str,
    seed: u64,
    snapshot_mode: bool,
    connected: Vec<bool>,
    appliers: Vec<Applier>,
    /// First value ever applied at each index (any server).
    first_applied: Vec<Option<Cmd>>,
    leaders: BTreeMap<Term, usize>,
    error: Option<String>,
    tasks: Vec<Option<Box<dyn Task>>>,
    cluster: ClusterCheck<RaftKind>,
    log_size_max: usize,
}

impl Lab {
    /// `makeTest(n, reliable, snapshot)`: all servers up and connected; long delays on.
    pub fn new(name: &'static str, seed: u64, n: usize, reliable: bool, snapshot: bool) -> Lab {
        let sim = Sim::new(RaftKind::new(n), n, seed);
        let cluster = ClusterCheck::new(&sim);
        let mut lab = Lab {
            sim,
            name,
            seed,
            snapshot_mode: snapshot,
            connected: vec![false; n],
            appliers: vec![Applier::default(); n],
            first_applied: Vec::new(),
            leaders: BTreeMap::new(),
            error: None,
            tasks: Vec::new(),
            cluster,
            log_size_max: 0,
        };
        lab.connect_all();
        lab.sim.net_mut().reliable = reliable;
        lab.absorb_applies();
        lab
    }

    /// Number of servers.
    pub fn n(&self) -> usize {
        self.sim.n()
    }

    /// A failure at the current virtual time.
    pub fn fail<T>(&self, message: impl Into<String>) -> Outcome<T> {
        let flags = crate::raft::bug_flags(self.sim.kind().bugs);
        let (name, seed, at) = (self.name, self.seed, self.sim.now());
        Err(Failure::sim("raft", name, seed, at, message.into(), &flags))
    }

    /// Fails with the first error a checker found, or the reason the engine halted the run.
    fn check_error(&self) -> Outcome<()> {
        if let Some(e) = &self.error {
            return self.fail(e.clone());
        }
        match self.sim.halt() {
            Some(halt) => self.fail(halt.to_string()),
            None => Ok(()),
        }
    }

    /// A uniformly random value below `n` from the run's RNG (the tests' `rand.Int() % n`).
    pub fn rand(&mut self, n: u64) -> u64 {
        self.sim.rng().random_range(0..n)
    }

    /// A random integer command (`rand.Int()`).
    pub fn rand_cmd(&mut self) -> Cmd {
        Cmd::Int(self.sim.rng().random_range(0..1u64 << 63))
    }

    // ---- time -----------------------------------------------------------------------------

    /// Advances virtual time by `d`, running every event (and task) due.
    pub fn sleep(&mut self, d: Micros) -> Outcome<()> {
        let until = self.sim.now() + d;
        while let Some(p) = self.sim.step(until) {
            match p {
                Processed::Nothing => self.check_cluster(),
                Processed::Node(i) => self.after_input(i),
                Processed::Wake(t) => self.run_task(t)?,
            }
            self.check_error()?;
        }
        self.check_error()?;
        if self.sim.now() > TEST_LIMIT {
            return self.fail("test took longer than 120 seconds");
        }
        Ok(())
    }

    /// Starts a background task; it first runs at the current time (after pending events).
    pub fn spawn(&mut self, task: Box<dyn Task>) -> usize {
        self.tasks.push(Some(task));
        let id = self.tasks.len() - 1;
        self.sim.wake_after(id, 0);
        id
    }

    /// True while task `id` has not finished.
    pub fn task_running(&self, id: usize) -> bool {
        self.tasks[id].is_some()
    }

    fn run_task(&mut self, id: usize) -> Outcome<()> {
        let Some(mut task) = self.tasks[id].take() else {
            return Ok(());
        };
        match task.wake(self)? {
            Poll::Done(()) => {}
            Poll::Sleep(d) => {
                self.tasks[id] = Some(task);
                self.sim.wake_after(id, d);
            }
        }
        Ok(())
    }

    // ---- checkers -------------------------------------------------------------------------

    /// Runs the outside checkers after node `i` handled an input (an event or a harness
    /// call), and the applier's snapshot calls (the lab's `applierSnap` calls `Snapshot`
    /// from the apply loop).
    fn after_input(&mut self, i: usize) {
        self.absorb_applies();
        if let Some(node) = self.sim.node(i)
            && node.is_leader()
        {
            let term = node.term();
            let leader = *self.leaders.entry(term).or_insert(i);
            if leader != i {
                let e = format!("election safety: n{leader} and n{i} both led {term}");
                self.error.get_or_insert(e);
            }
        }
        self.check_cluster();
    }

    /// The cluster invariants over what changed since the last check.
    fn check_cluster(&mut self) {
        if let Err(v) = self.cluster.after_event(&self.sim) {
            self.error.get_or_insert(format!("{v}"));
        }
    }

    /// The cluster invariants over the whole cluster, from scratch.
    pub fn full_check(&mut self) {
        if let Err(v) = self.cluster.full(&self.sim) {
            self.error.get_or_insert(format!("{v}"));
        }
    }

    fn absorb_applies(&mut self) {
        let applied = self.sim.take_applied();
        for a in applied {
            let result = match a.apply {
                Apply::Entry { index, command, .. } => self.apply_entry(a.node, index, command),
                Apply::Snapshot(s) => self.ingest_snapshot(a.node, s.meta.index, &s.data),
            };
            if let Err(e) = result {
                self.error.get_or_insert(e);
            }
        }
    }

    /// `checkLogs` plus the order checks of `applier` / `applierSnap`.
    fn apply_entry(&mut self, i: usize, index: LogIndex, cmd: Cmd) -> Result<(), String> {
        let ix = index.0 as usize;
        if self.first_applied.len() <= ix {
            self.first_applied.resize(ix + 1, None);
        }
        match &self.first_applied[ix] {
            Some(v) if *v != cmd => {
                return Err(format!(
                    "commit index={ix} server={i} {cmd:?} != {v:?} applied elsewhere"
                ));
            }
            Some(_) => {}
            None => self.first_applied[ix] = Some(cmd.clone()),
        }
        let ap = &mut self.appliers[i];
        if self.snapshot_mode && index.0 != ap.last_applied + 1 {
            return Err(format!(
                "server {i} apply out of order, expected index {}, got {ix}",
                ap.last_applied + 1
            ));
        }
        if !self.snapshot_mode && ix > 1 && !ap.has(index.0 - 1) {
            return Err(format!("server {i} apply out of order {ix}"));
        }
        if ap.logs.len() <= ix {
            ap.logs.resize(ix + 1, None);
        }
        ap.logs[ix] = Some(cmd);
        ap.last_applied = index.0;
        if self.snapshot_mode && (index.0 + 1).is_multiple_of(SNAPSHOT_INTERVAL) {
            let data = postcard::to_allocvec(&(index.0, &ap.logs[..=ix])).expect("encodes");
            self.sim.input(i, |r| r.snapshot(index, Arc::from(data)));
            // Snapshot emits no applies, but drain in case.
            debug_assert!(self.sim.take_applied().is_empty());
        }
        Ok(())
    }

    /// `ingestSnap`: the snapshot's encoded index must equal its metadata.
    fn ingest_snapshot(&mut self, i: usize, index: LogIndex, data: &[u8]) -> Result<(), String> {
        let (last, logs): (u64, Vec<Option<Cmd>>) =
            postcard::from_bytes(data).map_err(|e| format!("server {i} bad snapshot: {e}"))?;
        if last != index.0 {
            return Err(format!(
                "server {i} snapshot index {} != encoded {last}",
                index.0
            ));
        }
        let ap = &mut self.appliers[i];
        if last < ap.last_applied && self.snapshot_mode {
            return Err(format!(
                "server {i} snapshot at {last} moves the service back from {}",
                ap.last_applied
            ));
        }
        ap.logs = logs;
        ap.last_applied = last;
        Ok(())
    }

    // ---- connectivity, crash, restart (tester1/group.go) -----------------------------------

    fn set_end(&mut self, from: usize, to: usize, on: bool) {
        self.sim.net_mut().enabled[from][to] = on;
    }

    /// `connect(i, to)`.
    fn connect(&mut self, i: usize, to: &[usize]) {
        self.connected[i] = true;
        for &j in to {
            if self.connected[j] {
                self.set_end(i, j, true);
                self.set_end(j, i, true);
            }
        }
    }

    /// `disconnect(i, from)`.
    fn disconnect(&mut self, i: usize, from: &[usize]) {
        self.connected[i] = false;
        for &j in from {
            self.set_end(i, j, false);
            self.set_end(j, i, false);
        }
    }

    fn all(&self) -> Vec<usize> {
        (0..self.n()).collect()
    }

    /// `ConnectOne(i)`.
    pub fn connect_one(&mut self, i: usize) {
        let all = self.all();
        self.connect(i, &all);
    }

    /// `DisconnectAll(i)`.
    pub fn disconnect_all(&mut self, i: usize) {
        let all = self.all();
        self.disconnect(i, &all);
    }

    /// `ConnectAll()`.
    pub fn connect_all(&mut self) {
        for i in 0..self.n() {
            self.connect_one(i);
        }
    }

    /// `Partition(p1, p2)`: each side connected within itself, cut off from the other.
    pub fn partition(&mut self, p1: &[usize], p2: &[usize]) {
        for &i in p1 {
            self.disconnect(i, p2);
            self.connect(i, p1);
        }
        for &i in p2 {
            self.disconnect(i, p1);
            self.connect(i, p2);
        }
    }

    /// `IsConnected(i)`.
    pub fn is_connected(&self, i: usize) -> bool {
        self.connected[i]
    }

    /// `ShutdownServer(i)`: disconnect, then crash (losing unsynced writes).
    pub fn shutdown_server(&mut self, i: usize) {
        self.disconnect_all(i);
        self.sim.crash(i);
        self.check_cluster();
    }

    /// `StartServer(i)`: a fresh instance from the synced disk, not connected.
    pub fn start_server(&mut self, i: usize) {
        self.sim.crash(i);
        self.appliers[i] = Applier::default();
        self.sim.start(i);
        self.absorb_applies();
        self.check_cluster();
    }

    /// The Raft helper `restart(i)`: `StartServer(i)` then `ConnectAll()`.
    pub fn restart(&mut self, i: usize) {
        self.start_server(i);
        self.connect_all();
    }

    /// `Shutdown()` of every server.
    pub fn shutdown_all(&mut self) {
        for i in 0..self.n() {
            self.shutdown_server(i);
        }
    }

    /// `StartServers()`: start every server, then `ConnectAll()`.
    pub fn start_servers(&mut self) {
        for i in 0..self.n() {
            self.start_server(i);
        }
        self.connect_all();
    }

    /// True if server `i` runs (`srvs[i].Raft() != nil`).
    pub fn alive(&self, i: usize) -> bool {
        self.sim.is_up(i)
    }

    // ---- Raft API as the tester uses it ----------------------------------------------------

    /// `Start(cmd)` on server `i`: `Some((index, term))` if it leads, `None` if it refused or
    /// is down.
    pub fn start(&mut self, i: usize, cmd: Cmd) -> Option<(u64, u64)> {
        let r = self.sim.input(i, |r| r.propose(cmd))?;
        self.after_input(i);
        r.ok().map(|(ix, t)| (ix.0, t.0))
    }

    /// `GetState()` of server `i` (`None` if down).
    pub fn state(&self, i: usize) -> Option<(u64, bool)> {
        self.sim.node(i).map(|r| (r.term().0, r.is_leader()))
    }

    // ---- test helpers (raft1/test.go) -------------------------------------------------------

    /// `checkOneLeader`: 10 rounds of 450–549 ms; the leader of the highest term.
    pub fn check_one_leader(&mut self) -> Outcome<usize> {
        for _ in 0..10 {
            let ms = 450 + self.rand(100);
            self.sleep(ms * MS)?;
            let mut leaders: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
            for i in 0..self.n() {
                if !self.connected[i] {
                    continue;
                }
                if let Some((term, true)) = self.state(i) {
                    leaders.entry(term).or_default().push(i);
                }
            }
            for (term, ls) in &leaders {
                if ls.len() > 1 {
                    return self.fail(format!("term {term} has {} (>1) leaders", ls.len()));
                }
            }
            if let Some((_, ls)) = leaders.iter().next_back() {
                return Ok(ls[0]);
            }
        }
        self.fail("expected one leader, got none")
    }

    /// `checkTerms`: every connected server reports the same term.
    pub fn check_terms(&self) -> Outcome<u64> {
        let mut term = None;
        for i in 0..self.n() {
            if !self.connected[i] {
                continue;
            }
            let Some((t, _)) = self.state(i) else {
                continue;
            };
            match term {
                None => term = Some(t),
                Some(t0) if t0 != t => return self.fail("servers disagree on term"),
                Some(_) => {}
            }
        }
        Ok(term.unwrap_or(0))
    }

    /// `checkNoLeader`: no connected server claims leadership.
    pub fn check_no_leader(&self) -> Outcome<()> {
        for i in 0..self.n() {
            if self.connected[i] && self.state(i).is_some_and(|(_, l)| l) {
                return self.fail(format!(
                    "expected no leader among connected servers, {i} is"
                ));
            }
        }
        Ok(())
    }

    /// `nCommitted(index)`: how many servers applied `index`, and the value.
    pub fn n_committed(&self, index: u64) -> Outcome<(usize, Option<Cmd>)> {
        self.check_error()?;
        let mut count = 0;
        let mut cmd: Option<Cmd> = None;
        for ap in &self.appliers {
            let Some(Some(c)) = ap.logs.get(index as usize) else {
                continue;
            };
            if let Some(prev) = &cmd
                && prev != c
            {
                return self.fail(format!(
                    "committed values do not match: index {index}, {prev:?}, {c:?}"
                ));
            }
            count += 1;
            cmd = Some(c.clone());
        }
        Ok((count, cmd))
    }

    /// `one(cmd, expected, retry)`: the index at which `cmd` was committed by `expected`
    /// servers.
    pub fn one(&mut self, cmd: Cmd, expected: usize, retry: bool) -> Outcome<u64> {
        let mut op = One::new(self, cmd, expected, retry);
        loop {
            match op.step(self)? {
                Poll::Done(index) => return Ok(index),
                Poll::Sleep(d) => self.sleep(d)?,
            }
        }
    }

    /// `one` with an integer command.
    pub fn one_int(&mut self, v: u64, expected: usize, retry: bool) -> Outcome<u64> {
        self.one(Cmd::Int(v), expected, retry)
    }

    /// `wait(index, n, startTerm)`: the value applied at `index` by `n` servers, or `None`
    /// ("-1") if some server's term moved beyond `start_term`.
    pub fn wait(&mut self, index: u64, n: usize, start_term: Option<u64>) -> Outcome<Option<Cmd>> {
        let mut to = 10 * MS;
        for _ in 0..30 {
            if self.n_committed(index)?.0 >= n {
                break;
            }
            self.sleep(to)?;
            if to < 1_000 * MS {
                to *= 2;
            }
            if let Some(st) = start_term {
                let moved = (0..self.n()).any(|i| self.state(i).is_some_and(|(t, _)| t > st));
                if moved {
                    return Ok(None);
                }
            }
        }
        let (nd, cmd) = self.n_committed(index)?;
        if nd < n {
            return self.fail(format!("only {nd} decided for index {index}; wanted {n}"));
        }
        Ok(cmd)
    }

    /// `LogSize()`: the largest persisted Raft state (hard state + log) over all servers.
    pub fn log_size(&mut self) -> usize {
        let size = (0..self.n())
            .map(|i| crate::raft::raft_state_size(&self.sim.disk(i).synced))
            .max()
            .unwrap_or(0);
        self.log_size_max = self.log_size_max.max(size);
        size
    }

    /// `RpcCount(i)` summed over servers.
    pub fn rpc_total(&self) -> u64 {
        self.sim.net().rpc_count.iter().sum()
    }

    /// Ends the scenario: a final full check, the 120 s limit, and the report.
    pub fn finish(mut self) -> Outcome<Report> {
        self.full_check();
        self.check_error()?;
        if self.sim.now() > TEST_LIMIT {
            return self.fail("test took longer than 120 seconds");
        }
        Ok(Report {
            virtual_us: self.sim.now(),
            events: self.sim.events(),
            trace_hash: self.sim.trace_hash(),
            rpcs: self.sim.net().total_count,
            bytes: self.sim.net().bytes,
            log_size_max: self.log_size_max,
        })
    }
}

/// The `one()` loop as a state machine, so goroutines can run it as a [`Task`].
pub struct One {
    cmd: Cmd,
    expected: usize,
    retry: bool,
    t0: Micros,
    starts: usize,
    /// `(index, t1)` while polling for agreement on `index`.
    polling: Option<(u64, Micros)>,
}

impl One {
    /// A fresh `one(cmd, expected, retry)`, started now.
    pub fn new(lab: &Lab, cmd: Cmd, expected: usize, retry: bool) -> One {
        One {
            cmd,
            expected,
            retry,
            t0: lab.sim.now(),
            starts: 0,
            polling: None,
        }
    }

    /// Advances until it needs to sleep or is done.
    pub fn step(&mut self, lab: &mut Lab) -> Outcome<Poll<u64>> {
        loop {
            let now = lab.sim.now();
            match self.polling {
                None => {
                    if now - self.t0 >= 10_000 * MS {
                        return lab.fail(format!("one({:?}) failed to reach agreement", self.cmd));
                    }
                    match self.try_start(lab) {
                        Some(index) => self.polling = Some((index, now)),
                        None => return Ok(Poll::Sleep(50 * MS)),
                    }
                }
                Some((index, t1)) if now - t1 < 2_000 * MS => {
                    let (nd, cmd1) = lab.n_committed(index)?;
                    if nd > 0 && nd >= self.expected && cmd1.as_ref() == Some(&self.cmd) {
                        return Ok(Poll::Done(index));
                    }
                    return Ok(Poll::Sleep(20 * MS));
                }
                Some(_) => {
                    if !self.retry {
                        return lab.fail(format!("one({:?}) failed to reach agreement", self.cmd));
                    }
                    self.polling = None;
                }
            }
        }
    }

    fn try_start(&mut self, lab: &mut Lab) -> Option<u64> {
        for _ in 0..lab.n() {
            self.starts = (self.starts + 1) % lab.n();
            let s = self.starts;
            if lab.is_connected(s)
                && lab.alive(s)
                && let Some((index, _)) = lab.start(s, self.cmd.clone())
            {
                return Some(index);
            }
        }
        None
    }
}

/// A goroutine running `one(cmd, expected, retry)` in the background.
pub struct OneTask(pub One);

impl Task for OneTask {
    fn wake(&mut self, lab: &mut Lab) -> Outcome<Poll<()>> {
        Ok(match self.0.step(lab)? {
            Poll::Done(_) => Poll::Done(()),
            Poll::Sleep(d) => Poll::Sleep(d),
        })
    }
}
