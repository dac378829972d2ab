//! Durable storage for one Raft node: a segmented WAL, the hard state, and snapshots.
//!
//! ```text
//! DIR/hardstate                         term and vote (atomic rename)
//! DIR/snap/<index>-<term>.snap          snapshots (atomic rename)
//! DIR/wal/<segment>.wal                 batches of log records (see [`wal`])
//! ```
//!
//! [`Storage::commit`] takes every [`PersistOp`] that arrived since the last commit (one
//! group: several `Ready`s) and makes them durable together: the last hard state of the group
//! (temporary file, fsync, rename, directory fsync), then the last snapshot of the group
//! (the same way), then **one** WAL batch with one `fdatasync`. It folds the same operations
//! into a mirror [`Durable`] with the core's own [`Durable::apply`], so what recovery rebuilds
//! is, by construction, what the core believed it persisted.
//!
//! Order matters for crashes between the steps: the hard state goes first, so a recovered
//! log never holds an entry of a term newer than the recovered term; the snapshot file is
//! durable before the WAL names it.
//!
//! A group that installs a snapshot starts a new **generation**: a new segment whose first
//! record is a checkpoint (the snapshot's meta and the entries after it). Recovery starts at
//! the newest segment that begins with a checkpoint; older segments and snapshots are
//! deleted once the new generation is durable. A segment also rolls over (without a
//! checkpoint) when it exceeds [`StorageOptions::segment_bytes_max`].
//!
//! The newest segment is **preallocated**: zeros are written ahead of its last batch (as
//! many as it holds, at most [`StorageOptions::preallocate_bytes`]), so that a commit
//! overwrites zeros and its `fdatasync` need not record a new file size (on ext4: no journal
//! commit, which on this project's machine made a sync 20 times cheaper). A rolled segment is
//! cut to its data first, so only the newest one ends in zeros.
//!
//! Recovery truncates a torn tail, and the preallocated zeros, of the newest segment. Anything else that fails its checks
//! — a damaged batch followed by an intact one, a damaged batch in an older segment, a
//! missing segment or snapshot, a damaged hard state — stops the node with
//! [`StorageError::Corrupt`], naming the file and the byte offset. Acknowledged data is never
//! silently dropped. An fsync failure is [`StorageError::Sync`]: fatal, never retried (after
//! a failed fsync the kernel may have dropped the dirty pages; retrying would report success
//! for data that is gone — the PostgreSQL "fsyncgate" lesson).

pub mod files;
pub mod fs;
pub mod wal;

use aver_core::raft::{Durable, Entry, HardState, LogIndex, PersistOp, Snapshot, SnapshotMeta};
use fs::{Fs, FsFile};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wal::{WalRecord, WalRecordRef};

/// What can go wrong with storage. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file-system call failed.
    #[error("{path}: {source}", path = .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An fsync failed. Fatal: the node stops and recovers from disk on restart.
    #[error("fsync of {path} failed: {source} (fatal: a failed fsync is never retried)",
            path = .path.display())]
    Sync {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Data that had been made durable is damaged or missing.
    #[error("{path} at byte {offset}: {what}", path = .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_err(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Sync {
        path: path.to_path_buf(),
        source,
    }
}

/// Tunables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// A segment that has grown past this starts a new one at the next batch.
    pub segment_bytes_max: u64,
    /// At most this many zeros are written ahead of the log's end in its newest segment, so
    /// that most commits overwrite zeros instead of growing the file (see
    /// `Storage::preallocate`).
    pub preallocate_bytes: u64,
}

impl StorageOptions {
    /// Where to preallocate up to when the data reaches `end`: as many zeros again as the
    /// segment holds, between 64 KiB and [`StorageOptions::preallocate_bytes`]. A segment
    /// grows geometrically (few syncs record a size), and zeros never outweigh the data of
    /// a large segment, while the short segments of frequent snapshots stay short.
    pub fn preallocation_end(&self, end: u64) -> u64 {
        end + end.max(64 << 10).min(self.preallocate_bytes)
    }
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            segment_bytes_max: 64 << 20,
            preallocate_bytes: 1 << 20,
        }
    }
}

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments of the current generation replayed.
    pub segments: usize,
    /// Batches replayed.
    pub batches: u64,
    /// Bytes cut off the newest segment as a torn tail.
    pub torn_bytes: u64,
    /// Segments and snapshot files deleted (older generations, torn segment creations,
    /// snapshots no checkpoint names).
    pub removed_files: usize,
}

