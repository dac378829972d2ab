//! Seeded bugs: switches that re-introduce historical Raft bugs, so that the model checker and
//! the simulator can prove they would catch them. Off by default. Only `aver check` and
//! `aver sim` (and tests) can turn them on; a serving node refuses a configuration with any
//! bug set. Each bug has one row in `specs/bugs.md`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One historical bug. The kebab-case name is what `--bug NAME` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Bug {
    /// A leader commits an entry of a previous term by counting replicas (Figure 8;
    /// LogCabin #44, canonical/raft#220).
    Figure8Commit,
    /// A server grants a vote without persisting it first, so a crash lets it vote twice in
    /// one term.
    VoteNotPersisted,
    /// The up-to-date check on votes compares only log lengths, not last terms first.
    UpToDateByLength,
    /// A follower truncates its log after `prev_log_index` on every AppendEntries, even when
    /// the entries already match (openraft 9540c904): a stale, reordered AppendEntries deletes
    /// entries that were acknowledged and committed.
    TruncateOnMatch,
    /// A follower accepts AppendEntries from a stale term.
    AcceptStaleTerm,
    /// A leader does not step down when it sees a higher term in a reply.
    LeaderIgnoresHigherTerm,
    /// A follower installs a snapshot older than its commit index, moving its state machine
    /// backwards.
    InstallOldSnapshot,
    /// A server votes for any up-to-date candidate in its term, even after voting for another.
    VoteTwice,
    /// The leader computes the commit index from a quorum of one fewer than a majority
    /// (openraft d60f1e85, openraft #1802).
    CommitWithoutQuorum,
    /// A follower appends after `prev_log_index` without deleting conflicting entries.
    KeepConflicting,
    /// ReadIndex: the leader releases a read without a quorum confirming its term (it trusts
    /// that it still leads; etcd's `ReadOnlyLeaseBased` without a lease). Only a service that
    /// reads can show it: see [`Bug::READ_INDEX`].
    ReadWithoutQuorum,
    /// ReadIndex: the leader takes its commit index as the read index before it has committed
    /// an entry of its own term, when that index may lag behind the cluster's.
    ReadBeforeTermCommit,
}

impl Bug {
    /// Every seeded Raft bug the Raft model and the Raft suite can show, in catalogue order
    /// (the ReadIndex bugs are in [`Bug::READ_INDEX`]).
    pub const ALL: [Bug; 10] = [
        Bug::Figure8Commit,
        Bug::VoteNotPersisted,
        Bug::UpToDateByLength,
        Bug::TruncateOnMatch,
        Bug::AcceptStaleTerm,
        Bug::LeaderIgnoresHigherTerm,
        Bug::InstallOldSnapshot,
        Bug::VoteTwice,
        Bug::CommitWithoutQuorum,
        Bug::KeepConflicting,
    ];

    /// The ReadIndex bugs. They are not in [`Bug::ALL`] (the Raft model and the Raft suite
    /// never read, so they cannot show them); the KV service's seeded bugs switch them on.
    pub const READ_INDEX: [Bug; 2] = [Bug::ReadWithoutQuorum, Bug::ReadBeforeTermCommit];

    /// The `--bug` name.
    pub fn name(self) -> &'static str {
        match self {
            Bug::Figure8Commit => "figure8-commit",
            Bug::VoteNotPersisted => "vote-not-persisted",
            Bug::UpToDateByLength => "up-to-date-by-length",
            Bug::TruncateOnMatch => "truncate-on-match",
            Bug::AcceptStaleTerm => "accept-stale-term",
            Bug::LeaderIgnoresHigherTerm => "leader-ignores-higher-term",
            Bug::InstallOldSnapshot => "install-old-snapshot",
            Bug::VoteTwice => "vote-twice",
            Bug::CommitWithoutQuorum => "commit-without-quorum",
            Bug::KeepConflicting => "keep-conflicting",
            Bug::ReadWithoutQuorum => "read-without-quorum",
            Bug::ReadBeforeTermCommit => "read-before-term-commit",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
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
pub struct Bugs(u32);

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

    /// True unless a bug changes how stale terms or votes are handled, which
    /// [`crate::raft::Raft::request_moot_within`] reads.
    pub fn keep_stale_handling(self) -> bool {
        ![Bug::AcceptStaleTerm, Bug::VoteTwice, Bug::VoteNotPersisted]
            .iter()
            .any(|&b| self.has(b))
    }
}
