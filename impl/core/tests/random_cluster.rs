//! Randomized cluster schedules against the Raft core alone (no simulator, no model checker):
//! a pool of in-flight messages that may be delivered in any order, duplicated or lost,
//! timeouts at any moment, crashes that keep only what was persisted, proposals and service
//! snapshots. After every step: every cluster invariant (`check_cluster`, RAFT-1..RAFT-10) and
//! the lab appliers' checks (RAFT-A1 order without gaps, RAFT-A2 agreement).
//!
//! Failures shrink to a short schedule (proptest), printed as the list of steps.

use aver_core::NodeId;
use aver_core::raft::{
    Apply, Bug, Bugs, Config, Durable, LogIndex, Message, Raft, Timer, invariants,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug)]
enum Step {
    Deliver(usize),
    Duplicate(usize),
    Drop(usize),
    Election(usize),
    Heartbeat(usize),
    Propose(usize, u8),
    Snapshot(usize),
    Crash(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => any::<usize>().prop_map(Step::Deliver),
        1 => any::<usize>().prop_map(Step::Duplicate),
        1 => any::<usize>().prop_map(Step::Drop),
        1 => any::<usize>().prop_map(Step::Election),
        2 => any::<usize>().prop_map(Step::Heartbeat),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(n, v)| Step::Propose(n, v)),
        1 => any::<usize>().prop_map(Step::Snapshot),
        1 => any::<usize>().prop_map(Step::Crash),
    ]
}

struct Cluster {
    nodes: Vec<Raft<u8>>,
    disks: Vec<Durable<u8>>,
    pool: Vec<(NodeId, NodeId, Message<u8>)>,
    /// Per node: the applied sequence as (index, value); a snapshot resets it to the prefix.
    applied: Vec<Vec<u8>>,
    applied_upto: Vec<u64>,
    /// RAFT-A2: the value every server applied at each index.
    chosen: BTreeMap<u64, u8>,
}

impl Cluster {
    fn new(n: u32) -> Cluster {
        Cluster::with_bugs(n, Bugs::NONE)
    }

    fn with_bugs(n: u32, bugs: Bugs) -> Cluster {
        let voters: Vec<NodeId> = (0..n).map(NodeId).collect();
        let mut c = Cluster {
            nodes: Vec::new(),
            disks: vec![Durable::default(); n as usize],
            pool: Vec::new(),
            applied: vec![Vec::new(); n as usize],
            applied_upto: vec![0; n as usize],
            chosen: BTreeMap::new(),
        };
        for &id in &voters {
            let config = Config {
                bugs,
                ..Config::new(id, voters.clone())
            };
            c.nodes.push(Raft::new(config, Durable::default()));
        }
        for i in 0..n as usize {
            c.drain(i);
        }
        c
    }

    fn drain(&mut self, i: usize) {
        let ready = self.nodes[i].take_ready();
        self.disks[i].apply_all(&ready.persist);
        for (to, m) in ready.messages {
            self.pool.push((self.nodes[i].id(), to, m));
        }
        for a in ready.apply {
            match a {
                Apply::Entry { index, command, .. } => {
                    assert_eq!(
                        index.0,
                        self.applied_upto[i] + 1,
                        "RAFT-A1: n{i} applied out of order"
                    );
                    self.applied_upto[i] = index.0;
                    self.applied[i].push(command);
                    let prev = *self.chosen.entry(index.0).or_insert(command);
                    assert_eq!(
                        prev, command,
                        "RAFT-A2: n{i} applied a different value at {index}"
                    );
                }
                Apply::Snapshot(s) => {
                    // The service state in this test is the applied sequence itself.
                    let values: Vec<u8> = s.data.to_vec();
                    assert_eq!(
                        values.len() as u64,
                        s.meta.index.0,
                        "snapshot covers its index"
                    );
                    for (k, v) in values.iter().enumerate() {
                        let prev = *self.chosen.entry(k as u64 + 1).or_insert(*v);
                        assert_eq!(prev, *v, "RAFT-A2: snapshot disagrees at i{}", k + 1);
                    }
                    self.applied[i] = values;
                    self.applied_upto[i] = s.meta.index.0;
                }
            }
        }
    }

