//! The ported tests. Keys `"0"..="9"` fall into the 10 different shards (`key2shard` is the
//! first byte mod 10), as in the lab. Groups are numbered by index (gids 100, 101, …).

use super::ShardScenario;
use super::run::{Mix, Run, Shape, Summary, run_scenario};
use aver_core::kvraft::{ClientId, Seq};
use aver_core::raft::LogIndex;
use aver_core::shardctrler::{Config, CtrlCommand, CtrlError, CtrlOp, CtrlReply, Gid, ShardId};
use aver_core::shardkv::{Bugs, Op};
use aver_sim::Outcome;
use aver_sim::sim::{MS, Micros};
use rand::Rng;
use std::collections::BTreeSet;

/// `groups` groups of three servers with `maxraftstate` `max` (`None`: the lab's -1), and
/// `clerks` clerks.
fn shape(groups: usize, clerks: usize, max: Option<usize>) -> Shape {
    Shape {
        groups,
        clerks,
        max_raft_state: max,
        stale_clerks: 0,
        admins: 1,
    }
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// Background appenders: clerk `c` appends to its own key `c` (as the lab's concurrent tests).
fn appenders(r: &mut Run, n: usize, think_ms: (u64, u64)) {
    for c in 0..n {
        let mix = Mix {
            keys: vec![c.to_string()],
            append: 0.8,
            put: 0.0,
            think_ms,
        };
        r.start_worker(c, mix);
    }
}

/// Background clerks doing random operations on random keys (TestUnreliable3: about 50%
/// Append, 5% Put, the rest Get).
fn random_ops(r: &mut Run, n: usize, think_ms: (u64, u64)) {
    for c in 0..n {
        let mix = Mix {
            keys: keys(10),
            append: 0.5,
            put: 0.05,
            think_ms,
        };
        r.start_worker(c, mix);
    }
}

/// Clerk 0 puts a fresh value of `len` bytes to each key.
fn put_all(r: &mut Run, clerk: usize, keys: &[String], len: usize) -> Result<(), String> {
    let keys = keys.to_vec();
    r.sequence(
        &[clerk],
        move |r, _| {
            keys.iter()
                .map(|k| Op::Put(k.clone(), r.unique_value(len)))
                .collect()
        },
        10_000,
        "initial Puts",
    )
}

/// Gets every key from clerk `clerk` (the lab's `check`; the history checks the values).
fn get_all(r: &mut Run, clerk: usize, keys: &[String], within: u64) -> Result<(), String> {
    let keys = keys.to_vec();
    r.sequence(
        &[clerk],
        move |_, _| keys.iter().map(|k| Op::Get(k.clone())).collect(),
        within,
        "check Gets",
    )
}

/// TestStaticShards5A: with group 1 down, exactly the Gets of group 0's keys finish; after it
/// restarts, all do.
fn static_shards_5a(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("static_shards_5a", seed, bugs, shape(2, 11, None), |r| {
        r.join(&[0, 1])?;
        r.wait(1_000)?;
        let ks = keys(10);
        put_all(r, 10, &ks, 0)?;
        r.crash_group(1);
        for (c, k) in ks.iter().enumerate() {
            r.call(c, Op::Get(k.clone()));
        }
        r.wait(2_000)?;
        let on0: Vec<usize> = (0..10).filter(|&c| r.owner_of(&ks[c]) == Some(0)).collect();
        let done: Vec<usize> = (0..10).filter(|&c| !r.is_busy(c)).collect();
        if done != on0 {
            return Err(format!(
                "with group 1 down, the Gets of clerks {done:?} finished; exactly those of \
                 group 0's keys ({on0:?}) should"
            ));
        }
        r.restart_group(1);
        r.expect_done(
            &(0..10).collect::<Vec<_>>(),
            3_000,
            "Gets after group 1 restarts",
        )
    })
}

/// TestJoinLeave5B: the data moves to group 1 when group 0 leaves; group 0 is then shut down
/// for good and every operation still finishes.
fn join_leave_5b(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("join_leave_5b", seed, bugs, shape(2, 10, None), |r| {
        r.join(&[0])?;
        appenders(r, 10, (10, 30));
        r.wait(500)?;
        r.join(&[1])?;
        r.wait(1_000)?;
        r.leave(&[0])?;
        r.wait(1_000)?;
        r.crash_group(0);
        r.wait(1_000)?;
        r.stop_workers();
        r.expect_done(
            &(0..10).collect::<Vec<_>>(),
            3_000,
            "operations after group 0 left",
        )
    })
}

/// TestConcurrent1_5B: appends every 10 ms while groups join, leave, crash and restart.
fn concurrent1_5b(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("concurrent1_5b", seed, bugs, shape(3, 10, Some(100)), |r| {
        r.join(&[0])?;
        appenders(r, 10, (10, 10));
        r.wait(200)?;
        for g in [1, 2] {
            r.join(&[g])?;
            r.wait(100)?;
        }
        r.leave(&[0])?;
        for g in 0..3 {
            r.wait(100)?;
            r.crash_group(g);
        }
        r.wait(100)?;
        r.leave(&[2])?;
        r.wait(100)?;
        for g in 0..3 {
            r.restart_group(g);
        }
        r.wait(100)?;
        r.join(&[0])?;
        r.wait(100)?;
        r.leave(&[1])?;
        r.wait(500)?;
        r.join(&[1])?;
        r.wait(1_000)
    })
}

/// TestConcurrent3_5B (formerly TestChallenge1Concurrent): appends without a pause while, for
/// 6 s, groups join, every group crashes and restarts, groups leave.
fn challenge1_concurrent(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario(
        "challenge1_concurrent",
        seed,
        bugs,
        shape(3, 10, Some(300)),
        |r| {
            r.join(&[0])?;
            appenders(r, 10, (1, 5));
            let end = r.sim.now() + 6_000 * aver_sim::sim::MS;
            while r.sim.now() < end {
                r.join(&[2])?;
                r.join(&[1])?;
                let pause = r.sim.rng().random_range(0..900);
                r.wait(pause)?;
                for g in 0..3 {
                    r.crash_group(g);
                }
                for g in 0..3 {
                    r.restart_group(g);
                }
                let pause = r.sim.rng().random_range(0..900);
                r.wait(pause)?;
                r.leave(&[1])?;
                r.leave(&[2])?;
                let pause = r.sim.rng().random_range(0..900);
                r.wait(pause)?;
            }
            Ok(())
        },
    )
}

/// TestUnreliable3_5B: random operations on random keys over the unreliable network during
/// join 1, join 2, leave 0, leave 1, join 1, join 0; every history checked.
fn unreliable3_5b(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("unreliable3_5b", seed, bugs, shape(3, 5, Some(100)), |r| {
        r.set_reliable(false);
        r.join(&[0])?;
        random_ops(r, 5, (0, 20));
        r.wait(500)?;
        r.join(&[1])?;
        r.wait(500)?;
        r.join(&[2])?;
        r.wait(500)?;
        r.leave(&[0])?;
        r.wait(500)?;
        r.leave(&[1])?;
        r.wait(500)?;
        r.join(&[1])?;
        r.wait(500)?;
        r.join(&[0])?;
        r.wait(2_000)
    })
}

/// TestChallenge1Delete: maxraftstate 1 (a snapshot after every entry); 30 keys of 1000-byte
/// values moved around twice; afterwards the persisted Raft state plus snapshot, summed over
/// all nine servers, is within the lab's bound: 3 replicas × ((30 − 3) · 1000 (keys stored
/// once) + 2 · 3 · 1000 (keys also in a duplicate table) + 6000 (slop)) = 117,000 bytes.
fn challenge1_delete(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    const BOUND: usize = 3 * ((30 - 3) * 1000 + 2 * 3 * 1000 + 6000);
    run_scenario("challenge1_delete", seed, bugs, shape(3, 1, Some(1)), |r| {
        let ks = keys(30);
        r.join(&[0])?;
        r.wait(500)?;
        put_all(r, 0, &ks, 1000)?;
        for _ in 0..2 {
            r.join(&[1])?;
            r.leave(&[0])?;
            r.join(&[2])?;
            r.wait(3_000)?;
            get_all(r, 0, &ks, 5_000)?;
            r.leave(&[1])?;
            r.join(&[0])?;
            r.leave(&[2])?;
            r.wait(3_000)?;
            get_all(r, 0, &ks, 5_000)?;
        }
        r.join(&[1])?;
        r.join(&[2])?;
        r.wait(3_000)?;
        get_all(r, 0, &ks, 5_000)?;
        r.wait(1_000)?;
        let bytes = r.state_bytes();
        if bytes > BOUND {
            return Err(format!(
                "Challenge 1: the servers persist {bytes} bytes, more than {BOUND}: moved \
                 shards were not deleted"
            ));
        }
        Ok(())
    })
}

/// TestChallenge2Unaffected: after group 0 dies and leaves, the keys group 1 already owned
/// must be served (Get, Put, Get) without waiting for group 0's shards.
fn challenge2_unaffected(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario(
        "challenge2_unaffected",
        seed,
        bugs,
        shape(2, 10, Some(100)),
        |r| {
            r.set_reliable(false);
            let ks = keys(10);
            r.join(&[0])?;
            r.wait(500)?;
            put_all(r, 0, &ks, 0)?;
            r.join(&[1])?;
            r.wait(1_000)?;
            let owned: Vec<usize> = (0..10).filter(|&c| r.owner_of(&ks[c]) == Some(1)).collect();
            let puts = ks.clone();
            r.sequence(
                &owned,
                move |r, c| vec![Op::Put(puts[c].clone(), r.unique_value(0))],
                5_000,
                "Puts to group 1's keys",
            )?;
            r.crash_group(0);
            r.leave(&[0])?;
            r.wait(1_000)?;
            let ops = ks.clone();
            r.sequence(
                &owned,
                move |r, c| {
                    let k = ops[c].clone();
                    vec![
                        Op::Get(k.clone()),
                        Op::Put(k.clone(), r.unique_value(0)),
                        Op::Get(k),
                    ]
                },
                5_000,
                "Challenge 2: Get/Put/Get on the keys group 1 owned, while group 0 is down",
            )
        },
    )
}

/// TestChallenge2Partial: groups 0, 1, 2 join at once; group 0 dies; 0 and 2 leave at once.
/// Group 1 must serve the shards it received from group 2 although group 0's cannot arrive.
fn challenge2_partial(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario(
        "challenge2_partial",
        seed,
        bugs,
        shape(3, 10, Some(100)),
        |r| {
            r.set_reliable(false);
            let ks = keys(10);
            r.join(&[0, 1, 2])?;
            r.wait(1_000)?;
            put_all(r, 0, &ks, 0)?;
            let from2: Vec<usize> = (0..10).filter(|&c| r.owner_of(&ks[c]) == Some(2)).collect();
            r.crash_group(0);
            r.leave(&[0, 2])?;
            r.wait(1_000)?;
            let ops = ks.clone();
            r.sequence(
                &from2,
                move |r, c| {
                    let k = ops[c].clone();
                    vec![
                        Op::Get(k.clone()),
                        Op::Put(k.clone(), r.unique_value(0)),
                        Op::Get(k),
                    ]
                },
                5_000,
                "Challenge 2: Get/Put/Get on group 2's former keys, while group 0 is down",
            )
        },
    )
}

/// shardkv1 TestManyJoinLeaveUnreliable5A: the first group serves everything; 8 more join one
/// by one (200 ms apart), then the first is shut down and keys on the others must be served
/// (checkShutdownSharding: some Gets must block, the rest finish); then all 8 leave.
fn many_join_leave_unreliable_5a(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario(
        "many_join_leave_unreliable_5a",
        seed,
        bugs,
        shape(9, 10, None),
        |r| {
            r.set_reliable(false);
            let ks = keys(10);
            r.join(&[0])?;
            r.wait(500)?;
            put_all(r, 0, &ks, 0)?;
            for g in 1..9 {
                r.join(&[g])?;
                r.wait(200)?;
            }
            r.wait(2_000)?;
            shutdown_sharding(r, &ks, 0)?;
            for g in 1..9 {
                r.leave(&[g])?;
                r.wait(200)?;
            }
            r.wait(1_000)?;
            get_all(r, 0, &ks, 10_000)
        },
    )
}

/// shardkv1 TestJoinLeaveBasic5A: group 1 joins; both really hold shards; the first group
/// leaves and is shut down, its data moved; it restarts and re-joins under the same gid.
fn join_leave_basic_5a(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("join_leave_basic_5a", seed, bugs, shape(2, 10, None), |r| {
        let ks = keys(10);
        r.join(&[0])?;
        r.wait(500)?;
        put_all(r, 0, &ks, 0)?;
        r.join(&[1])?;
        r.wait(1_000)?;
        shutdown_sharding(r, &ks, 0)?;
        r.leave(&[0])?;
        r.wait(1_000)?;
        r.crash_group(0);
        get_all(r, 0, &ks, 5_000)?;
        r.restart_group(0);
        r.join(&[0])?;
        r.wait(1_000)?;
        get_all(r, 0, &ks, 5_000)?;
        shutdown_sharding(r, &ks, 1)
    })
}

/// shardkv1 TestProgressShutdown5A: four groups join the first; two of them are shut down;
/// Gets of the keys on the two live joined groups finish within 2 s.
fn progress_shutdown_5a(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario(
        "progress_shutdown_5a",
        seed,
        bugs,
        shape(5, 10, None),
        |r| {
            let ks = keys(10);
            r.join(&[0])?;
            r.wait(500)?;
            put_all(r, 0, &ks, 0)?;
            for g in 1..5 {
                r.join(&[g])?;
                r.wait(200)?;
            }
            r.wait(2_000)?;
            r.crash_group(1);
            r.crash_group(2);
            let live: Vec<usize> = (0..10)
                .filter(|&c| matches!(r.owner_of(&ks[c]), Some(3 | 4)))
                .collect();
            if live.is_empty() {
                return Err("groups 3 and 4 own no key: the configuration is not balanced".into());
            }
            for &c in &live {
                r.call(c, Op::Get(ks[c].clone()));
            }
            r.expect_done(
                &live,
                2_000,
                "Gets of keys on live groups with two groups down",
            )
        },
    )
}

/// checkShutdownSharding: with group `down` shut down, Gets of every key from fresh clerks;
/// after 2 s with none finishing, the finished ones must be exactly the keys not on `down`,
/// and some must be blocked (the data really is sharded). Then the group restarts.
fn shutdown_sharding(r: &mut Run, ks: &[String], down: usize) -> Result<(), String> {
    r.crash_group(down);
    for (c, k) in ks.iter().enumerate() {
        r.call(c, Op::Get(k.clone()));
    }
    let live: Vec<usize> = (0..ks.len())
        .filter(|&c| r.owner_of(&ks[c]) != Some(down))
        .collect();
    r.expect_done(
        &live,
        5_000,
        "Gets of keys on live groups while one group is down",
    )?;
    let blocked = (0..ks.len()).filter(|&c| r.is_busy(c)).count();
    if blocked == 0 {
        return Err(format!(
            "every Get finished with group {down} down: not sharded"
        ));
    }
    r.restart_group(down);
    r.expect_done(
        &(0..ks.len()).collect::<Vec<_>>(),
        5_000,
        "Gets after the group restarts",
    )
}

/// Gets every key and Appends a fresh value to it, one after another from clerk `clerk` (the
/// lab's "check and Append" loop; the history checks the values).
fn check_append(r: &mut Run, clerk: usize, keys: &[String], within: u64) -> Result<(), String> {
    let keys = keys.to_vec();
    r.sequence(
        &[clerk],
        move |r, _| {
            keys.iter()
                .flat_map(|k| [Op::Get(k.clone()), Op::Append(k.clone(), r.unique_value(0))])
                .collect()
        },
        within,
        "check and Append",
    )
}

/// TestSnapshot5B: maxraftstate 1000; 30 keys; the data moves twice with checks and Appends;
/// logs within 8 × maxraftstate; every group restarts from its snapshots and all values are
/// still there.
fn snapshot_5b(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("snapshot_5b", seed, bugs, shape(3, 1, Some(1000)), |r| {
        let ks = keys(30);
        r.join(&[0])?;
        r.wait(500)?;
        put_all(r, 0, &ks, 0)?;
        get_all(r, 0, &ks, 10_000)?;
        r.join(&[1])?;
        r.join(&[2])?;
        r.leave(&[0])?;
        check_append(r, 0, &ks, 20_000)?;
        r.leave(&[1])?;
        r.join(&[0])?;
        check_append(r, 0, &ks, 20_000)?;
        r.wait(1_000)?;
        get_all(r, 0, &ks, 10_000)?;
        r.wait(1_000)?;
        r.check_logs()?;
        for g in 0..3 {
            r.crash_group(g);
        }
        for g in 0..3 {
            r.restart_group(g);
        }
        get_all(r, 0, &ks, 10_000)
    })
}

/// TestMissChange5B: server 0 of every group is down while three reconfigurations happen,
/// then server 1 while two more do; the lagging servers catch up through the log or a
/// snapshot and every value stays right.
fn miss_change_5b(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("miss_change_5b", seed, bugs, shape(3, 1, Some(1000)), |r| {
        let ks = keys(10);
        r.join(&[0])?;
        r.wait(500)?;
        put_all(r, 0, &ks, 0)?;
        get_all(r, 0, &ks, 10_000)?;
        r.join(&[1])?;
        check_append(r, 0, &ks, 10_000)?;
        for g in 0..3 {
            r.crash_server(g, 0);
        }
        r.join(&[2])?;
        r.leave(&[1])?;
        r.leave(&[0])?;
        check_append(r, 0, &ks, 10_000)?;
        r.join(&[1])?;
        check_append(r, 0, &ks, 10_000)?;
        for g in 0..3 {
            r.restart_server(g, 0);
        }
        check_append(r, 0, &ks, 10_000)?;
        r.wait(2_000)?;
        for g in 0..3 {
            r.crash_server(g, 1);
        }
        r.join(&[0])?;
        r.leave(&[2])?;
        check_append(r, 0, &ks, 10_000)?;
        for g in 0..3 {
            r.restart_server(g, 1);
        }
        check_append(r, 0, &ks, 10_000)
    })
}

/// TestConcurrent2_5B: appends every 50 ms while the shards move among three groups in three
/// rounds of 3 s; groups 1 and 2 are down for 1 s at the end (a restarting group fetches from
/// many sources).
fn concurrent2_5b(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("concurrent2_5b", seed, bugs, shape(3, 10, None), |r| {
        r.join(&[1])?;
        r.join(&[0])?;
        r.join(&[2])?;
        appenders(r, 10, (50, 50));
        r.leave(&[0])?;
        r.leave(&[2])?;
        r.wait(3_000)?;
        r.join(&[0])?;
        r.join(&[2])?;
        r.leave(&[1])?;
        r.wait(3_000)?;
        r.join(&[1])?;
        r.leave(&[0])?;
        r.leave(&[2])?;
        r.wait(3_000)?;
        r.crash_group(1);
        r.crash_group(2);
        r.wait(1_000)?;
        r.restart_group(1);
        r.restart_group(2);
        r.wait(1_000)
    })
}

/// TestUnreliable1_5B: on the unreliable network, the data moves from group 0 to groups 1 and
/// 2; 20 rounds of check and Append; then group 0 joins and 1 leaves; 20 rounds of checks.
fn unreliable1_5b(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("unreliable1_5b", seed, bugs, shape(3, 1, Some(100)), |r| {
        r.set_reliable(false);
        let ks = keys(10);
        r.join(&[0])?;
        r.wait(500)?;
        put_all(r, 0, &ks, 0)?;
        r.join(&[1])?;
        r.join(&[2])?;
        r.leave(&[0])?;
        for _ in 0..20 {
            check_append(r, 0, &ks, 20_000)?;
        }
        r.join(&[0])?;
        r.leave(&[1])?;
        for _ in 0..20 {
            get_all(r, 0, &ks, 20_000)?;
        }
        Ok(())
    })
}

/// TestUnreliable2_5B: appends without a pause on the unreliable network during join 1,
/// join 2, leave 0, leave 1, join 1, join 0 (500 ms apart, then 2 s); the network is reliable
/// again for the final checks.
fn unreliable2_5b(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("unreliable2_5b", seed, bugs, shape(3, 10, Some(100)), |r| {
        r.set_reliable(false);
        r.join(&[0])?;
        // "Without a pause": 1–5 ms, as in challenge1_concurrent (with none, a clerk's next
        // operation follows its last reply in the same virtual instant).
        appenders(r, 10, (1, 5));
        r.wait(500)?;
        r.join(&[1])?;
        r.wait(500)?;
        r.join(&[2])?;
        r.wait(500)?;
        r.leave(&[0])?;
        r.wait(500)?;
        r.leave(&[1])?;
        r.wait(500)?;
        r.join(&[1])?;
        r.wait(500)?;
        r.join(&[0])?;
        r.wait(2_000)?;
        r.set_reliable(true);
        r.wait(500)
    })
}

/// shardkv1 TestStaticOneShardGroup5A: one group serves 60 keys; its Raft leader is shut
/// down; every Get still returns the right value (the group fails over).
fn static_one_shard_group_5a(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario(
        "static_one_shard_group_5a",
        seed,
        bugs,
        shape(1, 1, None),
        |r| {
            let ks = keys(60);
            r.join(&[0])?;
            r.wait(500)?;
            put_all(r, 0, &ks, 20)?;
            get_all(r, 0, &ks, 10_000)?;
            let leader = r.leader(0).ok_or("group 0 has no leader after the Puts")?;
            r.crash_server(0, leader);
            get_all(r, 0, &ks, 10_000)
        },
    )
}

/// shardkv1 TestJoinBasic5A: 60 keys on the first group; a second joins (the configuration
/// number rises by exactly 1); both really hold shards (checkShutdownSharding on each) and
/// the data moved intact.
fn join_basic_5a(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("join_basic_5a", seed, bugs, shape(2, 60, None), |r| {
        let ks = keys(60);
        r.join(&[0])?;
        r.wait(500)?;
        put_all(r, 0, &ks, 20)?;
        let before = r.config_num();
        let after = r.join(&[1])?;
        if after != before + 1 {
            return Err(format!(
                "the join took the configuration from {before} to {after}, not one step"
            ));
        }
        r.wait(1_000)?;
        shutdown_sharding(r, &ks, 0)?;
        get_all(r, 0, &ks, 10_000)?;
        shutdown_sharding(r, &ks, 1)?;
        get_all(r, 0, &ks, 10_000)
    })
}

/// shardkv1 TestDeleteBasic5A: maxraftstate 10000; 60 keys of 1000 bytes on the first group
/// (largest snapshot `sz`); a second joins; rounds of 60 Puts of same-size values and 60
/// Gets (five, or more until every server has snapshotted since the move); then the two groups' largest snapshots together are at most `sz + 10000`: the
/// source deleted what it handed over.
fn delete_basic_5a(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario(
        "delete_basic_5a",
        seed,
        bugs,
        shape(2, 1, Some(10_000)),
        |r| {
            let ks = keys(60);
            r.join(&[0])?;
            r.wait(500)?;
            put_all(r, 0, &ks, 1000)?;
            get_all(r, 0, &ks, 10_000)?;
            let sz = r.largest_snapshot(0);
            r.join(&[1])?;
            r.wait(1_000)?;
            // The lab's five rounds of Gets are there so that every server snapshots after the
            // move. Here 50 rounds of Gets alone left every disk's snapshot where it was (seeds 1
            // and 2), so each round also rewrites every key with a fresh value of the same size
            // (the data stays 60 kB); the rounds go on until every server has snapshotted (at
            // most 50).
            let before = r.snapshot_indices();
            for round in 0.. {
                put_all(r, 0, &ks, 1000)?;
                get_all(r, 0, &ks, 10_000)?;
                let now = r.snapshot_indices();
                if round >= 4 && now.iter().zip(&before).all(|(a, b)| a > b) {
                    break;
                }
                if round == 50 {
                    return Err(format!("servers did not snapshot after the move: {now:?}"));
                }
            }
            let (sz1, sz2) = (r.largest_snapshot(0), r.largest_snapshot(1));
            if sz1 + sz2 > sz + 10_000 {
                return Err(format!(
                    "snapshots of {sz1} + {sz2} bytes after the move, more than {sz} + 10000: the \
                 source did not delete the shards it handed over"
                ));
            }
            Ok(())
        },
    )
}

/// shardkv1 TestShutdown5A: three groups; checkShutdownSharding; every group shut down and
/// restarted from its persisted state; every value still there.
fn shutdown_5a(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("shutdown_5a", seed, bugs, shape(3, 60, None), |r| {
        let ks = keys(60);
        r.join(&[0])?;
        r.wait(500)?;
        put_all(r, 0, &ks, 20)?;
        r.join(&[1])?;
        r.wait(200)?;
        r.join(&[2])?;
        r.wait(1_000)?;
        shutdown_sharding(r, &ks, 0)?;
        get_all(r, 0, &ks, 10_000)?;
        for g in 0..3 {
            r.crash_group(g);
        }
        for g in 0..3 {
            r.restart_group(g);
        }
        get_all(r, 0, &ks, 10_000)
    })
}

/// Not a lab test: appends every 10–30 ms while the shards move among three groups and, every
/// 400–800 ms, the leader of a random group is cut off from its group for 300–900 ms (it
/// still hears clerks and other groups, and answers from its stale state until it learns of
/// the new term); maxraftstate 1000.
fn partition_leaders(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario(
        "partition_leaders",
        seed,
        bugs,
        shape(3, 10, Some(1000)),
        |r| {
            r.join(&[0])?;
            appenders(r, 10, (10, 30));
            let moves: [(bool, usize); 6] = [
                (true, 1),
                (true, 2),
                (false, 0),
                (true, 0),
                (false, 1),
                (true, 1),
            ];
            for (join, g) in moves {
                if join {
                    r.join(&[g])?;
                } else {
                    r.leave(&[g])?;
                }
                let pause = r.sim.rng().random_range(400..=800);
                r.wait(pause)?;
                let g = r.sim.rng().random_range(0..3);
                if let Some(leader) = r.leader(g) {
                    r.isolate_server(g, leader);
                }
                let cut = r.sim.rng().random_range(300..=900);
                r.wait(cut)?;
                r.connect_all();
            }
            r.wait(1_000)
        },
    )
}

/// The lab's `CheckConfig(gids)` on `config`: exactly the groups `gids` (by index), every
/// shard on one of them, at most one shard more on any group than on any other.
fn check_config(r: &Run, config: &Config, gs: &[usize]) -> Result<(), String> {
    let want: BTreeSet<Gid> = gs.iter().map(|&g| r.gid(g)).collect();
    let have: BTreeSet<Gid> = config.groups.keys().copied().collect();
    if have != want {
        return Err(format!(
            "configuration {}: groups {have:?}, wanted {want:?}",
            config.num.0
        ));
    }
    if let Some(s) = config.shards.iter().position(|g| !want.contains(g)) {
        return Err(format!(
            "configuration {}: shard {s} on gid {}, not a member",
            config.num.0, config.shards[s].0
        ));
    }
    let load: Vec<usize> = want
        .iter()
        .map(|g| config.shards.iter().filter(|s| *s == g).count())
        .collect();
    let (min, max) = (load.iter().min(), load.iter().max());
    if let (Some(min), Some(max)) = (min, max)
        && *max > min + 1
    {
        return Err(format!(
            "configuration {}: unbalanced, {load:?} shards per group",
            config.num.0
        ));
    }
    Ok(())
}

/// shardkv1 TestInitQuery5A: the first Join makes configuration 1 with every shard on the
/// joined group, and `Query` returns it (`Num == 1`, `Shards[0] == Gid1`, `CheckConfig`);
/// configuration 0 still has every shard on no group. Here the configuration store is the
/// replicated controller, so the Join and both Queries go through its Raft log or ReadIndex.
fn init_query_5a(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("init_query_5a", seed, bugs, shape(1, 0, None), |r| {
        let num = r.join(&[0])?;
        let config = r.query(0, None)?;
        if num != 1 || config.num.0 != 1 {
            return Err(format!(
                "the first Join made configuration {num}, Query(-1) returned {}; both should be 1",
                config.num.0
            ));
        }
        if config.shards[0] != r.gid(0) {
            return Err(format!(
                "shard 0 on gid {}, not {}",
                config.shards[0].0,
                r.gid(0).0
            ));
        }
        check_config(r, &config, &[0])?;
        let first = r.query(0, Some(0))?;
        if first.num.0 != 0
            || !first.groups.is_empty()
            || first.shards.iter().any(|g| *g != Gid::NONE)
        {
            return Err(format!(
                "Query(0) returned {first:?}, not the empty configuration 0"
            ));
        }
        Ok(())
    })
}

/// TestRejection5A (2024): groups 0 and 1 joined on the controller; a second, stale
/// controller service where only group 0 has joined; ten clerks that ask the stale one Get
/// every key, so every request goes to group 0. Within 2 s exactly half finish — exactly
/// those of the keys group 0 owns in the real configuration: group 0 must not serve the
/// others (it answers `WrongGroup`; a Get it served would finish, with the wrong value).
/// Then group 1 joins the stale service too, which makes its configuration the real one, and
/// every Get finishes with the right value.
fn rejection_5a(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    let shape = Shape {
        groups: 2,
        clerks: 11,
        max_raft_state: None,
        stale_clerks: 10,
        admins: 1,
    };
    run_scenario("rejection_5a", seed, bugs, shape, |r| {
        r.join(&[0])?;
        r.join(&[1])?;
        r.join_on(1, &[0])?;
        r.wait(1_000)?;
        let ks = keys(10);
        put_all(r, 10, &ks, 0)?;
        for (c, k) in ks.iter().enumerate() {
            r.call(c, Op::Get(k.clone()));
        }
        r.wait(2_000)?;
        let on0: Vec<usize> = (0..10).filter(|&c| r.owner_of(&ks[c]) == Some(0)).collect();
        let done: Vec<usize> = (0..10).filter(|&c| !r.is_busy(c)).collect();
        if done != on0 || done.len() != 5 {
            return Err(format!(
                "through the stale controller, the Gets of clerks {done:?} finished; exactly \
                 those of group 0's keys ({on0:?}, half of them) should: group 0 should have \
                 rejected the others"
            ));
        }
        r.join_on(1, &[1])?;
        r.expect_done(
            &(0..10).collect::<Vec<_>>(),
            3_000,
            "Gets once the stale controller knows group 1",
        )
    })
}

/// shardkv1 TestProgressJoin5A: four groups hold the keys; a fifth (the lab's gid 7) joins
/// and leaves again and again, each change awaited until every group has finished its
/// migration (the lab's `ChangeConfigTo` returns then), 200 ms apart. "Stable" shards are the
/// ones no Join or Leave of the fifth group moves; "participating" groups are those that give
/// or take a shard in them. For 4 s, ten clerks Get keys of stable shards on participating
/// groups: at least 100 Gets must finish, every one within 8 s of the start — a group serves
/// its unaffected shards while it migrates others.
fn progress_join_5a(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("progress_join_5a", seed, bugs, shape(5, 10, None), |r| {
        let ks = keys(10);
        r.join(&[0])?;
        r.wait(500)?;
        put_all(r, 0, &ks, 0)?;
        for g in 1..4 {
            r.join(&[g])?;
            r.wait(200)?;
        }
        r.wait(1_000)?;
        // The shards the toggling moves, by replaying it on a copy of the controller's state
        // until an assignment repeats.
        let mut ctrl = r.ctrl_state().clone();
        let (join, leave) = (r.join_op(&[4]), r.leave_op(&[4]));
        let mut moved = BTreeSet::new();
        let mut participating = BTreeSet::new();
        let mut seen = vec![ctrl.latest().shards.clone()];
        for step in 0..40u64 {
            let before = ctrl.latest().shards.clone();
            let op = if step % 2 == 0 {
                join.clone()
            } else {
                leave.clone()
            };
            let cmd = CtrlCommand {
                client: ClientId(u64::MAX),
                seq: Seq(step + 1),
                op,
            };
            ctrl.apply(LogIndex(step + 1), &cmd);
            let after = &ctrl.latest().shards;
            for (s, (a, b)) in before.iter().zip(after).enumerate() {
                if a != b {
                    moved.insert(s);
                    participating.extend([*a, *b]);
                }
            }
            if step % 2 == 1 && seen.contains(after) {
                break;
            }
            seen.push(after.clone());
        }
        let current = r.ctrl_state().latest().clone();
        let probe: Vec<String> = ks
            .iter()
            .filter(|k| {
                let s = Run::shard(k);
                !moved.contains(&(s.0 as usize)) && participating.contains(&current.owner(s))
            })
            .cloned()
            .collect();
        if probe.is_empty() {
            return Err(format!(
                "no stable shard on a participating group (moved {moved:?}, groups \
                 {participating:?}): the scenario tests nothing"
            ));
        }
        for c in 0..10 {
            let mix = Mix {
                keys: probe.clone(),
                append: 0.0,
                put: 0.0,
                think_ms: (5, 15),
            };
            r.start_worker(c, mix);
        }
        let start = r.sim.now();
        let before = r.completed();
        let mut joined = false;
        let mut changes = 0;
        let mut next_change = start;
        while r.sim.now() < start + 4_000 * MS {
            if !r.admin_is_busy(0) {
                if let Some(reply) = r.admin_take(0)
                    && !matches!(reply, CtrlReply::Done(_))
                {
                    return Err(format!("a Join or Leave of group 4 returned {reply:?}"));
                }
                let latest = r.config_num();
                if (0..5).all(|g| r.group_settled(g, latest)) {
                    if next_change == 0 {
                        next_change = r.sim.now() + 200 * MS;
                    } else if r.sim.now() >= next_change {
                        let op = if joined { leave.clone() } else { join.clone() };
                        r.admin_start(0, op)?;
                        joined = !joined;
                        changes += 1;
                        next_change = 0;
                    }
                }
            }
            r.wait(5)?;
        }
        r.stop_workers();
        let clerks: Vec<usize> = (0..10).collect();
        let left = start + 8_000 * MS - r.sim.now();
        r.expect_done(
            &clerks,
            left / MS,
            "Gets of stable shards during reconfigurations",
        )?;
        let gets = r.completed() - before;
        if changes < 2 {
            return Err(format!(
                "group 4 joined or left only {changes} times in 4 s: reconfiguration stalled"
            ));
        }
        if gets < 100 {
            return Err(format!(
                "only {gets} Gets of stable shards finished while group 4 joined and left; \
                 the lab wants at least 100"
            ));
        }
        let last = if r.admin_is_busy(0) {
            Some(r.admin_wait(0, 10_000)?)
        } else {
            r.admin_take(0)
        };
        if let Some(reply) = last
            && !matches!(reply, CtrlReply::Done(_))
        {
            return Err(format!("a Join or Leave of group 4 returned {reply:?}"));
        }
        if joined {
            r.leave(&[4])?;
        }
        r.wait(1_000)?;
        get_all(r, 0, &ks, 10_000)
    })
}

/// Waits up to 3 s for controller service 0 to have a leader; its position.
fn await_ctrl_leader(r: &mut Run) -> Result<usize, String> {
    for _ in 0..300 {
        if let Some(l) = r.ctrl_leader(0) {
            return Ok(l);
        }
        r.wait(10)?;
    }
    Err("the controller elected no leader within 3 s".into())
}

/// Checks what a Join or Leave of group `g` interrupted by a controller failure must leave
/// behind: the administrator's reply names configuration `before + 1`, the latest
/// configuration is that one (the operation took effect exactly once), and group `g` is a
/// member iff it joined.
fn check_change(
    r: &mut Run,
    reply: CtrlReply,
    before: u64,
    g: usize,
    joined: bool,
) -> Result<(), String> {
    let want = before + 1;
    if !matches!(reply, CtrlReply::Done(n) if n.0 == want) {
        return Err(format!(
            "the interrupted change returned {reply:?}, not configuration {want}"
        ));
    }
    let latest = r.query(0, None)?;
    if latest.num.0 != want {
        return Err(format!(
            "the latest configuration is {}, not {want}: the change took effect {} times",
            latest.num.0,
            latest.num.0 - before
        ));
    }
    if latest.groups.contains_key(&r.gid(g)) != joined {
        return Err(format!(
            "gid {} is {}a member after it {}",
            r.gid(g).0,
            if joined { "not " } else { "" },
            if joined { "joined" } else { "left" }
        ));
    }
    Ok(())
}

/// Starts `op` on the controller, then fails its leader (`fail`: crash it, or cut it off
/// from the other controller servers) at the point `phase` picks: 0, at once (before the
/// leader has the request); 1, as soon as the leader has appended the request's entry (its
/// AppendEntries are on their way, the acknowledgements will not come back: the followers
/// hold the entry, the new leader commits that copy, and the administrator's retry to it is
/// a duplicate that the controller's session table must answer with the recorded reply, not
/// apply again); otherwise after 0–30 ms (often after the answer). Returns the failed
/// leader.
fn change_failing_leader(
    r: &mut Run,
    op: CtrlOp,
    phase: u32,
    fail: fn(&mut Run, usize),
) -> Result<usize, String> {
    let leader = await_ctrl_leader(r)?;
    let index = r.ctrl_last_index(0, leader);
    r.admin_start(0, op)?;
    match phase {
        0 => {}
        1 => {
            if !r.await_ctrl_appended(0, leader, index, 2_000)? {
                return Err("the controller's leader did not append the change in 2 s".into());
            }
        }
        _ => {
            let delay = r.sim.rng().random_range(0..=30);
            r.wait(delay)?;
        }
    }
    fail(r, leader);
    Ok(leader)
}

/// An analogue of shardkv1 TestRecoverCtrler5B for this design. There the controller is a
/// library that moves shards itself; a controller that dies midway leaves a half-done
/// reconfiguration that a new controller must finish (`InitController`). Here the controller
/// is a Raft group that only records configurations, and the groups move the shards; what
/// can die midway is the controller's leader, with the administrator's Join or Leave not yet
/// received, appended and sent to the followers but not committed, or at a random point
/// 0–30 ms in (rounds cycle through the three). Five rounds, as the lab's five `partitionCtrler` calls: group 1
/// joins, then leaves, alternately; the leader crashes; the two others elect a leader and
/// the administrator's retry completes the change exactly once; the configuration number
/// rises by one and group 1's membership matches (a change applied twice would be refused —
/// group already a member, or not one — and the administrator would get that refusal); every
/// Get is right once the groups have migrated. The crashed server then restarts (the lab
/// keeps the old controller disconnected; here it must rejoin without harm, checked by
/// Raft's invariants and SHARD-5 at the end).
fn recover_ctrler_5b(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario("recover_ctrler_5b", seed, bugs, shape(2, 1, None), |r| {
        let ks = keys(10);
        r.join(&[0])?;
        r.wait(500)?;
        put_all(r, 0, &ks, 0)?;
        for round in 0..5 {
            let joining = round % 2 == 0;
            let before = r.config_num();
            let op = if joining {
                r.join_op(&[1])
            } else {
                r.leave_op(&[1])
            };
            let crash = |r: &mut Run, l: usize| r.crash_ctrl(0, l);
            let leader = change_failing_leader(r, op, round % 3, crash)?;
            let reply = r.admin_wait(0, 5_000)?;
            check_change(r, reply, before, 1, joining)?;
            get_all(r, 0, &ks, 10_000)?;
            r.restart_ctrl(0, leader);
            r.wait(500)?;
        }
        Ok(())
    })
}

/// An analogue of shardkv1 TestPartitionControllerJoin5C for this design. There controller A
/// joins a new group that is down, gets stuck, is disconnected; the group restarts; a new
/// controller B recovers and must show the group as a member; A, reconnected, must do no
/// harm. Here: the new group 1 is shut down and the administrator asks the controller to
/// join it; the controller's leader A is cut off from the other controller servers (it
/// still hears the groups, the clerk and the administrator, and answers their queries from
/// its stale state) at a point the seed picks — before it has the Join, once it has appended
/// the Join's entry and sent it (the followers' acknowledgements are then cut off), or
/// 0–30 ms in. After 1 s group 1 restarts. The other two servers
/// elect a leader (the lab's B) and the administrator's retry commits the Join there exactly
/// once: configuration number + 1, group 1 a member. A is reconnected; what it appended and
/// could not commit must not take effect (Raft's invariants after every event, SHARD-5 at the
/// end); after 1 s every Get is right.
fn partition_controller_join_5c(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    run_scenario(
        "partition_controller_join_5c",
        seed,
        bugs,
        shape(2, 1, None),
        |r| {
            let ks = keys(10);
            r.join(&[0])?;
            r.wait(500)?;
            put_all(r, 0, &ks, 0)?;
            r.crash_group(1);
            let before = r.config_num();
            let phase = r.sim.rng().random_range(0..3);
            let op = r.join_op(&[1]);
            let isolate = |r: &mut Run, l: usize| r.isolate_ctrl(0, l);
            change_failing_leader(r, op, phase, isolate)?;
            r.wait(1_000)?;
            r.restart_group(1);
            let reply = r.admin_wait(0, 5_000)?;
            check_change(r, reply, before, 1, true)?;
            r.connect_all();
            r.wait(1_000)?;
            get_all(r, 0, &ks, 10_000)
        },
    )
}

/// What an administrator of [`concurrent_admins`] has in flight, and so which answers are
/// right: its own group's Join or Leave must make a configuration (nobody else changes that
/// group's membership); a Move to another administrator's group races with that group's
/// Join and Leave, so it may also be refused because the group is not a member (the
/// `shardctrler` model decides whether the refusal fits the order of the operations).
#[derive(Clone, Copy, Debug)]
enum AdminStep {
    Join,
    Leave,
    Move { racing: bool },
}

/// The administrators of [`concurrent_admins`] and their groups: administrator `a` toggles
/// group `a + 1`; group 0 holds the data throughout.
const ADMINS: usize = 4;

/// What the racing administrators of [`concurrent_admins`] have been told so far.
struct Acknowledged {
    /// Configurations the acknowledged operations made (each `Done` is one).
    made: u64,
    /// Per racing administrator, whether its group's last acknowledged change was a Join.
    joined: [bool; ADMINS],
}

impl Acknowledged {
    /// Racing administrator `a` got `reply` to `step`: it must be one that step allows.
    fn answer(
        &mut self,
        r: &Run,
        a: usize,
        step: AdminStep,
        reply: CtrlReply,
    ) -> Result<(), String> {
        let allowed = match (step, &reply) {
            (_, CtrlReply::Done(_)) => true,
            (AdminStep::Move { racing }, CtrlReply::Err(CtrlError::NotMember(_))) => racing,
            _ => false,
        };
        if !allowed {
            return Err(format!(
                "administrator {}'s {step:?} (its own group: gid {}) returned {reply:?}",
                a + 1,
                r.gid(a + 1).0
            ));
        }
        if matches!(reply, CtrlReply::Done(_)) {
            self.made += 1;
            match step {
                AdminStep::Join => self.joined[a] = true,
                AdminStep::Leave => self.joined[a] = false,
                AdminStep::Move { .. } => {}
            }
        }
        Ok(())
    }
}

/// The controller's leader's failures in [`concurrent_admins`].
#[derive(Clone, Copy)]
enum LeaderFault {
    /// None until `at`.
    Idle { at: Micros },
    /// Failing `leader` once its log passes `index`, or at `until`.
    Armed {
        leader: usize,
        index: u64,
        until: Micros,
    },
    /// `leader` failed; healed at `back`.
    Failed { leader: usize, back: Micros },
}

/// Fails the controller's leader `leader` with `fail` for 200–500 ms.
fn fail_leader(r: &mut Run, leader: usize, fail: fn(&mut Run, usize)) -> LeaderFault {
    fail(r, leader);
    let back = r.sim.now() + r.sim.rng().random_range(200..=500) * MS;
    LeaderFault::Failed { leader, back }
}

/// The racing body of the two concurrent-administrator scenarios (see
/// [`concurrent_admins_reliable_5c`]): racing administrator `a` is administrator `a + 1` and
/// toggles group `a + 1`. `fail` fails the controller's leader (crash it, or cut it off from
/// the other two); `heal` undoes it.
fn concurrent_admins(
    r: &mut Run,
    reliable: bool,
    fail: fn(&mut Run, usize),
    heal: fn(&mut Run, usize),
) -> Result<(), String> {
    let ks = keys(10);
    r.join(&[0])?;
    r.wait(500)?;
    put_all(r, 5, &ks, 0)?;
    for c in 0..5 {
        let mix = Mix {
            keys: ks.clone(),
            append: 0.5,
            put: 0.1,
            think_ms: (10, 30),
        };
        r.start_worker(c, mix);
    }
    r.set_reliable(reliable);
    let mut ack = Acknowledged {
        made: 1,
        joined: [false; ADMINS],
    };
    let mut steps: [Option<AdminStep>; ADMINS] = [None; ADMINS];
    // The configuration whose migrations an administrator waits for before its next step.
    let mut waiting: [Option<u64>; ADMINS] = [None; ADMINS];
    let mut next_at = [r.sim.now(); ADMINS];
    let start = r.sim.now();
    let mut fault = LeaderFault::Idle {
        at: start + r.sim.rng().random_range(200..=700) * MS,
    };
    while r.sim.now() < start + 3_000 * MS {
        for a in 0..ADMINS {
            if r.admin_is_busy(a + 1) {
                continue;
            }
            if let (Some(step), Some(reply)) = (steps[a].take(), r.admin_take(a + 1)) {
                if let CtrlReply::Done(n) = reply {
                    waiting[a] = Some(n.0);
                }
                ack.answer(r, a, step, reply)?;
            }
            if let Some(n) = waiting[a] {
                if !(0..=ADMINS).all(|g| r.group_past(g, n)) {
                    continue;
                }
                waiting[a] = None;
                next_at[a] = r.sim.now() + r.sim.rng().random_range(0..=40) * MS;
            }
            if r.sim.now() < next_at[a] {
                continue;
            }
            let (moving, shard, g) = {
                let rng = r.sim.rng();
                let moving = rng.random_bool(0.3);
                let shard = rng.random_range(0..10u32);
                (moving, shard, rng.random_range(0..=ADMINS))
            };
            let (step, op) = if !ack.joined[a] {
                (AdminStep::Join, r.join_op(&[a + 1]))
            } else if moving {
                let op = CtrlOp::Move {
                    shard: ShardId(shard),
                    gid: r.gid(g),
                };
                let racing = g != 0 && g != a + 1;
                (AdminStep::Move { racing }, op)
            } else {
                (AdminStep::Leave, r.leave_op(&[a + 1]))
            };
            steps[a] = Some(step);
            r.admin_start(a + 1, op)?;
        }
        let now = r.sim.now();
        fault = match fault {
            LeaderFault::Idle { at } if now >= at => match r.ctrl_leader(0) {
                // Half the time the leader fails just after it appended an entry and sent it
                // to its followers (within 300 ms): a request in flight is then committed by
                // the next leader while its administrator retries it.
                Some(leader) if r.sim.rng().random_bool(0.5) => LeaderFault::Armed {
                    leader,
                    index: r.ctrl_last_index(0, leader),
                    until: now + 300 * MS,
                },
                Some(leader) => fail_leader(r, leader, fail),
                None => LeaderFault::Idle { at },
            },
            LeaderFault::Armed { leader, until, .. } if now >= until => {
                fail_leader(r, leader, fail)
            }
            LeaderFault::Failed { leader, back } if now >= back => {
                heal(r, leader);
                let at = now + r.sim.rng().random_range(200..=500) * MS;
                LeaderFault::Idle { at }
            }
            other => other,
        };
        if let LeaderFault::Armed { leader, index, .. } = fault {
            if r.await_ctrl_appended(0, leader, index, 5)? {
                fault = fail_leader(r, leader, fail);
            }
        } else {
            r.wait(5)?;
        }
    }
    if let LeaderFault::Failed { leader, .. } = fault {
        heal(r, leader);
    }
    r.set_reliable(true);
    for (a, step) in steps.iter_mut().enumerate() {
        if let Some(step) = step.take() {
            let reply = match r.admin_take(a + 1) {
                Some(reply) => reply,
                None => r.admin_wait(a + 1, 10_000)?,
            };
            ack.answer(r, a, step, reply)?;
        }
    }
    let latest = r.query(0, None)?;
    if latest.num.0 != ack.made {
        return Err(format!(
            "the latest configuration is {} but the acknowledged Joins, Leaves and Moves made \
             {}: a change took effect {} than once",
            latest.num.0,
            ack.made,
            if latest.num.0 > ack.made {
                "more"
            } else {
                "less"
            }
        ));
    }
    let want: BTreeSet<Gid> = std::iter::once(0)
        .chain((0..ADMINS).filter(|&a| ack.joined[a]).map(|a| a + 1))
        .map(|g| r.gid(g))
        .collect();
    let have: BTreeSet<Gid> = latest.groups.keys().copied().collect();
    if have != want {
        return Err(format!(
            "configuration {}: members {have:?}, but the acknowledged Joins and Leaves leave \
             {want:?}",
            latest.num.0
        ));
    }
    for _ in 0..1_000 {
        if (0..=ADMINS).all(|g| r.group_settled(g, latest.num.0)) {
            r.stop_workers();
            return get_all(r, 5, &ks, 10_000);
        }
        r.wait(10)?;
    }
    let behind: Vec<usize> = (0..=ADMINS)
        .filter(|&g| !r.group_settled(g, latest.num.0))
        .collect();
    Err(format!(
        "groups {behind:?} did not reach configuration {} within 10 s",
        latest.num.0
    ))
}

/// An analogue of shardkv1 TestConcurrentReliable5C (`concurCtrler` with a reliable
/// network). There four controllers — libraries that each drive a migration and post the next
/// configuration with a versioned Put — race for 2 s, each joining a new gid and leaving it
/// again; the losers of a race do nothing; afterwards every key must read at version 1 (no
/// shard move lost or doubled). Here the controller is one Raft-replicated state machine, so
/// racing controllers are four administrators, each its own session, issuing operations
/// concurrently for 3 s into the one log: administrator `a` joins its own group `a + 1`, then
/// leaves it or Moves a random shard to a random group (which races with that group's own
/// administrator), again and again, while five clerks Get, Put and Append on every key.
/// After each change it made, an administrator waits until every group has finished that
/// configuration's migrations, then 0–40 ms (the lab's `ChangeConfigTo` returns once its
/// shards moved; the others' changes pile up meanwhile, so up to four configurations are
/// ahead of the groups). Every
/// operation takes effect, in the log's order: nothing is lost to a race, so what the lab
/// checks by versions, ours checks exactly. The controller's leader crashes again and again
/// (first 0.2–0.7 s in, then 0.2–0.5 s after the last one restarted) — half the time at
/// once, half the time just after it appended an entry and sent it to its followers (within
/// 300 ms) — and restarts 0.2–0.5 s later (the lab's controllers stop midway too), so administrators retry on the new leader under the same session and
/// sequence number, often for a request that leader already holds. At the
/// end: each administrator's own Join and Leave made a configuration (a Move to a group that
/// left may be refused); the latest configuration is numbered exactly as many as the
/// acknowledged changes made (each took effect once) and its members are group 0 and the
/// groups whose last acknowledged change was a Join; every group reaches it; the
/// administrators' history is linearizable against the `shardctrler` model, the clerks'
/// against the `kv` model, and every Get of every key is right. The lab's `concurCtrler`
/// reads a state variable without synchronisation and accepts an inconclusive check; ours
/// has neither.
fn concurrent_admins_reliable_5c(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    let shape = Shape {
        admins: 1 + ADMINS,
        ..shape(1 + ADMINS, 6, None)
    };
    run_scenario("concurrent_admins_reliable_5c", seed, bugs, shape, |r| {
        let crash = |r: &mut Run, l: usize| r.crash_ctrl(0, l);
        let restart = |r: &mut Run, l: usize| r.restart_ctrl(0, l);
        concurrent_admins(r, true, crash, restart)
    })
}

/// An analogue of shardkv1 TestAcquireLockConcurrentUnreliable5C (`concurCtrler` on the
/// unreliable network): [`concurrent_admins_reliable_5c`] on the lab's unreliable network
/// (delays, 10% of requests and replies lost, for the groups, clerks and administrators too),
/// and the controller's leader is cut off from the other two controller servers instead of
/// crashing (it still hears the administrators, groups and clerks, and answers their queries
/// from its stale state), then reconnected. Lost replies make administrators retry requests
/// that the controller has already applied; its session table must answer those with the
/// recorded reply.
fn concurrent_admins_unreliable_5c(seed: u64, bugs: Bugs) -> Outcome<Summary> {
    let shape = Shape {
        admins: 1 + ADMINS,
        ..shape(1 + ADMINS, 6, None)
    };
    run_scenario("concurrent_admins_unreliable_5c", seed, bugs, shape, |r| {
        let isolate = |r: &mut Run, l: usize| r.isolate_ctrl(0, l);
        let reconnect = |r: &mut Run, _: usize| r.connect_all();
        concurrent_admins(r, false, isolate, reconnect)
    })
}

/// Every ported test, in lab order, then ours. Event budgets: ten times the most events any
/// run of seeds 1..=200 needed (the 200-seed soak with the replicated controller: 26
/// scenarios, 5,200 runs, 0 failures; the concurrent-administrator scenarios from the soak
/// of all 28: 5,600 runs, 0 failures, every other scenario within its budget).
pub const SHARD: &[ShardScenario] = &[
    ShardScenario {
        name: "init_query_5a",
        lab_name: "TestInitQuery5A",
        run: init_query_5a,
        events_max: 1_600,
    },
    ShardScenario {
        name: "static_shards_5a",
        lab_name: "TestStaticShards5A",
        run: static_shards_5a,
        events_max: 31_600,
    },
    ShardScenario {
        name: "rejection_5a",
        lab_name: "TestRejection5A",
        run: rejection_5a,
        events_max: 42_800,
    },
    ShardScenario {
        name: "join_leave_5b",
        lab_name: "TestJoinLeave5B",
        run: join_leave_5b,
        events_max: 208_200,
    },
    ShardScenario {
        name: "concurrent1_5b",
        lab_name: "TestConcurrent1_5B",
        run: concurrent1_5b,
        events_max: 198_500,
    },
    ShardScenario {
        name: "challenge1_concurrent",
        lab_name: "TestConcurrent3_5B",
        run: challenge1_concurrent,
        events_max: 2_027_300,
    },
    ShardScenario {
        name: "unreliable3_5b",
        lab_name: "TestUnreliable3_5B",
        run: unreliable3_5b,
        events_max: 115_700,
    },
    ShardScenario {
        name: "challenge1_delete",
        lab_name: "TestChallenge1Delete",
        run: challenge1_delete,
        events_max: 182_500,
    },
    ShardScenario {
        name: "challenge2_unaffected",
        lab_name: "TestChallenge2Unaffected",
        run: challenge2_unaffected,
        events_max: 30_500,
    },
    ShardScenario {
        name: "challenge2_partial",
        lab_name: "TestChallenge2Partial",
        run: challenge2_partial,
        events_max: 34_000,
    },
    ShardScenario {
        name: "many_join_leave_unreliable_5a",
        lab_name: "TestManyJoinLeaveUnreliable5A",
        run: many_join_leave_unreliable_5a,
        events_max: 261_800,
    },
    ShardScenario {
        name: "join_leave_basic_5a",
        lab_name: "TestJoinLeaveBasic5A",
        run: join_leave_basic_5a,
        events_max: 50_900,
    },
    ShardScenario {
        name: "progress_shutdown_5a",
        lab_name: "TestProgressShutdown5A",
        run: progress_shutdown_5a,
        events_max: 54_700,
    },
    ShardScenario {
        name: "progress_join_5a",
        lab_name: "TestProgressJoin5A",
        run: progress_join_5a,
        events_max: 557_600,
    },
    ShardScenario {
        name: "snapshot_5b",
        lab_name: "TestSnapshot5B",
        run: snapshot_5b,
        events_max: 75_500,
    },
    ShardScenario {
        name: "miss_change_5b",
        lab_name: "TestMissChange5B",
        run: miss_change_5b,
        events_max: 61_600,
    },
    ShardScenario {
        name: "concurrent2_5b",
        lab_name: "TestConcurrent2_5B",
        run: concurrent2_5b,
        events_max: 324_000,
    },
    ShardScenario {
        name: "unreliable1_5b",
        lab_name: "TestUnreliable1_5B",
        run: unreliable1_5b,
        events_max: 435_100,
    },
    ShardScenario {
        name: "unreliable2_5b",
        lab_name: "TestUnreliable2_5B",
        run: unreliable2_5b,
        events_max: 331_300,
    },
    ShardScenario {
        name: "static_one_shard_group_5a",
        lab_name: "TestStaticOneShardGroup5A",
        run: static_one_shard_group_5a,
        events_max: 23_000,
    },
    ShardScenario {
        name: "join_basic_5a",
        lab_name: "TestJoinBasic5A",
        run: join_basic_5a,
        events_max: 112_700,
    },
    ShardScenario {
        name: "delete_basic_5a",
        lab_name: "TestDeleteBasic5A",
        run: delete_basic_5a,
        events_max: 101_600,
    },
    ShardScenario {
        name: "shutdown_5a",
        lab_name: "TestShutdown5A",
        run: shutdown_5a,
        events_max: 105_900,
    },
    ShardScenario {
        name: "recover_ctrler_5b",
        lab_name: "TestRecoverCtrler5B",
        run: recover_ctrler_5b,
        events_max: 51_800,
    },
    ShardScenario {
        name: "partition_controller_join_5c",
        lab_name: "TestPartitionControllerJoin5C",
        run: partition_controller_join_5c,
        events_max: 17_400,
    },
    ShardScenario {
        name: "concurrent_admins_reliable_5c",
        lab_name: "TestConcurrentReliable5C",
        run: concurrent_admins_reliable_5c,
        events_max: 158_400,
    },
    ShardScenario {
        name: "concurrent_admins_unreliable_5c",
        lab_name: "TestAcquireLockConcurrentUnreliable5C",
        run: concurrent_admins_unreliable_5c,
        events_max: 126_800,
    },
    ShardScenario {
        name: "partition_leaders",
        lab_name: "(none: a group's leader cut off from its group while shards move)",
        run: partition_leaders,
        events_max: 566_300,
    },
];
