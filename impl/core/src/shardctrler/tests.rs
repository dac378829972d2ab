//! The controller's state machine on the lab's scenarios (TestBasic, TestMulti,
//! TestMinimalAgain), without replication: each test names the lab test it follows.

use super::invariants::{balanced, min_moves};
use super::*;
use crate::codec::{Decode, Encode};

fn servers(ids: &[u32]) -> Vec<NodeId> {
    ids.iter().map(|i| NodeId(*i)).collect()
}

struct Admin {
    ctrl: ShardCtrler,
    seq: u64,
}

impl Admin {
    fn new() -> Admin {
        Admin {
            ctrl: ShardCtrler::new(SHARDS_DEFAULT),
            seq: 0,
        }
    }

    fn run(&mut self, op: CtrlOp) -> CtrlReply {
        self.seq += 1;
        let reply = self.ctrl.apply(
            LogIndex(self.seq),
            &CtrlCommand {
                client: ClientId(1),
                seq: Seq(self.seq),
                op,
            },
        );
        balanced(&self.ctrl).expect("SHARD-6 after every operation");
        reply
    }

    fn join(&mut self, groups: &[(u32, &[u32])]) -> CtrlReply {
        let map = groups.iter().map(|(g, s)| (Gid(*g), servers(s))).collect();
        self.run(CtrlOp::Join(map))
    }

    fn leave(&mut self, gids: &[u32]) -> CtrlReply {
        self.run(CtrlOp::Leave(gids.iter().map(|g| Gid(*g)).collect()))
    }

    fn latest(&self) -> &Config {
        self.ctrl.latest()
    }
}

/// The lab's `check(groups)`: exactly these groups, no shard outside them, max ≤ min + 1.
fn check(config: &Config, gids: &[u32]) {
    let want: Vec<Gid> = gids.iter().map(|g| Gid(*g)).collect();
    assert_eq!(config.groups.keys().copied().collect::<Vec<_>>(), want);
    if !want.is_empty() {
        assert!(config.shards.iter().all(|g| want.contains(g)), "{config:?}");
    }
    let loads = rebalance::load(&config.shards, want);
    if let (Some(min), Some(max)) = (loads.values().min(), loads.values().max()) {
        assert!(max - min <= 1, "{loads:?}");
    }
}

/// TestBasic/LeaveJoin and HistoricalQueries: each step makes the next configuration, the
/// server lists come back exactly, and old configurations never change.
#[test]
fn basic_leave_join_and_historical_queries() {
    let mut a = Admin::new();
    assert_eq!(a.latest(), &Config::initial(SHARDS_DEFAULT));
    let mut saved = vec![a.latest().clone()];
    assert_eq!(a.join(&[(1, &[10, 11, 12])]), CtrlReply::Done(ConfigNum(1)));
    check(a.latest(), &[1]);
    saved.push(a.latest().clone());
    a.join(&[(2, &[20, 21, 22])]);
    check(a.latest(), &[1, 2]);
    assert_eq!(
        a.latest().servers(Gid(1)),
        servers(&[10, 11, 12]).as_slice()
    );
    assert_eq!(
        a.latest().servers(Gid(2)),
        servers(&[20, 21, 22]).as_slice()
    );
    saved.push(a.latest().clone());
    a.leave(&[1]);
    check(a.latest(), &[2]);
    saved.push(a.latest().clone());
    a.leave(&[2]);
    check(a.latest(), &[]);
    assert!(a.latest().shards.iter().all(|g| *g == Gid::NONE));
    saved.push(a.latest().clone());
    for c in &saved {
        assert_eq!(a.ctrl.query(Some(c.num)), c);
    }
    assert_eq!(a.ctrl.query(None), a.latest());
    assert_eq!(a.ctrl.query(Some(ConfigNum(99))), a.latest());
}

