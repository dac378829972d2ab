//! The sharded KV's lab suites on the simulator: the older 6.5840 shardkv tests (4B ≤ 2023,
//! 5A/5B 2024) with both challenges, and 2025 shardkv1 scenarios, over the pure cores of
//! `aver_core::shardctrler` and `aver_core::shardkv` ([`node`]).
//!
//! Every run records every clerk operation (call, return) and checks the history for
//! linearizability with `aver-checker`'s `kv` model (appended values are unique, so the check
//! also catches a lost or duplicated Append); every operation must return by the end of the
//! run; Raft's cluster invariants are checked per group and per controller, and SHARD-1
//! Single Owner over the groups, after every event of a server; and each scenario adds the lab's own bound
//! (operations that must finish while a group is down, `checklogs`, the storage bounds of
//! Challenge 1 and DeleteBasic). The lab's test bugs are not copied (see `specs/shardkv.md`
//! §sim).
//!
//! Each group is three Raft servers (`GroupReplica`, the core the real runtime runs) with the
//! lab's `maxraftstate` per test, crashes of single servers or whole groups, leader failover
//! and partitions inside a group. The controller is three Raft servers too (`CtrlReplica`, as
//! in `aver sim shardctrler`), driven by administrators (the controller clerk core, each its
//! own session; several race in the concurrent-administrator scenarios); its leader can crash
//! or be cut off in the middle of a Join, and at the end its Raft invariants, the
//! administrators' history (`shardctrler` model), SHARD-5 and SHARD-6 are checked.

pub mod node;
mod run;
mod scenarios;

pub use run::{Run, Summary, run_scenario};
pub use scenarios::SHARD;

use aver_core::shardkv::Bugs;
use aver_sim::Outcome;

/// One ported test.
#[derive(Clone, Copy)]
pub struct ShardScenario {
    /// Our name (`challenge2_unaffected`).
    pub name: &'static str,
    /// The lab's name.
    pub lab_name: &'static str,
    /// Runs it on one seed with the given bugs seeded into every group.
    pub run: fn(u64, Bugs) -> Outcome<run::Summary>,
    /// Its event budget: ten times the most any run of a 200-seed soak needed.
    pub events_max: u64,
}

impl ShardScenario {
    /// Runs it on `seed` with `bugs`, within its event budget (or `events_max` if given).
    pub fn run_seed(&self, seed: u64, bugs: Bugs, events_max: Option<u64>) -> Outcome<Summary> {
        aver_sim::sim::budget_next_run(events_max.unwrap_or(self.events_max));
        (self.run)(seed, bugs)
    }
}

/// The scenario called `name` (ours or the lab's).
pub fn find(name: &str) -> Option<&'static ShardScenario> {
    SHARD.iter().find(|s| s.name == name || s.lab_name == name)
}
