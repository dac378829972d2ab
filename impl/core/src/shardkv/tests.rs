//! Scenario tests of the shard cores on a tiny in-memory cluster: one controller, groups as
//! single atomic replicas (a proposal is applied at once), clerks, and a FIFO network the test
//! can cut per node. Each test names the lab test or invariant it covers; every delivery is
//! followed by SHARD-1..4.

use super::invariants::{self, check_groups};
use super::*;
use crate::contract::{NodeId, TimerCmd};
use crate::kvraft::{ClientId, Seq};
use crate::raft::LogIndex;
use crate::shardctrler::{ConfigNum, CtrlCommand, CtrlOp, Gid, ShardCtrler, ShardId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const CTRL: NodeId = NodeId(0);

fn group_node(gid: u32) -> NodeId {
    NodeId(gid)
}

struct Group {
    sm: ShardKv,
    server: ShardServer,
}

struct Cluster {
    ctrl: ShardCtrler,
    admin_seq: u64,
    groups: BTreeMap<NodeId, Group>,
    clerks: BTreeMap<NodeId, Clerk>,
    net: VecDeque<(NodeId, NodeId, Msg)>,
    /// Nodes whose messages (in and out) are dropped.
    cut: BTreeSet<NodeId>,
    /// Drop the next response to a clerk (to force a retry).
    drop_next_response: bool,
    /// Messages (to, message) the network loses.
    lose: fn(NodeId, &Msg) -> bool,
    /// Check SHARD-1..4 after every delivery (off where a test seeds a bug).
    checking: bool,
    completed: Vec<(NodeId, Completed)>,
    acked: Vec<(Key, Value)>,
    appended: Vec<(Key, Value)>,
}

impl Cluster {
    fn new(gids: &[u32], bugs: Bugs, shards: usize) -> Cluster {
        let mut c = Cluster {
            ctrl: ShardCtrler::new(shards),
            admin_seq: 0,
            groups: BTreeMap::new(),
            clerks: BTreeMap::new(),
            net: VecDeque::new(),
            cut: BTreeSet::new(),
            drop_next_response: false,
            checking: bugs.is_empty(),
            lose: |_, _| false,
            completed: Vec::new(),
            acked: Vec::new(),
            appended: Vec::new(),
        };
        for g in gids {
            let mut server = ShardServer::new(vec![CTRL]);
            server.take_ready(); // timers: the test fires them by hand
            let sm = ShardKv::new(Gid(*g), shards, bugs);
            c.groups.insert(group_node(*g), Group { sm, server });
        }
        c
    }

    fn admin(&mut self, op: CtrlOp) {
        self.admin_seq += 1;
        let cmd = CtrlCommand {
            client: ClientId(0),
            seq: Seq(self.admin_seq),
            op,
        };
        let reply = self.ctrl.apply(LogIndex(self.admin_seq), &cmd);
        assert!(
            matches!(reply, crate::shardctrler::CtrlReply::Done(_)),
            "{reply:?}"
        );
    }

    fn join(&mut self, gids: &[u32]) {
        let map = gids
            .iter()
            .map(|g| (Gid(*g), vec![group_node(*g)]))
            .collect();
        self.admin(CtrlOp::Join(map));
    }

    fn leave(&mut self, gids: &[u32]) {
        self.admin(CtrlOp::Leave(gids.iter().map(|g| Gid(*g)).collect()));
    }

    fn clerk(&mut self, id: u32) -> NodeId {
        let node = NodeId(100 + id);
        self.clerks
            .insert(node, Clerk::new(ClientId(u64::from(id)), vec![CTRL]));
        node
    }

    fn invoke(&mut self, clerk: NodeId, op: Op) {
        if let Op::Append(k, v) = &op {
            self.appended.push((k.clone(), v.clone()));
        }
        let c = self.clerks.get_mut(&clerk).expect("clerk");
        c.invoke(op);
        self.drain_clerk(clerk);
    }

    fn drain_clerk(&mut self, node: NodeId) {
        let ready = self.clerks.get_mut(&node).expect("clerk").take_ready();
        for (to, m) in ready.messages {
            self.net.push_back((node, to, m));
        }
        for done in ready.completed {
            if let (Op::Append(k, v), OpReply::Ok) = (&done.op, &done.reply) {
                self.acked.push((k.clone(), v.clone()));
            }
            self.completed.push((node, done));
        }
    }

    /// Carries out a group's ready: proposals applied at once (an atomic log).
    fn drain_group(&mut self, node: NodeId) {
        let g = self.groups.get_mut(&node).expect("group");
        let ready = g.server.take_ready();
        let mut out = ready.messages;
        for p in ready.propose {
            if let Some(reply) = g.sm.apply(LogIndex(0), &p.command)
                && let Some(to) = p.reply_to
            {
                out.push((to, reply));
            }
        }
        for (to, m) in out {
            self.net.push_back((node, to, m));
        }
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg: Msg) {
        if self.cut.contains(&from) || self.cut.contains(&to) || (self.lose)(to, &msg) {
            return;
        }
        if to == CTRL {
            if let Msg::Query { num } = msg {
                let config = self.ctrl.query(num).clone();
                self.net.push_back((CTRL, from, Msg::QueryReply { config }));
            }
        } else if let Some(g) = self.groups.get_mut(&to) {
            g.server.on_message(&g.sm, from, msg);
            self.drain_group(to);
        } else if let Some(c) = self.clerks.get_mut(&to) {
            if matches!(msg, Msg::Response { .. }) && std::mem::take(&mut self.drop_next_response) {
                return;
            }
            c.on_message(from, msg);
            self.drain_clerk(to);
        }
    }

    /// Fires every timer once: groups poll and migrate, clerks with an operation retry.
    fn tick(&mut self) {
        let nodes: Vec<NodeId> = self.groups.keys().copied().collect();
        for n in nodes {
            let g = self.groups.get_mut(&n).expect("group");
            g.server.on_timeout(&g.sm, Timer::PollConfig);
            g.server.on_timeout(&g.sm, Timer::Migrate);
            self.drain_group(n);
        }
        let clerks: Vec<NodeId> = self.clerks.keys().copied().collect();
        for n in clerks {
            let c = self.clerks.get_mut(&n).expect("clerk");
            if c.pending().is_some() {
                c.on_timeout(ClerkTimer::Retry);
            }
            self.drain_clerk(n);
        }
    }

    fn check(&self) {
        if !self.checking {
            return;
        }
        let groups: Vec<&ShardKv> = self.groups.values().map(|g| &g.sm).collect();
        if let Err(v) = check_groups(&groups, &self.acked, &self.appended) {
            panic!("{v}");
        }
    }

    /// Delivers and ticks until the network is quiet and `done` holds (at most `rounds`).
    fn run_until(&mut self, rounds: usize, done: impl Fn(&Cluster) -> bool) -> bool {
        for _ in 0..rounds {
            while let Some((from, to, msg)) = self.net.pop_front() {
                self.deliver(from, to, msg);
                self.check();
            }
            if done(self) {
                return true;
            }
            self.tick();
        }
        false
    }

    /// Runs `op` on `clerk` to completion; returns the reply.
    fn run(&mut self, clerk: NodeId, op: Op) -> OpReply {
        let before = self.completed.len();
        self.invoke(clerk, op);
        let finished = self.run_until(50, |c| c.completed.len() > before);
        assert!(finished, "operation did not complete");
        self.completed.last().expect("completed").1.reply.clone()
    }

    fn settle(&mut self) {
        let latest = self.ctrl.latest().num;
        let done = self.run_until(50, |c| {
            c.groups
                .values()
                .all(|g| g.sm.num() == latest && g.sm.can_reconfigure())
        });
        assert!(done, "groups did not reach {latest}");
    }

    fn sm(&self, gid: u32) -> &ShardKv {
        &self.groups[&group_node(gid)].sm
    }
}

fn get(k: &str) -> Op {
    Op::Get(k.into())
}
fn put(k: &str, v: &str) -> Op {
    Op::Put(k.into(), v.into())
}
fn append(k: &str, v: &str) -> Op {
    Op::Append(k.into(), v.into())
}
fn value(v: &str) -> OpReply {
    OpReply::Value(v.into())
}

/// The lab's keys "0".."9": one key per shard.
fn keys() -> Vec<String> {
    (0..10).map(|i| i.to_string()).collect()
}

/// TestJoinLeave5B: data written under one group is all there after a join and a leave,
/// appends land exactly once, and the group that left holds nothing any more (TestChallenge1
/// Delete: deleted after the new owner confirmed).
#[test]
fn join_leave_moves_data_and_deletes_the_old_copy() {
    let mut c = Cluster::new(&[1, 2], Bugs::NONE, 10);
    let ck = c.clerk(1);
    c.join(&[1]);
    for k in keys() {
        assert_eq!(c.run(ck, put(&k, &format!("v{k}"))), OpReply::Ok);
    }
    c.join(&[2]);
    for k in keys() {
        assert_eq!(c.run(ck, append(&k, "+a")), OpReply::Ok);
    }
    c.leave(&[1]);
    for k in keys() {
        assert_eq!(c.run(ck, append(&k, "+b")), OpReply::Ok);
    }
    c.settle();
    for k in keys() {
        assert_eq!(c.run(ck, get(&k)), value(&format!("v{k}+a+b")));
    }
    assert!(c.sm(1).shards().is_empty(), "{:?}", c.sm(1).shards());
    assert_eq!(c.sm(2).shards().len(), 10);
}

/// TestChallenge2Unaffected: while group 1 is unreachable and leaves, group 2 keeps serving
/// the shards it already owned; the shards coming from group 1 wait for it.
#[test]
fn unaffected_shards_are_served_during_a_migration() {
    let mut c = Cluster::new(&[1, 2], Bugs::NONE, 10);
    let ck = c.clerk(1);
    c.join(&[1]);
    c.join(&[2]);
    c.settle();
    for k in keys() {
        c.run(ck, put(&k, "100"));
    }
    let owned_by_2: Vec<String> = keys()
        .into_iter()
        .filter(|k| c.ctrl.latest().owner(key2shard(k, 10)) == Gid(2))
        .collect();
    assert_eq!(owned_by_2.len(), 5);
    c.cut.insert(group_node(1));
    c.leave(&[1]);
    assert!(c.run_until(5, |c| c.sm(2).num() == ConfigNum(3)));
    for k in &owned_by_2 {
        assert_eq!(c.run(ck, get(k)), value("100"));
        assert_eq!(c.run(ck, put(k, "101")), OpReply::Ok);
        assert_eq!(c.run(ck, get(k)), value("101"));
    }
    assert!(!c.sm(2).can_reconfigure(), "still pulling group 1's shards");
}

/// TestChallenge2Partial: groups 1, 2 and 3; groups 1 and 3 leave while 1 is unreachable.
/// Group 2 serves the shards that arrived from group 3 although those from group 1 cannot.
#[test]
fn a_shard_is_served_as_soon_as_it_arrives() {
    let mut c = Cluster::new(&[1, 2, 3], Bugs::NONE, 10);
    let ck = c.clerk(1);
    c.join(&[1, 2, 3]);
    c.settle();
    for k in keys() {
        c.run(ck, put(&k, &k));
    }
    let from_3: Vec<String> = keys()
        .into_iter()
        .filter(|k| c.ctrl.latest().owner(key2shard(k, 10)) == Gid(3))
        .collect();
    assert!(!from_3.is_empty());
    c.cut.insert(group_node(1));
    c.leave(&[1, 3]);
    assert!(c.run_until(5, |c| c.sm(2).num() == c.ctrl.latest().num));
    for k in &from_3 {
        assert_eq!(c.run(ck, get(k)), value(k));
        assert_eq!(c.run(ck, append(k, "x")), OpReply::Ok);
        assert_eq!(c.run(ck, get(k)), value(&format!("{k}x")));
    }
    assert!(
        c.run_until(5, |c| c.sm(3).shards().is_empty()),
        "group 3's copies deleted once confirmed"
    );
    assert!(!c.sm(2).can_reconfigure(), "still pulling group 1's shards");
}

/// SHARD-3: an append executed by the old owner whose answer was lost is retried at the new
/// owner after the move and is not executed again there (the session moved with the shard).
#[test]
fn a_retried_append_is_not_applied_twice_after_a_move() {
    let mut c = Cluster::new(&[1, 2], Bugs::NONE, 2);
    let ck = c.clerk(1);
    c.join(&[1]);
    c.run(ck, put("1", "a"));
    c.drop_next_response = true;
    c.invoke(ck, append("1", "b"));
    // Group 1 executes the append; its answer is dropped. Then shard 1 moves to group 2.
    c.run_until(1, |_| true);
    c.join(&[2]);
    c.settle();
    assert_eq!(c.ctrl.latest().owner(ShardId(1)), Gid(2));
    assert!(c.run_until(20, |c| c.completed.len() == 2));
    assert_eq!(c.run(ck, get("1")), value("ab"));
}

/// When every group leaves, the last holder keeps the data; a group joining later gets it.
#[test]
fn shards_survive_every_group_leaving() {
    let mut c = Cluster::new(&[1, 2], Bugs::NONE, 4);
    let ck = c.clerk(1);
    c.join(&[1]);
    for k in ["a", "b", "c", "d"] {
        c.run(ck, put(k, k));
    }
    c.leave(&[1]);
    c.settle();
    c.join(&[2]);
    for k in ["a", "b", "c", "d"] {
        assert_eq!(c.run(ck, get(k)), value(k));
    }
    c.settle();
    assert!(c.sm(1).shards().is_empty());
}

/// A group that is not yet in a configuration follows every configuration in order, and
/// stale or duplicate configuration replies change nothing.
#[test]
fn configurations_are_applied_in_order_once() {
    let mut sm = ShardKv::new(Gid(1), 2, Bugs::NONE);
    let mut ctrl = ShardCtrler::new(2);
    for (i, op) in [
        CtrlOp::Join([(Gid(2), vec![NodeId(2)])].into()),
        CtrlOp::Join([(Gid(1), vec![NodeId(1)])].into()),
    ]
    .into_iter()
    .enumerate()
    {
        let seq = Seq(i as u64 + 1);
        ctrl.apply(
            LogIndex(seq.0),
            &CtrlCommand {
                client: ClientId(0),
                seq,
                op,
            },
        );
    }
    let cfg2 = ctrl.configs()[2].clone();
    sm.apply(LogIndex(0), &Command::Reconfigure(cfg2.clone()));
    assert_eq!(sm.num(), ConfigNum(0), "config 2 may not skip config 1");
    sm.apply(
        LogIndex(0),
        &Command::Reconfigure(ctrl.configs()[1].clone()),
    );
    sm.apply(
        LogIndex(0),
        &Command::Reconfigure(ctrl.configs()[1].clone()),
    );
    assert_eq!(sm.num(), ConfigNum(1));
    sm.apply(LogIndex(0), &Command::Reconfigure(cfg2));
    assert_eq!(sm.num(), ConfigNum(2));
    let pulling = sm
        .shards()
        .values()
        .filter(|s| matches!(s.state, ShardState::Pulling(_)))
        .count();
    assert_eq!(pulling, 1, "group 1 pulls its shard from group 2");
    assert!(!sm.can_reconfigure());
}

/// Each seeded bug, on a scenario where it matters, breaks the invariant that states its
/// consequence (the model checker and simulator find them without a script).
#[test]
fn seeded_bugs_break_their_invariants() {
    // serve-before-arrival: group 2 serves shard 1 while group 1 still does.
    let mut c = Cluster::new(&[1, 2], Bugs::only(Bug::ServeBeforeArrival), 2);
    c.join(&[1]);
    c.settle();
    c.join(&[2]);
    c.cut.insert(group_node(1));
    c.run_until(3, |_| false);
    let groups: Vec<&ShardKv> = c.groups.values().map(|g| &g.sm).collect();
    let v = invariants::single_owner(&groups).unwrap_err();
    assert_eq!(v.id, invariants::SINGLE_OWNER);

    // delete-before-confirm: group 1 drops shard 1 as soon as it sent it; the reply is lost.
    let mut c = Cluster::new(&[1, 2], Bugs::only(Bug::DeleteBeforeConfirm), 2);
    c.join(&[1]);
    c.settle();
    c.join(&[2]);
    c.lose = |to, m| to == group_node(2) && matches!(m, Msg::PullReply { .. });
    c.run_until(3, |_| false);
    assert!(matches!(
        c.sm(2).shard(ShardId(1)).map(|s| &s.state),
        Some(ShardState::Pulling(_))
    ));
    let groups: Vec<&ShardKv> = c.groups.values().map(|g| &g.sm).collect();
    let v = invariants::no_premature_delete(&groups).unwrap_err();
    assert_eq!(v.id, invariants::NO_PREMATURE_DELETE);
}

#[test]
fn timers_are_set_at_start_and_rearmed() {
    let mut s = ShardServer::new(vec![CTRL]);
    let r = s.take_ready();
    assert_eq!(
        r.timers,
        [
            TimerCmd::Set(Timer::PollConfig),
            TimerCmd::Set(Timer::Migrate)
        ]
    );
    let sm = ShardKv::new(Gid(1), 2, Bugs::NONE);
    s.on_timeout(&sm, Timer::PollConfig);
    let r = s.take_ready();
    assert_eq!(
        r.messages,
        [(
            CTRL,
            Msg::Query {
                num: Some(ConfigNum(1))
            }
        )]
    );
    assert_eq!(r.timers, [TimerCmd::Set(Timer::PollConfig)]);
}

/// A group's snapshot restores its configuration, holders and every shard with its data and
/// sessions; truncated bytes are an error, never a panic. Log commands round-trip.
#[test]
fn snapshots_and_commands_round_trip() {
    use crate::codec::{Decode, Encode};
    use crate::rsm::StateMachine;
    let mut c = Cluster::new(&[1, 2], Bugs::NONE, 4);
    let ck = c.clerk(1);
    c.join(&[1]);
    for k in ["a", "b", "c"] {
        c.run(ck, append(k, k));
    }
    c.join(&[2]);
    c.run_until(2, |_| false);
    for gid in [1, 2] {
        let sm = c.sm(gid).clone();
        let bytes = sm.snapshot();
        let mut restored = ShardKv::new(Gid(gid), 4, Bugs::NONE);
        restored.restore(&bytes).expect("decodes");
        assert_eq!(restored, sm);
        for cut in 0..bytes.len() {
            let mut r = ShardKv::new(Gid(gid), 4, Bugs::NONE);
            assert!(
                r.restore(&bytes[..cut]).is_err(),
                "{cut} of {}",
                bytes.len()
            );
        }
    }
    let cmds = [
        Command::Op {
            client: ClientId(1),
            seq: Seq(2),
            op: append("k", "v"),
        },
        Command::Reconfigure(c.ctrl.latest().clone()),
        Command::InsertShard {
            shard: ShardId(1),
            num: ConfigNum(3),
            data: [("k".to_string(), "v".to_string())].into(),
            sessions: vec![SessionEntry {
                client: ClientId(4),
                seq: Seq(5),
                reply: OpReply::Ok,
            }],
        },
        Command::DeleteShard {
            shard: ShardId(2),
            num: ConfigNum(1),
        },
        Command::ShardDeleted {
            shard: ShardId(0),
            num: ConfigNum(9),
        },
    ];
    for cmd in cmds {
        assert_eq!(Command::from_bytes(&cmd.to_bytes()), Ok(cmd));
    }
}
