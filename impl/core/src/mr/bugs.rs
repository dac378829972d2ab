//! Seeded bugs of the MapReduce coordinator: switches that re-introduce classic mistakes so the
//! model checker can show it catches them by what a user loses. Off by default; only
//! `aver mr check --bug NAME` and tests turn them on. Each has a row in `specs/mapreduce.md`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One seeded coordinator bug. The kebab-case name is what `--bug NAME` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MrBug {
    /// When no task is idle, a requesting worker is given a task that is still running
    /// elsewhere, although nothing timed out and no worker was lost: a speculative copy with
    /// no reason. Side-effecting applications observe extra runs (the lab's job-count test).
    ReassignWithoutTimeout,
    /// A `Finished` report from a run the coordinator already gave up on (it timed out) marks
    /// the task done at once, as if the report were the commit: the job can be declared done
    /// before that output is in place, and a newer run may still replace it afterwards.
    DoneOnStaleReport,
}

impl MrBug {
    /// Every seeded bug.
    pub const ALL: [MrBug; 2] = [MrBug::ReassignWithoutTimeout, MrBug::DoneOnStaleReport];

    /// The `--bug` name.
    pub fn name(self) -> &'static str {
        match self {
            MrBug::ReassignWithoutTimeout => "reassign-without-timeout",
            MrBug::DoneOnStaleReport => "done-on-stale-report",
        }
    }
}

impl fmt::Display for MrBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MrBug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MrBug::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = MrBug::ALL.iter().map(|b| b.name()).collect();
                format!("unknown bug `{s}`; known: {}", names.join(", "))
            })
    }
}

/// A set of seeded bugs (empty by default).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct MrBugs(u8);

impl MrBugs {
    /// No bug.
    pub const NONE: MrBugs = MrBugs(0);

    /// This set plus `bug`.
    pub fn with(self, bug: MrBug) -> MrBugs {
        MrBugs(self.0 | 1 << bug as u8)
    }

    /// Whether `bug` is seeded.
    pub fn has(self, bug: MrBug) -> bool {
        self.0 & (1 << bug as u8) != 0
    }

    /// Whether any bug is seeded.
    pub fn any(self) -> bool {
        self.0 != 0
    }
}
