//! Unit scenarios on a tiny in-memory cluster: messages are delivered in FIFO order unless a
//! test drops them; "crash" rebuilds a server from the durable state its outputs produced.

use super::*;
use crate::contract::NodeId;
use std::collections::VecDeque;

struct Cluster {
    nodes: Vec<Raft<u32>>,
    disks: Vec<Durable<u32>>,
    applied: Vec<Vec<(LogIndex, u32)>>,
    queue: VecDeque<(NodeId, NodeId, Message<u32>)>,
    down: Vec<bool>,
    /// Every message ever sent, in order.
    sent: Vec<(NodeId, NodeId, Message<u32>)>,
}

impl Cluster {
    fn new(n: u32) -> Cluster {
        let voters: Vec<NodeId> = (0..n).map(NodeId).collect();
        let nodes = voters
            .iter()
            .map(|&id| Raft::new(Config::new(id, voters.clone()), Durable::default()))
            .collect();
        let mut c = Cluster {
            nodes,
            disks: vec![Durable::default(); n as usize],
            applied: vec![Vec::new(); n as usize],
            queue: VecDeque::new(),
            down: vec![false; n as usize],
            sent: Vec::new(),
        };
        for i in 0..n as usize {
            c.drain(i);
        }
        c
    }

    fn drain(&mut self, i: usize) {
        let ready = self.nodes[i].take_ready();
        self.disks[i].apply_all(&ready.persist);
        for (to, m) in ready.messages {
            self.sent.push((self.nodes[i].id(), to, m.clone()));
            self.queue.push_back((self.nodes[i].id(), to, m));
        }
        for a in ready.apply {
            match a {
                Apply::Entry { index, command, .. } => self.applied[i].push((index, command)),
                Apply::Snapshot(s) => self.applied[i].retain(|(ix, _)| *ix <= s.meta.index),
            }
        }
    }

    fn timeout(&mut self, i: usize, t: Timer) {
        self.nodes[i].on_timeout(t);
        self.drain(i);
    }

    fn deliver_all(&mut self) {
        while let Some((from, to, m)) = self.queue.pop_front() {
            let j = to.0 as usize;
            if self.down[j] || self.down[from.0 as usize] {
                continue;
            }
            self.nodes[j].on_message(from, m);
            self.drain(j);
            self.check();
        }
    }

    fn check(&self) {
        let refs: Vec<&Raft<u32>> = self.nodes.iter().collect();
        invariants::check_cluster(&refs).unwrap();
    }

    fn restart(&mut self, i: usize) {
        let cfg = self.nodes[i].config().clone();
        self.nodes[i] = Raft::new(cfg, self.disks[i].clone());
        self.applied[i].clear();
        self.drain(i);
    }
}

#[test]
fn election_then_replication_commits_everywhere() {
    let mut c = Cluster::new(3);
    c.timeout(0, Timer::Election);
    c.deliver_all();
    assert!(c.nodes[0].is_leader());
    assert_eq!(c.nodes[0].term(), Term(1));
    for v in [10, 20, 30] {
        c.nodes[0].propose(v).unwrap();
        c.drain(0);
    }
    c.deliver_all();
    assert_eq!(c.nodes[0].commit_index(), LogIndex(3));
    c.timeout(0, Timer::Heartbeat);
    c.deliver_all();
    for i in 0..3 {
        assert_eq!(
            c.applied[i],
            vec![(LogIndex(1), 10), (LogIndex(2), 20), (LogIndex(3), 30)],
            "node {i}"
        );
    }
}

