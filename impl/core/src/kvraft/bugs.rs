//! Seeded bugs of the KV service: switches that re-introduce classic mistakes of replicated
//! KV services, so the model checker and the simulator can show they catch each one by what a
//! user loses (a non-linearizable history, a write applied twice). Off by default; one row
//! each in `specs/bugs.md`.

use crate::raft;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One seeded service bug; the kebab-case name is what `--bug NAME` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KvBug {
    /// Snapshots leave the dedup table out: after a restart (or an InstallSnapshot) a retried
    /// write that the snapshot covers executes again.
    DedupNotInSnapshot,
    /// The rsm answers a submission as soon as it is proposed, with the output of applying it
    /// to the current state, before the entry is committed and applied at its index.
    ReplyBeforeApply,
    /// The rsm answers a submission with the output of whatever entry is applied at its index,
    /// even one of another term (after a leader change).
    AcceptOtherEntry,
    /// A server that believes it leads answers Get from its local state at once (no log entry,
    /// no ReadIndex): a deposed leader answers stale values.
    LocalRead,
    /// A clerk reuses its previous sequence number for a new operation, so the dedup table
    /// answers the new operation with the old one's reply.
    ClerkReusesSeq,
    /// ReadIndex without the quorum round (Raft `read-without-quorum`).
    ReadWithoutQuorum,
    /// ReadIndex before the leader committed an entry of its term (Raft
    /// `read-before-term-commit`).
    ReadBeforeTermCommit,
}

impl KvBug {
    /// Every seeded service bug.
    pub const ALL: [KvBug; 7] = [
        KvBug::DedupNotInSnapshot,
        KvBug::ReplyBeforeApply,
        KvBug::AcceptOtherEntry,
        KvBug::LocalRead,
        KvBug::ClerkReusesSeq,
        KvBug::ReadWithoutQuorum,
        KvBug::ReadBeforeTermCommit,
    ];

    /// The `--bug` name.
    pub fn name(self) -> &'static str {
        match self {
            KvBug::DedupNotInSnapshot => "dedup-not-in-snapshot",
            KvBug::ReplyBeforeApply => "reply-before-apply",
            KvBug::AcceptOtherEntry => "accept-other-entry",
            KvBug::LocalRead => "local-read",
            KvBug::ClerkReusesSeq => "clerk-reuses-seq",
            KvBug::ReadWithoutQuorum => "read-without-quorum",
            KvBug::ReadBeforeTermCommit => "read-before-term-commit",
        }
    }

    /// True for the bugs that live in Raft's ReadIndex (only shown with ReadIndex reads).
    pub fn is_read_index(self) -> bool {
        matches!(self, KvBug::ReadWithoutQuorum | KvBug::ReadBeforeTermCommit)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for KvBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KvBug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KvBug::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = KvBug::ALL.iter().map(|b| b.name()).collect();
                format!("unknown KV bug `{s}`; known: {}", names.join(", "))
            })
    }
}

/// A set of seeded service bugs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct KvBugs(u32);

impl KvBugs {
    /// No bugs.
    pub const NONE: KvBugs = KvBugs(0);

    /// The set with one bug.
    pub fn only(bug: KvBug) -> KvBugs {
        KvBugs(bug.bit())
    }

    /// Adds a bug.
    pub fn with(self, bug: KvBug) -> KvBugs {
        KvBugs(self.0 | bug.bit())
    }

    /// True if `bug` is switched on.
    pub fn has(self, bug: KvBug) -> bool {
        self.0 & bug.bit() != 0
    }

    /// True if no bug is on.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The Raft bugs these switch on (the ReadIndex ones).
    pub fn raft_bugs(self) -> raft::Bugs {
        let mut bugs = raft::Bugs::NONE;
        if self.has(KvBug::ReadWithoutQuorum) {
            bugs = bugs.with(raft::Bug::ReadWithoutQuorum);
        }
        if self.has(KvBug::ReadBeforeTermCommit) {
            bugs = bugs.with(raft::Bug::ReadBeforeTermCommit);
        }
        bugs
    }
}