/// Counters, for `aver cluster status` and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// `fdatasync`/`fsync` calls on files and directories.
    pub fsyncs: u64,
    /// Groups committed.
    pub commits: u64,
    /// Persist operations committed.
    pub ops: u64,
    /// Bytes written to the WAL.
    pub wal_bytes: u64,
}

/// One node's durable storage.
pub struct Storage<C> {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    wal_dir: PathBuf,
    snap_dir: PathBuf,
    opts: StorageOptions,
    /// Everything durable, folded with the core's own function.
    mirror: Durable<C>,
    segment: Box<dyn FsFile>,
    segment_no: u64,
    segment_len: u64,
    /// Bytes of the current segment written (data and preallocated zeros).
    segment_alloc: u64,
    /// Sequence number of the next batch.
    next_seq: u64,
    /// Bytes of the current generation (checkpoint and later batches).
    generation_bytes: u64,
    stats: StorageStats,
}

impl<C> std::fmt::Debug for Storage<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("dir", &self.dir)
            .field("segment_no", &self.segment_no)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl<C: aver_core::raft::Command + Serialize + DeserializeOwned> Storage<C> {
    /// Opens (creating if needed) the storage in `dir` and recovers its durable state.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: &Path,
        opts: StorageOptions,
    ) -> Result<(Storage<C>, Durable<C>, RecoveryReport), StorageError> {
        let wal_dir = dir.join("wal");
        let snap_dir = dir.join("snap");
        for d in [dir, &wal_dir, &snap_dir] {
            fs.create_dir_all(d).map_err(io_err(d))?;
        }
        fs.sync_dir(dir).map_err(sync_err(dir))?;
        let mut report = RecoveryReport::default();
        let hard = read_hard_state(&*fs, dir)?;
        let recovered = recover_wal::<C>(&*fs, &wal_dir)?;
        let mut storage = Storage {
            fs: fs.clone(),
            dir: dir.to_path_buf(),
            wal_dir: wal_dir.clone(),
            snap_dir,
            opts,
            mirror: Durable::default(),
            segment: Box::new(NoFile),
            segment_no: 0,
            segment_len: 0,
            segment_alloc: 0,
            next_seq: 1,
            generation_bytes: 0,
            stats: StorageStats::default(),
        };
        match recovered {
            None => {
                if let Some(h) = hard {
                    let path = dir.join("hardstate");
                    return Err(StorageError::Corrupt {
                        path: wal_dir,
                        offset: 0,
                        what: format!(
                            "no WAL segment, yet {} holds term {}: the log is missing",
                            path.display(),
                            h.term.0
                        ),
                    });
                }
                storage.start_generation(1, &[])?;
            }
            Some(r) => {
                storage.mirror = storage.resume(r, &mut report)?;
                storage.mirror.hard = hard.unwrap_or_default();
            }
        }
        report.removed_files += storage.remove_unreferenced_snapshots()?;
        check_terms(&storage.mirror, &storage.dir)?;
        let durable = storage.mirror.clone();
        Ok((storage, durable, report))
    }

    /// Everything durable now.
    pub fn durable(&self) -> &Durable<C> {
        &self.mirror
    }

    /// Counters.
    pub fn stats(&self) -> StorageStats {
        self.stats
    }

    /// Bytes of the current generation: how much the log has grown since the last snapshot
    /// (the service snapshots when this passes its threshold).
    pub fn log_bytes(&self) -> u64 {
        self.generation_bytes
    }

    /// Makes `ops` (one group, in the order the core emitted them) durable. On error the
    /// node must stop: nothing of the group may be considered durable.
    pub fn commit(&mut self, ops: &[PersistOp<C>]) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        let last_snapshot = ops
            .iter()
            .rposition(|op| matches!(op, PersistOp::Snapshot(_)));
        let hard = ops.iter().rev().find_map(|op| match op {
            PersistOp::HardState(h) => Some(*h),
            _ => None,
        });
        if let Some(h) = hard.filter(|h| *h != self.mirror.hard) {
            let path = self.dir.join("hardstate");
            files::write_atomic(&*self.fs, &path, &files::encode_hard_state(&h))?;
            self.stats.fsyncs += 2;
        }
        let refuse = |what: String| StorageError::Corrupt {
            path: self.wal_dir.clone(),
            offset: self.segment_len,
            what: format!("refusing to write an impossible operation: {what}"),
        };
        match last_snapshot {
            Some(p) => {
                let mut next = self.mirror.clone();
                for op in ops {
                    validate(&next, op).map_err(refuse)?;
                    next.apply(op);
                }
                self.commit_generation(ops, p)?;
                self.mirror = next;
                self.remove_old_generations()?;
            }
            None => {
                // The common group (appends, truncations, hard states) is checked against the
                // log's bounds alone and applied to the mirror in place once durable: cloning
                // the mirror would cost time linear in the log on every commit.
                validate_bounds(&self.mirror, ops).map_err(refuse)?;
                self.commit_batch(ops)?;
                self.mirror.apply_all(ops);
            }
        }
        self.stats.commits += 1;
        self.stats.ops += ops.len() as u64;
        Ok(())
    }

    /// A group without a snapshot: one batch appended to the current segment (or the first
    /// batch of a new one when the segment is full).
    fn commit_batch(&mut self, ops: &[PersistOp<C>]) -> Result<(), StorageError> {
        let records = log_records(ops);
        if records.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        self.encode(&records, &mut bytes)?;
        if self.segment_len >= self.opts.segment_bytes_max {
            self.roll_segment()?;
        }
        let path = self.wal_dir.join(wal::segment_name(self.segment_no));
        self.preallocate(self.segment_len + bytes.len() as u64)
            .map_err(io_err(&path))?;
        self.segment.write_all(&bytes).map_err(io_err(&path))?;
        self.segment.sync_data().map_err(sync_err(&path))?;
        self.stats.fsyncs += 1;
        self.segment_len += bytes.len() as u64;
        self.generation_bytes += bytes.len() as u64;
        self.stats.wal_bytes += bytes.len() as u64;
        Ok(())
    }

    /// A group with a snapshot at position `p`: write the snapshot file, then a new segment
    /// that starts with a checkpoint of the log right after `p`, followed by the group's later
    /// log operations; then delete what the new generation replaced.
    fn commit_generation(&mut self, ops: &[PersistOp<C>], p: usize) -> Result<(), StorageError> {
        let mut at_snapshot = self.mirror.clone();
        at_snapshot.apply_all(&ops[..=p]);
        let snapshot = at_snapshot
            .snapshot
            .clone()
            .expect("a snapshot was applied");
        self.write_snapshot(&snapshot)?;
        let base = at_snapshot.log.base();
        let entries = at_snapshot.log.entries();
        self.start_generation_with(self.segment_no + 1, base, entries, &ops[p + 1..])
    }

    fn write_snapshot(&mut self, s: &Snapshot) -> Result<(), StorageError> {
        let path = files::snapshot_path(&self.snap_dir, s.meta);
        files::write_atomic(&*self.fs, &path, &files::encode_snapshot(s))?;
        self.stats.fsyncs += 2;
        Ok(())
    }

    /// Creates segment `no` holding an empty checkpoint (a brand-new node).
    fn start_generation(&mut self, no: u64, after: &[PersistOp<C>]) -> Result<(), StorageError> {
        self.start_generation_with(no, SnapshotMeta::default(), &[], after)
    }

    fn start_generation_with(
        &mut self,
        no: u64,
        base: SnapshotMeta,
        entries: &[Entry<C>],
        after: &[PersistOp<C>],
    ) -> Result<(), StorageError> {
        let mut records = vec![WalRecordRef::Checkpoint { base, entries }];
        records.extend(log_records(after));
        let mut bytes = Vec::new();
        self.encode(&records, &mut bytes)?;
        self.create_segment(no, &bytes)?;
        self.generation_bytes = bytes.len() as u64;
        Ok(())
    }

    /// Creates segment `no` with `bytes` as its content, durably (file and directory entry).
    fn create_segment(&mut self, no: u64, bytes: &[u8]) -> Result<(), StorageError> {
        let path = self.wal_dir.join(wal::segment_name(no));
        let mut file = self.fs.create(&path).map_err(io_err(&path))?;
        file.write_all(bytes).map_err(io_err(&path))?;
        let alloc = self.opts.preallocation_end(bytes.len() as u64);
        file.preallocate(alloc).map_err(io_err(&path))?;
        file.sync_data().map_err(sync_err(&path))?;
        self.fs
            .sync_dir(&self.wal_dir)
            .map_err(sync_err(&self.wal_dir))?;
        self.stats.fsyncs += 2;
        self.stats.wal_bytes += bytes.len() as u64;
        self.segment = file;
        self.segment_no = no;
        self.segment_len = bytes.len() as u64;
        self.segment_alloc = alloc;
        Ok(())
    }

    /// Makes sure the current segment holds at least `end` bytes, writing
    /// [`StorageOptions::preallocate_bytes`] of zeros past it when it does not: most commits then overwrite
    /// zeros, and their `fdatasync` has no file size or block map to record (measured on
    /// this project's ext4 machine: 0.2 ms instead of 4 ms per sync). The zeros are not
    /// data: recovery cuts them off like a torn tail (without calling them torn).
    fn preallocate(&mut self, end: u64) -> std::io::Result<()> {
        if end <= self.segment_alloc {
            return Ok(());
        }
        let alloc = self.opts.preallocation_end(end);
        self.segment.preallocate(alloc)?;
        self.segment_alloc = alloc;
        Ok(())
    }

    /// Continues the log in a new, empty segment, after cutting the preallocated zeros off
    /// the current one (so that only the newest segment ever ends in zeros).
    fn roll_segment(&mut self) -> Result<(), StorageError> {
        let path = self.wal_dir.join(wal::segment_name(self.segment_no));
        self.segment
            .set_len(self.segment_len)
            .map_err(io_err(&path))?;
        self.segment.sync_data().map_err(sync_err(&path))?;
        self.stats.fsyncs += 1;
        self.create_segment(self.segment_no + 1, &[])
    }

    fn encode(
        &mut self,
        records: &[WalRecordRef<'_, C>],
        out: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        wal::encode_batch(self.next_seq, records, out).map_err(|e| StorageError::Io {
            path: self.wal_dir.clone(),
            source: std::io::Error::other(format!("encoding a batch: {e}")),
        })?;
        self.next_seq += 1;
        Ok(())
    }

    /// Deletes every segment before the current one and every snapshot the current
    /// checkpoint does not name; only called once the new generation is durable.
    fn remove_old_generations(&mut self) -> Result<usize, StorageError> {
        let mut removed = 0;
        for name in self.fs.list(&self.wal_dir).map_err(io_err(&self.wal_dir))? {
            if wal::parse_segment_name(&name).is_some_and(|n| n < self.segment_no) {
                let path = self.wal_dir.join(&name);
                self.fs.remove(&path).map_err(io_err(&path))?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.fs
                .sync_dir(&self.wal_dir)
                .map_err(sync_err(&self.wal_dir))?;
        }
        Ok(removed + self.remove_unreferenced_snapshots()?)
    }

    fn remove_unreferenced_snapshots(&mut self) -> Result<usize, StorageError> {
        let keep = self.mirror.snapshot.as_ref().map(|s| s.meta);
        let mut removed = 0;
        for name in self
            .fs
            .list(&self.snap_dir)
            .map_err(io_err(&self.snap_dir))?
        {
            let meta = files::parse_snapshot_name(&name);
            if meta.is_none() || meta != keep {
                let path = self.snap_dir.join(&name);
                self.fs.remove(&path).map_err(io_err(&path))?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.fs
                .sync_dir(&self.snap_dir)
                .map_err(sync_err(&self.snap_dir))?;
        }
        Ok(removed)
    }

    /// Rebuilds the durable log from the recovered generation and reopens its last segment
    /// for appending (cut at its last intact batch).
    fn resume(
        &mut self,
        r: RecoveredWal<C>,
        report: &mut RecoveryReport,
    ) -> Result<Durable<C>, StorageError> {
        let mut durable = Durable::default();
        if r.base.index.0 > 0 {
            let path = files::snapshot_path(&self.snap_dir, r.base);
            let bytes = self.fs.read(&path).map_err(|e| StorageError::Corrupt {
                path: path.clone(),
                offset: 0,
                what: format!(
                    "the WAL's checkpoint names this snapshot, which cannot be read: {e}"
                ),
            })?;
            let snapshot = files::decode_snapshot(&path, &bytes, r.base)?;
            durable.apply(&PersistOp::Snapshot(snapshot));
        }
        for (what, op) in r.ops {
            validate(&durable, &op).map_err(|e| what.corrupt(e))?;
            durable.apply(&op);
        }
        let last = self.wal_dir.join(wal::segment_name(r.last_segment));
        let mut file = self.fs.open_append(&last).map_err(io_err(&last))?;
        if r.last_len < r.last_file_len {
            file.set_len(r.last_len).map_err(io_err(&last))?;
            file.sync_data().map_err(sync_err(&last))?;
            report.torn_bytes = r.torn_bytes;
        }
        for name in r.obsolete {
            let path = self.wal_dir.join(name);
            self.fs.remove(&path).map_err(io_err(&path))?;
            report.removed_files += 1;
        }
        self.fs
            .sync_dir(&self.wal_dir)
            .map_err(sync_err(&self.wal_dir))?;
        report.segments = r.segments;
        report.batches = r.batches;
        self.segment = file;
        self.segment_no = r.last_segment;
        self.segment_len = r.last_len;
        self.segment_alloc = r.last_len;
        self.next_seq = r.next_seq;
        self.generation_bytes = r.generation_bytes;
        self.mirror = durable.clone();
        Ok(durable)
    }
}

/// A placeholder file until the first segment is opened.
struct NoFile;

impl FsFile for NoFile {
    fn write_all(&mut self, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("no segment open"))
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        Err(std::io::Error::other("no segment open"))
    }
    fn set_len(&mut self, _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("no segment open"))
    }
    fn preallocate(&mut self, _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("no segment open"))
    }
}

