//! Unit scenarios of the rsm on a tiny in-memory Raft cluster (FIFO delivery unless a test
//! cuts a server off), with the lab's counter state machine.

use super::*;
use crate::codec::{Decode, Encode};
use crate::raft::{self, Config, Durable, Message, Raft, Timer};
use std::collections::VecDeque;

/// The lab's rsm test service: `Inc` adds one and answers the new value; `Null` answers
/// nothing; `Dec` must never execute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Counter {
    n: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Op {
    Inc,
    Null,
    Dec,
}

impl Encode for Op {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(match self {
            Op::Inc => 0,
            Op::Null => 1,
            Op::Dec => 2,
        });
    }
}

impl StateMachine for Counter {
    type Command = Op;
    type Query = ();
    type Output = u64;

    fn apply(&mut self, _: LogIndex, command: &Op) -> u64 {
        match command {
            Op::Inc => self.n += 1,
            Op::Null => {}
            Op::Dec => panic!("Dec executed"),
        }
        self.n
    }
    fn query(&self, _: &()) -> u64 {
        self.n
    }
    fn snapshot(&self) -> Vec<u8> {
        self.n.to_bytes()
    }
    fn restore(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        self.n = u64::from_bytes(data)?;
        Ok(())
    }
}

type Node = Rsm<Counter, Raft<RsmEntry<Op>>, u32>;
type Msg = Message<RsmEntry<Op>>;

struct Cluster {
    config: RsmConfig,
    nodes: Vec<Node>,
    disks: Vec<Durable<RsmEntry<Op>>>,
    outputs: Vec<Vec<RsmOutput<u32, u64>>>,
    queue: VecDeque<(NodeId, NodeId, Msg)>,
    cut: Vec<bool>,
}

impl Cluster {
    fn new(n: u32, config: RsmConfig) -> Cluster {
        let mut c = Cluster {
            config,
            nodes: Vec::new(),
            disks: vec![Durable::default(); n as usize],
            outputs: vec![Vec::new(); n as usize],
            queue: VecDeque::new(),
            cut: vec![false; n as usize],
        };
        for i in 0..n as usize {
            let node = c.start(i);
            c.nodes.push(node);
            c.drain(i);
        }
        c
    }

    fn start(&self, i: usize) -> Node {
        let voters: Vec<NodeId> = (0..self.disks.len() as u32).map(NodeId).collect();
        let raft = Raft::new(Config::new(NodeId(i as u32), voters), self.disks[i].clone());
        Rsm::new(self.config.clone(), raft, Counter::default())
    }

    fn drain(&mut self, i: usize) {
        let ready = self.nodes[i].take_ready();
        self.disks[i].apply_all(&ready.persist);
        for (to, m) in ready.messages {
            self.queue.push_back((NodeId(i as u32), to, m));
        }
        self.outputs[i].extend(ready.apply);
        assert_eq!(self.nodes[i].violation(), None);
    }

    fn timeout(&mut self, i: usize, t: Timer) {
        self.nodes[i].on_timeout(t);
        self.drain(i);
    }

    fn deliver_all(&mut self) {
        while let Some((from, to, m)) = self.queue.pop_front() {
            let (f, t) = (from.0 as usize, to.0 as usize);
            if self.cut[f] || self.cut[t] {
                continue;
            }
            self.nodes[t].on_message(from, m);
            self.drain(t);
        }
    }

    fn heartbeat(&mut self, leader: usize) {
        self.timeout(leader, Timer::Heartbeat);
        self.deliver_all();
    }

    fn elect(&mut self, i: usize) {
        self.timeout(i, Timer::Election);
        self.deliver_all();
        assert!(self.nodes[i].engine().is_leader());
    }

    fn submit(&mut self, i: usize, tag: u32, op: Op) -> Result<(LogIndex, Term), Refused> {
        let r = self.nodes[i].submit(tag, op);
        self.drain(i);
        r
    }

    /// The answers node `i` gave to tagged requests, in order.
    fn answers(&self, i: usize) -> Vec<(u32, Option<u64>)> {
        self.outputs[i]
            .iter()
            .filter_map(|o| match o {
                RsmOutput::Done { tag, output } => Some((*tag, Some(*output))),
                RsmOutput::Failed { tag } => Some((*tag, None)),
                _ => None,
            })
            .collect()
    }

