//! The harness of the shard suites: the administrator, background clerks, probes with
//! deadlines, crashes of whole groups and of single servers, partitions inside a group, and
//! the checks every run ends with.

use super::node::ShardKind;
use aver_checker::models::Kv;
use aver_core::NodeId;
use aver_core::raft::LogIndex;
use aver_core::rsm::raft_state_size;
use aver_core::shardctrler::{CtrlOp, Gid, ShardId};
use aver_core::shardkv::{Bugs, Completed, Op, OpReply, ShardKv, invariants};
use aver_sim::cluster::ClusterCheck;
use aver_sim::history::{Call, History};
use aver_sim::sim::{MS, Micros, Processed, Sim};
use aver_sim::{Failure, Outcome};
use rand::Rng;
use std::collections::BTreeSet;
use std::time::Duration;

/// What a passing run reports.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Virtual time at the end.
    pub virtual_us: u64,
    /// Events processed.
    pub events: u64,
    /// Operations recorded.
    pub ops: usize,
    /// Largest total over every group server of its persisted Raft state and snapshot, seen
    /// at a storage check (bytes).
    pub state_bytes: usize,
    /// Largest persisted Raft state of any group server seen at a log check (bytes).
    pub log_bytes: usize,
}

/// What a background clerk does.
#[derive(Clone, Debug)]
pub struct Mix {
    /// Keys it picks from.
    pub keys: Vec<String>,
    /// Probability of an Append (else Put, else Get).
    pub append: f64,
    /// Probability of a Put.
    pub put: f64,
    /// Pause between operations (uniform, ms).
    pub think_ms: (u64, u64),
}

struct Worker {
    mix: Mix,
    active: bool,
}

/// One run of one scenario.
pub struct Run {
    /// The simulation.
    pub sim: Sim<ShardKind>,
    /// Raft's cluster invariants, one checker per group.
    checks: Vec<ClusterCheck<ShardKind>>,
    /// Per group, the most advanced applied state any of its servers had when it crashed: a
    /// whole group that restarts has committed more than its servers have applied again.
    committed: Vec<Option<(LogIndex, ShardKv)>>,
    history: History,
    test: &'static str,
    seed: u64,
    bugs: Bugs,
    /// Per clerk (by index from the first clerk): its background workload.
    workers: Vec<Option<Worker>>,
    /// Clerks with an operation in flight.
    busy: BTreeSet<usize>,
    /// Operations issued so far (for unique values).
    issued: u64,
    /// Appends acknowledged and certainly not overwritten by a Put since (SHARD-2's input).
    acked: Vec<(String, String)>,
    /// Per key, Puts in flight; per clerk, whether its Append in flight overlaps a Put.
    puts_pending: std::collections::BTreeMap<String, u32>,
    tainted: BTreeSet<usize>,
    summary: Summary,
}

/// A scenario's cluster: groups, clerks, and the groups' `maxraftstate` (`None`: -1).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Shard groups (gids 100, 101, …).
    pub groups: usize,
    /// Clerks.
    pub clerks: usize,
    /// The groups' `maxraftstate` in bytes (`None`: never snapshot, as the lab's -1).
    pub max_raft_state: Option<usize>,
}

/// Servers per group (the lab's 3).
pub const REPLICAS: usize = 3;

/// Runs `body` as scenario `test`: builds the cluster, runs it, then the final checks.
pub fn run_scenario(
    test: &'static str,
    seed: u64,
    bugs: Bugs,
    shape: Shape,
    body: impl FnOnce(&mut Run) -> Result<(), String>,
) -> Outcome<Summary> {
    let mut run = Run::new(test, seed, bugs, shape);
    if let Err(msg) = body(&mut run) {
        // Say what the user lost if that is known: heal everything and look for the
        // acknowledged writes.
        if run.sim.halt().is_none() && !msg.starts_with("SHARD-") {
            run.heal();
            let _ = run.wait(5_000);
            if let Err(v) = invariants::no_lost_write(&run.groups(), &run.acked) {
                return Err(run.failure(format!("{v} (first symptom: {msg})")));
            }
        }
        return Err(run.failure(msg));
    }
    run.finish()
}