/// The log records of `ops` (hard states and snapshots are written elsewhere).
fn log_records<C>(ops: &[PersistOp<C>]) -> Vec<WalRecordRef<'_, C>> {
    ops.iter()
        .filter_map(|op| match op {
            PersistOp::Truncate(i) => Some(WalRecordRef::Truncate(*i)),
            PersistOp::Append { first, entries } => Some(WalRecordRef::Append {
                first: *first,
                entries,
            }),
            PersistOp::HardState(_) | PersistOp::Snapshot(_) => None,
        })
        .collect()
}

/// Whether `op` can be applied to `d` without breaking the log's shape (the fold asserts
/// these; storage checks them first so that damaged input is an error, never a panic).
fn validate<C: Clone>(d: &Durable<C>, op: &PersistOp<C>) -> Result<(), String> {
    match op {
        PersistOp::Truncate(i) if *i <= d.log.base().index => Err(format!(
            "truncate at {} at or below the snapshot at {}",
            i.0,
            d.log.base().index.0
        )),
        PersistOp::Append { first, .. } if *first != d.log.last_index().next() => Err(format!(
            "append at {} to a log ending at {}",
            first.0,
            d.log.last_index().0
        )),
        _ => Ok(()),
    }
}

/// [`validate`] for a group without snapshots, tracking only the log's last index (which is
/// all that appends and truncations change, and all that [`validate`] reads besides the
/// base).
fn validate_bounds<C: Clone>(d: &Durable<C>, ops: &[PersistOp<C>]) -> Result<(), String> {
    let base = d.log.base().index;
    let mut last = d.log.last_index();
    for op in ops {
        match op {
            PersistOp::Truncate(i) if *i <= base => {
                return Err(format!(
                    "truncate at {} at or below the snapshot at {}",
                    i.0, base.0
                ));
            }
            PersistOp::Truncate(i) => last = last.min(LogIndex(i.0 - 1)),
            PersistOp::Append { first, .. } if *first != last.next() => {
                return Err(format!(
                    "append at {} to a log ending at {}",
                    first.0, last.0
                ));
            }
            PersistOp::Append { first, entries } => {
                last = LogIndex(first.0 + entries.len() as u64 - 1).max(last);
            }
            PersistOp::HardState(_) => {}
            PersistOp::Snapshot(_) => return Err("a snapshot in a plain group".into()),
        }
    }
    Ok(())
}