    fn restart(&mut self, i: usize) {
        self.nodes[i] = self.start(i);
        self.outputs[i].clear();
        self.drain(i);
    }
}

/// TestBasic4A in miniature: sequential submissions are answered with the counter's value,
/// on the leader only, after every server applied them.
#[test]
fn submissions_are_answered_after_apply() {
    let mut c = Cluster::new(3, RsmConfig::default());
    c.elect(0);
    assert!(matches!(
        c.submit(1, 9, Op::Inc),
        Err(Refused::NotLeader { .. })
    ));
    for k in 1..=3 {
        c.submit(0, k, Op::Inc).unwrap();
        assert_eq!(c.answers(0).len(), k as usize - 1, "not before commit");
        c.deliver_all();
    }
    c.submit(0, 4, Op::Null).unwrap();
    c.deliver_all();
    c.heartbeat(0);
    let answers = vec![(1, Some(1)), (2, Some(2)), (3, Some(3)), (4, Some(3))];
    assert_eq!(c.answers(0), answers);
    for i in 0..3 {
        assert_eq!(c.nodes[i].machine().n, 3);
    }
}

/// TestLeaderPartition4A in miniature: a leader cut off keeps its submissions open; once it
/// hears of the new term they fail, and the entry at their index is another one — which the
/// seeded bug `accept_other_entry` would answer as success with the wrong output.
#[test]
fn submissions_fail_on_leader_change_and_on_another_entry() {
    for bug in [false, true] {
        let config = RsmConfig {
            accept_other_entry: bug,
            ..RsmConfig::default()
        };
        let mut c = Cluster::new(3, config);
        c.elect(0);
        c.cut[0] = true;
        let (index, _) = c.submit(0, 1, Op::Dec).unwrap(); // must never execute
        c.elect(1);
        c.submit(1, 2, Op::Inc).unwrap();
        c.deliver_all();
        c.heartbeat(1);
        assert_eq!(c.answers(1), vec![(2, Some(1))]);
        assert!(c.answers(0).is_empty(), "the minority leader waits");
        // Node 0 learns the new term from a heartbeat only when it applies the entry at its
        // index in the same step (a follower's Raft adopts the term before it applies).
        c.cut[0] = false;
        c.heartbeat(1);
        c.heartbeat(1);
        let answers = c.answers(0);
        assert_eq!(c.nodes[0].applied_index(), index);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0] == (1, Some(1)), bug, "{answers:?}");
    }
}

/// TestSnapshot4C in miniature: the rsm snapshots once the Raft state exceeds
/// `max_raft_state`, keeps it bounded, and a restart restores from snapshot + log tail.
#[test]
fn snapshots_bound_the_log_and_restore_on_restart() {
    let config = RsmConfig {
        max_raft_state: Some(40),
        ..RsmConfig::default()
    };
    let mut c = Cluster::new(3, config);
    c.elect(0);
    for k in 0..50 {
        c.submit(0, k, Op::Inc).unwrap();
        c.deliver_all();
        for d in &c.disks {
            assert!(raft_state_size(d) <= 80, "{}", raft_state_size(d));
        }
        for n in &c.nodes {
            assert_eq!(n.state_size(), n.engine().state_size(), "tracked vs walked");
        }
    }
    c.heartbeat(0);
    assert!(c.disks.iter().all(|d| d.snapshot.is_some()));
    for i in 0..3 {
        c.restart(i);
    }
    c.elect(1);
    c.submit(1, 100, Op::Inc).unwrap();
    c.deliver_all();
    c.heartbeat(1);
    assert_eq!(c.answers(1), vec![(100, Some(51))]);
    assert!((0..3).all(|i| c.nodes[i].machine().n == 51));
}

/// ReadIndex: a new leader proposes a no-op; a read is answered from the state machine once
/// confirmed, without a log entry of its own; a deposed leader's read fails.
#[test]
fn read_index_reads_without_log_entries() {
    let config = RsmConfig {
        reads: ReadMode::ReadIndex,
        ..RsmConfig::default()
    };
    let mut c = Cluster::new(3, config);
    c.elect(0);
    c.submit(0, 1, Op::Inc).unwrap();
    c.deliver_all();
    let last = c.nodes[0].engine().log().last_index();
    c.nodes[0].read(2, ()).unwrap();
    c.drain(0);
    c.deliver_all();
    assert_eq!(c.answers(0), vec![(1, Some(1)), (2, Some(1))]);
    assert_eq!(
        c.nodes[0].engine().log().last_index(),
        last,
        "no entry for the read"
    );
    assert_eq!(last, LogIndex(2), "the no-op and the Inc");
    c.cut[0] = true;
    c.nodes[0].read(3, ()).unwrap();
    c.drain(0);
    c.elect(1);
    c.cut[0] = false;
    c.heartbeat(1);
    assert_eq!(c.answers(0).last(), Some(&(3, None)));
}

