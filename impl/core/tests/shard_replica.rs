//! The Raft-replicated shard servers (`shardkv::replica`) on an in-memory network that
//! delivers every message: a 3-server controller, two 3-server groups, a clerk. Lab 5B's
//! `TestJoinLeave5B` in miniature, through leader elections inside every group: a value
//! written while group 1 holds every shard is read back after group 2 joins and after group 1
//! leaves (SHARD-2: no acknowledged write lost across moves), and the controller answers each
//! administrative request once.

use aver_core::contract::{Core, NodeId, TimerCmd};
use aver_core::kvraft::{ClientId, Seq};
use aver_core::raft::{self, Durable};
use aver_core::shardctrler::{CtrlCommand, CtrlOp, CtrlReply, Gid};
use aver_core::shardkv::replica::{
    CtrlReplica, GroupReplica, NetMsg, ReplicaConfig, ReplicaMsg, ReplicaTimer,
};
use aver_core::shardkv::{Clerk, ClerkTimer, Command, Op, OpReply, Timer};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const ADMIN: NodeId = NodeId(900);
const CLERK: NodeId = NodeId(901);

enum Node {
    Ctrl(CtrlReplica),
    Group(GroupReplica),
}

enum Wire {
    Ctrl(ReplicaMsg<CtrlCommand>),
    Group(ReplicaMsg<Command>),
    Net(NetMsg),
}

struct World {
    nodes: BTreeMap<NodeId, Node>,
    queue: VecDeque<(NodeId, NodeId, Wire)>,
    /// Timers set and not cancelled, per node.
    armed: BTreeMap<NodeId, BTreeSet<ReplicaTimer>>,
    clerk: Clerk,
    to_admin: Vec<NetMsg>,
    done: Vec<OpReply>,
}

fn ids(base: u32) -> Vec<NodeId> {
    (1..=3).map(|i| NodeId(base + i)).collect()
}

impl World {
    fn new() -> World {
        let cfg = ReplicaConfig {
            max_raft_state: Some(2000),
            pending_max: 100,
        };
        let mut nodes = BTreeMap::new();
        for id in ids(0) {
            let raft = raft::Config::new(id, ids(0));
            let r = CtrlReplica::new(&cfg, raft, Durable::default(), 10);
            nodes.insert(id, Node::Ctrl(r));
        }
        for g in [1, 2] {
            for id in ids(g * 100) {
                let raft = raft::Config::new(id, ids(g * 100));
                let who = (Gid(g), 10, ids(0));
                let r = GroupReplica::new(&cfg, raft, Durable::default(), who);
                nodes.insert(id, Node::Group(r));
            }
        }
        let mut w = World {
            nodes,
            queue: VecDeque::new(),
            armed: BTreeMap::new(),
            clerk: Clerk::new(ClientId(7), ids(0)),
            to_admin: Vec::new(),
            done: Vec::new(),
        };
        for id in w.nodes.keys().copied().collect::<Vec<_>>() {
            w.collect(id);
        }
        w
    }

    fn collect(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node");
        let (messages, timers): (Vec<(NodeId, Wire)>, _) = match node {
            Node::Ctrl(r) => {
                let ready = r.take_ready();
                let m = ready
                    .messages
                    .into_iter()
                    .map(|(to, m)| (to, Wire::Ctrl(m)));
                (m.collect(), ready.timers)
            }
            Node::Group(r) => {
                let ready = r.take_ready();
                let m = ready
                    .messages
                    .into_iter()
                    .map(|(to, m)| (to, Wire::Group(m)));
                (m.collect(), ready.timers)
            }
        };
        for (to, m) in messages {
            let m = match m {
                Wire::Ctrl(ReplicaMsg::Net(n)) | Wire::Group(ReplicaMsg::Net(n)) => Wire::Net(n),
                other => other,
            };
            self.queue.push_back((id, to, m));
        }
        let armed = self.armed.entry(id).or_default();
        for t in timers {
            match t {
                TimerCmd::Set(t) => armed.insert(t),
                TimerCmd::Cancel(t) => armed.remove(&t),
            };
        }
    }

