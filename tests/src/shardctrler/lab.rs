//! The 6.5840 shardctrler tester (`src/shardctrler/config.go`) on the simulator: servers
//! `0..n` run the controller server core on Raft ([`aver_sim::shardctrler`], the runtime's
//! core), clerks after them run the controller clerk core.
//!
//! Every run checks, after every event: Raft's cluster invariants on the servers
//! ([`ClusterCheck`]) and the servers' own step checks (the engine halts on them). Every
//! clerk operation is recorded, and at the end the history is checked with `aver-checker`'s
//! `shardctrler` model (a `Query` returns configuration `n`, or the latest, consistent with
//! the order of `Join`, `Leave` and `Move`; every answer about one configuration the same;
//! `Unknown` fails), then SHARD-5 over every replica's configurations (the lab's "all
//! replicas agree"). The scenarios add the lab's `check(groups)` and their own checks.

use aver_checker::CheckResult;
use aver_checker::models::ShardCtrl;
use aver_core::NodeId;
use aver_core::shardctrler::invariants::config_agreement;
use aver_core::shardctrler::{Config, ConfigNum, CtrlOp, CtrlReply, Gid, SHARDS_DEFAULT, ShardId};
use aver_core::shardkv::replica::ReplicaConfig;
use aver_core::shardkv::{Bug, Bugs};
use aver_sim::cluster::ClusterCheck;
use aver_sim::history::{Call, History};
use aver_sim::pair::{Member, Pair};
use aver_sim::shardctrler::{CtrlClerkKind, CtrlServerKind};
use aver_sim::sim::{MS, Micros, Processed, Sim};
use aver_sim::{Failure, Outcome, Report};
use rand::Rng;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

type Kind = Pair<CtrlServerKind, CtrlClerkKind>;

/// The least time a message takes, per direction (as the kvraft tester).
pub const LATENCY: Micros = MS;
/// The lab's per-test limit (120 s).
pub const TEST_LIMIT: Micros = 120_000 * MS;
/// The most wall time the history check may take before its verdict is `Unknown` (a failure).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// The lab's `NShards`.
pub const NSHARDS: usize = SHARDS_DEFAULT;

thread_local! {
    static BUGS: std::cell::Cell<Bugs> = const { std::cell::Cell::new(Bugs::NONE) };
}

/// Controllers created on this thread from now on run with `bugs` (`aver sim shardctrler
/// --bug`).
pub fn seed_bugs(bugs: Bugs) {
    BUGS.with(|b| b.set(bugs));
}

/// The bugs [`seed_bugs`] set on this thread.
pub fn seeded_bugs() -> Bugs {
    BUGS.with(|b| b.get())
}

/// The `aver sim` flags that seed `bugs`.
pub fn bug_flags(bugs: Bugs) -> String {
    Bug::ALL
        .iter()
        .filter(|b| bugs.has(**b))
        .map(|b| format!(" --bug {b}"))
        .collect()
}

/// Group `gid`'s servers as the tests name them (`x`, `y`, `z` → three numbers per gid).
pub fn servers_of(gid: u32) -> Vec<NodeId> {
    (0..3).map(|k| NodeId(gid * 10 + k)).collect()
}

/// A controller operation as the `shardctrler` model's history records its call.
pub fn call_of(op: &CtrlOp) -> Call {
    match op {
        CtrlOp::Join(groups) => {
            let map: Map<String, Value> = groups
                .iter()
                .map(|(g, s)| {
                    (
                        g.0.to_string(),
                        json!(s.iter().map(|n| n.0).collect::<Vec<_>>()),
                    )
                })
                .collect();
            Call::new("join").value(Value::Object(map))
        }
        CtrlOp::Leave(gids) => {
            Call::new("leave").value(json!(gids.iter().map(|g| g.0).collect::<Vec<_>>()))
        }
        CtrlOp::Move { shard, gid } => {
            Call::new("move").value(json!({"shard": shard.0, "gid": gid.0}))
        }
        CtrlOp::Query(num) => Call::new("query").value(num.map_or(json!(-1), |n| json!(n.0))),
    }
}