/// TestBasic/Move: a move that changes a shard raises the number; the final assignment is
/// exactly as moved; a move to a non-member is refused.
#[test]
fn basic_move() {
    let mut a = Admin::new();
    a.join(&[(503, &[1])]);
    a.join(&[(504, &[2])]);
    for s in 0..SHARDS_DEFAULT as u32 {
        let gid = Gid(if s < 5 { 503 } else { 504 });
        let before = a.latest().num;
        let reply = a.run(CtrlOp::Move {
            shard: ShardId(s),
            gid,
        });
        assert_eq!(reply, CtrlReply::Done(before.next()));
    }
    let shards = &a.latest().shards;
    assert!(shards[..5].iter().all(|g| *g == Gid(503)));
    assert!(shards[5..].iter().all(|g| *g == Gid(504)));
    let bad = a.run(CtrlOp::Move {
        shard: ShardId(0),
        gid: Gid(7),
    });
    assert_eq!(bad, CtrlReply::Err(CtrlError::NotMember(Gid(7))));
    let bad = a.run(CtrlOp::Move {
        shard: ShardId(10),
        gid: Gid(503),
    });
    assert_eq!(bad, CtrlReply::Err(CtrlError::NoSuchShard(ShardId(10))));
}

/// TestMinimalAgain, with the bound the lab states (≤ NShards/3 + 1 shards change) and its
/// precise form: a shard that does not go to the joining group (or come from the leaving one)
/// does not move at all.
#[test]
fn minimal_again() {
    let mut a = Admin::new();
    a.join(&[(1, &[1])]);
    a.join(&[(2, &[2])]);
    let c1 = a.latest().clone();
    a.join(&[(3, &[3])]);
    let c2 = a.latest().clone();
    a.leave(&[1]);
    let c3 = a.latest().clone();
    let bound = SHARDS_DEFAULT / 3 + 1;
    let moved12 = rebalance::moved(&c1.shards, &c2.shards);
    assert!(moved12.len() <= bound, "{moved12:?}");
    assert!(moved12.iter().all(|s| c2.owner(*s) == Gid(3)));
    let moved23 = rebalance::moved(&c2.shards, &c3.shards);
    assert!(moved23.len() <= bound, "{moved23:?}");
    assert!(moved23.iter().all(|s| c2.owner(*s) == Gid(1)));
}

/// TestMulti/LeaveJoin: several groups join and leave in one operation.
#[test]
fn multi_leave_join() {
    let mut a = Admin::new();
    a.join(&[(1, &[1, 2]), (2, &[3, 4])]);
    check(a.latest(), &[1, 2]);
    a.join(&[(3, &[5])]);
    check(a.latest(), &[1, 2, 3]);
    a.leave(&[1, 3]);
    check(a.latest(), &[2]);
    assert_eq!(a.latest().servers(Gid(2)), servers(&[3, 4]).as_slice());
    a.leave(&[2]);
    check(a.latest(), &[]);
}

/// A retried Join (same client and sequence number) is answered from the session table and
/// makes no second configuration; a re-join after leaving is allowed, a double join is not.
#[test]
fn duplicate_requests_and_rejoin() {
    let mut ctrl = ShardCtrler::new(SHARDS_DEFAULT);
    let join = CtrlCommand {
        client: ClientId(9),
        seq: Seq(1),
        op: CtrlOp::Join([(Gid(1), servers(&[1]))].into()),
    };
    assert_eq!(
        ctrl.apply(LogIndex(1), &join),
        CtrlReply::Done(ConfigNum(1))
    );
    assert_eq!(
        ctrl.apply(LogIndex(2), &join),
        CtrlReply::Done(ConfigNum(1))
    );
    assert_eq!(ctrl.configs().len(), 2);
    let mut a = Admin::new();
    a.join(&[(1, &[1])]);
    assert_eq!(
        a.join(&[(1, &[1])]),
        CtrlReply::Err(CtrlError::AlreadyMember(Gid(1)))
    );
    assert_eq!(
        a.join(&[(2, &[1])]),
        CtrlReply::Err(CtrlError::ServerInUse {
            server: NodeId(1),
            gid: Gid(1)
        })
    );
    a.join(&[(2, &[2])]);
    a.leave(&[1]);
    let next = a.latest().num.next();
    assert_eq!(a.join(&[(1, &[1])]), CtrlReply::Done(next));
    check(a.latest(), &[1, 2]);
    assert_eq!(a.leave(&[5]), CtrlReply::Err(CtrlError::NotMember(Gid(5))));
    assert_eq!(a.join(&[(0, &[8])]), CtrlReply::Err(CtrlError::ReservedGid));
}

