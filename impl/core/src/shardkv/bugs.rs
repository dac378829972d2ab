//! Seeded bugs of the sharded KV and its controller: switches that re-introduce mistakes
//! found in real implementations of shard migration, so that the model checker and the
//! simulator can show they catch them. Off by default; only `aver check`, `aver sim` and
//! tests turn them on. Each has one row in `specs/bugs.md`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One seeded bug. The kebab-case name is what `--bug NAME` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Bug {
    /// A group serves a shard it owns in its new configuration before the shard's data has
    /// arrived from the previous holder.
    ServeBeforeArrival,
    /// The previous holder sends a shard's data without its duplicate-detection table.
    DropDedup,
    /// The previous holder deletes a shard as soon as it has sent it, before the new owner
    /// confirmed that it installed it.
    DeleteBeforeConfirm,
    /// A group asks for the latest configuration and installs it even if it skips some.
    ConfigsOutOfOrder,
    /// The controller breaks rebalancing ties in a replica-specific order (iterating a hash
    /// map), so replicas compute different configurations from the same log.
    RebalanceDiffers,
    /// The controller's session table does not deduplicate: a retried `Join`, `Leave` or
    /// `Move` (a reply lost, or the request sent again to a new leader that already holds the
    /// old leader's copy) is applied once per copy that commits.
    CtrlDropDedup,
}

impl Bug {
    /// Every seeded bug, in catalogue order.
    pub const ALL: [Bug; 6] = [
        Bug::ServeBeforeArrival,
        Bug::DropDedup,
        Bug::DeleteBeforeConfirm,
        Bug::ConfigsOutOfOrder,
        Bug::RebalanceDiffers,
        Bug::CtrlDropDedup,
    ];

    /// The `--bug` name.
    pub fn name(self) -> &'static str {
        match self {
            Bug::ServeBeforeArrival => "serve-before-arrival",
            Bug::DropDedup => "drop-dedup",
            Bug::DeleteBeforeConfirm => "delete-before-confirm",
            Bug::ConfigsOutOfOrder => "configs-out-of-order",
            Bug::RebalanceDiffers => "rebalance-differs",
            Bug::CtrlDropDedup => "ctrl-drop-dedup",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<_> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown bug `{s}`; known bugs: {}", names.join(", "))
        })
    }
}

/// A set of seeded bugs (a bitset: cheap to hash in every model state).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Bugs(u8);

impl Bugs {
    /// No bugs: the correct protocol.
    pub const NONE: Bugs = Bugs(0);

    /// The set with one bug.
    pub fn only(bug: Bug) -> Bugs {
        Bugs(bug.bit())
    }

    /// Adds a bug.
    pub fn with(self, bug: Bug) -> Bugs {
        Bugs(self.0 | bug.bit())
    }

    /// True if `bug` is switched on.
    #[inline]
    pub fn has(self, bug: Bug) -> bool {
        self.0 & bug.bit() != 0
    }

    /// True if no bug is switched on.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}
