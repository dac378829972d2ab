//! The controller's invariants (`specs/invariants.md`), one plain function per ID.

use super::rebalance::{load, moved};
use super::{Config, Gid, ShardCtrler};
use crate::contract::Violation;

/// SHARD-5 Config Agreement: replicas that have reached configuration `n` hold the same one.
pub const CONFIG_AGREEMENT: &str = "SHARD-5";
/// SHARD-6 Balanced Configs: a configuration made by `Join` or `Leave` assigns every shard to a
/// member whenever a group exists, is balanced (max − min ≤ 1) and moves no more shards than
/// balance needs; one made by `Move` changes one shard.
pub const BALANCED: &str = "SHARD-6";

/// SHARD-5 over several replicas of the controller (cluster kind). Two replicas that disagree
/// on configuration `n` send groups and clerks different answers to `Query(n)`: two groups may
/// then both believe they serve a shard.
pub fn config_agreement(replicas: &[&ShardCtrler]) -> Result<(), Violation> {
    let Some(longest) = replicas.iter().max_by_key(|r| r.configs().len()) else {
        return Ok(());
    };
    for (i, r) in replicas.iter().enumerate() {
        for (mine, theirs) in r.configs().iter().zip(longest.configs()) {
            if mine != theirs {
                return Err(Violation::new(
                    CONFIG_AGREEMENT,
                    format!(
                        "replica {i} holds config {} = {:?}, another replica {:?}",
                        mine.num.0, mine.shards, theirs.shards
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// SHARD-6 over one replica's configurations (node kind): each consecutive pair.
pub fn balanced(ctrl: &ShardCtrler) -> Result<(), Violation> {
    ctrl.configs()
        .windows(2)
        .try_for_each(|w| balanced_step(&w[0], &w[1]))
}

/// SHARD-6 for one step `before → after`. If the groups changed, `after` came from `Join` or
/// `Leave` and must be balanced and minimal; otherwise from `Move`, which changes one shard.
pub fn balanced_step(before: &Config, after: &Config) -> Result<(), Violation> {
    let fail = |what: String| {
        Err(Violation::new(
            BALANCED,
            format!("config {} → {}: {what}", before.num.0, after.num.0),
        ))
    };
    if after.num != before.num.next() {
        return fail(format!("numbered {} after {}", after.num.0, before.num.0));
    }
    let changed = moved(&before.shards, &after.shards);
    if before.groups.keys().eq(after.groups.keys()) {
        if changed.len() > 1 {
            return fail(format!("a move changed shards {changed:?}"));
        }
        return Ok(());
    }
    if after.groups.is_empty() && after.shards.iter().any(|g| *g != Gid::NONE) {
        return fail(format!("no group, yet shards assigned: {:?}", after.shards));
    }
    if let Some((s, g)) = after
        .shards
        .iter()
        .enumerate()
        .find(|(_, g)| !after.groups.contains_key(g) && !after.groups.is_empty())
    {
        return fail(format!("shard {s} on {g}, not a member"));
    }
    let loads = load(&after.shards, after.groups.keys().copied());
    let (min, max) = (loads.values().min(), loads.values().max());
    if let (Some(min), Some(max)) = (min, max)
        && max - min > 1
    {
        return fail(format!("unbalanced: {loads:?}"));
    }
    let needed = min_moves(&before.shards, after.groups.keys().copied());
    if changed.len() > needed {
        return fail(format!(
            "moved {} shards {changed:?}; balance needs only {needed}",
            changed.len()
        ));
    }
    Ok(())
}

/// The fewest shards any balanced assignment of `shards` over `groups` must move.
///
/// A balanced assignment gives each group `⌊S/n⌋` or `⌈S/n⌉` shards, the larger share to
/// exactly `S mod n` groups. A group keeps at most `min(holds, share)` of its shards, and a
/// larger share keeps one more only for a group holding more than `⌊S/n⌋`; so at most
/// `Σ min(holds, ⌊S/n⌋) + min(S mod n, #{groups holding more than ⌊S/n⌋})` shards stay.
pub fn min_moves(shards: &[Gid], groups: impl IntoIterator<Item = Gid>) -> usize {
    let loads = load(shards, groups.into_iter().filter(|g| *g != Gid::NONE));
    if loads.is_empty() {
        return shards.iter().filter(|g| **g != Gid::NONE).count();
    }
    let (base, extra) = (shards.len() / loads.len(), shards.len() % loads.len());
    let kept: usize = loads.values().map(|&c| c.min(base)).sum::<usize>()
        + extra.min(loads.values().filter(|&&c| c > base).count());
    shards.len() - kept
}