    fn run(&mut self, s: &Step) {
        let n = self.nodes.len();
        let pick = |k: usize, len: usize| k % len;
        match *s {
            Step::Deliver(k) | Step::Duplicate(k) | Step::Drop(k) if self.pool.is_empty() => {
                let _ = k;
            }
            Step::Deliver(k) => {
                let (from, to, m) = self.pool.swap_remove(pick(k, self.pool.len()));
                let j = to.0 as usize;
                self.nodes[j].on_message(from, m);
                self.drain(j);
            }
            Step::Duplicate(k) => {
                let (from, to, m) = self.pool[pick(k, self.pool.len())].clone();
                let j = to.0 as usize;
                self.nodes[j].on_message(from, m);
                self.drain(j);
            }
            Step::Drop(k) => {
                self.pool.swap_remove(pick(k, self.pool.len()));
            }
            Step::Election(k) => {
                let i = pick(k, n);
                self.nodes[i].on_timeout(Timer::Election);
                self.drain(i);
            }
            Step::Heartbeat(k) => {
                let i = pick(k, n);
                self.nodes[i].on_timeout(Timer::Heartbeat);
                self.drain(i);
            }
            Step::Propose(k, v) => {
                let i = pick(k, n);
                let _ = self.nodes[i].propose(v);
                self.drain(i);
            }
            Step::Snapshot(k) => {
                let i = pick(k, n);
                let upto = self.applied_upto[i];
                let data: Arc<[u8]> = Arc::from(&self.applied[i][..]);
                self.nodes[i].snapshot(LogIndex(upto), data);
                self.drain(i);
            }
            Step::Crash(k) => {
                let i = pick(k, n);
                let config = self.nodes[i].config().clone();
                self.nodes[i] = Raft::new(config, self.disks[i].clone());
                self.applied[i].clear();
                self.applied_upto[i] = 0;
                self.drain(i);
            }
        }
        let refs: Vec<&Raft<u8>> = self.nodes.iter().collect();
        if let Err(v) = invariants::check_cluster(&refs) {
            panic!("{v}");
        }
        for (node, disk) in self.nodes.iter().zip(&self.disks) {
            if let Err(v) = invariants::persisted_state(node, disk) {
                panic!("{v}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// RAFT-1..RAFT-10, RAFT-A1, RAFT-A2 under arbitrary delivery, loss, duplication, timeouts,
    /// crashes, proposals and snapshots, on 3 and 5 servers.
    #[test]
    fn random_schedules_keep_every_invariant(
        servers in prop_oneof![Just(3u32), Just(5u32)],
        steps in proptest::collection::vec(step(), 1..400),
    ) {
        let mut c = Cluster::new(servers);
        for s in &steps {
            c.run(s);
        }
    }
}

/// The random schedules must reach the interesting states, or the test above proves little:
/// with a fixed schedule shape, some run elects a leader, commits, and installs a snapshot.
#[test]
fn random_schedules_reach_commits_and_snapshots() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config as RunnerConfig, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let (mut leaders, mut commits, mut snapshots) = (0, 0, 0);
    for _ in 0..200 {
        let steps = proptest::collection::vec(step(), 300)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut c = Cluster::new(3);
        for s in &steps {
            c.run(s);
        }
        leaders += c.nodes.iter().any(|n| n.term().0 > 0 && n.is_leader()) as u32;
        commits += c.nodes.iter().any(|n| n.commit_index().0 > 0) as u32;
        snapshots += c.nodes.iter().any(|n| n.log().base().index.0 > 0) as u32;
    }
    eprintln!("of 200 runs: leaders {leaders} commits {commits} snapshots {snapshots}");
    assert!(
        leaders > 20 && commits > 20 && snapshots > 5,
        "leaders {leaders} commits {commits} snapshots {snapshots}"
    );
}

/// The invariants are not vacuous: with a seeded bug switched on, random schedules violate one.
/// Returns how many of `runs` schedules of `len` steps on 3 servers failed.
fn failures_with(bug: Bug, runs: usize, len: usize) -> usize {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(RunnerConfig::default(), rng);
    let mut failed = 0;
    for _ in 0..runs {
        let steps = proptest::collection::vec(step(), len)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let result = std::panic::catch_unwind(|| {
            let mut c = Cluster::with_bugs(3, Bugs::only(bug));
            for s in &steps {
                c.run(s);
            }
        });
        failed += result.is_err() as usize;
    }
    failed
}

/// Random schedules find 8 of the 10 seeded bugs within 300 runs of 300 steps (counts are
/// deterministic: the schedule RNG is seeded). `up-to-date-by-length` and
/// `install-old-snapshot` need precise interleavings that uniform random choice (almost) never
/// produces; the exhaustive model check finds them (models/, specs/bugs.md).
#[test]
fn seeded_bugs_are_caught_by_random_schedules() {
    std::panic::set_hook(Box::new(|_| {}));
    let report: Vec<(Bug, usize)> = Bug::ALL
        .iter()
        .map(|&b| (b, failures_with(b, 300, 300)))
        .collect();
    let _ = std::panic::take_hook();
    eprintln!("failing runs of 300 per bug: {report:?}");
    for (bug, failed) in report {
        let needs_model = matches!(bug, Bug::UpToDateByLength | Bug::InstallOldSnapshot);
        assert!(
            needs_model || failed > 0,
            "random schedules never caught {bug}"
        );
    }
}
