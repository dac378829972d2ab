//! The 6.5840 kvraft1 tester (`src/kvraft1/test.go`, `src/kvtest1/kvtest.go`) on the
//! simulator: servers `0..n` run the kvraft server core on Raft (the runtime's and the
//! model's core, [`aver_sim::kvraft`]), clerks after them run the kvraft clerk core.
//!
//! Every run checks, after every event: Raft's cluster invariants on the servers
//! ([`ClusterCheck`]), the servers' own step checks (the engine halts on them), and KV-2
//! At-Most-Once over every write any server executed (a ledger of where each `(client, seq)`
//! executed). At the end: every clerk operation recorded in the history is checked for
//! linearizability with `aver-checker`'s `versioned-kv` model (KV-1; `Unknown` fails).
//!
//! Timing: every message takes at least [`LATENCY`] (a Go RPC through labrpc, gob and the
//! Raft goroutines costs real time; see [`crate::kv_lab::LATENCY`] for why a floor matters to
//! the size of histories). The clerk retries after 100 ms; Raft's heartbeat is 100 ms.

use aver_checker::models::VersionedKv;
use aver_checker::{CheckResult, PowerSet};
use aver_core::NodeId;
use aver_core::kvraft::invariants::{Ledger, at_most_once};
use aver_core::kvraft::{
    ClerkOutput, KvBug, KvBugs, KvConfig, KvEvent, VersionedOp, VersionedReply, VersionedStore,
};
use aver_core::rsm::raft_state_size;
use aver_sim::cluster::ClusterCheck;
use aver_sim::history::{Call, History};
use aver_sim::kvraft::{KvClerkKind, KvServerKind};
use aver_sim::pair::{Member, Pair};
use aver_sim::sim::{MS, Micros, Processed, Sim};
use aver_sim::{Failure, Outcome, Report};
use rand::Rng;
use serde_json::{Value, json};
use std::time::Duration;

/// The store of the 2025 lab (versioned Put/Get).
pub type St = VersionedStore;
type Kind = Pair<KvServerKind<St>, KvClerkKind<St>>;

/// The least time a message takes, per direction.
pub const LATENCY: Micros = MS;
/// `kvtest.ElectionTimeout`.
pub const ELECTION_TIMEOUT: Micros = 1_000 * MS;
/// The lab's per-test limit (`CheckTimeout`: 120 s).
pub const TEST_LIMIT: Micros = 120_000 * MS;
/// The most wall time the history check may take before its verdict is `Unknown` (a failure).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

thread_local! {
    static BUGS: std::cell::Cell<KvBugs> = const { std::cell::Cell::new(KvBugs::NONE) };
}

/// kvraft clusters created on this thread from now on run with `bugs` (`aver sim kv --bug`).
pub fn seed_bugs(bugs: KvBugs) {
    BUGS.with(|b| b.set(bugs));
}

/// The bugs [`seed_bugs`] set on this thread.
pub fn seeded_bugs() -> KvBugs {
    BUGS.with(|b| b.get())
}

/// The `aver sim` flags that seed `bugs`.
pub fn bug_flags(bugs: KvBugs) -> String {
    KvBug::ALL
        .iter()
        .filter(|b| bugs.has(**b))
        .map(|b| format!(" --bug {b}"))
        .collect()
}

/// A `Put` operation.
pub fn put(key: &str, value: &str, version: u64) -> VersionedOp {
    VersionedOp::Put {
        key: key.into(),
        value: value.into(),
        version,
    }
}

/// A `Get` operation.
pub fn get(key: &str) -> VersionedOp {
    VersionedOp::Get { key: key.into() }
}

fn call_of(op: &VersionedOp) -> Call {
    match op {
        VersionedOp::Get { key } => Call::new("get").key(key),
        VersionedOp::Put {
            key,
            value,
            version,
        } => Call::new("put")
            .key(key)
            .value(&**value)
            .arg("version", *version),
    }
}

