//! The log and the durable state, and the one function that changes durable state.
//!
//! [`Durable`] is exactly what a server must keep across a crash: its [`HardState`], its log
//! and its latest snapshot. The core changes its own copy only through [`Durable::apply`], and
//! every change is also emitted as a [`PersistOp`] in `Ready::persist`. A driver folds the same
//! operations into its storage with the same function (the model's `Storage`, the simulator's
//! disk) or encodes them as WAL records (the runtime). So "what survives a crash" and "what the
//! core believes it persisted" cannot drift apart unless a driver drops an operation — which
//! is exactly the fault a crash that loses unsynced writes models.

use super::types::{Entry, HardState, LogIndex, Snapshot, SnapshotMeta, Term};
use serde::{Deserialize, Serialize};

/// The log after the latest snapshot: `entries[k]` has index `base.index + 1 + k`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Log<C> {
    /// Index and term of the last entry covered by the snapshot (`(0, 0)` if none).
    base: SnapshotMeta,
    /// The entries after `base.index`.
    entries: Vec<Entry<C>>,
}

impl<C> Default for Log<C> {
    fn default() -> Self {
        Log {
            base: SnapshotMeta::default(),
            entries: Vec::new(),
        }
    }
}

impl<C: Clone> Log<C> {
    /// The same log with every command replaced by `f(command)` (see [`super::rename`]).
    pub fn map_commands(&self, f: &dyn Fn(&C) -> C) -> Log<C> {
        Log {
            base: self.base,
            entries: self
                .entries
                .iter()
                .map(|e| Entry {
                    term: e.term,
                    command: f(&e.command),
                })
                .collect(),
        }
    }

    /// The snapshot boundary: the last compacted index and its term.
    pub fn base(&self) -> SnapshotMeta {
        self.base
    }

    /// First index still held as an entry (`base.index + 1`).
    pub fn first_index(&self) -> LogIndex {
        self.base.index.next()
    }

    /// Index of the last entry (the snapshot's index when the log is empty).
    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.base.index.0 + self.entries.len() as u64)
    }

    /// Term of the last entry (the snapshot's term when the log is empty).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.base.term, |e| e.term)
    }

    /// Term at `index`: known for the snapshot boundary and for held entries, else `None`.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base.index {
            return Some(self.base.term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if held (not compacted, not beyond the end).
    pub fn entry(&self, index: LogIndex) -> Option<&Entry<C>> {
        if index <= self.base.index {
            return None;
        }
        self.entries.get((index.0 - self.base.index.0 - 1) as usize)
    }

    /// Up to `max` entries starting at `from` (which must be held or one past the end).
    pub fn entries_from(&self, from: LogIndex, max: usize) -> &[Entry<C>] {
        assert!(
            from > self.base.index,
            "entries_from({from}) below the snapshot"
        );
        let start = (from.0 - self.base.index.0 - 1) as usize;
        let start = start.min(self.entries.len());
        let end = start.saturating_add(max).min(self.entries.len());
        &self.entries[start..end]
    }

    /// All held entries, oldest first.
    pub fn entries(&self) -> &[Entry<C>] {
        &self.entries
    }

    /// First index of the run of entries with `term` that contains `index` (for the XIndex
    /// hint). Stops at the snapshot boundary.
    pub fn first_index_of_term_run(&self, index: LogIndex, term: Term) -> LogIndex {
        let mut i = index;
        while i > self.first_index() && self.term_at(i.prev()) == Some(term) {
            i = i.prev();
        }
        i
    }

    /// Last index that holds an entry of `term`, if any (leader side of fast backtracking).
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        let pos = self.entries.iter().rposition(|e| e.term == term)?;
        Some(LogIndex(self.base.index.0 + 1 + pos as u64))
    }

    /// True if a log ending at `(last_index, last_term)` is at least as up to date as this one
    /// (§5.4.1: compare last terms, then lengths).
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    fn truncate_from(&mut self, index: LogIndex) {
        assert!(
            index > self.base.index,
            "truncate at {index} at or below the snapshot"
        );
        let keep = (index.0 - self.base.index.0 - 1) as usize;
        self.entries.truncate(keep);
    }

    fn append(&mut self, first: LogIndex, entries: &[Entry<C>]) {
        assert_eq!(
            first,
            self.last_index().next(),
            "append must extend the log"
        );
        self.entries.extend_from_slice(entries);
    }

    fn compact(&mut self, meta: SnapshotMeta) {
        if self.term_at(meta.index) == Some(meta.term) && meta.index >= self.base.index {
            let drop = (meta.index.0 - self.base.index.0) as usize;
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.base = meta;
    }
}

