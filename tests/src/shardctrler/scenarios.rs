//! The older 6.5840 shardctrler suite (`src/shardctrler/test_test.go`, 2024: TestBasic,
//! TestMulti, TestMinimalAgain), on a Raft-replicated controller of 3 servers, with every
//! check of the lab; and scenarios beyond the lab's (whose network is always reliable): the
//! same operations on an unreliable network with partitions, crashes and snapshots.
//!
//! Lab test bugs not copied: the MinimalTransfer checks look at gids 1..=10, which are not
//! members at that point, so they cannot fail; ours check the groups that are members (a
//! shard an old member holds after the joins was there before; after the leaves it stays).
//! TestMulti/AgreeConfig's wait loop, which never asks for the leader again, waits here for a
//! new leader for up to 3 s.

use super::lab::{CtrlLab, NSHARDS, servers_of};
use aver_core::shardctrler::rebalance::moved;
use aver_core::shardctrler::{Config, ConfigNum, CtrlOp, Gid, ShardId};
use aver_sim::sim::MS;
use aver_sim::{Outcome, Report};
use rand::Rng;
use std::collections::BTreeSet;

/// `check_same_config`: same number, shards and groups.
fn same_config(lab: &CtrlLab, got: &Config, want: &Config) -> Outcome<()> {
    if got != want {
        return lab.fail(format!(
            "configuration {} changed: {:?} / {:?}, was {:?} / {:?}",
            want.num.0, got.shards, got.groups, want.shards, want.groups
        ));
    }
    Ok(())
}

/// Group `gid` of `config` lists exactly the servers it joined with.
fn same_servers(lab: &CtrlLab, config: &Config, gids: &[u32]) -> Outcome<()> {
    for &g in gids {
        if config.servers(Gid(g)) != servers_of(g).as_slice() {
            return lab.fail(format!(
                "group {g}'s servers are {:?}, joined with {:?}",
                config.servers(Gid(g)),
                servers_of(g)
            ));
        }
    }
    Ok(())
}

/// Runs every clerk's script of operations concurrently (one operation in flight per clerk)
/// until all are done, within 30 s.
fn concurrently(lab: &mut CtrlLab, scripts: Vec<Vec<CtrlOp>>) -> Outcome<()> {
    let mut next = vec![0usize; scripts.len()];
    let deadline = lab.now() + 30_000 * MS;
    loop {
        for (c, script) in scripts.iter().enumerate() {
            if lab.is_busy(c) {
                continue;
            }
            if let Some(reply) = lab.take_reply(c)
                && !matches!(reply, aver_core::shardctrler::CtrlReply::Done(_))
            {
                return lab.fail(format!(
                    "clerk {c}'s {:?} returned {reply:?}",
                    script[next[c] - 1]
                ));
            }
            if next[c] < script.len() {
                next[c] += 1;
                lab.start(c, script[next[c] - 1].clone())?;
            }
        }
        let done = scripts.iter().enumerate().all(|(c, s)| next[c] == s.len());
        if done && (0..scripts.len()).all(|c| !lab.is_busy(c)) {
            return Ok(());
        }
        if lab.now() >= deadline {
            return lab.fail("concurrent clerks did not finish within 30 s");
        }
        lab.sleep(10)?;
    }
}

fn join_op(gids: &[u32]) -> CtrlOp {
    CtrlOp::Join(gids.iter().map(|g| (Gid(*g), servers_of(*g))).collect())
}

fn leave_op(gids: &[u32]) -> CtrlOp {
    CtrlOp::Leave(gids.iter().map(|g| Gid(*g)).collect())
}

/// The minimal-transfer checks, on the groups that are members (`old`): after the joins, a
/// shard an old member holds was there before (`c1 → c2`); after the leaves, every shard an
/// old member held in `c2` is still there (`c2 → c3`).
fn minimal_transfers(lab: &CtrlLab, old: &[u32], c: [&Config; 3]) -> Outcome<()> {
    let [c1, c2, c3] = c;
    for s in 0..NSHARDS {
        let (a, b, d) = (c1.shards[s], c2.shards[s], c3.shards[s]);
        if old.contains(&b.0) && a != b {
            return lab.fail(format!(
                "non-minimal transfer after Join()s: shard {s} {a} -> {b}"
            ));
        }
        if old.contains(&b.0) && d != b {
            return lab.fail(format!(
                "non-minimal transfer after Leave()s: shard {s} {b} -> {d}"
            ));
        }
    }
    Ok(())
}