#[test]
fn lagging_follower_backtracks_and_overwrites_stale_entries() {
    let mut c = Cluster::new(3);
    c.timeout(0, Timer::Election);
    c.deliver_all();
    // Leader 0 appends entries that never leave it.
    c.down[0] = true;
    for v in [1, 2, 3] {
        c.nodes[0].propose(v).unwrap();
        c.drain(0);
    }
    c.queue.clear();
    // Node 1 takes over in term 2 and commits with node 2.
    c.timeout(1, Timer::Election);
    c.deliver_all();
    assert!(c.nodes[1].is_leader());
    for v in [7, 8] {
        c.nodes[1].propose(v).unwrap();
        c.drain(1);
    }
    c.deliver_all();
    c.down[0] = false;
    c.timeout(1, Timer::Heartbeat);
    c.deliver_all();
    c.timeout(1, Timer::Heartbeat);
    c.deliver_all();
    assert_eq!(c.nodes[0].log().last_index(), LogIndex(2));
    assert_eq!(c.applied[0], vec![(LogIndex(1), 7), (LogIndex(2), 8)]);
}

#[test]
fn snapshot_install_and_restart_replay() {
    let mut c = Cluster::new(3);
    c.timeout(0, Timer::Election);
    c.deliver_all();
    c.down[2] = true;
    for v in 1..=12 {
        c.nodes[0].propose(v).unwrap();
        c.drain(0);
        c.deliver_all();
    }
    c.timeout(0, Timer::Heartbeat);
    c.deliver_all();
    assert!(c.nodes[0].snapshot(LogIndex(10), Arc::from(&b"ten"[..])));
    c.drain(0);
    assert_eq!(c.nodes[0].log().base().index, LogIndex(10));
    c.down[2] = false;
    c.queue.clear();
    c.timeout(0, Timer::Heartbeat);
    c.deliver_all();
    c.timeout(0, Timer::Heartbeat);
    c.deliver_all();
    assert_eq!(c.nodes[2].log().base().index, LogIndex(10));
    assert_eq!(c.nodes[2].commit_index(), LogIndex(12));
    assert_eq!(c.applied[2], vec![(LogIndex(11), 11), (LogIndex(12), 12)]);
    // Restart node 2: it comes back with its snapshot and log.
    c.restart(2);
    assert_eq!(c.nodes[2].term(), Term(1));
    assert_eq!(c.nodes[2].log().last_index(), LogIndex(12));
    assert_eq!(c.nodes[2].applied_index(), LogIndex(10));
    c.timeout(0, Timer::Heartbeat);
    c.deliver_all();
    assert_eq!(c.applied[2], vec![(LogIndex(11), 11), (LogIndex(12), 12)]);
}

#[test]
fn vote_is_durable_before_the_reply() {
    let mut c = Cluster::new(3);
    c.nodes[1].on_message(
        NodeId(0),
        Message::RequestVote(RequestVote {
            term: Term(1),
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
        }),
    );
    let ready = c.nodes[1].take_ready();
    assert!(ready.persist.contains(&PersistOp::HardState(HardState {
        term: Term(1),
        voted_for: Some(NodeId(0))
    })));
    assert!(matches!(
        ready.messages[0].1,
        Message::RequestVoteReply(RequestVoteReply { granted: true, .. })
    ));
}

/// Every message ever sent, checked against its receiver after every step: once
/// `ignores_forever` says so, delivering it changes nothing (state and outputs), and the
/// verdict never flips back — through elections, split votes, replication, a restart and
/// the redelivery of every old message.
#[test]
fn ignores_forever_is_a_no_op_that_stays_true() {
    fn audit(c: &Cluster, dead: &mut Vec<bool>) {
        dead.resize(c.sent.len(), false);
        for (k, (from, to, m)) in c.sent.iter().enumerate() {
            let node = &c.nodes[to.0 as usize];
            let now = node.ignores_forever(*from, m);
            assert!(now || !dead[k], "{m:?} {from}→{to} came back to life");
            if now {
                let mut probe = node.clone();
                probe.on_message(*from, m.clone());
                assert_eq!(&probe, node, "{m:?} {from}→{to} is not a no-op");
                dead[k] = true;
            }
        }
    }
    fn deliver_all(c: &mut Cluster, dead: &mut Vec<bool>) {
        while let Some((from, to, m)) = c.queue.pop_front() {
            let j = to.0 as usize;
            c.nodes[j].on_message(from, m);
            c.drain(j);
            audit(c, dead);
        }
    }
    let mut c = Cluster::new(3);
    let mut dead = Vec::new();
    c.timeout(0, Timer::Election);
    deliver_all(&mut c, &mut dead);
    assert!(c.nodes[0].is_leader());
    c.nodes[0].propose(10).unwrap();
    c.drain(0);
    deliver_all(&mut c, &mut dead);
    // A split vote in term 2, then term 3.
    c.timeout(1, Timer::Election);
    c.timeout(2, Timer::Election);
    deliver_all(&mut c, &mut dead);
    c.restart(0);
    audit(&c, &mut dead);
    c.timeout(2, Timer::Election);
    deliver_all(&mut c, &mut dead);
    // Redeliver every message ever sent (a duplicating network).
    let old = c.sent.clone();
    c.queue.extend(old);
    deliver_all(&mut c, &mut dead);
    assert!(
        dead.iter().filter(|d| **d).count() > 10,
        "the audit saw dead messages"
    );
    assert!(dead.iter().any(|d| !*d), "and live ones");
}