impl Run {
    fn new(test: &'static str, seed: u64, bugs: Bugs, shape: Shape) -> Run {
        let Shape {
            groups,
            clerks,
            max_raft_state,
        } = shape;
        let kind = ShardKind {
            shards: 10,
            gids: (0..groups).map(|g| Gid(100 + g as u32)).collect(),
            replicas: REPLICAS,
            max_raft_state,
            bugs,
        };
        let n = kind.first_clerk() + clerks;
        let mut sim = Sim::new(kind, n, seed);
        for a in 0..n {
            for b in 0..n {
                sim.net_mut().enabled[a][b] = a != b;
            }
        }
        let checks = (0..groups)
            .map(|g| ClusterCheck::of_servers(&sim, sim.kind().group_nodes(g).collect()))
            .collect();
        Run {
            sim,
            checks,
            committed: vec![None; groups],
            history: History::new(),
            test,
            seed,
            bugs,
            workers: (0..clerks).map(|_| None).collect(),
            busy: BTreeSet::new(),
            issued: 0,
            acked: Vec::new(),
            puts_pending: Default::default(),
            tainted: BTreeSet::new(),
            summary: Summary::default(),
        }
    }

    fn failure(&self, message: String) -> Failure {
        let flags: String = aver_core::shardkv::Bug::ALL
            .iter()
            .filter(|b| self.bugs.has(**b))
            .map(|b| format!(" --bug {b}"))
            .collect();
        Failure::sim(
            "shard",
            self.test,
            self.seed,
            self.sim.now(),
            message,
            &flags,
        )
    }

    fn clerk_node(&self, c: usize) -> usize {
        self.sim.kind().first_clerk() + c
    }

    /// The gid of group `g`.
    pub fn gid(&self, g: usize) -> Gid {
        self.sim.kind().gids[g]
    }

    /// Joins groups `gs` (by index) in one request.
    pub fn join(&mut self, gs: &[usize]) {
        let map = gs
            .iter()
            .map(|&g| {
                let servers = self.sim.kind().group_nodes(g);
                (self.gid(g), servers.map(|i| NodeId(i as u32)).collect())
            })
            .collect();
        self.sim.input(0, |n| n.admin(CtrlOp::Join(map)));
    }

    /// Groups `gs` leave in one request.
    pub fn leave(&mut self, gs: &[usize]) {
        let set = gs.iter().map(|&g| self.gid(g)).collect();
        self.sim.input(0, |n| n.admin(CtrlOp::Leave(set)));
    }

    /// The controller's latest owner of `key`'s shard (`None`: unassigned).
    pub fn owner_of(&self, key: &str) -> Option<usize> {
        let sm = self
            .sim
            .node(0)
            .and_then(|n| n.ctrl())
            .expect("the controller is up");
        let shard = aver_core::shardkv::key2shard(key, 10);
        let gid = sm.latest().owner(shard);
        self.sim.kind().gids.iter().position(|g| *g == gid)
    }

    /// The controller's latest configuration number.
    pub fn config_num(&self) -> u64 {
        let sm = self.sim.node(0).and_then(|n| n.ctrl());
        sm.expect("the controller is up").latest().num.0
    }

    /// The largest snapshot on the disk of any server of group `g` (bytes).
    pub fn largest_snapshot(&self, g: usize) -> usize {
        let nodes = self.sim.kind().group_nodes(g);
        nodes
            .filter_map(|i| self.sim.disk(i).synced.raft.durable().snapshot.as_ref())
            .map(|s| s.data.len())
            .max()
            .unwrap_or(0)
    }

    /// The index of the snapshot on each group server's disk (0: none), by node.
    pub fn snapshot_indices(&self) -> Vec<u64> {
        (1..self.sim.kind().first_clerk())
            .map(|i| {
                let durable = self.sim.disk(i).synced.raft.durable();
                durable.snapshot.as_ref().map_or(0, |s| s.meta.index.0)
            })
            .collect()
    }

    /// Crashes every server of group `g` (the lab's `ShutdownGroup`).
    pub fn crash_group(&mut self, g: usize) {
        for r in 0..REPLICAS {
            self.crash_server(g, r);
        }
    }

    /// Restarts every crashed server of group `g` from its disk (`StartGroup`).
    pub fn restart_group(&mut self, g: usize) {
        for r in 0..REPLICAS {
            self.restart_server(g, r);
        }
    }

    /// Crashes server `r` of group `g` (if up).
    pub fn crash_server(&mut self, g: usize, r: usize) {
        let node = self.sim.kind().group_nodes(g).start + r;
        let Some(replica) = self.sim.node(node).and_then(|n| n.replica()) else {
            return;
        };
        let index = replica.rsm().applied_index();
        if self.committed[g].as_ref().is_none_or(|(i, _)| *i < index) {
            self.committed[g] = Some((index, replica.rsm().machine().clone()));
        }
        self.sim.crash(node);
    }