fn output_of(reply: &VersionedReply) -> Value {
    match reply {
        VersionedReply::Value { value, version } => json!({"value": &**value, "version": version}),
        VersionedReply::NoKey => json!("ErrNoKey"),
        VersionedReply::Ok => json!("OK"),
        VersionedReply::ErrVersion => json!("ErrVersion"),
    }
}

/// What a background client (`OneClientPut`) is doing.
#[derive(Clone, Debug)]
enum Stage {
    /// Between operations.
    Idle,
    /// Its Put of `key` at `ver` is in flight.
    Put { key: String, ver: u64 },
    /// Its Get after a Put is in flight; `ok`: the Put returned OK.
    Get { key: String, ver: u64, ok: bool },
}

/// A `OneClientPut` client.
#[derive(Clone, Debug)]
struct Worker {
    clerk: usize,
    stage: Stage,
    /// Last version this client read, per key.
    versions: std::collections::BTreeMap<String, u64>,
    /// Keep going after the current operation.
    active: bool,
    /// Puts that returned OK.
    nok: u64,
}

/// One kvraft tester run.
pub struct KvRaftLab {
    /// The simulation: servers `0..n`, then the clerks.
    pub sim: Sim<Kind>,
    check: ClusterCheck<Kind>,
    history: History,
    ledger: Ledger,
    test: &'static str,
    seed: u64,
    servers: usize,
    /// Per clerk: the reply to its last call, until taken.
    replies: Vec<Option<VersionedReply>>,
    busy: Vec<bool>,
    workers: Vec<Worker>,
    keys: Vec<String>,
    /// The next repartition, while the partitioner runs.
    partitioner: Option<Micros>,
    connected: Vec<bool>,
    report: Report,
}

impl KvRaftLab {
    /// `MakeTest`: `servers` servers with `maxraftstate` (`None`: −1), all connected, on a
    /// reliable or unreliable network, and `clerks` clerks connected to every server.
    pub fn new(
        test: &'static str,
        seed: u64,
        servers: usize,
        reliable: bool,
        max_raft_state: Option<usize>,
        clerks: usize,
    ) -> Self {
        let bugs = seeded_bugs();
        let config = KvConfig {
            max_raft_state,
            bugs,
            // The servers' own KV-3 check restates the dedup-in-snapshot fix; with a seeded
            // bug the run must fail by what a user loses instead.
            step_checks: bugs.is_empty(),
            ..KvConfig::default()
        };
        let all: Vec<NodeId> = (0..servers as u32).map(NodeId).collect();
        let lists = vec![all; clerks];
        let kind = Pair {
            server: KvServerKind::new(servers, config),
            client: KvClerkKind::new(servers, lists, bugs),
            servers,
        };
        let n = servers + clerks;
        let mut sim = Sim::new(kind, n, seed);
        let net = sim.net_mut();
        net.reliable = reliable;
        net.latency_min = LATENCY;
        for c in servers..n {
            for s in 0..servers {
                net.enabled[c][s] = true;
                net.enabled[s][c] = true;
            }
        }
        let check = ClusterCheck::new(&sim);
        let mut lab = KvRaftLab {
            sim,
            check,
            history: History::new(),
            ledger: Ledger::new(),
            test,
            seed,
            servers,
            replies: vec![None; clerks],
            busy: vec![false; clerks],
            workers: Vec::new(),
            keys: Vec::new(),
            partitioner: None,
            connected: vec![false; servers],
            report: Report::default(),
        };
        lab.connect_all();
        lab
    }

    /// Number of servers.
    pub fn servers(&self) -> usize {
        self.servers
    }

    /// Virtual time now.
    pub fn now(&self) -> Micros {
        self.sim.now()
    }