/// `delivery_class`: messages the audit ever saw in one class, to one server, have the same
/// effect there — the same server state and the same outputs — at that point and at every
/// later one, through elections, a split vote, a restart and the redelivery of everything
/// ever sent.
#[test]
fn delivery_classes_have_one_effect_forever() {
    type Pairs = Vec<(usize, usize, DeliveryClass)>;
    fn effect(node: &Raft<u32>, from: NodeId, m: &Message<u32>) -> (Raft<u32>, RaftReady<u32>) {
        let mut probe = node.clone();
        probe.on_message(from, m.clone());
        let ready = probe.take_ready();
        (probe, ready)
    }
    fn audit(c: &Cluster, pairs: &mut Pairs) {
        let nodes: Vec<&Raft<u32>> = c.nodes.iter().collect();
        let classes: Vec<Option<DeliveryClass>> = c
            .sent
            .iter()
            .map(|(from, to, m)| {
                nodes[to.0 as usize].delivery_class(*from, m, |t| {
                    // Any vote ever granted may still be in flight on a duplicating network.
                    may_lead(&nodes, *to, t, |voter| {
                        c.sent.iter().any(|(f, d, o)| {
                            *f == voter
                                && d == to
                                && matches!(o, Message::RequestVoteReply(r) if r.granted && r.term == t)
                        })
                    })
                })
            })
            .collect();
        for a in 0..c.sent.len() {
            for b in a + 1..c.sent.len() {
                let same =
                    classes[a].is_some() && classes[a] == classes[b] && c.sent[a].1 == c.sent[b].1;
                if same && !pairs.iter().any(|p| (p.0, p.1) == (a, b)) {
                    pairs.push((a, b, classes[a].expect("same class")));
                }
            }
        }
        for &(a, b, _) in pairs.iter() {
            let ((fa, to, ma), (fb, _, mb)) = (&c.sent[a], &c.sent[b]);
            let node = &c.nodes[to.0 as usize];
            assert_eq!(
                effect(node, *fa, ma),
                effect(node, *fb, mb),
                "{ma:?} from {fa} and {mb:?} from {fb} to {to} differ"
            );
        }
    }
    fn deliver_all(c: &mut Cluster, pairs: &mut Pairs) {
        while let Some((from, to, m)) = c.queue.pop_front() {
            let j = to.0 as usize;
            c.nodes[j].on_message(from, m);
            c.drain(j);
            audit(c, pairs);
        }
    }
    let mut c = Cluster::new(3);
    let mut pairs = Vec::new();
    c.timeout(0, Timer::Election);
    deliver_all(&mut c, &mut pairs);
    c.nodes[0].propose(10).unwrap();
    c.drain(0);
    // A heartbeat before the append arrives: both end at index 1 with nothing to commit.
    c.timeout(0, Timer::Heartbeat);
    deliver_all(&mut c, &mut pairs);
    c.timeout(0, Timer::Heartbeat);
    deliver_all(&mut c, &mut pairs);
    // A split vote in term 2, then term 3, while server 0's old requests are redelivered.
    c.timeout(1, Timer::Election);
    c.timeout(2, Timer::Election);
    deliver_all(&mut c, &mut pairs);
    c.restart(0);
    audit(&c, &mut pairs);
    c.timeout(2, Timer::Election);
    deliver_all(&mut c, &mut pairs);
    c.nodes[2].propose(11).unwrap();
    c.drain(2);
    deliver_all(&mut c, &mut pairs);
    let old = c.sent.clone();
    c.queue.extend(old);
    deliver_all(&mut c, &mut pairs);
    let saw = |kind: fn(&DeliveryClass) -> bool| pairs.iter().filter(|p| kind(&p.2)).count();
    let counts = [
        saw(|c| matches!(c, DeliveryClass::StaleRequest(..))),
        saw(|c| matches!(c, DeliveryClass::TermNotice(_))),
        saw(|c| matches!(c, DeliveryClass::StaleAck(..))),
        saw(|c| matches!(c, DeliveryClass::HeldAppend { .. })),
    ];
    assert!(
        counts.iter().all(|&n| n > 0),
        "the audit saw every kind of class: {counts:?}"
    );
}