/// Entry terms never exceed the recovered term (RAFT-9); the hard state is written before the
/// log of its group, so a violation means a damaged or foreign hard state.
fn check_terms<C: Clone>(d: &Durable<C>, dir: &Path) -> Result<(), StorageError> {
    if d.log.last_term() > d.hard.term {
        return Err(StorageError::Corrupt {
            path: dir.join("hardstate"),
            offset: 0,
            what: format!(
                "term {} is older than the log's last entry (term {})",
                d.hard.term.0,
                d.log.last_term().0
            ),
        });
    }
    Ok(())
}

fn read_hard_state(fs: &dyn Fs, dir: &Path) -> Result<Option<HardState>, StorageError> {
    let path = dir.join("hardstate");
    match fs.read(&path) {
        Ok(bytes) => files::decode_hard_state(&path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::Io { path, source: e }),
    }
}

/// Where a recovered operation came from, to name it in an error.
struct Origin {
    path: PathBuf,
    offset: u64,
}

impl Origin {
    fn corrupt(&self, what: String) -> StorageError {
        StorageError::Corrupt {
            path: self.path.clone(),
            offset: self.offset,
            what: format!("record does not fit the log: {what}"),
        }
    }
}

/// The current generation as read from disk.
struct RecoveredWal<C> {
    base: SnapshotMeta,
    ops: Vec<(Origin, PersistOp<C>)>,
    segments: usize,
    batches: u64,
    last_segment: u64,
    last_len: u64,
    /// The newest segment's length on disk (more than `last_len` when a torn tail or
    /// preallocated zeros follow its last intact batch).
    last_file_len: u64,
    torn_bytes: u64,
    next_seq: u64,
    generation_bytes: u64,
    /// Segment files to delete: older generations and a torn newest segment.
    obsolete: Vec<String>,
}