    /// A failure of this run; the history so far is written out and named. When a lab check
    /// fails (a wrong value, a wrong count), the history is checked first: if it is not
    /// linearizable, that is the verdict — what a user loses — and the lab's check is named
    /// as the first symptom.
    pub fn failure(&self, message: impl Into<String>) -> Failure {
        let mut message = message.into();
        let consequence = message.starts_with("KV-") || message.starts_with("RAFT-");
        if !consequence
            && let Ok(CheckResult::Illegal) = self
                .history
                .check(&PowerSet(VersionedKv), Some(CHECK_TIMEOUT))
        {
            message = format!("KV-1 not linearizable (first symptom: {message})");
        }
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

    /// [`KvRaftLab::failure`] as an `Err`.
    pub fn fail<T>(&self, message: impl Into<String>) -> Outcome<T> {
        Err(self.failure(message))
    }

    // ---- the network ----------------------------------------------------------------------

    fn set_link(&mut self, a: usize, b: usize, on: bool) {
        let net = self.sim.net_mut();
        net.enabled[a][b] = on;
    }

    /// `ConnectOne(i)`: `i` and every connected server talk again.
    pub fn connect_one(&mut self, i: usize) {
        self.connected[i] = true;
        for j in 0..self.servers {
            if j == i || !self.connected[j] {
                continue;
            }
            self.set_link(i, j, true);
            self.set_link(j, i, true);
        }
    }

    /// `ConnectAll()`.
    pub fn connect_all(&mut self) {
        for i in 0..self.servers {
            self.connect_one(i);
        }
    }

    /// `DisconnectAll(i)`: `i` is cut off from every server.
    pub fn disconnect_all(&mut self, i: usize) {
        self.connected[i] = false;
        for j in (0..self.servers).filter(|&j| j != i) {
            self.set_link(i, j, false);
            self.set_link(j, i, false);
        }
    }

    /// `Partition(p1, p2)`: servers talk only within their side.
    pub fn partition(&mut self, p1: &[usize], p2: &[usize]) {
        for side in [p1, p2] {
            for &a in side {
                self.connected[a] = true;
                for b in (0..self.servers).filter(|&b| b != a) {
                    let on = side.contains(&b);
                    self.set_link(a, b, on);
                    self.set_link(b, a, on);
                }
            }
        }
    }

    /// `MakeClerkTo`: clerk `c` reaches only `servers` (its other ends are disabled).
    pub fn restrict_clerk(&mut self, c: usize, servers: &[usize]) {
        let node = self.clerk_node(c);
        for s in 0..self.servers {
            let on = servers.contains(&s);
            self.set_link(node, s, on);
            self.set_link(s, node, on);
        }
    }

    /// `clnt.ConnectAll()`: clerk `c` reaches every server again.
    pub fn connect_clerk(&mut self, c: usize) {
        let all: Vec<usize> = (0..self.servers).collect();
        self.restrict_clerk(c, &all);
    }

    /// `MakePartition(l)`: a majority without `l`, and the rest with `l` last.
    pub fn make_partition(&self, l: usize) -> (Vec<usize>, Vec<usize>) {
        let others: Vec<usize> = (0..self.servers).filter(|&i| i != l).collect();
        let m = self.servers / 2 + 1;
        let p1 = others[..m].to_vec();
        let mut p2 = others[m..].to_vec();
        p2.push(l);
        (p1, p2)
    }

    /// `ShutdownServer(i)`: cut off and crashed; its disk stays.
    pub fn shutdown(&mut self, i: usize) {
        self.disconnect_all(i);
        self.sim.crash(i);
    }

    /// `StartServer(i)` then, as the tests do, `ConnectAll()`.
    pub fn restart(&mut self, i: usize) {
        self.sim.start(i);
        self.connect_all();
    }

    /// The server that believes it leads the highest term, if any (`rsm.Leader`).
    pub fn leader(&self) -> Option<usize> {
        (0..self.servers)
            .filter_map(|i| Some((i, self.sim.node(i)?.server()?.engine())))
            .filter(|(_, r)| r.is_leader())
            .max_by_key(|(_, r)| r.term())
            .map(|(i, _)| i)
    }

    /// A server drawn from the run's RNG.
    pub fn random_server(&mut self) -> usize {
        self.sim.rng().random_range(0..self.servers)
    }

    /// `LogSize()`: the largest persisted Raft state (without snapshot) on any disk.
    pub fn log_size(&mut self) -> usize {
        let size = (0..self.servers)
            .map(|i| raft_state_size(self.sim.disk(i).synced.0.durable()))
            .max()
            .unwrap_or(0);
        self.report.log_size_max = self.report.log_size_max.max(size);
        size
    }

    /// `SnapshotSize()`: the largest snapshot on any disk.
    pub fn snapshot_size(&self) -> usize {
        (0..self.servers)
            .filter_map(|i| self.sim.disk(i).synced.0.durable().snapshot.as_ref())
            .map(|s| s.data.len())
            .max()
            .unwrap_or(0)
    }

    /// Fails unless every disk's Raft state is within `8 × maxraftstate` ("logs were not
    /// trimmed").
    pub fn check_log_size(&mut self, limit: usize) -> Outcome<()> {
        let size = self.log_size();
        if size > limit {
            return self.fail(format!(
                "logs were not trimmed: persisted Raft state {size} bytes > {limit}"
            ));
        }
        Ok(())
    }

    // ---- running ------------------------------------------------------------------------------

    fn clerk_node(&self, c: usize) -> usize {
        self.servers + c
    }

    /// Clerk `c` starts `op` (recorded as called now).
    pub fn start(&mut self, c: usize, op: VersionedOp) -> Outcome<()> {
        if self.busy[c] {
            return self.fail(format!("clerk {c} already has an operation in flight"));
        }
        let node = self.clerk_node(c);
        self.history.call(node as u64, self.now(), call_of(&op));
        let started = self.sim.input(node, |m| match m {
            Member::Client(k) => k.clerk.invoke(op).is_ok(),
            Member::Server(_) => false,
        });
        if started != Some(true) {
            return self.fail(format!("clerk {c} refused an operation"));
        }
        self.busy[c] = true;
        self.after_event()
    }

    /// True while clerk `c` waits for an answer.
    pub fn is_busy(&self, c: usize) -> bool {
        self.busy[c]
    }

    /// Takes clerk `c`'s last answer.
    pub fn take_reply(&mut self, c: usize) -> Option<VersionedReply> {
        self.replies[c].take()
    }

    /// Runs until virtual time `until`.
    pub fn run_until(&mut self, until: Micros) -> Outcome<()> {
        loop {
            if self.now() > TEST_LIMIT {
                return self.fail("test took longer than 120 seconds");
            }
            let next = self.partitioner.map_or(until, |p| p.min(until));
            match self.sim.step(next) {
                Some(Processed::Wake(_)) | Some(Processed::Nothing) => {}
                Some(Processed::Node(_)) => self.after_event()?,
                None if self
                    .partitioner
                    .is_some_and(|p| p <= until && p <= self.now()) =>
                {
                    self.repartition();
                }
                None => break,
            }
        }
        match self.sim.halt() {
            Some(h) => self.fail(h.to_string()),
            None => Ok(()),
        }
    }

    /// Runs for `ms` of virtual time.
    pub fn sleep(&mut self, ms: u64) -> Outcome<()> {
        self.run_until(self.now() + ms * MS)
    }

    fn after_event(&mut self) -> Outcome<()> {
        if let Err(v) = self.check.after_event(&self.sim) {
            return self.fail(v.to_string());
        }
        for a in self.sim.take_applied() {
            match a.apply {
                Member::Server(KvEvent::Executed { index, client, seq }) => {
                    if let Err(v) = at_most_once(&mut self.ledger, index, client, seq) {
                        return self.fail(v.to_string());
                    }
                }
                Member::Server(_) => {}
                Member::Client(ClerkOutput { reply, .. }) => {
                    self.history
                        .ret(a.node as u64, self.now(), output_of(&reply));
                    let c = a.node - self.servers;
                    self.busy[c] = false;
                    self.replies[c] = Some(reply);
                    if let Some(w) = self.workers.iter().position(|w| w.clerk == c) {
                        self.advance_worker(w)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Clerk `c` runs `op` to completion within `within_ms`.
    pub fn call(&mut self, c: usize, op: VersionedOp, within_ms: u64) -> Outcome<VersionedReply> {
        self.start(c, op)?;
        self.wait_reply(c, within_ms)
    }

    /// Waits up to `within_ms` for clerk `c`'s answer.
    pub fn wait_reply(&mut self, c: usize, within_ms: u64) -> Outcome<VersionedReply> {
        let deadline = self.now() + within_ms * MS;
        while self.busy[c] && self.now() < deadline {
            let next = (self.now() + 10 * MS).min(deadline);
            self.run_until(next)?;
        }
        match self.take_reply(c) {
            Some(r) if !self.busy[c] => Ok(r),
            _ => self.fail(format!(
                "clerk {c}'s operation did not return within {within_ms} ms"
            )),
        }
    }

    /// `PutAtLeastOnce`: put until OK (ErrVersion: this single writer's earlier try won);
    /// returns the new version.
    pub fn put_at_least_once(
        &mut self,
        c: usize,
        key: &str,
        value: &str,
        ver: u64,
    ) -> Outcome<u64> {
        let mut ver = ver;
        loop {
            match self.call(c, put(key, value, ver), 30_000)? {
                VersionedReply::Ok => return Ok(ver + 1),
                VersionedReply::ErrVersion => ver += 1,
                other if ver != 0 => return self.fail(format!("put returned {other:?}")),
                _ => ver += 1,
            }
        }
    }

    /// `CheckGet`: clerk `c` reads exactly `(value, version)`.
    pub fn check_get(&mut self, c: usize, key: &str, value: &str, version: u64) -> Outcome<()> {
        match self.call(c, get(key), 30_000)? {
            VersionedReply::Value {
                value: v,
                version: n,
            } if &*v == value && n == version => Ok(()),
            other => self.fail(format!(
                "Get({key}) returned {other:?}, expected ({value:?}, {version})"
            )),
        }
    }

    // ---- background clients -------------------------------------------------------------------

    /// The keys the background clients pick from (`["k"]`, or 100 keys with `randomkeys`).
    pub fn set_keys(&mut self, keys: Vec<String>) {
        self.keys = keys;
    }

    /// Clerks `clerks` start `OneClientPut` loops.
    pub fn spawn_clients(&mut self, clerks: &[usize]) -> Outcome<()> {
        for &c in clerks {
            let w = match self.workers.iter().position(|w| w.clerk == c) {
                Some(w) => w,
                None => {
                    self.workers.push(Worker {
                        clerk: c,
                        stage: Stage::Idle,
                        versions: Default::default(),
                        active: true,
                        nok: 0,
                    });
                    self.workers.len() - 1
                }
            };
            self.workers[w].active = true;
            self.workers[w].nok = 0;
            self.next_put(w)?;
        }
        Ok(())
    }

    /// Tells every background client to stop after its current operation; waits for them
    /// (within `within_ms`) and returns their OK Puts.
    pub fn stop_clients(&mut self, within_ms: u64) -> Outcome<u64> {
        for w in &mut self.workers {
            w.active = false;
        }
        let deadline = self.now() + within_ms * MS;
        while self.workers.iter().any(|w| !matches!(w.stage, Stage::Idle)) {
            if self.now() >= deadline {
                return self.fail(format!("clients did not finish within {within_ms} ms"));
            }
            let next = (self.now() + 10 * MS).min(deadline);
            self.run_until(next)?;
        }
        Ok(self.workers.iter().map(|w| w.nok).sum())
    }

    fn next_put(&mut self, w: usize) -> Outcome<()> {
        if !self.workers[w].active {
            self.workers[w].stage = Stage::Idle;
            return Ok(());
        }
        let key = if self.keys.len() == 1 {
            self.keys[0].clone()
        } else {
            let k = self.sim.rng().random_range(0..self.keys.len());
            self.keys[k].clone()
        };
        let ver = self.workers[w].versions.get(&key).copied().unwrap_or(0);
        self.put_stage(w, key, ver)
    }

    fn put_stage(&mut self, w: usize, key: String, ver: u64) -> Outcome<()> {
        let c = self.workers[w].clerk;
        let value = format!("{{\"Id\":{c},\"V\":{ver}}}");
        self.workers[w].stage = Stage::Put {
            key: key.clone(),
            ver,
        };
        self.start(c, put(&key, &value, ver))
    }

    /// `OnePut`'s steps, as the worker's clerk answers.
    fn advance_worker(&mut self, w: usize) -> Outcome<()> {
        let c = self.workers[w].clerk;
        let reply = self.replies[c].take().expect("an answer arrived");
        match std::mem::replace(&mut self.workers[w].stage, Stage::Idle) {
            Stage::Idle => Ok(()),
            Stage::Put { key, ver } => {
                let ok = match reply {
                    VersionedReply::Ok => true,
                    VersionedReply::ErrVersion => false,
                    other => return self.fail(format!("Wrong error {other:?} from a Put")),
                };
                self.workers[w].stage = Stage::Get {
                    key: key.clone(),
                    ver,
                    ok,
                };
                self.start(c, get(&key))
            }
            Stage::Get { key, ver, ok } => {
                let VersionedReply::Value { value, version } = reply else {
                    return self.fail(format!("Get({key}) after a Put returned {reply:?}"));
                };
                let ours = format!("{{\"Id\":{c},\"V\":{ver}}}");
                if ok && version == ver + 1 && *value != *ours {
                    return self.fail(format!("Wrong value {value:?}, expected {ours:?}"));
                }
                self.workers[w].versions.insert(key.clone(), version);
                if ok {
                    self.workers[w].nok += 1;
                    self.next_put(w)
                } else {
                    self.put_stage(w, key, version)
                }
            }
        }
    }

    // ---- the partitioner ----------------------------------------------------------------------

    /// `Partitioner`: from now on, every `ElectionTimeout + 0–199 ms`, each server goes to
    /// one of two sides at random.
    pub fn start_partitioner(&mut self) {
        self.partitioner = Some(self.now());
        self.repartition();
    }

    /// Stops the partitioner (the network stays as it is).
    pub fn stop_partitioner(&mut self) {
        self.partitioner = None;
    }

    fn repartition(&mut self) {
        let mut sides = (Vec::new(), Vec::new());
        for i in 0..self.servers {
            if self.sim.rng().random_bool(0.5) {
                sides.0.push(i);
            } else {
                sides.1.push(i);
            }
        }
        self.partition(&sides.0, &sides.1);
        let pause = ELECTION_TIMEOUT + self.sim.rng().random_range(0..200) * MS;
        self.partitioner = Some(self.now() + pause);
    }

    // ---- the end ------------------------------------------------------------------------------

    /// Operations recorded so far.
    pub fn ops(&self) -> usize {
        self.history.len()
    }

    /// KV-1: the history so far is linearizable (`Unknown` fails).
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

    /// Raft's cluster invariants from scratch, the history, the time limit; the report.
    pub fn finish(mut self) -> Outcome<Report> {
        if self.now() > TEST_LIMIT {
            return self.fail("test took longer than 120 seconds");
        }
        if let Err(v) = self.check.full(&self.sim) {
            return self.fail(v.to_string());
        }
        self.check_history()?;
        self.log_size();
        Ok(Report {
            virtual_us: self.now(),
            events: self.sim.events(),
            trace_hash: self.sim.trace_hash(),
            rpcs: self.sim.net().total_count,
            bytes: self.sim.net().bytes,
            log_size_max: self.report.log_size_max,
        })
    }
}