/// A request of an earlier term is answered with the term alone: the answer echoes neither
/// the request's log position nor its read round, which the old leader, if it leads the
/// answer's term by the time the answer arrives, must not take for a fresh acknowledgment.
#[test]
fn a_stale_append_is_answered_with_the_term_alone() {
    let mut c = cluster_with_leader_0();
    c.nodes[0].propose(5).unwrap();
    c.drain(0);
    c.deliver_all();
    c.nodes[0].read_index(ReadId(1)).unwrap();
    c.drain(0);
    let stale = c.queue.iter().find_map(|(_, _, m)| match m {
        Message::AppendEntries(a) if a.read_ctx > 0 => Some(a.clone()),
        _ => None,
    });
    let stale = stale.expect("the leader sent a read round");
    c.queue.clear();
    c.timeout(1, Timer::Election); // server 1 moves to term 2
    c.queue.clear();
    c.nodes[1].on_message(NodeId(0), Message::AppendEntries(stale));
    let ready = c.nodes[1].take_ready();
    let reply = AppendEntriesReply {
        term: Term(2),
        result: AppendResult::StaleTerm,
        read_ctx: 0,
    };
    assert_eq!(
        ready.messages,
        vec![(NodeId(0), Message::AppendEntriesReply(reply))]
    );
}

fn cluster_with_leader_0() -> Cluster {
    let mut c = Cluster::new(3);
    c.timeout(0, Timer::Election);
    c.deliver_all();
    assert!(c.nodes[0].is_leader());
    c
}

/// ReadIndex (thesis §6.4): a read waits for an entry of the leader's term to commit, then
/// for a quorum to answer a round that began after the read, then is released with the
/// commit index as its read index.
#[test]
fn read_index_waits_for_term_commit_and_a_quorum() {
    let mut c = cluster_with_leader_0();
    c.nodes[0].read_index(ReadId(7)).unwrap();
    c.drain(0);
    c.deliver_all();
    assert!(
        c.nodes[0].take_read_states().is_empty(),
        "no entry of term 1 committed"
    );
    c.nodes[0].propose(5).unwrap(); // the service's no-op
    c.drain(0);
    // Committing the entry starts the read's round; its acks release the read.
    let mut released = Vec::new();
    while !c.queue.is_empty() {
        c.deliver_all();
        released.extend(c.nodes[0].take_read_states());
    }
    let expected = ReadState {
        id: ReadId(7),
        index: LogIndex(1),
    };
    assert_eq!(released, vec![expected]);
    // A later read takes the current commit index at once and needs one round.
    c.nodes[0].read_index(ReadId(8)).unwrap();
    c.drain(0);
    assert!(
        c.nodes[0].take_read_states().is_empty(),
        "needs a quorum first"
    );
    c.deliver_all();
    let states = c.nodes[0].take_read_states();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].id, ReadId(8));
}