    /// Restarts server `r` of group `g` from its disk (if down).
    pub fn restart_server(&mut self, g: usize, r: usize) {
        let node = self.sim.kind().group_nodes(g).start + r;
        if !self.sim.is_up(node) {
            self.sim.start(node);
        }
    }

    /// The server (by position in its group) that leads group `g` in the highest term, if
    /// one is up and believes it leads.
    pub fn leader(&self, g: usize) -> Option<usize> {
        let nodes = self.sim.kind().group_nodes(g);
        let first = nodes.start;
        nodes
            .filter_map(|i| {
                let raft = self.sim.node(i)?.replica()?.raft();
                raft.is_leader().then_some((raft.term(), i - first))
            })
            .max()
            .map(|(_, r)| r)
    }

    /// Cuts server `r` of group `g` off from the other servers of its group (both ways); it
    /// still reaches clerks, the controller and other groups, so a deposed leader keeps
    /// answering them from its stale state.
    pub fn isolate_server(&mut self, g: usize, r: usize) {
        let nodes = self.sim.kind().group_nodes(g);
        let node = nodes.start + r;
        for peer in nodes.filter(|&p| p != node) {
            self.sim.net_mut().enabled[node][peer] = false;
            self.sim.net_mut().enabled[peer][node] = false;
        }
    }

    /// Reconnects every link (ends every partition).
    pub fn connect_all(&mut self) {
        let n = self.sim.n();
        for a in 0..n {
            for b in 0..n {
                self.sim.net_mut().enabled[a][b] = a != b;
            }
        }
    }

    /// The lab's unreliable network (delays, 10% of requests and replies lost) or not.
    pub fn set_reliable(&mut self, reliable: bool) {
        self.sim.net_mut().reliable = reliable;
    }

    /// Clerk `c` starts `op` (it must be idle); the call is recorded.
    pub fn call(&mut self, c: usize, op: Op) {
        let node = self.clerk_node(c);
        assert!(
            self.busy.insert(c),
            "clerk {c} already has an operation in flight"
        );
        self.track_call(c, &op);
        let call = match &op {
            Op::Get(k) => Call::new("get").key(k),
            Op::Put(k, v) => Call::new("put").key(k).value(v.as_str()),
            Op::Append(k, v) => Call::new("append").key(k).value(v.as_str()),
        };
        self.history.call(node as u64, self.sim.now(), call);
        self.sim.input(node, |n| n.invoke(op));
    }

    /// Keeps SHARD-2's input exact: a Put on a key forgets the Appends acknowledged on it
    /// and taints those in flight (the Put may land after them).
    fn track_call(&mut self, c: usize, op: &Op) {
        match op {
            Op::Put(k, _) => {
                self.acked.retain(|(key, _)| key != k);
                *self.puts_pending.entry(k.clone()).or_default() += 1;
                let first = self.sim.kind().first_clerk();
                let busy: Vec<usize> = self.busy.iter().copied().collect();
                for b in busy {
                    let node = self.sim.node(first + b);
                    let appending = node.is_some_and(|n| match &n.role {
                        super::node::Role::Clerk(ck) => ck
                            .pending()
                            .is_some_and(|p| matches!(&p.op, Op::Append(key, _) if key == k)),
                        _ => false,
                    });
                    if appending {
                        self.tainted.insert(b);
                    }
                }
            }
            Op::Append(k, _) if self.puts_pending.get(k).is_some_and(|n| *n > 0) => {
                self.tainted.insert(c);
            }
            _ => {}
        }
    }

    /// A value no other write uses: `tag` padded with `.` to `len` bytes.
    pub fn unique_value(&mut self, len: usize) -> String {
        self.issued += 1;
        let mut v = format!("{}:{};", self.seed % 1000, self.issued);
        while v.len() < len {
            v.push('.');
        }
        v
    }

    /// Clerk `c` runs `mix` in the background until [`Run::stop_workers`].
    pub fn start_worker(&mut self, c: usize, mix: Mix) {
        self.workers[c] = Some(Worker { mix, active: true });
        if !self.busy.contains(&c) {
            self.next_op(c);
        }
    }

    /// Background clerks finish their operation in flight and start no more.
    pub fn stop_workers(&mut self) {
        for w in self.workers.iter_mut().flatten() {
            w.active = false;
        }
    }

