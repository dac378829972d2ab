//! The models `aver check` knows: one entry per model. `aver check` with no protocol runs
//! every entry at its CI configurations, in this order; `aver check NAME` and `aver explore
//! NAME` look the entry up by name.

use super::Outcome;
use super::args::{CheckArgs, ExploreArgs};

/// Which configurations a model's `check` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `aver check NAME`: the one configuration the flags describe.
    Named,
    /// `aver check`: every CI configuration of the model.
    Ci,
}

/// One registered model.
pub struct Entry {
    /// The protocol name `aver check NAME` takes.
    pub name: &'static str,
    /// Checks the model and returns one outcome per configuration checked. Prints its own
    /// progress and counterexamples as it goes.
    pub check: fn(&CheckArgs, Scope) -> anyhow::Result<Vec<Outcome>>,
    /// Serves Stateright Explorer on the model (blocks).
    pub explore: fn(&ExploreArgs) -> anyhow::Result<u8>,
}

/// Every registered model.
pub const REGISTRY: &[Entry] = &[
    Entry {
        name: "raft",
        check: super::raft::check,
        explore: super::raft::explore,
    },
    Entry {
        name: "kvsrv",
        check: super::kvsrv::check_kvsrv,
        explore: super::kvsrv::explore,
    },
    Entry {
        name: "lock",
        check: super::kvsrv::check_lock,
        explore: super::kvsrv::explore,
    },
    Entry {
        name: "mr",
        check: crate::mr::check,
        explore: crate::mr::explore,
    },
    Entry {
        name: "kv-dedup",
        check: super::kv::check_dedup,
        explore: super::kv::explore_dedup,
    },
    Entry {
        name: "kv-raft",
        check: super::kv::check_kv_raft,
        explore: super::kv::explore_kv_raft,
    },
    Entry {
        name: "shard",
        check: crate::shard::check,
        explore: crate::shard::explore,
    },
];

/// The entry named `name`, or an error listing the known names.
pub fn lookup(name: &str) -> anyhow::Result<&'static Entry> {
    REGISTRY.iter().find(|e| e.name == name).ok_or_else(|| {
        let names: Vec<_> = REGISTRY.iter().map(|e| e.name).collect();
        anyhow::anyhow!("unknown protocol `{name}`; known: {}", names.join(", "))
    })
}