#[test]
fn raft_state_size_counts_hard_state_and_entries() {
    let mut d = Durable::<RsmEntry<Op>>::default();
    assert_eq!(raft_state_size(&d), 5);
    d.apply(&raft::PersistOp::Append {
        first: LogIndex(1),
        entries: vec![raft::Entry {
            term: Term(1),
            command: RsmEntry::Command(Op::Inc),
        }],
    });
    assert_eq!(raft_state_size(&d), 5 + 3);
}

/// One storage operation for [`tracked_size_equals_the_full_walk`], made valid for the log it
/// is applied to (Raft only truncates above the snapshot and appends at the end; snapshots may
/// match a held entry, or not and discard the log).
#[derive(Clone, Debug)]
enum OpSpec {
    Hard(u64, Option<u32>),
    Append(Vec<(u64, String)>),
    Truncate(u64),
    Snapshot(u64, Option<u64>),
}

fn op_spec() -> impl proptest::strategy::Strategy<Value = OpSpec> {
    use proptest::prelude::*;
    let text = proptest::string::string_regex("[a-z]{0,200}").unwrap();
    prop_oneof![
        (any::<u64>(), proptest::option::of(0u32..300)).prop_map(|(t, v)| OpSpec::Hard(t, v)),
        proptest::collection::vec((0u64..1 << 20, text), 0..6).prop_map(OpSpec::Append),
        any::<u64>().prop_map(OpSpec::Truncate),
        (any::<u64>(), proptest::option::of(0u64..1 << 20))
            .prop_map(|(i, t)| OpSpec::Snapshot(i, t)),
    ]
}

fn make_op(d: &Durable<String>, spec: OpSpec) -> Option<raft::PersistOp<String>> {
    let (base, last) = (d.log.base().index.0, d.log.last_index().0);
    Some(match spec {
        OpSpec::Hard(term, vote) => raft::PersistOp::HardState(raft::HardState {
            term: Term(term),
            voted_for: vote.map(NodeId),
        }),
        OpSpec::Append(entries) => raft::PersistOp::Append {
            first: LogIndex(last + 1),
            entries: entries
                .into_iter()
                .map(|(term, command)| raft::Entry {
                    term: Term(term),
                    command,
                })
                .collect(),
        },
        OpSpec::Truncate(k) if last > base => {
            raft::PersistOp::Truncate(LogIndex(base + 1 + k % (last - base)))
        }
        OpSpec::Truncate(_) => return None,
        OpSpec::Snapshot(k, term) => {
            let index = LogIndex(base + k % (last - base + 3));
            let term = term.map(Term).or(d.log.term_at(index)).unwrap_or(Term(1));
            let meta = raft::SnapshotMeta { index, term };
            raft::PersistOp::Snapshot(raft::Snapshot {
                meta,
                data: Arc::from(&b"s"[..]),
            })
        }
    })
}

proptest::proptest! {
    /// The rsm's incremental size (`RaftStateSize`, what decides when to snapshot) equals
    /// `raft_state_size`'s walk of the durable state after any sequence of hard-state writes,
    /// appends, truncations and snapshots (kept suffix or discarded log), starting from a
    /// measured non-empty state as a restarted server does.
    #[test]
    fn tracked_size_equals_the_full_walk(
        start in proptest::collection::vec(op_spec(), 0..8),
        ops in proptest::collection::vec(op_spec(), 1..60),
    ) {
        let mut d = Durable::<String>::default();
        for spec in start {
            if let Some(op) = make_op(&d, spec) {
                d.apply(&op);
            }
        }
        let mut size = RaftStateSize::of(&d);
        proptest::prop_assert_eq!(size.bytes(), raft_state_size(&d));
        for spec in ops {
            let Some(op) = make_op(&d, spec) else { continue };
            d.apply(&op);
            size.apply(&op);
            proptest::prop_assert_eq!(size.bytes(), raft_state_size(&d), "after {:?}", op);
        }
    }
}