    fn next_op(&mut self, c: usize) {
        let Some(w) = self.workers[c].as_ref().filter(|w| w.active) else {
            return;
        };
        let (mix, rng) = (w.mix.clone(), self.sim.rng());
        let key = mix.keys[rng.random_range(0..mix.keys.len())].clone();
        let p: f64 = rng.random();
        let op = if p < mix.append {
            Op::Append(key, self.unique_value(0))
        } else if p < mix.append + mix.put {
            Op::Put(key, self.unique_value(0))
        } else {
            Op::Get(key)
        };
        self.call(c, op);
    }

    /// Runs for `ms` of virtual time.
    pub fn wait(&mut self, ms: u64) -> Result<(), String> {
        self.run_until(self.sim.now() + ms * MS)
    }

    /// Runs until `until`; records answers; background clerks go on after their pause;
    /// SHARD-1 after every event.
    fn run_until(&mut self, until: Micros) -> Result<(), String> {
        while let Some(p) = self.sim.step(until) {
            if let Processed::Wake(node) = p {
                let c = node - self.sim.kind().first_clerk();
                if !self.busy.contains(&c) {
                    self.next_op(c);
                }
                continue;
            }
            self.collect();
            if let Processed::Node(n) = p
                && let Some(g) = self.sim.kind().group_of(n)
            {
                self.checks[g]
                    .after_event(&self.sim)
                    .map_err(|v| format!("{v} (group {})", self.gid(g)))?;
                self.single_owner()?;
            }
        }
        match self.sim.halt() {
            Some(h) => Err(h.to_string()),
            None => Ok(()),
        }
    }

    fn collect(&mut self) {
        for a in self.sim.take_applied() {
            let Completed { reply, op, .. } = a.apply;
            let c = a.node - self.sim.kind().first_clerk();
            match op {
                Op::Append(k, v) if !self.tainted.remove(&c) => self.acked.push((k, v)),
                Op::Put(k, _) => *self.puts_pending.entry(k).or_default() -= 1,
                _ => {}
            }
            let out = match reply {
                OpReply::Value(v) => serde_json::json!(v),
                OpReply::NoKey => serde_json::json!(""),
                _ => serde_json::json!("ok"),
            };
            self.history.ret(a.node as u64, self.sim.now(), out);
            self.busy.remove(&c);
            if let Some(w) = self.workers[c].as_ref().filter(|w| w.active) {
                let (lo, hi) = w.mix.think_ms;
                let pause = self.sim.rng().random_range(lo..=hi) * MS;
                self.sim.wake_after(a.node, pause);
            }
        }
    }

    /// Each group's state as SHARD-1..4 take it: the most advanced applied state of any of
    /// its servers, now or when it last crashed (what the group has committed: a command
    /// takes effect when it is applied, so a server that restarts behind serves nothing
    /// before it has applied again what it had).
    fn groups(&self) -> Vec<&ShardKv> {
        let kind = self.sim.kind();
        (0..kind.gids.len())
            .filter_map(|g| {
                let live = kind.group_nodes(g).filter_map(|i| {
                    let r = self.sim.node(i).and_then(|n| n.replica())?;
                    Some((r.rsm().applied_index(), r.rsm().machine()))
                });
                let memory = self.committed[g].as_ref().map(|(i, sm)| (*i, sm));
                live.chain(memory).max_by_key(|(i, _)| *i).map(|(_, sm)| sm)
            })
            .collect()
    }

    fn single_owner(&self) -> Result<(), String> {
        invariants::single_owner(&self.groups()).map_err(|v| v.to_string())
    }

    /// Runs until every clerk in `clerks` is idle, failing if one is still busy at `within_ms`
    /// from now; `what` says what the lab requires.
    pub fn expect_done(
        &mut self,
        clerks: &[usize],
        within_ms: u64,
        what: &str,
    ) -> Result<(), String> {
        let deadline = self.sim.now() + within_ms * MS;
        while clerks.iter().any(|c| self.busy.contains(c)) {
            if self.sim.now() >= deadline {
                let stuck: Vec<usize> = clerks
                    .iter()
                    .copied()
                    .filter(|c| self.busy.contains(c))
                    .collect();
                return Err(format!(
                    "{what}: clerks {stuck:?} still waiting after {within_ms} ms"
                ));
            }
            let next = (self.sim.now() + 10 * MS).min(deadline);
            self.run_until(next)?;
        }
        Ok(())
    }

