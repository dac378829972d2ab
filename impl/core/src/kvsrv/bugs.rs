//! Seeded bugs of the versioned KV's clerk and of the lock built on it: switches that
//! re-introduce mistakes real implementations made, so that the model checker and the
//! simulator can show they catch them — by what a user loses (a non-linearizable history,
//! two clients inside the lock), never by a check that restates the fix. Off by default;
//! only `aver check`, `aver sim` and tests set them. Each bug has a row in `specs/bugs.md`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One seeded bug. The kebab-case name is what `--bug NAME` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Bug {
    /// Clerk: a retransmitted Put answered `ErrVersion` is reported as `OK` — "my first copy
    /// must have been applied" — although another client's put may have won.
    ErrMaybeAsOk,
    /// Clerk: a retransmitted Put answered `ErrVersion` is reported as `ErrVersion` (the
    /// `ErrMaybe` rule left out), although the first copy may have been applied.
    NoErrMaybe,
    /// Lock: `ErrMaybe` on the acquiring Put is taken as "acquired" without reading the lock
    /// back to see whose id it holds.
    AcquireMaybeAsHeld,
    /// Lock: a release that must re-read the lock (after `ErrMaybe` or `ErrVersion`) writes it
    /// free at whatever version it reads, without checking that it still holds the owner's
    /// own id — freeing another client's lock.
    ReleaseWithoutOwnership,
    /// Lock: every client writes the same marker ("locked") instead of a unique id, so after
    /// `ErrMaybe` a client reading the marker back cannot tell its own lock from another's.
    SharedLockId,
}

impl Bug {
    /// Every seeded bug, in catalogue order.
    pub const ALL: [Bug; 5] = [
        Bug::ErrMaybeAsOk,
        Bug::NoErrMaybe,
        Bug::AcquireMaybeAsHeld,
        Bug::ReleaseWithoutOwnership,
        Bug::SharedLockId,
    ];

    /// The `--bug` name.
    pub fn name(self) -> &'static str {
        match self {
            Bug::ErrMaybeAsOk => "errmaybe-as-ok",
            Bug::NoErrMaybe => "no-errmaybe",
            Bug::AcquireMaybeAsHeld => "acquire-maybe-as-held",
            Bug::ReleaseWithoutOwnership => "release-without-ownership",
            Bug::SharedLockId => "shared-lock-id",
        }
    }

    /// True for bugs of the lock (they need lock clients to show); false for clerk bugs.
    pub fn in_lock(self) -> bool {
        matches!(
            self,
            Bug::AcquireMaybeAsHeld | Bug::ReleaseWithoutOwnership | Bug::SharedLockId
        )
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
            format!(
                "unknown kvsrv/lock bug `{s}`; known bugs: {}",
                names.join(", ")
            )
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

    /// The bugs in the set, in catalogue order.
    pub fn list(self) -> Vec<Bug> {
        Bug::ALL.into_iter().filter(|b| self.has(*b)).collect()
    }
}

impl FromIterator<Bug> for Bugs {
    fn from_iter<I: IntoIterator<Item = Bug>>(iter: I) -> Bugs {
        iter.into_iter().fold(Bugs::NONE, Bugs::with)
    }
}