    fn deliver_all(&mut self) {
        let mut steps = 0;
        while let Some((from, to, m)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "the servers never go quiet");
            match (to, m) {
                (ADMIN, Wire::Net(n)) => self.to_admin.push(n),
                (CLERK, Wire::Net(NetMsg::Shard(m))) => {
                    self.clerk.on_message(from, m);
                    self.collect_clerk();
                }
                (to, m) => {
                    match (self.nodes.get_mut(&to).expect("node"), m) {
                        (Node::Ctrl(r), Wire::Ctrl(m)) => r.on_message(from, m),
                        (Node::Ctrl(r), Wire::Net(n)) => r.on_message(from, ReplicaMsg::Net(n)),
                        (Node::Group(r), Wire::Group(m)) => r.on_message(from, m),
                        (Node::Group(r), Wire::Net(n)) => r.on_message(from, ReplicaMsg::Net(n)),
                        _ => panic!("a Raft message crossed groups"),
                    }
                    self.collect(to);
                }
            }
        }
    }

    fn collect_clerk(&mut self) {
        let r = self.clerk.take_ready();
        for (to, m) in r.messages {
            self.queue
                .push_back((CLERK, to, Wire::Net(NetMsg::Shard(m))));
        }
        self.done.extend(r.completed.into_iter().map(|c| c.reply));
    }

    fn fire(&mut self, id: NodeId, t: ReplicaTimer) {
        match self.nodes.get_mut(&id).expect("node") {
            Node::Ctrl(r) => r.on_timeout(t),
            Node::Group(r) => r.on_timeout(t),
        }
        self.collect(id);
        self.deliver_all();
    }

    /// Heartbeats from everyone, migrations and polls from every group: one round of time.
    fn tick(&mut self) {
        for id in self.nodes.keys().copied().collect::<Vec<_>>() {
            for t in [
                ReplicaTimer::Raft(raft::Timer::Heartbeat),
                ReplicaTimer::Shard(Timer::PollConfig),
                ReplicaTimer::Shard(Timer::Migrate),
            ] {
                if self.armed.get(&id).is_some_and(|a| a.contains(&t)) {
                    self.fire(id, t);
                }
            }
        }
    }

    fn admin(&mut self, seq: u64, op: CtrlOp) -> CtrlReply {
        let msg = NetMsg::Admin {
            client: ClientId(1),
            seq: Seq(seq),
            op,
        };
        self.queue.push_back((ADMIN, NodeId(1), Wire::Net(msg)));
        self.deliver_all();
        for _ in 0..5 {
            self.tick();
        }
        let replies: Vec<_> = std::mem::take(&mut self.to_admin);
        assert_eq!(replies.len(), 1, "one answer per request: {replies:?}");
        match replies.into_iter().next() {
            Some(NetMsg::AdminReply { result: Ok(r), .. }) => r,
            other => panic!("admin request {seq}: {other:?}"),
        }
    }

    fn call(&mut self, op: Op) -> OpReply {
        self.clerk.invoke(op);
        self.collect_clerk();
        for _ in 0..40 {
            self.deliver_all();
            if let Some(r) = self.done.pop() {
                return r;
            }
            self.tick();
            self.clerk.on_timeout(ClerkTimer::Retry);
            self.collect_clerk();
        }
        panic!("the operation never completed");
    }
}

#[test]
fn join_leave_5b_on_raft_groups() {
    let mut w = World::new();
    for leader in [NodeId(1), NodeId(101), NodeId(201)] {
        w.fire(leader, ReplicaTimer::Raft(raft::Timer::Election));
    }
    let join1 = CtrlOp::Join(BTreeMap::from([(Gid(1), ids(100))]));
    assert!(matches!(w.admin(1, join1), CtrlReply::Done(_)));
    for _ in 0..5 {
        w.tick();
    }
    assert_eq!(w.call(Op::Put("a".into(), "1".into())), OpReply::Ok);
    assert_eq!(w.call(Op::Append("b".into(), "x".into())), OpReply::Ok);
    let join2 = CtrlOp::Join(BTreeMap::from([(Gid(2), ids(200))]));
    assert!(matches!(w.admin(2, join2), CtrlReply::Done(_)));
    for _ in 0..10 {
        w.tick();
    }
    assert_eq!(w.call(Op::Get("a".into())), OpReply::Value("1".into()));
    let leave1 = CtrlOp::Leave(BTreeSet::from([Gid(1)]));
    assert!(matches!(w.admin(3, leave1), CtrlReply::Done(_)));
    for _ in 0..10 {
        w.tick();
    }
    assert_eq!(w.call(Op::Append("b".into(), "y".into())), OpReply::Ok);
    assert_eq!(w.call(Op::Get("a".into())), OpReply::Value("1".into()));
    assert_eq!(w.call(Op::Get("b".into())), OpReply::Value("xy".into()));
}