/// One storage operation, in the order the core performed it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PersistOp<C> {
    /// Replace the hard state (term, vote).
    HardState(HardState),
    /// Delete every entry with index `>=` this one.
    Truncate(LogIndex),
    /// Append `entries` starting at `first` (which is always `last_index + 1`).
    Append {
        /// Index of the first appended entry.
        first: LogIndex,
        /// The entries.
        entries: Vec<Entry<C>>,
    },
    /// Install `snapshot`: entries up to its index are discarded; if the log holds the
    /// snapshot's last entry with the same term the suffix after it is kept, otherwise the
    /// whole log is discarded (§7).
    Snapshot(Snapshot),
}

/// Everything that survives a crash.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Durable<C> {
    /// Term and vote.
    pub hard: HardState,
    /// Log entries after the snapshot.
    pub log: Log<C>,
    /// The latest snapshot, whose meta equals `log.base()`.
    pub snapshot: Option<Snapshot>,
}

impl<C> Default for Durable<C> {
    fn default() -> Self {
        Durable {
            hard: HardState::default(),
            log: Log::default(),
            snapshot: None,
        }
    }
}

impl<C: Clone> Durable<C> {
    /// Applies one storage operation. The core and every driver use this same function.
    pub fn apply(&mut self, op: &PersistOp<C>) {
        match op {
            PersistOp::HardState(h) => self.hard = *h,
            PersistOp::Truncate(i) => self.log.truncate_from(*i),
            PersistOp::Append { first, entries } => self.log.append(*first, entries),
            PersistOp::Snapshot(s) => {
                self.log.compact(s.meta);
                self.snapshot = Some(s.clone());
            }
        }
    }

    /// Applies a batch of operations in order.
    pub fn apply_all<'a>(&mut self, ops: impl IntoIterator<Item = &'a PersistOp<C>>)
    where
        C: 'a,
    {
        for op in ops {
            self.apply(op);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn e(term: u64, c: u32) -> Entry<u32> {
        Entry {
            term: Term(term),
            command: c,
        }
    }

    #[test]
    fn append_truncate_compact_keep_indices() {
        let mut d = Durable::<u32>::default();
        d.apply(&PersistOp::Append {
            first: LogIndex(1),
            entries: vec![e(1, 1), e(1, 2), e(2, 3)],
        });
        assert_eq!(d.log.last_index(), LogIndex(3));
        assert_eq!(
            d.log.first_index_of_term_run(LogIndex(2), Term(1)),
            LogIndex(1)
        );
        assert_eq!(d.log.last_index_of_term(Term(1)), Some(LogIndex(2)));
        d.apply(&PersistOp::Truncate(LogIndex(3)));
        assert_eq!(d.log.last_term(), Term(1));
        let snap = Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(1),
                term: Term(1),
            },
            data: Arc::from(&[7u8][..]),
        };
        d.apply(&PersistOp::Snapshot(snap.clone()));
        assert_eq!(d.log.first_index(), LogIndex(2));
        assert_eq!(d.log.entry(LogIndex(2)).unwrap().command, 2);
        assert_eq!(d.log.term_at(LogIndex(1)), Some(Term(1)));
        assert_eq!(d.log.entry(LogIndex(1)), None);
        // A snapshot whose last entry conflicts with the log discards the whole log.
        let other = Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(2),
                term: Term(5),
            },
            data: Arc::from(&[][..]),
        };
        d.apply(&PersistOp::Snapshot(other));
        assert_eq!(d.log.last_index(), LogIndex(2));
        assert!(d.log.entries().is_empty());
        assert_eq!(d.log.last_term(), Term(5));
    }

    #[test]
    fn up_to_date_compares_term_then_length() {
        let mut d = Durable::<u32>::default();
        d.apply(&PersistOp::Append {
            first: LogIndex(1),
            entries: vec![e(1, 1), e(2, 2)],
        });
        assert!(d.log.is_up_to_date(LogIndex(1), Term(3)));
        assert!(!d.log.is_up_to_date(LogIndex(5), Term(1)));
        assert!(d.log.is_up_to_date(LogIndex(2), Term(2)));
        assert!(!d.log.is_up_to_date(LogIndex(1), Term(2)));
    }
}