/// A leader cut off from the others cannot confirm a read; when it hears the new term it
/// steps down and the read is never released. With `read-without-quorum` seeded, the
/// deposed leader releases it at once (a stale read).
#[test]
fn deposed_leader_never_releases_a_read() {
    for bug in [false, true] {
        let mut c = cluster_with_leader_0();
        c.nodes[0].propose(1).unwrap();
        c.drain(0);
        c.deliver_all();
        c.timeout(0, Timer::Heartbeat);
        c.deliver_all();
        if bug {
            let mut cfg = c.nodes[0].config().clone();
            cfg.bugs = Bugs::only(Bug::ReadWithoutQuorum);
            c.nodes[0] = Raft::new(cfg, c.disks[0].clone());
            c.drain(0);
            c.nodes[0].on_timeout(Timer::Election);
            c.drain(0);
            c.deliver_all();
            assert!(c.nodes[0].is_leader());
            c.nodes[0].propose(2).unwrap();
            c.drain(0);
            c.deliver_all();
        }
        c.down[0] = true;
        c.timeout(1, Timer::Election);
        c.deliver_all();
        assert!(c.nodes[1].is_leader());
        c.nodes[0].read_index(ReadId(1)).unwrap();
        c.drain(0);
        c.deliver_all();
        let released = c.nodes[0].take_read_states();
        assert_eq!(!released.is_empty(), bug, "released {released:?}");
        c.down[0] = false;
        c.timeout(1, Timer::Heartbeat);
        c.deliver_all();
        assert!(!c.nodes[0].is_leader());
        assert!(c.nodes[0].take_read_states().is_empty());
    }
}

/// Thesis §10.2.1, `Config::leader_counts_durable_only`: the leader's AppendEntries may leave
/// before its own write is durable, so it must not count its own copy until the driver says
/// so — otherwise one follower's acknowledgement plus a copy a crash can erase would "commit"
/// an entry (RAFT-7, an acknowledged write lost).
#[test]
fn leader_writing_in_parallel_counts_its_copy_only_once_durable() {
    let mut c = Cluster::new(3);
    for i in 0..3 {
        let mut cfg = c.nodes[i].config().clone();
        cfg.leader_counts_durable_only = true;
        c.nodes[i] = Raft::new(cfg, Durable::default());
        c.drain(i);
    }
    c.timeout(0, Timer::Election);
    c.deliver_all();
    assert!(c.nodes[0].is_leader());
    let term = c.nodes[0].term();
    c.down[2] = true;
    let (index, _) = c.nodes[0].propose(10).unwrap();
    let ready = c.nodes[0].take_ready();
    c.disks[0].apply_all(&ready.persist);
    let appends: Vec<_> = ready.messages.iter().map(|(_, m)| m).collect();
    assert!(appends.iter().all(|m| !c.nodes[0].must_follow_writes(m)));
    for (to, m) in ready.messages {
        c.queue.push_back((NodeId(0), to, m));
    }
    c.deliver_all();
    assert_eq!(
        c.nodes[0].commit_index(),
        LogIndex(0),
        "one follower's copy and the leader's unsynced one are not a majority"
    );
    c.nodes[0].on_persisted(index, Term(term.0 + 1));
    assert_eq!(
        c.nodes[0].commit_index(),
        LogIndex(0),
        "a wrong term is ignored"
    );
    c.nodes[0].on_persisted(index, term);
    c.drain(0);
    assert_eq!(c.nodes[0].commit_index(), index);
    assert_eq!(c.applied[0], vec![(index, 10)]);
    assert!(!c.nodes[0].applies_follow_writes());
    let reply = Message::AppendEntriesReply(AppendEntriesReply {
        term,
        result: AppendResult::Success { match_index: index },
        read_ctx: 0,
    });
    assert!(
        c.nodes[1].must_follow_writes(&reply),
        "acknowledgements wait for the fsync"
    );
}

/// Without the option every output follows the writes before it (the contract's duty 1).
#[test]
fn by_default_every_output_follows_the_writes() {
    let c = Cluster::new(3);
    let append = Message::AppendEntries(AppendEntries {
        term: Term(1),
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![],
        leader_commit: LogIndex(0),
        read_ctx: 0,
    });
    assert!(c.nodes[0].must_follow_writes(&append));
    assert!(c.nodes[0].applies_follow_writes());
}