/// One segment's intact batches, decoded.
struct SegmentRead<C> {
    no: u64,
    batches: Vec<(u64, u64, Vec<WalRecord<C>>)>,
    /// Length of the intact prefix; less than the file when a tail is torn.
    intact_len: u64,
    /// Preallocated zeros after the intact prefix (not a torn tail).
    zero_tail: u64,
    file_len: u64,
}

fn read_segment<C: DeserializeOwned>(
    fs: &dyn Fs,
    path: &Path,
    no: u64,
    newest: bool,
) -> Result<SegmentRead<C>, StorageError> {
    let bytes = fs.read(path).map_err(io_err(path))?;
    let scan = wal::scan(&bytes);
    let corrupt = |offset: usize, what: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        what,
    };
    let zeros_from = |off: usize| bytes[off..].iter().all(|&b| b == 0);
    let intact_len = match (&scan.damage, scan.intact_after_damage) {
        (None, _) => bytes.len(),
        // A batch never starts with a zero byte: zeros to the end are preallocated space.
        (Some((off, _)), None) if zeros_from(*off) => *off,
        (Some((off, damage)), Some((later, seq))) => {
            return Err(corrupt(
                *off,
                format!(
                    "damaged batch ({damage:?}) followed by intact batch {seq} at byte {later}: \
                     the damaged batch had been synced"
                ),
            ));
        }
        (Some((off, damage)), None) if !newest => {
            return Err(corrupt(
                *off,
                format!("damaged batch ({damage:?}) in a segment older than the newest"),
            ));
        }
        (Some((off, _)), None) => *off,
    };
    let mut batches = Vec::with_capacity(scan.batches.len());
    for b in &scan.batches {
        let records = wal::decode_records(b.body).map_err(|e| {
            corrupt(
                b.offset,
                format!(
                    "batch {} passes its checksum but does not decode: {e}",
                    b.seq
                ),
            )
        })?;
        batches.push((b.seq, b.offset as u64, records));
    }
    Ok(SegmentRead {
        no,
        batches,
        intact_len: intact_len as u64,
        zero_tail: if zeros_from(intact_len) {
            (bytes.len() - intact_len) as u64
        } else {
            0
        },
        file_len: bytes.len() as u64,
    })
}

