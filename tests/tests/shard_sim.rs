//! The sharded KV's simulated suites (`aver_tests::shard`): every ported test on two seeds,
//! and the seeded bugs the simulator catches, each by what a user loses. The 200-seed soak is
//! `cargo run --release -- sim shard --seeds 200`.

use aver_core::shardkv::{Bug, Bugs};
use aver_tests::shard::{SHARD, find};

/// Every ported test (TestStaticShards5A … TestChallenge2Partial; shardkv1's ManyJoinLeave,
/// JoinLeaveBasic, ProgressShutdown) passes on seeds 1 and 2: histories linearizable, every
/// operation returned, SHARD-1 after every event, each test's own bound.
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
    let f = s.run_seed(seed, Bugs::only(bug), None).expect_err("the seeded bug went unnoticed");
    assert!(f.message.contains(consequence), "{bug}: {f}");
    let replay = format!("sim shard --test {test} --seed {seed} --bug {bug}");
    assert!(f.replay.ends_with(&replay), "{}", f.replay);
}

/// Serving a shard before its data arrived: two groups serve one shard (SHARD-1).
#[test]
fn sim_catches_serve_before_arrival() {
    caught(
        "join_leave_5b",
        1,
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
        3,
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

/// DEV ONLY (temporary): SHARD_TEST=name SHARD_SEEDS=a..b.
#[test]
#[ignore]
fn dev_run() {
    let name = std::env::var("SHARD_TEST").unwrap_or_default();
    let seeds = std::env::var("SHARD_SEEDS").unwrap_or("1..2".into());
    let (a, b) = seeds.split_once("..").unwrap();
    let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
    let bug = std::env::var("SHARD_BUG").ok().map(|b| Bugs::only(b.parse::<Bug>().unwrap()));
    for s in SHARD.iter().filter(|s| name.is_empty() || name.split(',').any(|n| n == s.name)) {
        let mut max_ev = 0;
        let mut fails = 0;
        let t = std::time::Instant::now();
        for seed in a..b {
            if std::env::var("SHARD_TRACE").is_ok() {
                aver_sim::sim::trace_next_run();
            }
            match s.run_seed(seed, bug.unwrap_or(Bugs::NONE), None) {
                Ok(sum) => {
                    max_ev = max_ev.max(sum.events);
                    eprintln!("  seed {seed}: {sum:?}");
                }
                Err(f) => {
                    fails += 1;
                    eprintln!("FAIL {f}");
                }
            }
        }
        eprintln!(
            "{} runs {} fails {fails} max_events {max_ev} wall {:.2}s",
            s.name,
            b - a,
            t.elapsed().as_secs_f64()
        );
    }
}
