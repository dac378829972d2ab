//! Unit scenarios of the KV service on a tiny in-memory Raft cluster: FIFO delivery unless a
//! test drops, duplicates or cuts; clerks at node ids 100 and up.

use super::invariants::{Ledger, at_most_once};
use super::*;
use crate::contract::NodeId;
use crate::raft::{Durable, Timer};
use crate::rsm::ReadMode;
use std::collections::VecDeque;

type St = VersionedStore;
type Server = RaftKvServer<St>;
type Msg = ServerMsg<St, crate::raft::Raft<KvEntry<St>>>;

struct World {
    config: KvConfig,
    servers: Vec<Server>,
    disks: Vec<Durable<KvEntry<St>>>,
    clerks: Vec<Clerk<St>>,
    answers: Vec<Vec<ClerkOutput<VersionedReply>>>,
    queue: VecDeque<(NodeId, NodeId, Msg)>,
    cut: Vec<bool>,
    ledger: Ledger,
    /// The first KV-2 violation seen.
    twice: Option<crate::contract::Violation>,
    duplicates: usize,
}

const CLERK0: u32 = 100;

impl World {
    fn new(n: u32, clerks: u32, config: KvConfig) -> World {
        let servers: Vec<NodeId> = (0..n).map(NodeId).collect();
        let mut w = World {
            config,
            servers: Vec::new(),
            disks: vec![Durable::default(); n as usize],
            clerks: (0..clerks)
                .map(|c| {
                    Clerk::new(ClerkConfig {
                        client: ClientId(u64::from(c) + 1),
                        servers: servers.clone(),
                        bugs: KvBugs::NONE,
                    })
                })
                .collect(),
            answers: vec![Vec::new(); clerks as usize],
            queue: VecDeque::new(),
            cut: vec![false; n as usize],
            ledger: Ledger::new(),
            twice: None,
            duplicates: 0,
        };
        for i in 0..n as usize {
            let s = w.start(i);
            w.servers.push(s);
            w.drain(i);
        }
        w
    }

    fn start(&self, i: usize) -> Server {
        let voters = (0..self.disks.len() as u32).map(NodeId).collect();
        Server::start(
            self.config.clone(),
            NodeId(i as u32),
            voters,
            self.disks[i].clone(),
        )
    }

    fn drain(&mut self, i: usize) {
        let ready = self.servers[i].take_ready();
        self.disks[i].apply_all(&ready.persist);
        for (to, m) in ready.messages {
            self.queue.push_back((NodeId(i as u32), to, m));
        }
        for e in ready.apply {
            match e {
                KvEvent::Executed { index, client, seq } => {
                    if let Err(v) = at_most_once(&mut self.ledger, index, client, seq) {
                        self.twice.get_or_insert(v);
                    }
                }
                KvEvent::Duplicate { .. } => self.duplicates += 1,
                KvEvent::Restored { .. } => {}
            }
        }
        assert_eq!(self.servers[i].violation(), None);
    }

    fn drain_clerk(&mut self, c: usize) {
        let ready = self.clerks[c].take_ready();
        let me = NodeId(CLERK0 + c as u32);
        for (to, m) in ready.messages {
            self.queue.push_back((me, to, KvMsg::Client(m)));
        }
        self.answers[c].extend(ready.apply);
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, m: Msg) {
        let cut = |id: NodeId| self.cut.get(id.0 as usize).copied().unwrap_or(false);
        if cut(from) || cut(to) {
            return;
        }
        if to.0 >= CLERK0 {
            let c = (to.0 - CLERK0) as usize;
            if let KvMsg::Client(m) = m {
                self.clerks[c].on_message(from, m);
            }
            self.drain_clerk(c);
        } else {
            self.servers[to.0 as usize].on_message(from, m);
            self.drain(to.0 as usize);
        }
    }

    fn deliver_all(&mut self) {
        while let Some((from, to, m)) = self.queue.pop_front() {
            self.deliver(from, to, m);
        }
    }