/// Finds the current generation (the newest segment starting with a checkpoint) and reads it.
/// `Ok(None)`: no segment at all (a brand-new node).
fn recover_wal<C: DeserializeOwned + Clone>(
    fs: &dyn Fs,
    wal_dir: &Path,
) -> Result<Option<RecoveredWal<C>>, StorageError> {
    let mut numbers: Vec<u64> = fs
        .list(wal_dir)
        .map_err(io_err(wal_dir))?
        .iter()
        .filter_map(|n| wal::parse_segment_name(n))
        .collect();
    numbers.sort();
    let Some(&newest) = numbers.last() else {
        return Ok(None);
    };
    let mut obsolete = Vec::new();
    let mut generation: Vec<SegmentRead<C>> = Vec::new();
    for &no in numbers.iter().rev() {
        let path = wal_dir.join(wal::segment_name(no));
        let seg = read_segment::<C>(fs, &path, no, no == newest)?;
        let starts_generation = matches!(
            seg.batches.first().and_then(|b| b.2.first()),
            Some(WalRecord::Checkpoint { .. })
        );
        if seg.batches.is_empty() && no == newest {
            obsolete.push(wal::segment_name(no)); // created, never synced with content
            continue;
        }
        generation.push(seg);
        if starts_generation {
            break;
        }
    }
    generation.reverse();
    let Some(first) = generation.first() else {
        return Err(StorageError::Corrupt {
            path: wal_dir.to_path_buf(),
            offset: 0,
            what: "segments exist but none holds a checkpoint".into(),
        });
    };
    if !matches!(
        first.batches[0].2.first(),
        Some(WalRecord::Checkpoint { .. })
    ) {
        return Err(StorageError::Corrupt {
            path: wal_dir.join(wal::segment_name(first.no)),
            offset: 0,
            what: "the oldest segment does not start with a checkpoint".into(),
        });
    }
    let first_no = first.no;
    for &no in numbers.iter().filter(|&&n| n < first_no) {
        obsolete.push(wal::segment_name(no));
    }
    replay_generation(wal_dir, generation, obsolete).map(Some)
}