    /// Each clerk `c` in `clerks` runs `ops(c)` one after another; all must finish within
    /// `within_ms`.
    pub fn sequence(
        &mut self,
        clerks: &[usize],
        ops: impl Fn(&mut Run, usize) -> Vec<Op>,
        within_ms: u64,
        what: &str,
    ) -> Result<(), String> {
        let deadline = self.sim.now() + within_ms * MS;
        let mut queues: Vec<(usize, Vec<Op>)> = clerks.iter().map(|&c| (c, ops(self, c))).collect();
        loop {
            for (c, q) in &mut queues {
                if !self.busy.contains(c) && !q.is_empty() {
                    let op = q.remove(0);
                    self.call(*c, op);
                }
            }
            if queues
                .iter()
                .all(|(c, q)| q.is_empty() && !self.busy.contains(c))
            {
                return Ok(());
            }
            if self.sim.now() >= deadline {
                return Err(format!("{what}: not done within {within_ms} ms"));
            }
            let next = (self.sim.now() + 5 * MS).min(deadline);
            self.run_until(next)?;
        }
    }

    /// Total over every group server of its persisted Raft state plus its snapshot (the
    /// lab's `RaftStateSize() + SnapshotSize()` summed over all servers).
    pub fn state_bytes(&mut self) -> usize {
        let kind = self.sim.kind();
        let total = (1..kind.first_clerk())
            .map(|i| {
                let durable = self.sim.disk(i).synced.raft.durable();
                let snapshot = durable.snapshot.as_ref().map_or(0, |s| s.data.len());
                raft_state_size(durable) + snapshot
            })
            .sum();
        self.summary.state_bytes = self.summary.state_bytes.max(total);
        total
    }

    /// The lab's `checklogs`: every group server's persisted Raft state within
    /// `8 × maxraftstate`, and no snapshot at all without `maxraftstate`.
    pub fn check_logs(&mut self) -> Result<(), String> {
        let kind = self.sim.kind();
        let max = kind.max_raft_state;
        for i in 1..kind.first_clerk() {
            let durable = self.sim.disk(i).synced.raft.durable();
            let size = raft_state_size(durable);
            self.summary.log_bytes = self.summary.log_bytes.max(size);
            match max {
                Some(m) if size > 8 * m => {
                    return Err(format!(
                        "logs were not trimmed: server n{i} persists {size} bytes of Raft \
                         state > 8 × maxraftstate = {}",
                        8 * m
                    ));
                }
                None if durable
                    .snapshot
                    .as_ref()
                    .is_some_and(|s| !s.data.is_empty()) =>
                {
                    return Err(format!("server n{i} snapshotted with maxraftstate -1"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// True if clerk `c` has an operation in flight.
    pub fn is_busy(&self, c: usize) -> bool {
        self.busy.contains(&c)
    }

    /// Shard of `key`.
    pub fn shard(key: &str) -> ShardId {
        aver_core::shardkv::key2shard(key, 10)
    }

    /// The end of every run: background clerks stop, the network heals, every group
    /// restarts; every operation must return within 20 s; the history must be linearizable.
    fn heal(&mut self) {
        self.stop_workers();
        self.set_reliable(true);
        self.connect_all();
        for g in 0..self.sim.kind().gids.len() {
            self.restart_group(g);
        }
    }

    fn finish(mut self) -> Outcome<Summary> {
        self.heal();
        let all: Vec<usize> = (0..self.workers.len()).collect();
        let done = self.expect_done(&all, 20_000, "every operation returns once all is healed");
        // An acknowledged write missing from every copy is the sharper verdict.
        let groups = self.groups();
        if let Err(v) = invariants::no_lost_write(&groups, &self.acked) {
            return Err(self.failure(v.to_string()));
        }
        if let Err(m) = done {
            return Err(self.failure(m));
        }
        for g in 0..self.checks.len() {
            if let Err(v) = self.checks[g].full(&self.sim) {
                let m = format!("{v} (group {})", self.gid(g));
                return Err(self.failure(m));
            }
        }
        if let Err(m) = self.check_logs() {
            return Err(self.failure(m));
        }
        self.summary.virtual_us = self.sim.now();
        self.summary.events = self.sim.events();
        self.summary.ops = self.history.len();
        let f = self.failure(String::new());
        self.history
            .check_or_fail(&Kv, "kv", Duration::from_secs(30), f)?;
        Ok(self.summary)
    }
}