    fn timeout(&mut self, i: usize, t: Timer) {
        self.servers[i].on_timeout(t);
        self.drain(i);
        self.deliver_all();
    }

    fn invoke(&mut self, c: usize, op: VersionedOp) {
        self.clerks[c].invoke(op).unwrap();
        self.drain_clerk(c);
    }

    fn retry(&mut self, c: usize) {
        self.clerks[c].on_timeout(ClerkTimer::Retry);
        self.drain_clerk(c);
    }

    fn last_answer(&self, c: usize) -> Option<&VersionedReply> {
        self.answers[c].last().map(|a| &a.reply)
    }

    fn restart(&mut self, i: usize) {
        self.servers[i] = self.start(i);
        self.drain(i);
    }
}

fn put(value: &str, version: u64) -> VersionedOp {
    VersionedOp::Put {
        key: "k".into(),
        value: value.into(),
        version,
    }
}

fn get() -> VersionedOp {
    VersionedOp::Get { key: "k".into() }
}

fn value(v: &str, version: u64) -> VersionedReply {
    VersionedReply::Value {
        value: v.into(),
        version,
    }
}

/// Puts and Gets through clerks, with ReadIndex and with reads through the log; a clerk that
/// starts at a follower follows the leader hint.
#[test]
fn clerks_put_and_get_in_both_read_modes() {
    for reads in [ReadMode::ReadIndex, ReadMode::Log] {
        let config = KvConfig {
            reads,
            ..KvConfig::default()
        };
        let mut w = World::new(3, 2, config);
        w.timeout(1, Timer::Election);
        w.invoke(0, put("a", 0));
        w.deliver_all();
        assert_eq!(w.last_answer(0), Some(&VersionedReply::Ok));
        assert_eq!(w.clerks[0].leader(), NodeId(1), "followed the hint");
        w.invoke(1, put("b", 0));
        w.deliver_all();
        assert_eq!(w.last_answer(1), Some(&VersionedReply::ErrVersion));
        w.invoke(1, get());
        w.deliver_all();
        assert_eq!(w.last_answer(1), Some(&value("a", 1)));
        let entries = w.servers[1].engine().log().last_index().0;
        assert_eq!(entries, 3, "{reads:?}: no-op + 2 puts, or 2 puts + 1 get");
    }
}

/// The reply to a Put is lost; the clerk retries at the next server after the leader crashed
/// and a new one was elected: the write executes once, and the retry is answered from the
/// dedup table with the first reply.
#[test]
fn retried_write_executes_once_across_a_leader_change() {
    let mut w = World::new(3, 1, KvConfig::default());
    w.timeout(0, Timer::Election);
    w.invoke(0, put("a", 0));
    // Deliver everything except the reply to the clerk.
    while let Some((from, to, m)) = w.queue.pop_front() {
        if to.0 != CLERK0 {
            w.deliver(from, to, m);
        }
    }
    w.timeout(0, Timer::Heartbeat);
    w.queue.retain(|(_, to, _)| to.0 != CLERK0);
    assert!(w.answers[0].is_empty());
    w.cut[0] = true;
    w.timeout(1, Timer::Election);
    w.retry(0); // to server 1
    w.deliver_all();
    assert_eq!(
        w.last_answer(0),
        Some(&VersionedReply::Ok),
        "not ErrVersion"
    );
    assert_eq!((w.ledger.len(), &w.twice), (1, &None));
    assert!(w.duplicates > 0);
    w.invoke(0, get());
    w.deliver_all();
    assert_eq!(w.last_answer(0), Some(&value("a", 1)));
}

