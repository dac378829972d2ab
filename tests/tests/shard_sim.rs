//! The sharded KV's simulated suites (`aver_tests::shard`, groups of three Raft servers, a
//! controller of three Raft servers):
//! every scenario on two seeds, and the seeded bugs the simulator catches, each by what a user
//! loses. The 200-seed soak is `cargo run --release -- sim shard --seeds 200`.

use aver_core::shardkv::{Bug, Bugs};
use aver_tests::shard::{SHARD, find};

/// Every scenario (the older shardkv tests, the 2025 shardkv1 ones, analogues of the 2025
/// controller-failure and concurrent-controller tests, and `partition_leaders`) passes on
/// seeds 1 and 2: histories linearizable (the clerks' and the administrators'), every operation returned, Raft's
/// cluster invariants per group and per controller and SHARD-1 after every event,
/// `checklogs`, SHARD-5 and SHARD-6 over the controller's servers, each test's own bound.
#[test]
fn shard_suite_passes() {
    for s in SHARD {
        for seed in 1..=2 {
            if let Err(f) = s.run_seed(seed, Bugs::NONE, None) {
                panic!("{f}");
            }
        }
    }
}

/// Runs `test` on `seed` with `bug` seeded; the failure must contain `consequence`.
fn caught(test: &str, seed: u64, bug: Bug, consequence: &str) {
    let s = find(test).expect("a shard test");
    let f = s
        .run_seed(seed, Bugs::only(bug), None)
        .expect_err("the seeded bug went unnoticed");
    assert!(f.message.contains(consequence), "{bug}: {f}");
    let replay = format!("sim shard --test {test} --seed {seed} --bug {bug}");
    assert!(f.replay.ends_with(&replay), "{}", f.replay);
}

/// Serving a shard before its data arrived: two groups serve one shard (SHARD-1).
#[test]
fn sim_catches_serve_before_arrival() {
    caught(
        "join_leave_5b",
        3,
        Bug::ServeBeforeArrival,
        "SHARD-1 violated",
    );
}

/// Migration without the dedup table: a retried Append applies twice after the move, and the
/// history is not linearizable (TestUnreliable3_5B's check).
#[test]
fn sim_catches_drop_dedup() {
    caught("unreliable3_5b", 2, Bug::DropDedup, "not linearizable");
}

/// Deleting a shard before the new owner confirmed: the pull reply is lost, the only copy is
/// gone, and an acknowledged Append is in no group (SHARD-2).
#[test]
fn sim_catches_delete_before_confirm() {
    caught(
        "unreliable3_5b",
        1,
        Bug::DeleteBeforeConfirm,
        "SHARD-2 violated",
    );
}

/// Jumping to the latest configuration: a hand-off is skipped, the skipped shards are never
/// pulled, and operations on them never return even after every fault heals.
#[test]
fn sim_catches_configs_out_of_order() {
    caught(
        "concurrent1_5b",
        1,
        Bug::ConfigsOutOfOrder,
        "every operation returns",
    );
}

/// Controller replicas that rebalance differently: groups that ask different replicas take
/// different assignments for one configuration number, and two groups serve one shard.
#[test]
fn sim_catches_rebalance_differs() {
    caught(
        "static_shards_5a",
        1,
        Bug::RebalanceDiffers,
        "SHARD-1 violated",
    );
}

/// A controller whose session table does not deduplicate (`ctrl-drop-dedup`): the leader fails
/// just after it sent a Join or Leave to its followers, the next leader commits that copy, and
/// the administrator's retry is applied again and refused (the group is already a member, or
/// no longer one), so the administrator is told its change failed although it took effect
/// (recover_ctrler_5b: 30 of seeds 1–30). With administrators racing, a copy that commits
/// after its administrator's next step also makes a configuration that no acknowledged
/// operation implies (concurrent_admins_*_5c: 29 and 28 of seeds 1–30).
#[test]
fn sim_catches_ctrl_drop_dedup() {
    let bug = Bug::CtrlDropDedup;
    caught("recover_ctrler_5b", 1, bug, "returned Err(NotMember");
    caught(
        "concurrent_admins_reliable_5c",
        2,
        bug,
        "returned Err(AlreadyMember",
    );
    caught(
        "concurrent_admins_unreliable_5c",
        10,
        bug,
        "a change took effect more than once",
    );
}
