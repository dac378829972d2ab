//! Deterministic rebalancing with minimal movement.
//!
//! Given who holds each shard now and which groups exist, [`rebalance`] returns a new
//! assignment that
//!
//! 1. assigns every shard to a group whenever a group exists (shards of groups that left, and
//!    unassigned ones, are *orphans* and must move);
//! 2. is balanced: every group holds `⌊S/n⌋` or `⌈S/n⌉` of the `S` shards, so max − min ≤ 1;
//! 3. moves as few shards as any balanced assignment allows;
//! 4. depends only on its arguments' values: the same on every replica, whatever the order in
//!    which the groups were listed.
//!
//! **Why it is minimal.** In a balanced assignment exactly `r = S mod n` groups hold `⌈S/n⌉`
//! shards and the others `⌊S/n⌋`. A group can keep at most `min(holds, target)` of the shards
//! it holds, so the moves are at least `S − Σ min(holds_g, target_g)`. Giving the `r` larger
//! targets to the groups that hold the most shards maximises that sum (a larger target adds one
//! kept shard exactly when the group holds more than `⌊S/n⌋`), and the algorithm moves exactly
//! the orphans plus each group's shards beyond its target, which meets the bound.
//!
//! Ties (which of several equally loaded groups gets a larger target, which shards a group
//! gives up, which group receives which orphan) are broken by group id and shard number: a
//! group gives up its highest-numbered shards, and orphans go in ascending shard order to the
//! groups below their target in ascending gid order.

use super::{Gid, ShardId};
use std::cmp::Reverse;
use std::collections::BTreeMap;

/// The balanced, minimal-movement assignment of the shards in `current` (`current[s]` holds
/// shard `s`) over `groups` (any order, duplicates and [`Gid::NONE`] ignored). With no group,
/// every shard is unassigned ([`Gid::NONE`]).
pub fn rebalance(current: &[Gid], groups: impl IntoIterator<Item = Gid>) -> Vec<Gid> {
    rebalance_rotated(current, groups, 0)
}

/// [`rebalance`] with its tie-breaking order rotated by `rotation` (0 = the correct, canonical
/// order). A non-zero rotation stands for an implementation that breaks ties by whatever
/// order a replica happens to iterate a hash map in: still balanced and minimal, but
/// different from replica to replica (the seeded bug `rebalance-differs`).
pub(crate) fn rebalance_rotated(
    current: &[Gid],
    groups: impl IntoIterator<Item = Gid>,
    rotation: usize,
) -> Vec<Gid> {
    let mut order: Vec<Gid> = groups.into_iter().filter(|g| *g != Gid::NONE).collect();
    order.sort();
    order.dedup();
    if order.is_empty() {
        return vec![Gid::NONE; current.len()];
    }
    let n = order.len();
    order.rotate_left(rotation % n);

    // Who holds what; everything held by no current group is an orphan.
    let mut held: BTreeMap<Gid, Vec<usize>> = order.iter().map(|g| (*g, Vec::new())).collect();
    let mut pool: Vec<usize> = Vec::new();
    for (shard, gid) in current.iter().enumerate() {
        match held.get_mut(gid) {
            Some(shards) => shards.push(shard),
            None => pool.push(shard),
        }
    }

    // Targets: the most loaded groups get the larger share (a stable sort keeps the tie order).
    let (base, extra) = (current.len() / n, current.len() % n);
    let mut by_load = order.clone();
    by_load.sort_by_key(|g| Reverse(held[g].len()));
    let target: BTreeMap<Gid, usize> = by_load
        .iter()
        .enumerate()
        .map(|(i, g)| (*g, base + usize::from(i < extra)))
        .collect();

    // Groups above their target give up their highest-numbered shards (lowest, when rotated
    // by an odd amount: another iteration order).
    for g in &order {
        let shards = held.get_mut(g).expect("every group has an entry");
        while shards.len() > target[g] {
            let s = if rotation % 2 == 1 {
                shards.remove(0)
            } else {
                shards.pop().expect("above target, so not empty")
            };
            pool.push(s);
        }
    }
    pool.sort_unstable();

    // Groups below their target take orphans in ascending shard order.
    let mut pool = pool.into_iter();
    for g in &order {
        let shards = held.get_mut(g).expect("every group has an entry");
        while shards.len() < target[g] {
            shards.push(pool.next().expect("targets add up to the shard count"));
        }
    }
    assert!(pool.next().is_none(), "every orphan found a group");

    let mut next = vec![Gid::NONE; current.len()];
    for (g, shards) in held {
        for s in shards {
            next[s] = g;
        }
    }
    next
}

/// How many shards each group in `groups` holds under `shards` (groups holding none included).
pub fn load(shards: &[Gid], groups: impl IntoIterator<Item = Gid>) -> BTreeMap<Gid, usize> {
    let mut load: BTreeMap<Gid, usize> = groups.into_iter().map(|g| (g, 0)).collect();
    for g in shards {
        if let Some(n) = load.get_mut(g) {
            *n += 1;
        }
    }
    load
}

/// The shards whose holder differs between `before` and `after`.
pub fn moved(before: &[Gid], after: &[Gid]) -> Vec<ShardId> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(s, _)| ShardId(s as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gids(v: &[u32]) -> Vec<Gid> {
        v.iter().map(|g| Gid(*g)).collect()
    }

    #[test]
    fn first_join_takes_everything_then_halves() {
        let none = vec![Gid::NONE; 10];
        let one = rebalance(&none, gids(&[1]));
        assert_eq!(one, vec![Gid(1); 10]);
        let two = rebalance(&one, gids(&[2, 1]));
        assert_eq!(
            load(&two, gids(&[1, 2]))
                .values()
                .copied()
                .collect::<Vec<_>>(),
            [5, 5]
        );
        // Group 1 gave up its highest-numbered shards.
        assert_eq!(moved(&one, &two).len(), 5);
        assert!(two[..5].iter().all(|g| *g == Gid(1)));
    }

    #[test]
    fn leave_moves_only_the_leavers_shards() {
        let three = rebalance(&[Gid::NONE; 10], gids(&[1, 2, 3]));
        let two = rebalance(&three, gids(&[2, 3]));
        for (s, (a, b)) in three.iter().zip(&two).enumerate() {
            if *a != Gid(1) {
                assert_eq!(a, b, "shard {s} moved although its group stayed");
            }
        }
    }

    #[test]
    fn no_group_unassigns_every_shard() {
        assert_eq!(rebalance(&gids(&[1, 2, 1]), []), vec![Gid::NONE; 3]);
    }

    #[test]
    fn rotation_changes_ties_but_stays_balanced() {
        let a = rebalance_rotated(&[Gid::NONE; 2], gids(&[1, 2]), 0);
        let b = rebalance_rotated(&[Gid::NONE; 2], gids(&[1, 2]), 1);
        assert_ne!(a, b);
        assert_eq!(
            load(&b, gids(&[1, 2]))
                .values()
                .copied()
                .collect::<Vec<_>>(),
            [1, 1]
        );
    }
}