/// `TestBasic` (all its parts, in order): leave/join, historical queries with each server
/// shut down in turn, move, concurrent leave/join, minimal transfers after joins and leaves.
pub fn ctrl_basic(seed: u64) -> Outcome<Report> {
    let mut lab = CtrlLab::new("ctrl_basic", seed, (3, 10), true, None);
    // Basic leave/join.
    let mut cfa = vec![lab.query(0, None)?];
    lab.check_groups(0, &[])?;
    lab.join(0, &[1])?;
    cfa.push(lab.check_groups(0, &[1])?);
    lab.join(0, &[2])?;
    cfa.push(lab.check_groups(0, &[1, 2])?);
    let cfx = lab.query(0, None)?;
    same_servers(&lab, &cfx, &[1, 2])?;
    lab.leave(0, &[1])?;
    cfa.push(lab.check_groups(0, &[2])?);
    lab.leave(0, &[2])?;
    cfa.push(lab.query(0, None)?);

    // Historical queries.
    for s in 0..lab.servers() {
        lab.shutdown(s);
        for want in &cfa {
            let got = lab.query(0, Some(want.num.0))?;
            same_config(&lab, &got, want)?;
        }
        lab.restart(s);
    }

    basic_move(&mut lab)?;

    // Concurrent leave/join: gids 100, 110, …, 190.
    let gids: Vec<u32> = (0..10).map(|i| 100 + 10 * i).collect();
    let scripts = gids
        .iter()
        .map(|&g| vec![join_op(&[g + 1000]), join_op(&[g]), leave_op(&[g + 1000])])
        .collect();
    concurrently(&mut lab, scripts)?;
    lab.check_groups(0, &gids)?;

    // Minimal transfers after joins (11..=15 one at a time), then after leaves.
    let c1 = lab.query(0, None)?;
    for g in 11..=15 {
        lab.join(0, &[g])?;
    }
    let c2 = lab.query(0, None)?;
    for g in 11..=15 {
        lab.leave(0, &[g])?;
    }
    let c3 = lab.query(0, None)?;
    minimal_transfers(&lab, &gids, [&c1, &c2, &c3])?;
    lab.finish()
}

/// TestBasic's Move: gids 503 and 504 join; shards 0–4 move to 503, 5–9 to 504; a Move that
/// changes a shard makes a new configuration; the result is exactly as moved.
fn basic_move(lab: &mut CtrlLab) -> Outcome<()> {
    lab.join(0, &[503])?;
    lab.join(0, &[504])?;
    let target = |s: usize| if s < NSHARDS / 2 { 503 } else { 504 };
    for s in 0..NSHARDS {
        let cf = lab.query(0, None)?;
        lab.move_shard(0, s as u32, target(s))?;
        if cf.shards[s] != Gid(target(s)) {
            let cf1 = lab.query(0, None)?;
            if cf1.num <= cf.num {
                return lab.fail("Move should increase Config.Num");
            }
        }
    }
    let cf2 = lab.query(0, None)?;
    for s in 0..NSHARDS {
        if cf2.shards[s] != Gid(target(s)) {
            return lab.fail(format!(
                "shard {s} wrong group {} after Move",
                cf2.shards[s]
            ));
        }
    }
    lab.leave(0, &[503])?;
    lab.leave(0, &[504])?;
    Ok(())
}

/// `TestMinimalAgain`: join 1, join 2 → c1; join 3 → c2; leave 1 → c3. Each step moves only
/// shards that must move (to the joining group; from the leaving group), and at most
/// `NShards/3 + 1 = 4`.
pub fn ctrl_minimal_again(seed: u64) -> Outcome<Report> {
    let mut lab = CtrlLab::new("ctrl_minimal_again", seed, (3, 1), true, None);
    lab.join(0, &[1])?;
    lab.join(0, &[2])?;
    let c1 = lab.query(0, None)?;
    lab.join(0, &[3])?;
    let c2 = lab.query(0, None)?;
    lab.leave(0, &[1])?;
    let c3 = lab.query(0, None)?;
    let bound = NSHARDS / 3 + 1;
    let steps = [(&c1, &c2, "join", Gid(3)), (&c2, &c3, "leave", Gid(1))];
    for (before, after, what, g) in steps {
        let changed = moved(&before.shards, &after.shards);
        for s in &changed {
            let (a, b) = (before.owner(*s), after.owner(*s));
            let needed = if what == "join" { b == g } else { a == g };
            if !needed {
                return lab.fail(format!("{what} {g}: shard {} moved {a} -> {b}", s.0));
            }
        }
        if changed.len() > bound {
            return lab.fail(format!(
                "{what} {g}: {} shards moved, more than {bound}",
                changed.len()
            ));
        }
    }
    lab.finish()
}