fn replay_generation<C: Clone>(
    wal_dir: &Path,
    generation: Vec<SegmentRead<C>>,
    obsolete: Vec<String>,
) -> Result<RecoveredWal<C>, StorageError> {
    let mut out = RecoveredWal {
        base: SnapshotMeta::default(),
        ops: Vec::new(),
        segments: generation.len(),
        batches: 0,
        last_segment: 0,
        last_len: 0,
        last_file_len: 0,
        torn_bytes: 0,
        next_seq: 0,
        generation_bytes: 0,
        obsolete,
    };
    let first_no = generation[0].no;
    for (expect_no, seg) in (first_no..).zip(generation) {
        let path = wal_dir.join(wal::segment_name(seg.no));
        if seg.no != expect_no {
            return Err(StorageError::Corrupt {
                path: wal_dir.join(wal::segment_name(expect_no)),
                offset: 0,
                what: "segment missing from the middle of the log".into(),
            });
        }
        for (seq, offset, records) in seg.batches {
            let origin = || Origin {
                path: path.clone(),
                offset,
            };
            if out.batches > 0 && seq != out.next_seq {
                return Err(origin().corrupt(format!(
                    "batch {seq} where batch {} was expected",
                    out.next_seq
                )));
            }
            out.next_seq = seq + 1;
            out.batches += 1;
            for (k, record) in records.into_iter().enumerate() {
                push_record(&mut out, origin(), k, record)?;
            }
        }
        out.generation_bytes += seg.intact_len;
        out.last_segment = seg.no;
        out.last_len = seg.intact_len;
        out.last_file_len = seg.file_len;
        out.torn_bytes = seg.file_len - seg.intact_len - seg.zero_tail;
    }
    Ok(out)
}

fn push_record<C>(
    out: &mut RecoveredWal<C>,
    origin: Origin,
    k: usize,
    record: WalRecord<C>,
) -> Result<(), StorageError> {
    let op = match record {
        WalRecord::Checkpoint { base, entries } => {
            if out.batches != 1 || k != 0 {
                return Err(origin.corrupt("a checkpoint after the start of a generation".into()));
            }
            out.base = base;
            if entries.is_empty() {
                return Ok(());
            }
            PersistOp::Append {
                first: base.index.next(),
                entries,
            }
        }
        WalRecord::Truncate(i) => PersistOp::Truncate(i),
        WalRecord::Append { first, entries } => PersistOp::Append { first, entries },
    };
    out.ops.push((origin, op));
    Ok(())
}

#[cfg(test)]
mod tests;
