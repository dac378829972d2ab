//! The harness of the shard suites: the administrator (a controller clerk on the replicated
//! controller), background clerks, probes with deadlines, crashes of whole groups, of single
//! group servers and of controller servers, partitions inside a group or a controller, and
//! the checks every run ends with.

use super::node::{CTRL_REPLICAS, CtrlRaft, Done, ShardKind};
use crate::shardctrler::lab::{call_of, output_of};
use aver_checker::models::{Kv, ShardCtrl};
use aver_core::NodeId;
use aver_core::raft::LogIndex;
use aver_core::rsm::raft_state_size;
use aver_core::shardctrler::invariants::{balanced, config_agreement};
use aver_core::shardctrler::{Config, CtrlOp, CtrlReply, Gid, ShardCtrler, ShardId};
use aver_core::shardkv::replica::ReplicaConfig;
use aver_core::shardkv::{Bugs, Completed, Op, OpReply, ShardKv, invariants};
use aver_sim::cluster::ClusterCheck;
use aver_sim::history::{Call, History};
use aver_sim::shardctrler::CtrlServerKind;
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
    /// Raft's cluster invariants, one checker per controller service.
    ctrl_checks: Vec<ClusterCheck<ShardKind, CtrlRaft>>,
    /// Per controller service, its administrators' operations (the `shardctrler` model's
    /// history, one client per administrator).
    ctrl_history: Vec<History>,
    /// Per administrator, whether it has an operation in flight, and its last answer until
    /// taken.
    admin_busy: Vec<bool>,
    admin_reply: Vec<Option<CtrlReply>>,
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
    /// Clerk operations finished so far.
    completed: u64,
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
    /// Clerks `0..stale_clerks` ask a second controller service, which only its own
    /// administrator changes (TestRejection5A's `ctl1`); 0: there is one service.
    pub stale_clerks: usize,
    /// Administrators of controller service 0, each its own session (at least 1). With a
    /// second service, administrator 1 is that service's and the others follow it.
    pub admins: usize,
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
            stale_clerks,
            admins,
        } = shape;
        let ctrls = if stale_clerks > 0 { 2 } else { 1 };
        // Administrator `s < ctrls` is service `s`'s first; the others administer service 0.
        let admin_ctrl: Vec<usize> = (0..ctrls)
            .chain(std::iter::repeat_n(0, admins.max(1) - 1))
            .collect();
        let kind = ShardKind {
            shards: 10,
            gids: (0..groups).map(|g| Gid(100 + g as u32)).collect(),
            replicas: REPLICAS,
            max_raft_state,
            bugs,
            ctrl: CtrlServerKind {
                n: CTRL_REPLICAS,
                shards: 10,
                // The lab's controller never snapshots.
                config: ReplicaConfig {
                    max_raft_state: None,
                    pending_max: 1_000,
                },
                bugs,
            },
            ctrls,
            clerk_ctrl: (0..clerks).map(|c| usize::from(c < stale_clerks)).collect(),
            admin_ctrl,
        };
        let (n, first_admin) = (kind.nodes(), kind.admin_node(0));
        let mut sim = Sim::new(kind, n, seed);
        for a in 0..n {
            for b in 0..n {
                sim.net_mut().enabled[a][b] = a != b;
            }
        }
        let checks = (0..groups)
            .map(|g| ClusterCheck::of_servers(&sim, sim.kind().group_nodes(g).collect()))
            .collect();
        let ctrl_checks = (0..ctrls)
            .map(|s| ClusterCheck::of_servers(&sim, sim.kind().ctrl_nodes(s).collect()))
            .collect();
        Run {
            sim,
            checks,
            ctrl_checks,
            ctrl_history: (0..ctrls).map(|_| History::new()).collect(),
            admin_busy: vec![false; n - first_admin],
            admin_reply: vec![None; n - first_admin],
            committed: vec![None; groups],
            history: History::new(),
            test,
            seed,
            bugs,
            workers: (0..clerks).map(|_| None).collect(),
            busy: BTreeSet::new(),
            issued: 0,
            completed: 0,
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

    /// Group `gs`'s (by index) gids and servers, as a Join names them.
    fn join_map(&self, gs: &[usize]) -> std::collections::BTreeMap<Gid, Vec<NodeId>> {
        gs.iter()
            .map(|&g| {
                let servers = self.sim.kind().group_nodes(g);
                (self.gid(g), servers.map(|i| NodeId(i as u32)).collect())
            })
            .collect()
    }

    /// Administrator `a` starts `op` (it must be idle); the call is recorded in its
    /// controller service's history. Administrator `s` for `s` below the number of services
    /// is service `s`'s first; further ones administer service 0 ([`Shape::admins`]).
    pub fn admin_start(&mut self, a: usize, op: CtrlOp) -> Result<(), String> {
        if self.admin_busy[a] {
            return Err(format!(
                "administrator {a} already has an operation in flight"
            ));
        }
        let kind = self.sim.kind();
        let (node, s) = (kind.admin_node(a), kind.admin_ctrl[a]);
        self.ctrl_history[s].call(node as u64, self.sim.now(), call_of(&op));
        if self.sim.input(node, |n| n.admin(op)) != Some(true) {
            return Err(format!("administrator {a} refused an operation"));
        }
        self.admin_busy[a] = true;
        Ok(())
    }

    /// True while administrator `a` waits for an answer.
    pub fn admin_is_busy(&self, a: usize) -> bool {
        self.admin_busy[a]
    }

    /// Takes administrator `a`'s last answer, if it has one.
    pub fn admin_take(&mut self, a: usize) -> Option<CtrlReply> {
        self.admin_reply[a].take()
    }

    /// Number of administrators.
    pub fn admins(&self) -> usize {
        self.admin_busy.len()
    }

    /// Clerk operations finished so far.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Runs until administrator `a` has its answer, failing after `within_ms`.
    pub fn admin_wait(&mut self, a: usize, within_ms: u64) -> Result<CtrlReply, String> {
        let deadline = self.sim.now() + within_ms * MS;
        while self.admin_busy[a] {
            if self.sim.now() >= deadline {
                return Err(format!(
                    "the controller did not answer administrator {a} within {within_ms} ms"
                ));
            }
            let next = (self.sim.now() + 5 * MS).min(deadline);
            self.run_until(next)?;
        }
        self.admin_reply[a]
            .take()
            .ok_or_else(|| format!("administrator {a} has no answer"))
    }

    /// Administrator `a` runs `op` to completion (the lab's clerk calls block too): within
    /// 10 s, time for elections and retries.
    pub fn admin(&mut self, a: usize, op: CtrlOp) -> Result<CtrlReply, String> {
        self.admin_start(a, op)?;
        self.admin_wait(a, 10_000)
    }

    /// Administrator `a` runs `op`, which must make a configuration; its number.
    fn change(&mut self, a: usize, op: CtrlOp) -> Result<u64, String> {
        let what = format!("{op:?}");
        match self.admin(a, op)? {
            CtrlReply::Done(n) => Ok(n.0),
            other => Err(format!("{what} returned {other:?}")),
        }
    }

    /// Joins groups `gs` (by index) in one request to the controller; the new
    /// configuration's number.
    pub fn join(&mut self, gs: &[usize]) -> Result<u64, String> {
        self.join_on(0, gs)
    }

    /// Joins groups `gs` in one request of administrator `a`.
    pub fn join_on(&mut self, a: usize, gs: &[usize]) -> Result<u64, String> {
        let map = self.join_map(gs);
        self.change(a, CtrlOp::Join(map))
    }

    /// Groups `gs` leave in one request; the new configuration's number.
    pub fn leave(&mut self, gs: &[usize]) -> Result<u64, String> {
        self.change(0, CtrlOp::Leave(self.leave_set(gs)))
    }

    fn leave_set(&self, gs: &[usize]) -> std::collections::BTreeSet<Gid> {
        gs.iter().map(|&g| self.gid(g)).collect()
    }

    /// The operation that joins groups `gs` (for [`Run::admin_start`]).
    pub fn join_op(&self, gs: &[usize]) -> CtrlOp {
        CtrlOp::Join(self.join_map(gs))
    }

    /// The operation by which groups `gs` leave (for [`Run::admin_start`]).
    pub fn leave_op(&self, gs: &[usize]) -> CtrlOp {
        CtrlOp::Leave(self.leave_set(gs))
    }

    /// `Query(num)` (`None`: the latest, reflecting every finished Join and Leave) through
    /// administrator `a`.
    pub fn query(&mut self, a: usize, num: Option<u64>) -> Result<Config, String> {
        let op = CtrlOp::Query(num.map(aver_core::shardctrler::ConfigNum));
        match self.admin(a, op)? {
            CtrlReply::Config(c) => Ok(c),
            other => Err(format!("Query({num:?}) returned {other:?}")),
        }
    }

    /// The most advanced applied state of any running server of controller service 0 (the
    /// harness's own view; operations the administrator finished are applied on the leader).
    pub fn ctrl_state(&self) -> &ShardCtrler {
        let nodes = self.sim.kind().ctrl_nodes(0);
        nodes
            .filter_map(|i| self.sim.node(i)?.ctrl())
            .max_by_key(|c| c.latest().num)
            .expect("a controller server is up")
    }

    /// The controller's latest owner of `key`'s shard (`None`: unassigned).
    pub fn owner_of(&self, key: &str) -> Option<usize> {
        let shard = aver_core::shardkv::key2shard(key, 10);
        let gid = self.ctrl_state().latest().owner(shard);
        self.sim.kind().gids.iter().position(|g| *g == gid)
    }

    /// The controller's latest configuration number.
    pub fn config_num(&self) -> u64 {
        self.ctrl_state().latest().num.0
    }

    /// True if a running server of group `g` has applied configuration `num` and holds no
    /// shard in migration (its part of reconfiguration `num` is done).
    pub fn group_settled(&self, g: usize, num: u64) -> bool {
        let nodes = self.sim.kind().group_nodes(g);
        nodes
            .filter_map(|i| self.sim.node(i)?.group())
            .any(|k| k.num().0 == num && k.can_reconfigure())
    }

    /// True if a running server of group `g` has finished its part of reconfiguration
    /// `num`: it is past configuration `num`, or in it with no shard in migration.
    pub fn group_past(&self, g: usize, num: u64) -> bool {
        let nodes = self.sim.kind().group_nodes(g);
        nodes
            .filter_map(|i| self.sim.node(i)?.group())
            .any(|k| k.num().0 > num || (k.num().0 == num && k.can_reconfigure()))
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
        (self.sim.kind().group_servers())
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
        self.restart_node(self.sim.kind().group_nodes(g).start + r);
    }

    /// Restarts `node` from its disk (if down).
    fn restart_node(&mut self, node: usize) {
        if !self.sim.is_up(node) {
            self.sim.start(node);
        }
    }

    /// The server (by position in its group) that leads group `g` in the highest term, if
    /// one is up and believes it leads.
    pub fn leader(&self, g: usize) -> Option<usize> {
        self.leader_in(self.sim.kind().group_nodes(g))
    }

    /// The server (by position in `nodes`, one group or controller service) that leads in
    /// the highest term, if one is up and believes it leads.
    fn leader_in(&self, nodes: std::ops::Range<usize>) -> Option<usize> {
        let first = nodes.start;
        nodes
            .filter_map(|i| {
                let (term, leading) = self.sim.node(i)?.raft_role()?;
                leading.then_some((term, i - first))
            })
            .max()
            .map(|(_, r)| r)
    }

    /// Crashes server `r` of controller service `s` (if up); its disk stays.
    pub fn crash_ctrl(&mut self, s: usize, r: usize) {
        let node = self.sim.kind().ctrl_nodes(s).start + r;
        self.sim.crash(node);
    }

    /// Restarts server `r` of controller service `s` from its disk (if down).
    pub fn restart_ctrl(&mut self, s: usize, r: usize) {
        self.restart_node(self.sim.kind().ctrl_nodes(s).start + r);
    }

    /// The server (by position) that leads controller service `s` in the highest term, if
    /// one is up and believes it leads.
    pub fn ctrl_leader(&self, s: usize) -> Option<usize> {
        self.leader_in(self.sim.kind().ctrl_nodes(s))
    }

    /// Cuts server `r` of controller service `s` off from the service's other servers (both
    /// ways); groups, clerks and the administrator still reach it, and it answers their
    /// queries from its stale state.
    pub fn isolate_ctrl(&mut self, s: usize, r: usize) {
        let nodes = self.sim.kind().ctrl_nodes(s);
        self.cut_off(nodes, r);
    }

    fn cut_off(&mut self, nodes: std::ops::Range<usize>, r: usize) {
        let node = nodes.start + r;
        for peer in nodes.filter(|&p| p != node) {
            self.sim.net_mut().enabled[node][peer] = false;
            self.sim.net_mut().enabled[peer][node] = false;
        }
    }

    /// Cuts server `r` of group `g` off from the other servers of its group (both ways); it
    /// still reaches clerks, the controller and other groups, so a deposed leader keeps
    /// answering them from its stale state.
    pub fn isolate_server(&mut self, g: usize, r: usize) {
        let nodes = self.sim.kind().group_nodes(g);
        self.cut_off(nodes, r);
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
        self.run_until_or(until, |_| false).map(|_| ())
    }

    /// [`Run::run_until`], stopping early after the first event when `stop` holds; true if
    /// it did.
    fn run_until_or(
        &mut self,
        until: Micros,
        mut stop: impl FnMut(&Run) -> bool,
    ) -> Result<bool, String> {
        while let Some(p) = self.sim.step(until) {
            match p {
                Processed::Wake(node) => {
                    let c = node - self.sim.kind().first_clerk();
                    if !self.busy.contains(&c) {
                        self.next_op(c);
                    }
                }
                Processed::Node(n) => {
                    self.collect();
                    if let Some(g) = self.sim.kind().group_of(n) {
                        self.checks[g]
                            .after_event(&self.sim)
                            .map_err(|v| format!("{v} (group {})", self.gid(g)))?;
                        self.single_owner()?;
                    } else if let Some(s) = self.sim.kind().ctrl_of(n) {
                        self.ctrl_checks[s]
                            .after_event(&self.sim)
                            .map_err(|v| format!("{v} (controller service {s})"))?;
                    }
                }
                Processed::Nothing => self.collect(),
            }
            if stop(self) {
                return Ok(true);
            }
        }
        match self.sim.halt() {
            Some(h) => Err(h.to_string()),
            None => Ok(false),
        }
    }

    /// The last log index of server `r` of controller service `s` (0 if it is down).
    pub fn ctrl_last_index(&self, s: usize, r: usize) -> u64 {
        let node = self.sim.kind().ctrl_nodes(s).start + r;
        let replica = self.sim.node(node).and_then(|n| n.ctrl_replica());
        replica.map_or(0, |c| c.raft().log().last_index().0)
    }

    /// Runs, one event at a time, until server `r` of controller service `s` holds a log
    /// entry past `index` (for a leader: it has appended a proposal, and sent it to its
    /// followers in the same step), at most `within_ms`; true if it does.
    pub fn await_ctrl_appended(
        &mut self,
        s: usize,
        r: usize,
        index: u64,
        within_ms: u64,
    ) -> Result<bool, String> {
        let until = self.sim.now() + within_ms * MS;
        let reached = |run: &Run| run.ctrl_last_index(s, r) > index;
        if reached(self) {
            return Ok(true);
        }
        self.run_until_or(until, reached)
    }

    fn collect(&mut self) {
        for a in self.sim.take_applied() {
            let Completed { reply, op, .. } = match a.apply {
                Done::Op(done) => done,
                Done::Admin(done) => {
                    let admin = a.node - self.sim.kind().admin_node(0);
                    let s = self.sim.kind().admin_ctrl[admin];
                    let out = output_of(&done.reply);
                    self.ctrl_history[s].ret(a.node as u64, self.sim.now(), out);
                    self.admin_busy[admin] = false;
                    self.admin_reply[admin] = Some(done.reply);
                    continue;
                }
            };
            let c = a.node - self.sim.kind().first_clerk();
            self.completed += 1;
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
        let total = (kind.group_servers())
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
        for i in kind.group_servers() {
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

    /// The end of every run: background clerks stop, the network heals, every group and
    /// controller server restarts; every operation must return within 20 s; the history must
    /// be linearizable.
    fn heal(&mut self) {
        self.stop_workers();
        self.set_reliable(true);
        self.connect_all();
        for g in 0..self.sim.kind().gids.len() {
            self.restart_group(g);
        }
        for s in 0..self.sim.kind().ctrls {
            for r in 0..CTRL_REPLICAS {
                self.restart_ctrl(s, r);
            }
        }
    }

    /// The controller's own end checks, per service: Raft's invariants from scratch, the
    /// administrator's history against the `shardctrler` model, SHARD-5 (replicas agree on
    /// every configuration they both hold) and SHARD-6 (every configuration balanced, minimal
    /// moves) over every server.
    fn finish_ctrl(&mut self) -> Result<(), Failure> {
        for s in 0..self.ctrl_checks.len() {
            if let Err(v) = self.ctrl_checks[s].full(&self.sim) {
                return Err(self.failure(format!("{v} (controller service {s})")));
            }
            let f = self.failure(String::new());
            let model = ShardCtrl { shards: 10 };
            self.ctrl_history[s].check_or_fail(
                &model,
                "shardctrler",
                Duration::from_secs(30),
                f,
            )?;
            let replicas: Vec<&ShardCtrler> = (self.sim.kind().ctrl_nodes(s))
                .filter_map(|i| self.sim.node(i)?.ctrl())
                .collect();
            let agreed = config_agreement(&replicas)
                .and_then(|()| replicas.iter().try_for_each(|r| balanced(r)));
            if let Err(v) = agreed {
                return Err(self.failure(format!("{v} (controller service {s})")));
            }
        }
        Ok(())
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
        self.finish_ctrl()?;
        self.summary.virtual_us = self.sim.now();
        self.summary.events = self.sim.events();
        self.summary.ops = self.history.len();
        let f = self.failure(String::new());
        self.history
            .check_or_fail(&Kv, "kv", Duration::from_secs(30), f)?;
        Ok(self.summary)
    }
}