/// The dedup table is in the snapshot: a server restarted from a snapshot still answers the
/// retried write from the table (and with `dedup-not-in-snapshot` it executes it again).
#[test]
fn dedup_table_survives_snapshot_and_restart() {
    for bug in [false, true] {
        let config = KvConfig {
            max_raft_state: Some(1),
            reads: ReadMode::Log,
            bugs: if bug {
                KvBugs::only(KvBug::DedupNotInSnapshot)
            } else {
                KvBugs::NONE
            },
            step_checks: !bug,
            ..KvConfig::default()
        };
        let mut w = World::new(1, 1, config);
        w.timeout(0, Timer::Election);
        w.invoke(0, put("a", 0));
        w.queue.clear(); // the request is applied (one server commits at once); reply lost
        w.servers[0].on_message(
            NodeId(CLERK0),
            KvMsg::Client(ClientMsg::Request(Request {
                client: ClientId(1),
                seq: Seq(1),
                op: put("a", 0),
            })),
        );
        w.drain(0);
        w.queue.clear();
        assert!(w.disks[0].snapshot.is_some(), "snapshotted");
        w.restart(0);
        w.timeout(0, Timer::Election);
        // The retry reaches the restarted server after the write was compacted.
        w.retry(0);
        w.deliver_all();
        let answer = w.last_answer(0).cloned();
        let expected = if bug {
            VersionedReply::ErrVersion // executed again: the retry sees its own write
        } else {
            VersionedReply::Ok
        };
        assert_eq!(answer, Some(expected), "bug={bug}");
        assert_eq!(
            w.twice.is_some(),
            bug,
            "KV-2 catches the bug: {:?}",
            w.twice
        );
    }
}

/// A duplicated request is executed once; a stale request (older seq) gets no answer.
#[test]
fn duplicated_and_stale_requests() {
    let mut w = World::new(3, 1, KvConfig::default());
    w.timeout(0, Timer::Election);
    w.invoke(0, put("a", 0));
    let dup: Vec<_> = w.queue.iter().cloned().collect();
    w.queue.extend(dup.clone());
    w.deliver_all();
    w.timeout(0, Timer::Heartbeat);
    assert_eq!(w.ledger.len(), 1);
    w.invoke(0, put("b", 1));
    w.deliver_all();
    assert_eq!(w.last_answer(0), Some(&VersionedReply::Ok));
    // The first request again, now stale: nobody answers it.
    let before = w.answers[0].len();
    w.queue.extend(dup);
    w.deliver_all();
    assert_eq!(w.answers[0].len(), before);
    assert_eq!(w.ledger.len(), 2);
}

/// The 2022–2024 flavour: Put/Append/Get with appends executed exactly once.
#[test]
fn append_store_service() {
    type A = AppendStore;
    let voters = vec![NodeId(0)];
    let mut s = RaftKvServer::<A>::start(
        KvConfig::default(),
        NodeId(0),
        voters.clone(),
        Durable::default(),
    );
    s.on_timeout(Timer::Election);
    let _ = s.take_ready();
    let mut c = Clerk::<A>::new(ClerkConfig {
        client: ClientId(9),
        servers: voters,
        bugs: KvBugs::NONE,
    });
    let mut run = |c: &mut Clerk<A>, op: AppendOp, times: usize| {
        c.invoke(op).unwrap();
        let (_, m) = c.take_ready().messages.remove(0);
        for _ in 0..times {
            s.on_message(NodeId(7), KvMsg::Client(m.clone()));
        }
        let mut ready = s.take_ready();
        let (_, KvMsg::Client(reply)) = ready.messages.remove(0) else {
            panic!("expected a reply");
        };
        c.on_message(NodeId(0), reply);
        c.take_ready().apply.remove(0).reply
    };
    let append = |v: &str| AppendOp::Append {
        key: "k".into(),
        value: v.into(),
    };
    assert_eq!(run(&mut c, append("x"), 2), AppendReply::Ok);
    assert_eq!(run(&mut c, append("y"), 3), AppendReply::Ok);
    let got = run(&mut c, AppendOp::Get { key: "k".into() }, 1);
    assert_eq!(got, AppendReply::Value("xy".into()));
}