impl Cluster {
    /// Delivers what is queued now as one batch per round (replies go to the next round),
    /// merging each message into the last one of the batch with the same sender and
    /// receiver when `coalesce` (as a node's environment does). Returns the messages
    /// delivered.
    fn deliver_in_batches(&mut self, coalesce: bool) -> usize {
        let mut delivered = 0;
        while !self.queue.is_empty() {
            let mut batch: Vec<(NodeId, NodeId, Message<u32>)> = Vec::new();
            for (from, to, m) in std::mem::take(&mut self.queue) {
                let last = batch
                    .iter_mut()
                    .rev()
                    .find(|(f, t, _)| (*f, *t) == (from, to));
                let m = match last {
                    Some((_, _, prev)) if coalesce => prev.coalesce(m, 64),
                    _ => Some(m),
                };
                if let Some(m) = m {
                    batch.push((from, to, m));
                }
            }
            for (from, to, m) in batch {
                delivered += 1;
                let j = to.0 as usize;
                if !self.down[j] && !self.down[from.0 as usize] {
                    self.nodes[j].on_message(from, m);
                    self.drain(j);
                    self.check();
                }
            }
        }
        delivered
    }
}

/// `Message::coalesce` (specs/raft.md §3, "Coalescing"): servers that get each batch of
/// messages merged reach the same durable state, commit index and applied entries as servers
/// that get every message, through a leader change's conflicting entries and backtracking —
/// with far fewer messages. RAFT-1..11 are checked after every delivery.
#[test]
fn coalesced_batches_do_what_every_message_does() {
    fn run(coalesce: bool) -> (Cluster, usize) {
        let mut c = Cluster::new(3);
        c.timeout(0, Timer::Election);
        c.deliver_all();
        for v in 1..=3 {
            c.nodes[0].propose(v).unwrap();
            c.drain(0);
        }
        c.deliver_all();
        // Node 0 keeps four entries of term 1 that never leave it: they conflict later.
        c.down[0] = true;
        for v in 4..=7 {
            c.nodes[0].propose(v).unwrap();
            c.drain(0);
        }
        c.timeout(1, Timer::Election);
        c.deliver_all();
        assert!(c.nodes[1].is_leader());
        // Node 2 misses ten entries of term 2: its leader backtracks to it later.
        (c.down[0], c.down[2]) = (false, true);
        for v in 10..20 {
            c.nodes[1].propose(v).unwrap();
            c.drain(1);
        }
        c.timeout(1, Timer::Heartbeat);
        c.deliver_all();
        c.down[2] = false;
        let mut delivered = 0;
        for round in 0..4 {
            for v in 0..10 {
                c.nodes[1].propose(100 + round * 10 + v).unwrap();
                c.drain(1);
            }
            c.timeout(1, Timer::Heartbeat);
            delivered += c.deliver_in_batches(coalesce);
        }
        c.timeout(1, Timer::Heartbeat);
        delivered += c.deliver_in_batches(coalesce);
        (c, delivered)
    }
    let (plain, sent_plain) = run(false);
    let (merged, sent_merged) = run(true);
    for i in 0..3 {
        assert_eq!(plain.disks[i], merged.disks[i], "node {i}'s durable state");
        assert_eq!(
            plain.nodes[i].commit_index(),
            merged.nodes[i].commit_index()
        );
        assert_eq!(
            plain.applied[i], merged.applied[i],
            "node {i}'s applied entries"
        );
    }
    for i in 0..3 {
        assert_eq!(merged.nodes[i].commit_index(), LogIndex(53), "node {i}");
    }
    let conflicts = merged.sent.iter().filter(|(_, _, m)| {
        matches!(m, Message::AppendEntriesReply(r) if !matches!(r.result, AppendResult::Success { .. }))
    });
    assert!(conflicts.count() > 0, "the backtracking path ran");
    assert!(
        sent_merged * 3 < sent_plain,
        "{sent_merged} messages merged vs {sent_plain}"
    );
}