/// `TestMulti`: multi-group join/leave, concurrent multi leave/join, minimal transfers after
/// a multi-join and a multi-leave, and the same configuration after the leader is shut down.
pub fn ctrl_multi(seed: u64) -> Outcome<Report> {
    let mut lab = CtrlLab::new("ctrl_multi", seed, (3, 10), true, None);
    lab.check_groups(0, &[])?;
    lab.join(0, &[1, 2])?;
    lab.check_groups(0, &[1, 2])?;
    lab.join(0, &[3])?;
    let cfx = lab.check_groups(0, &[1, 2, 3])?;
    same_servers(&lab, &cfx, &[1, 2, 3])?;
    lab.leave(0, &[1, 3])?;
    let cfx = lab.check_groups(0, &[2])?;
    same_servers(&lab, &cfx, &[2])?;
    lab.leave(0, &[2])?;

    // Concurrent multi leave/join: gids 1000..1010, each with g+1000 and g+2000.
    let gids: Vec<u32> = (1000..1010).collect();
    let scripts = gids
        .iter()
        .map(|&g| {
            vec![
                join_op(&[g, g + 1000, g + 2000]),
                leave_op(&[g + 1000, g + 2000]),
            ]
        })
        .collect();
    concurrently(&mut lab, scripts)?;
    lab.check_groups(0, &gids)?;

    // Minimal transfers after a multi-join and a multi-leave of 11..=15.
    let new: Vec<u32> = (11..=15).collect();
    let c1 = lab.query(0, None)?;
    lab.join(0, &new)?;
    let c2 = lab.query(0, None)?;
    lab.leave(0, &new)?;
    let c3 = lab.query(0, None)?;
    minimal_transfers(&lab, &gids, [&c1, &c2, &c3])?;

    // Check the same config on the servers: shut the leader down, ask again.
    let Some(leader) = lab.leader() else {
        return lab.fail("Leader not found");
    };
    let c = lab.query(0, None)?;
    lab.shutdown(leader);
    let deadline = lab.now() + 3_000 * MS;
    while lab.leader().is_none_or(|l| l == leader) {
        if lab.now() >= deadline {
            return lab.fail("Leader not found");
        }
        lab.sleep(50)?;
    }
    let c1 = lab.query(0, None)?;
    same_config(&lab, &c1, &c)?;
    lab.finish()
}

/// Beyond the lab: 5 clerks run random Join, Leave, Move and Query (latest and historical)
/// for 12 s on an unreliable network (delays, 10% of requests and replies lost) while the
/// servers are partitioned at random and crashed and restarted, with snapshots
/// (`maxraftstate` 400 B). Every answer must fit one controller (the history check).
pub fn ctrl_unreliable_chaos(seed: u64) -> Outcome<Report> {
    let clerks = 5;
    let mut lab = CtrlLab::new("ctrl_unreliable_chaos", seed, (3, clerks), false, Some(400));
    lab.start_partitioner();
    let end = lab.now() + 12_000 * MS;
    let mut next_crash = lab.now() + 2_000 * MS;
    while lab.now() < end {
        for c in 0..clerks {
            if lab.is_busy(c) {
                continue;
            }
            lab.take_reply(c);
            let op = random_op(&mut lab);
            lab.start(c, op)?;
        }
        if lab.now() >= next_crash {
            let s = lab.random_server();
            lab.shutdown(s);
            lab.sleep(500)?;
            lab.restart(s);
            next_crash = lab.now() + lab.sim.rng().random_range(1_000..3_000) * MS;
        }
        lab.sleep(20)?;
    }
    lab.stop_partitioner();
    for c in 0..clerks {
        if lab.is_busy(c) {
            lab.wait_reply(c, 20_000)?;
        }
    }
    lab.finish()
}

/// A random operation over gids 1..=6 (so some are refused) and configurations 0..=20.
fn random_op(lab: &mut CtrlLab) -> CtrlOp {
    let rng = lab.sim.rng();
    let gid = rng.random_range(1..=6u32);
    match rng.random_range(0..10) {
        0..=2 => join_op(&[gid]),
        3..=4 => CtrlOp::Leave(BTreeSet::from([Gid(gid)])),
        5 => CtrlOp::Move {
            shard: ShardId(rng.random_range(0..NSHARDS as u32)),
            gid: Gid(gid),
        },
        6..=7 => CtrlOp::Query(None),
        _ => CtrlOp::Query(Some(ConfigNum(rng.random_range(0..=20)))),
    }
}