/// A controller reply as the `shardctrler` model's history records it.
pub fn output_of(reply: &CtrlReply) -> Value {
    match reply {
        CtrlReply::Done(n) => json!({"num": n.0}),
        CtrlReply::Err(e) => json!({"err": e.to_string()}),
        CtrlReply::Config(c) => {
            let groups: Map<String, Value> = c
                .groups
                .iter()
                .map(|(g, s)| {
                    (
                        g.0.to_string(),
                        json!(s.iter().map(|n| n.0).collect::<Vec<_>>()),
                    )
                })
                .collect();
            let shards: Vec<u32> = c.shards.iter().map(|g| g.0).collect();
            json!({"num": c.num.0, "shards": shards, "groups": groups})
        }
        CtrlReply::Stale => json!({"err": "stale"}),
    }
}

/// One shardctrler tester run.
pub struct CtrlLab {
    /// The simulation: servers `0..n`, then the clerks.
    pub sim: Sim<Kind>,
    check: ClusterCheck<Kind>,
    history: History,
    test: &'static str,
    seed: u64,
    servers: usize,
    /// Per clerk: the reply to its last call, until taken.
    replies: Vec<Option<CtrlReply>>,
    busy: Vec<bool>,
    connected: Vec<bool>,
    /// The next repartition, while the partitioner runs.
    partitioner: Option<Micros>,
}

impl CtrlLab {
    /// `make_config`: `servers` controller servers (`maxraftstate` `None`: −1) on a reliable
    /// or unreliable network, and `clerks` clerks connected to every server.
    pub fn new(
        test: &'static str,
        seed: u64,
        (servers, clerks): (usize, usize),
        reliable: bool,
        max_raft_state: Option<usize>,
    ) -> Self {
        let kind = Pair {
            server: CtrlServerKind {
                n: servers,
                shards: NSHARDS,
                config: ReplicaConfig {
                    max_raft_state,
                    pending_max: 1 << 10,
                },
                bugs: seeded_bugs(),
            },
            client: CtrlClerkKind { servers },
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
        let mut lab = CtrlLab {
            sim,
            check,
            history: History::new(),
            test,
            seed,
            servers,
            replies: vec![None; clerks],
            busy: vec![false; clerks],
            connected: vec![false; servers],
            partitioner: None,
        };
        for i in 0..servers {
            lab.connect(i);
        }
        lab
    }

    /// Number of controller servers.
    pub fn servers(&self) -> usize {
        self.servers
    }

    /// Virtual time now.
    pub fn now(&self) -> Micros {
        self.sim.now()
    }

    fn blank_failure(&self) -> Failure {
        let flags = bug_flags(seeded_bugs());
        Failure::sim(
            "shardctrler",
            self.test,
            self.seed,
            self.now(),
            String::new(),
            &flags,
        )
    }

    /// A failure of this run; the history so far is written out and named. When a lab check
    /// fails, the history is checked first: if it is not linearizable, that is the verdict —
    /// what a user loses — and the lab's check is named as the first symptom.
    pub fn failure(&self, message: impl Into<String>) -> Failure {
        let mut message = message.into();
        let model = ShardCtrl { shards: NSHARDS };
        if !message.starts_with("RAFT-")
            && let Ok(CheckResult::Illegal) = self.history.check(&model, Some(CHECK_TIMEOUT))
        {
            message = format!("history not linearizable (first symptom: {message})");
        }
        self.history
            .failure(&message, "shardctrler", self.blank_failure())
    }

    /// [`CtrlLab::failure`] as an `Err`.
    pub fn fail<T>(&self, message: impl Into<String>) -> Outcome<T> {
        Err(self.failure(message))
    }

    // ---- the network and crashes ---------------------------------------------------------------

    fn set_link(&mut self, a: usize, b: usize, on: bool) {
        self.sim.net_mut().enabled[a][b] = on;
    }

    /// `connect(i)`: `i` and every connected server talk again.
    pub fn connect(&mut self, i: usize) {
        self.connected[i] = true;
        for j in 0..self.servers {
            if j == i || !self.connected[j] {
                continue;
            }
            self.set_link(i, j, true);
            self.set_link(j, i, true);
        }
    }

    /// `disconnect(i)`: `i` is cut off from every server.
    pub fn disconnect(&mut self, i: usize) {
        self.connected[i] = false;
        for j in (0..self.servers).filter(|&j| j != i) {
            self.set_link(i, j, false);
            self.set_link(j, i, false);
        }
    }

    /// Servers talk only within their side (clerks still reach everyone).
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

    /// Every server talks to every other again.
    pub fn heal(&mut self) {
        for i in 0..self.servers {
            self.connect(i);
        }
    }

    /// `ShutdownServer(i)`: cut off and crashed; its disk stays.
    pub fn shutdown(&mut self, i: usize) {
        self.disconnect(i);
        self.sim.crash(i);
    }

    /// `StartServer(i)` and `connect(i)`.
    pub fn restart(&mut self, i: usize) {
        self.sim.start(i);
        self.connect(i);
    }

    /// The server that believes it leads the highest term, if any.
    pub fn leader(&self) -> Option<usize> {
        (0..self.servers)
            .filter_map(|i| Some((i, self.sim.node(i)?.server()?.raft())))
            .filter(|(_, r)| r.is_leader())
            .max_by_key(|(_, r)| r.term())
            .map(|(i, _)| i)
    }

    /// A server drawn from the run's RNG.
    pub fn random_server(&mut self) -> usize {
        self.sim.rng().random_range(0..self.servers)
    }

    /// From now on, every 1–1.2 s, each server goes to one of two sides at random.
    pub fn start_partitioner(&mut self) {
        self.partitioner = Some(self.now());
    }

    /// Stops the partitioner and heals the network.
    pub fn stop_partitioner(&mut self) {
        self.partitioner = None;
        self.heal();
    }

    fn repartition(&mut self) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..self.servers {
            if self.sim.rng().random_bool(0.5) {
                a.push(i);
            } else {
                b.push(i);
            }
        }
        self.partition(&a, &b);
        let pause = (1_000 + self.sim.rng().random_range(0..200)) * MS;
        self.partitioner = Some(self.now() + pause);
    }