/// The seeded bug `ctrl-drop-dedup`: a retried Join is applied again (and refused, the group
/// being a member already), and a stale copy of a Join that arrives after the client's Leave
/// joins the group a second time — a configuration no acknowledged operation implies. The
/// correct controller answers the first from its session table and ignores the second.
#[test]
fn drop_dedup_applies_retries_again() {
    let join = CtrlCommand {
        client: ClientId(9),
        seq: Seq(1),
        op: CtrlOp::Join([(Gid(1), servers(&[1]))].into()),
    };
    let leave = CtrlCommand {
        client: ClientId(9),
        seq: Seq(2),
        op: CtrlOp::Leave([Gid(1)].into()),
    };
    let replies = |mut ctrl: ShardCtrler| {
        let replies = [
            ctrl.apply(LogIndex(1), &join),
            ctrl.apply(LogIndex(2), &join),
            ctrl.apply(LogIndex(3), &leave),
            ctrl.apply(LogIndex(4), &join),
        ];
        (replies, ctrl.latest().groups.len())
    };
    let done = |n| CtrlReply::Done(ConfigNum(n));
    assert_eq!(
        replies(ShardCtrler::new(SHARDS_DEFAULT)),
        ([done(1), done(1), done(2), CtrlReply::Stale], 0)
    );
    let buggy = ShardCtrler::with_bugs(SHARDS_DEFAULT, Bugs::only(Bug::CtrlDropDedup), 0);
    let refused = CtrlReply::Err(CtrlError::AlreadyMember(Gid(1)));
    assert_eq!(replies(buggy), ([done(1), refused, done(2), done(3)], 1));
}

/// The seeded bug `rebalance-differs` makes replicas disagree on the same command sequence
/// (SHARD-5), while each stays balanced (SHARD-6): a check of one replica cannot see it.
#[test]
fn divergent_rebalance_disagrees_between_replicas() {
    let cmd = CtrlCommand {
        client: ClientId(1),
        seq: Seq(1),
        op: CtrlOp::Join([(Gid(1), servers(&[1])), (Gid(2), servers(&[2]))].into()),
    };
    let mut r0 = ShardCtrler::with_divergent_rebalance(2, 0);
    let mut r1 = ShardCtrler::with_divergent_rebalance(2, 1);
    r0.apply(LogIndex(1), &cmd);
    r1.apply(LogIndex(1), &cmd);
    balanced(&r0).unwrap();
    balanced(&r1).unwrap();
    let err = invariants::config_agreement(&[&r0, &r1]).unwrap_err();
    assert_eq!(err.id, invariants::CONFIG_AGREEMENT);
}

#[test]
fn min_moves_counts_orphans_and_excess() {
    let g = |v: &[u32]| v.iter().map(|g| Gid(*g)).collect::<Vec<_>>();
    // Group 9 left: its two shards are orphans; 1 and 2 already hold 2 each.
    assert_eq!(min_moves(&g(&[1, 1, 2, 2, 9, 9]), g(&[1, 2])), 2);
    // A new group takes ⌊6/3⌋ = 2.
    assert_eq!(min_moves(&g(&[1, 1, 1, 2, 2, 2]), g(&[1, 2, 3])), 2);
    assert_eq!(min_moves(&g(&[1, 1]), []), 2);
}

/// A snapshot restores every configuration and the sessions (a retried Join after a restart
/// from it is still recognised); garbage is refused with an error, never a panic.
#[test]
fn snapshots_round_trip() {
    let mut a = Admin::new();
    a.join(&[(1, &[10, 11]), (2, &[20])]);
    a.run(CtrlOp::Move {
        shard: ShardId(3),
        gid: Gid(2),
    });
    a.leave(&[1]);
    let bytes = a.ctrl.snapshot();
    let mut restored = ShardCtrler::new(SHARDS_DEFAULT);
    restored.restore(&bytes).expect("decodes");
    assert_eq!(restored, a.ctrl);
    let retry = CtrlCommand {
        client: ClientId(1),
        seq: Seq(a.seq),
        op: CtrlOp::Leave([Gid(1)].into()),
    };
    assert_eq!(
        restored.apply(LogIndex(99), &retry),
        CtrlReply::Done(ConfigNum(3))
    );
    for cut in 0..bytes.len() {
        assert!(
            ShardCtrler::new(SHARDS_DEFAULT)
                .restore(&bytes[..cut])
                .is_err()
        );
    }
    let cmd = CtrlCommand {
        client: ClientId(3),
        seq: Seq(7),
        op: CtrlOp::Join([(Gid(5), servers(&[1, 2]))].into()),
    };
    assert_eq!(CtrlCommand::from_bytes(&cmd.to_bytes()), Ok(cmd));
}
