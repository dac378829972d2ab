//! Property tests of the controller's rebalancing (SHARD-5, SHARD-6; the lab's `check()` and
//! TestMinimalAgain, without its loophole: the lab's MinimalTransfer subtests cannot fail).
//!
//! * `rebalance` alone, on arbitrary assignments and group sets: every shard assigned whenever
//!   a group exists, balanced, exactly the fewest moves balance needs, and the same result
//!   whatever order (and repetitions) the groups are listed in;
//! * the controller state machine on random Join/Leave/Move sequences, applied by two
//!   replicas that received each Join's map built in a different insertion order: identical
//!   configurations (SHARD-5), each balanced and minimal (SHARD-6), and after a Join (Leave)
//!   from a balanced configuration only shards going to (coming from) the named groups move.

use aver_core::NodeId;
use aver_core::kvraft::{ClientId, Seq};
use aver_core::raft::LogIndex;
use aver_core::shardctrler::invariants::{self, min_moves};
use aver_core::shardctrler::rebalance::{load, moved, rebalance};
use aver_core::shardctrler::{Config, CtrlCommand, CtrlOp, Gid, ShardCtrler, ShardId};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn assignment() -> impl Strategy<Value = Vec<Gid>> {
    proptest::collection::vec((0u32..9).prop_map(Gid), 1..17)
}

fn group_list() -> impl Strategy<Value = Vec<Gid>> {
    proptest::collection::vec((0u32..9).prop_map(Gid), 0..8)
}

fn is_balanced(shards: &[Gid], groups: &BTreeSet<Gid>) -> bool {
    let loads = load(shards, groups.iter().copied());
    match (loads.values().min(), loads.values().max()) {
        (Some(min), Some(max)) => max - min <= 1,
        _ => true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Balance, every shard assigned, minimal movement, and independence of listing order.
    #[test]
    fn rebalance_is_balanced_minimal_and_order_free(
        current in assignment(),
        listed in group_list(),
        rotate in 0usize..8,
    ) {
        let groups: BTreeSet<Gid> = listed.iter().copied().filter(|g| *g != Gid::NONE).collect();
        let next = rebalance(&current, listed.iter().copied());
        prop_assert_eq!(next.len(), current.len());
        if groups.is_empty() {
            prop_assert!(next.iter().all(|g| *g == Gid::NONE));
        } else {
            prop_assert!(next.iter().all(|g| groups.contains(g)), "unassigned or foreign: {:?}", next);
            prop_assert!(is_balanced(&next, &groups), "{:?}", load(&next, groups.iter().copied()));
        }
        prop_assert_eq!(
            moved(&current, &next).len(),
            min_moves(&current, groups.iter().copied()),
            "moves beyond what balance needs"
        );
        // Another replica lists the same groups in another order, with repetitions.
        let mut other = listed.clone();
        other.reverse();
        if !other.is_empty() {
            let k = rotate % other.len();
            other.rotate_left(k);
            other.push(other[0]);
        }
        prop_assert_eq!(&rebalance(&current, other), &next);
        // Rebalancing a balanced assignment moves nothing.
        prop_assert_eq!(&rebalance(&next, groups.iter().copied()), &next);
    }
}

#[derive(Clone, Debug)]
enum Step {
    Join(Vec<u32>),
    Leave(Vec<usize>),
    Move(u32, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => proptest::collection::vec(1u32..12, 1..4).prop_map(Step::Join),
        2 => proptest::collection::vec(any::<usize>(), 1..3).prop_map(Step::Leave),
        1 => (0u32..10, any::<usize>()).prop_map(|(s, g)| Step::Move(s, g)),
    ]
}

/// The operation `step` stands for against `latest`, as two replicas receive it: the Join map
/// built by inserting in ascending and in descending order.
fn ops(step: &Step, latest: &Config) -> Option<(CtrlOp, CtrlOp)> {
    let members: Vec<Gid> = latest.groups.keys().copied().collect();
    match step {
        Step::Join(gids) => {
            let fresh: Vec<Gid> = gids
                .iter()
                .map(|g| Gid(*g))
                .filter(|g| !latest.groups.contains_key(g))
                .collect();
            if fresh.is_empty() {
                return None;
            }
            let entry = |g: &Gid| (*g, vec![NodeId(g.0 * 10), NodeId(g.0 * 10 + 1)]);
            let up: BTreeMap<_, _> = fresh.iter().map(entry).collect();
            let mut down = BTreeMap::new();
            for g in fresh.iter().rev() {
                let (k, v) = entry(g);
                down.insert(k, v);
            }
            Some((CtrlOp::Join(up), CtrlOp::Join(down)))
        }
        Step::Leave(picks) if !members.is_empty() => {
            let set: BTreeSet<Gid> = picks.iter().map(|p| members[p % members.len()]).collect();
            Some((CtrlOp::Leave(set.clone()), CtrlOp::Leave(set)))
        }
        Step::Move(shard, pick) if !members.is_empty() => {
            let op = CtrlOp::Move {
                shard: ShardId(*shard),
                gid: members[pick % members.len()],
            };
            Some((op.clone(), op))
        }
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Two replicas, one command sequence: the same configurations, each balanced and minimal;
    /// a Join moves shards only to the joining groups and a Leave only from the leaving ones
    /// (when the configuration before was balanced, i.e. not left unbalanced by a Move).
    #[test]
    fn replicas_agree_and_moves_stay_minimal(steps in proptest::collection::vec(step(), 1..30)) {
        let mut r0 = ShardCtrler::new(10);
        let mut r1 = ShardCtrler::new(10);
        for (i, step) in steps.iter().enumerate() {
            let before = r0.latest().clone();
            let Some((op0, op1)) = ops(step, &before) else { continue };
            let (client, seq) = (ClientId(1), Seq(i as u64 + 1));
            let index = LogIndex(i as u64 + 1);
            let a = r0.apply(index, &CtrlCommand { client, seq, op: op0.clone() });
            let b = r1.apply(index, &CtrlCommand { client, seq, op: op1 });
            prop_assert_eq!(a, b);
            prop_assert!(invariants::config_agreement(&[&r0, &r1]).is_ok());
            if let Err(v) = invariants::balanced(&r0) {
                prop_assert!(false, "{}", v);
            }
            let after = r0.latest();
            let groups: BTreeSet<Gid> = before.groups.keys().copied().collect();
            if !is_balanced(&before.shards, &groups) || before.shards.contains(&Gid::NONE) {
                continue;
            }
            for s in moved(&before.shards, &after.shards) {
                match &op0 {
                    CtrlOp::Join(joining) => prop_assert!(
                        joining.contains_key(&after.owner(s)),
                        "a Join moved {} to the old member {}", s, after.owner(s)
                    ),
                    CtrlOp::Leave(leaving) => prop_assert!(
                        leaving.contains(&before.owner(s)),
                        "a Leave moved {} away from the staying member {}", s, before.owner(s)
                    ),
                    _ => {}
                }
            }
        }
    }
}
