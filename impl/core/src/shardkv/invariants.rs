//! The sharded KV's invariants (`specs/invariants.md`), one plain function per ID.
//!
//! Each is a **cluster** invariant: it takes the state of every group (for a Raft-replicated
//! group, the state of its most advanced replica: what the group has committed), and, where
//! it speaks of client writes, what the clients were told. The model checker evaluates each
//! as an `always` property of the same name; the simulator runs them after events.

use super::state::{ShardKv, ShardState};
use super::types::{Key, Value, key2shard};
use crate::contract::Violation;
use crate::shardctrler::ShardId;

/// SHARD-1 Single Owner: at most one group serves a shard at any moment (so in particular in
/// any one configuration).
pub const SINGLE_OWNER: &str = "SHARD-1";
/// SHARD-2 No Lost Write: every acknowledged write is in the copy of its shard that is served
/// (or, while the shard moves, in the copy being offered, which must exist).
pub const NO_LOST_WRITE: &str = "SHARD-2";
/// SHARD-3 At Most Once Across Moves: no write takes effect twice in any copy of its shard,
/// although clients retry it at the old and the new owner (the session table moves with the
/// shard).
pub const AT_MOST_ONCE: &str = "SHARD-3";
/// SHARD-4 No Premature Delete: a shard some group still needs (is pulling) is still held by
/// its source once the source has moved past serving it: a deleted shard is never needed again.
pub const NO_PREMATURE_DELETE: &str = "SHARD-4";

fn shard_count(groups: &[&ShardKv]) -> usize {
    groups.first().map_or(0, |g| g.config().shard_count())
}

/// SHARD-1: for every shard, at most one group answers client operations on it. Two groups
/// serving one shard both accept writes, and each write is lost to the other's readers.
pub fn single_owner(groups: &[&ShardKv]) -> Result<(), Violation> {
    for s in 0..shard_count(groups) as u32 {
        let shard = ShardId(s);
        let serving: Vec<String> = groups
            .iter()
            .filter(|g| g.serves(shard))
            .map(|g| format!("{} at config {}", g.gid(), g.num().0))
            .collect();
        if serving.len() > 1 {
            return Err(Violation::new(
                SINGLE_OWNER,
                format!("{shard} served by {}", serving.join(" and ")),
            ));
        }
    }
    Ok(())
}

/// SHARD-2: every `(key, value)` in `acked` — Appends the clients were told succeeded, with
/// values unique among appends and not since overwritten by a Put — is in the value of `key`
/// in every copy of its shard that is served; while no copy is served, in every offered copy;
/// and some group holds one of those (otherwise the only copy of the write, if any, is a
/// message in flight, and the network may lose it).
pub fn no_lost_write(groups: &[&ShardKv], acked: &[(Key, Value)]) -> Result<(), Violation> {
    let shards = shard_count(groups);
    for (key, value) in acked {
        let shard = key2shard(key, shards);
        let served: Vec<&&ShardKv> = groups.iter().filter(|g| g.serves(shard)).collect();
        let copies: Vec<&&ShardKv> = if served.is_empty() {
            groups
                .iter()
                .filter(|g| {
                    g.shard(shard)
                        .is_some_and(|s| s.state == ShardState::Offering)
                })
                .collect()
        } else {
            served
        };
        if copies.is_empty() {
            return Err(Violation::new(
                NO_LOST_WRITE,
                format!(
                    "acknowledged append({key},{value:?}): no group serves or offers {shard} \
                     any more"
                ),
            ));
        }
        for g in copies {
            let held = g.shard(shard).and_then(|s| s.data.get(key));
            if !held.is_some_and(|v| v.contains(value.as_str())) {
                return Err(Violation::new(
                    NO_LOST_WRITE,
                    format!(
                        "acknowledged append({key},{value:?}) missing from {shard} at {} \
                         (config {}): {key} = {held:?}",
                        g.gid(),
                        g.num().0,
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// SHARD-3: for every `(key, value)` in `appended` — every Append issued (acknowledged or
/// not), values unique and none a substring of another — no copy of the key's shard, in any
/// group and any state, holds the value twice.
pub fn at_most_once(groups: &[&ShardKv], appended: &[(Key, Value)]) -> Result<(), Violation> {
    let shards = shard_count(groups);
    for (key, value) in appended {
        let shard = key2shard(key, shards);
        for g in groups {
            let Some(v) = g.shard(shard).and_then(|s| s.data.get(key)) else {
                continue;
            };
            if v.matches(value.as_str()).count() > 1 {
                return Err(Violation::new(
                    AT_MOST_ONCE,
                    format!(
                        "append({key},{value:?}) applied twice in {shard} at {} (config {}): \
                         {key} = {v:?}",
                        g.gid(),
                        g.num().0
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// SHARD-4: whenever a group `G` pulls a shard for configuration `n` from its source `F`, and
/// `F` has reached configuration `n` (so it no longer serves the shard), `F` still holds it.
/// (Before reaching `n`, `F` still holds the shard or is about to receive it itself.) A source
/// that dropped the shard while `G` still needs it has lost every write ever made to it, and
/// `G` can never serve it.
pub fn no_premature_delete(groups: &[&ShardKv]) -> Result<(), Violation> {
    for g in groups {
        for (shard, s) in g.shards() {
            let ShardState::Pulling(source) = &s.state else {
                continue;
            };
            let Some(f) = groups.iter().find(|f| f.gid() == source.gid) else {
                continue;
            };
            if f.num() >= g.num() && f.shard(*shard).is_none() {
                return Err(Violation::new(
                    NO_PREMATURE_DELETE,
                    format!(
                        "{} pulls {shard} for config {} from {}, which is in config {} and \
                         does not hold it",
                        g.gid(),
                        g.num().0,
                        f.gid(),
                        f.num().0
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Every SHARD-1..4 invariant; the first violation found.
pub fn check_groups(
    groups: &[&ShardKv],
    acked: &[(Key, Value)],
    appended: &[(Key, Value)],
) -> Result<(), Violation> {
    single_owner(groups)?;
    no_lost_write(groups, acked)?;
    at_most_once(groups, appended)?;
    no_premature_delete(groups)
}