    // ---- running ------------------------------------------------------------------------------

    fn clerk_node(&self, c: usize) -> usize {
        self.servers + c
    }

    /// Clerk `c` starts `op` (recorded as called now).
    pub fn start(&mut self, c: usize, op: CtrlOp) -> Outcome<()> {
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
    pub fn take_reply(&mut self, c: usize) -> Option<CtrlReply> {
        self.replies[c].take()
    }

    /// Runs until virtual time `until`.
    pub fn run_until(&mut self, until: Micros) -> Outcome<()> {
        loop {
            if self.now() > TEST_LIMIT {
                return self.fail("test took longer than 120 seconds");
            }
            if self.partitioner.is_some_and(|p| p <= self.now()) {
                self.repartition();
            }
            let next = self.partitioner.map_or(until, |p| p.min(until));
            match self.sim.step(next) {
                Some(Processed::Wake(_)) | Some(Processed::Nothing) => {}
                Some(Processed::Node(_)) => self.after_event()?,
                None if self.partitioner.is_some_and(|p| p <= until) => self.repartition(),
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
            if let Member::Client(done) = a.apply {
                self.history
                    .ret(a.node as u64, self.now(), output_of(&done.reply));
                let c = a.node - self.servers;
                self.busy[c] = false;
                self.replies[c] = Some(done.reply);
            }
        }
        Ok(())
    }

    /// Waits up to `within_ms` for clerk `c`'s answer.
    pub fn wait_reply(&mut self, c: usize, within_ms: u64) -> Outcome<CtrlReply> {
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

    /// Clerk `c` runs `op` to completion (within 20 s: an election and a few retries).
    pub fn call(&mut self, c: usize, op: CtrlOp) -> Outcome<CtrlReply> {
        self.start(c, op)?;
        self.wait_reply(c, 20_000)
    }

    /// Clerk `c` runs `op`, which must make a configuration; returns its number.
    pub fn change(&mut self, c: usize, op: CtrlOp) -> Outcome<ConfigNum> {
        let what = format!("{op:?}");
        match self.call(c, op)? {
            CtrlReply::Done(n) => Ok(n),
            other => self.fail(format!("{what} returned {other:?}")),
        }
    }

    /// `ck.Join(groups)`, each gid with [`servers_of`].
    pub fn join(&mut self, c: usize, gids: &[u32]) -> Outcome<ConfigNum> {
        let map = gids.iter().map(|g| (Gid(*g), servers_of(*g))).collect();
        self.change(c, CtrlOp::Join(map))
    }

    /// `ck.Leave(gids)`.
    pub fn leave(&mut self, c: usize, gids: &[u32]) -> Outcome<ConfigNum> {
        let set: BTreeSet<Gid> = gids.iter().map(|g| Gid(*g)).collect();
        self.change(c, CtrlOp::Leave(set))
    }

    /// `ck.Move(shard, gid)`.
    pub fn move_shard(&mut self, c: usize, shard: u32, gid: u32) -> Outcome<ConfigNum> {
        let op = CtrlOp::Move {
            shard: ShardId(shard),
            gid: Gid(gid),
        };
        self.change(c, op)
    }

    /// `ck.Query(num)` (`None`: −1).
    pub fn query(&mut self, c: usize, num: Option<u64>) -> Outcome<Config> {
        match self.call(c, CtrlOp::Query(num.map(ConfigNum)))? {
            CtrlReply::Config(config) => Ok(config),
            other => self.fail(format!("Query({num:?}) returned {other:?}")),
        }
    }

    /// The lab's `check(groups)`: `Query(-1)` has exactly `gids`, no shard on a gid outside
    /// them (whenever groups exist), and max ≤ min + 1 shards per group.
    pub fn check_groups(&mut self, c: usize, gids: &[u32]) -> Outcome<Config> {
        let config = self.query(c, None)?;
        let want: BTreeSet<Gid> = gids.iter().map(|g| Gid(*g)).collect();
        let have: BTreeSet<Gid> = config.groups.keys().copied().collect();
        if have != want {
            return self.fail(format!("wanted groups {want:?}, got {have:?}"));
        }
        if !want.is_empty()
            && let Some(s) = config.shards.iter().position(|g| !want.contains(g))
        {
            return self.fail(format!("shard {s} -> invalid group {}", config.shards[s].0));
        }
        let mut load: BTreeMap<Gid, usize> = want.iter().map(|g| (*g, 0)).collect();
        for g in &config.shards {
            *load.entry(*g).or_default() += 1;
        }
        let (min, max) = (load.values().min(), load.values().max());
        if let (Some(min), Some(max)) = (min, max)
            && !want.is_empty()
            && *max > min + 1
        {
            return self.fail(format!(
                "max {max} too much larger than min {min}: {load:?}"
            ));
        }
        Ok(config)
    }

    // ---- the end ------------------------------------------------------------------------------

    /// Operations recorded so far.
    pub fn ops(&self) -> usize {
        self.history.len()
    }

    /// Heals the network, waits for every replica to apply what the leader has, then checks
    /// Raft's invariants from scratch, the history (the `shardctrler` model; `Unknown`
    /// fails) and SHARD-5 over every live replica ("all replicas agree").
    pub fn finish(mut self) -> Outcome<Report> {
        if self.now() > TEST_LIMIT {
            return self.fail("test took longer than 120 seconds");
        }
        self.stop_partitioner();
        for i in 0..self.servers {
            if !self.sim.is_up(i) {
                self.restart(i);
            }
        }
        self.sleep(3_000)?;
        if let Err(v) = self.check.full(&self.sim) {
            return self.fail(v.to_string());
        }
        let model = ShardCtrl { shards: NSHARDS };
        let failure = self.blank_failure();
        self.history
            .check_or_fail(&model, "shardctrler", CHECK_TIMEOUT, failure)?;
        let replicas: Vec<_> = (0..self.servers)
            .filter_map(|i| self.sim.node(i)?.server())
            .map(|r| r.rsm().machine())
            .collect();
        if let Err(v) = config_agreement(&replicas) {
            return self.fail(format!("replicas disagree: {v}"));
        }
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
