//! Storage under crashes: every test runs on [`FaultFs`], which loses unsynced writes, tears
//! them, and flips bits.

use super::fs::{Crash, FaultFs, Fs};
use super::*;
use aver_core::contract::NodeId;
use aver_core::raft::{LogIndex, Term};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Cmd = u64;

fn dir() -> PathBuf {
    PathBuf::from("/node")
}

/// Default options, with fewer preallocated zeros (the in-memory file system copies them).
fn opts() -> StorageOptions {
    StorageOptions {
        preallocate_bytes: 4096,
        ..StorageOptions::default()
    }
}

fn open(fs: &FaultFs, opts: StorageOptions) -> Result<(Storage<Cmd>, Durable<Cmd>), StorageError> {
    Storage::open(Arc::new(fs.clone()), &dir(), opts).map(|(s, d, _)| (s, d))
}

fn entry(term: u64, command: u64) -> Entry<Cmd> {
    Entry {
        term: Term(term),
        command,
    }
}

/// A random group of operations a Raft core could emit from `d`: term changes and votes,
/// appends of the current term, truncations, snapshots of a held prefix or installed from a
/// leader beyond the log.
fn random_group(rng: &mut ChaCha8Rng, d: &Durable<Cmd>) -> Vec<PersistOp<Cmd>> {
    let mut next = d.clone();
    let mut ops = Vec::new();
    for _ in 0..rng.random_range(1..=4) {
        let op = random_op(rng, &next);
        next.apply(&op);
        ops.push(op);
    }
    ops
}

fn random_op(rng: &mut ChaCha8Rng, d: &Durable<Cmd>) -> PersistOp<Cmd> {
    let (base, last) = (d.log.base().index.0, d.log.last_index().0);
    let term = d.hard.term.0.max(1);
    match rng.random_range(0..10) {
        0 => PersistOp::HardState(HardState {
            term: Term(term + rng.random_range(0..2)),
            voted_for: {
                let id = NodeId(rng.random_range(1..4));
                rng.random_bool(0.5).then_some(id)
            },
        }),
        1 if last > base => {
            let at = rng.random_range(base + 1..=last);
            PersistOp::Truncate(LogIndex(at))
        }
        2 if last > base => {
            let index = LogIndex(rng.random_range(base + 1..=last));
            let term = d.log.term_at(index).expect("held");
            snapshot(rng, index, term)
        }
        3 => {
            let index = LogIndex(last + rng.random_range(1..4));
            snapshot(rng, index, Term(term))
        }
        _ => {
            let n = rng.random_range(1..=3);
            let term = d.hard.term.0.max(d.log.last_term().0);
            PersistOp::Append {
                first: LogIndex(last + 1),
                entries: (0..n).map(|_| entry(term, rng.random())).collect(),
            }
        }
    }
}

fn snapshot(rng: &mut ChaCha8Rng, index: LogIndex, term: Term) -> PersistOp<Cmd> {
    let data: Vec<u8> = (0..rng.random_range(0..40)).map(|_| rng.random()).collect();
    PersistOp::Snapshot(Snapshot {
        meta: SnapshotMeta { index, term },
        data: Arc::from(data),
    })
}

/// A group's hard state must be committed before its log: a hard state of a term older
/// than the log would fail recovery's RAFT-9 check, so groups keep terms ordered.
fn fix_terms(group: &mut [PersistOp<Cmd>], d: &Durable<Cmd>) {
    let mut max = d.hard.term;
    for op in group.iter_mut() {
        match op {
            PersistOp::HardState(h) => {
                h.term = h.term.max(max);
                max = h.term;
            }
            PersistOp::Append { entries, .. } => {
                for e in entries.iter_mut() {
                    e.term = e.term.min(max);
                }
            }
            _ => {}
        }
    }
}

/// The core never persists an entry of a term newer than its hard state; neither do we.
fn well_formed(rng: &mut ChaCha8Rng, d: &Durable<Cmd>) -> Vec<PersistOp<Cmd>> {
    loop {
        let mut group = random_group(rng, d);
        fix_terms(&mut group, d);
        let mut next = d.clone();
        let ok = group.iter().all(|op| {
            let ok = validate(&next, op).is_ok();
            if ok {
                next.apply(op);
            }
            ok
        });
        if ok && next.log.last_term() <= next.hard.term {
            return group;
        }
    }
}

/// Crash-consistency, the property a user needs: whatever was committed (synced) before a
/// crash — of any kind: kill -9, power loss, a torn write — is recovered exactly; a group cut
/// short by a failing fsync and a crash comes back whole or not at all, its hard state no
/// older than its log (hard state is written first). Covers RAFT-11 across crashes.
#[test]
fn committed_groups_survive_every_kind_of_crash() {
    for seed in 0..150u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fs = FaultFs::new();
        let opts = StorageOptions {
            segment_bytes_max: rng.random_range(200..2000),
            preallocate_bytes: rng.random_range(0..3000),
        };
        let (mut st, mut model) = open(&fs, opts).unwrap();
        for step in 0..60 {
            let group = well_formed(&mut rng, &model);
            let mut after = model.clone();
            after.apply_all(&group);
            if rng.random_bool(0.1) {
                fs.fail_sync_after(rng.random_range(0..5));
                let failed = st.commit(&group).is_err();
                fs.crash(Crash::Torn(seed * 1000 + step));
                let (s, got) = open(&fs, opts)
                    .unwrap_or_else(|e| panic!("seed {seed} step {step}: recovery failed: {e}"));
                st = s;
                let hard_ok = got.hard == model.hard || got.hard == after.hard;
                let log_after = (&got.log, &got.snapshot) == (&after.log, &after.snapshot);
                let log_before = (&got.log, &got.snapshot) == (&model.log, &model.snapshot);
                assert!(
                    hard_ok,
                    "seed {seed} step {step}: hard state {:?}",
                    got.hard
                );
                assert!(
                    log_before || log_after,
                    "seed {seed} step {step}: log neither"
                );
                let log_changed = log_after && !log_before;
                assert!(!log_changed || got.hard == after.hard || !failed);
                model = got;
                continue;
            }
            st.commit(&group).unwrap();
            model = after;
            if rng.random_bool(0.15) {
                let mode = match rng.random_range(0..3) {
                    0 => Crash::Process,
                    1 => Crash::LoseUnsynced,
                    _ => Crash::Torn(seed ^ step),
                };
                fs.crash(mode);
                let (s, got) = open(&fs, opts).unwrap();
                st = s;
                assert_eq!(got, model, "seed {seed} step {step} after {mode:?}");
            }
        }
    }
}

fn commit_appends(st: &mut Storage<Cmd>, groups: u64) {
    st.commit(&[PersistOp::HardState(HardState {
        term: Term(1),
        voted_for: None,
    })])
    .unwrap();
    for g in 0..groups {
        st.commit(&[PersistOp::Append {
            first: LogIndex(g * 2 + 1),
            entries: vec![entry(1, g), entry(1, g + 100)],
        }])
        .unwrap();
    }
}

fn segment_path(no: u64) -> PathBuf {
    dir().join("wal").join(wal::segment_name(no))
}

/// Where the log's batches end in segment `no` (preallocated zeros follow).
fn log_end(fs: &FaultFs, no: u64) -> usize {
    let bytes = fs.read(&segment_path(no)).unwrap();
    let last = *wal::scan(&bytes).batches.last().expect("a batch");
    last.offset + wal::BATCH_HEADER_LEN + last.body.len()
}

#[test]
fn torn_tail_is_truncated_and_reported() {
    let fs = FaultFs::new();
    let (mut st, _) = open(&fs, opts()).unwrap();
    commit_appends(&mut st, 3);
    let len = log_end(&fs, 1);
    // A write that never synced, over the preallocated zeros: half a batch.
    let mut f = fs.open_append(&segment_path(1)).unwrap();
    f.set_len(len as u64).unwrap();
    f.write_all(&[b'A', b'V', b'W', b'B', 1, 2, 3]).unwrap();
    f.preallocate(len as u64 + 4096).unwrap();
    fs.crash(Crash::Process);
    let (st, d, report) = Storage::<Cmd>::open(Arc::new(fs.clone()), &dir(), opts()).unwrap();
    assert_eq!(
        report.torn_bytes, 4096,
        "the half batch and the zeros after it"
    );
    assert_eq!(d.log.last_index(), LogIndex(6));
    assert_eq!(fs.len(&segment_path(1)), Some(len), "the tail was cut");
    drop(st);
}

/// Commits overwrite zeros written ahead of the log (so that their fsyncs record no file
/// size); those zeros are not a torn tail, and the log continues where the data ends, across
/// power losses that keep any piece of an unsynced write.
#[test]
fn preallocated_zeros_are_cut_on_recovery_and_not_called_torn() {
    let fs = FaultFs::new();
    let (mut st, _) = open(&fs, opts()).unwrap();
    commit_appends(&mut st, 3);
    let end = log_end(&fs, 1);
    assert!(
        fs.len(&segment_path(1)).unwrap() > end,
        "zeros follow the log"
    );
    drop(st);
    fs.crash(Crash::LoseUnsynced);
    let (mut st, d, report) = Storage::<Cmd>::open(Arc::new(fs.clone()), &dir(), opts()).unwrap();
    assert_eq!((report.torn_bytes, d.log.last_index()), (0, LogIndex(6)));
    assert_eq!(fs.len(&segment_path(1)), Some(end), "the zeros were cut");
    let mut last = d.log.last_index().0;
    for seed in 0..20 {
        let first = last + 1;
        st.commit(&[PersistOp::Append {
            first: LogIndex(first),
            entries: vec![entry(1, first), entry(1, first + 1)],
        }])
        .unwrap();
        // An unsynced write of the next batch, then power loss keeping any piece of it.
        let mut bytes = Vec::new();
        let records = [WalRecordRef::Append {
            first: LogIndex(first + 2),
            entries: &[entry(1, 7)][..],
        }];
        wal::encode_batch(st.next_seq, &records, &mut bytes).unwrap();
        let mut f = fs.open_append(&segment_path(1)).unwrap();
        f.set_len(log_end(&fs, 1) as u64).unwrap();
        f.write_all(&bytes).unwrap();
        f.preallocate(log_end(&fs, 1) as u64 + 1000).unwrap();
        drop(st);
        fs.crash(Crash::Torn(seed));
        let (again, d, _) = Storage::<Cmd>::open(Arc::new(fs.clone()), &dir(), opts()).unwrap();
        last = d.log.last_index().0;
        assert!(
            [first + 1, first + 2].contains(&last),
            "seed {seed}: {last}"
        );
        st = again;
    }
}

/// A flipped bit in a synced batch that is followed by intact data is corruption of
/// acknowledged data: the node must refuse to start, naming the file and the offset.
#[test]
fn flipped_bit_in_synced_prefix_stops_recovery_with_file_and_offset() {
    let fs = FaultFs::new();
    let (mut st, _) = open(&fs, opts()).unwrap();
    commit_appends(&mut st, 4);
    let bytes = fs.read(&segment_path(1)).unwrap();
    let batches = wal::scan(&bytes).batches;
    let victim = batches[2].offset;
    fs.flip_bit(&segment_path(1), victim + wal::BATCH_HEADER_LEN + 1, 3);
    fs.crash(Crash::LoseUnsynced);
    let err = open(&fs, opts()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StorageError::Corrupt { offset, .. } if offset == victim as u64));
    assert!(text.contains("00000000000000000001.wal"), "{text}");
    assert!(text.contains(&format!("at byte {victim}")), "{text}");
}

/// The documented limit: damage in the very last batch cannot be told from a torn write.
#[test]
fn flipped_bit_in_last_batch_is_cut_like_a_torn_write() {
    let fs = FaultFs::new();
    let (mut st, _) = open(&fs, opts()).unwrap();
    commit_appends(&mut st, 2);
    let len = log_end(&fs, 1);
    fs.flip_bit(&segment_path(1), len - 1, 0);
    let (_, d) = open(&fs, opts()).unwrap();
    assert_eq!(d.log.last_index(), LogIndex(2));
}

#[test]
fn damage_in_an_older_segment_is_corruption() {
    let fs = FaultFs::new();
    let opts = StorageOptions {
        segment_bytes_max: 100,
        ..opts()
    };
    let (mut st, _) = open(&fs, opts).unwrap();
    commit_appends(&mut st, 8);
    assert!(fs.len(&segment_path(3)).is_some(), "segments rolled");
    let len = fs.len(&segment_path(2)).unwrap();
    fs.flip_bit(&segment_path(2), len - 2, 1);
    let err = open(&fs, opts).unwrap_err().to_string();
    assert!(err.contains("00000000000000000002.wal"), "{err}");
    assert!(err.contains("older than the newest"), "{err}");
}

#[test]
fn damaged_hard_state_and_missing_snapshot_are_named() {
    let fs = FaultFs::new();
    let (mut st, _) = open(&fs, opts()).unwrap();
    commit_appends(&mut st, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    st.commit(&[snapshot(&mut rng, LogIndex(3), Term(1))])
        .unwrap();
    let (_, d) = open(&fs, opts()).unwrap();
    assert_eq!(d.log.base().index, LogIndex(3));
    assert_eq!(
        d.log.last_index(),
        LogIndex(4),
        "the suffix after the snapshot is kept"
    );
    assert_eq!(
        fs.list(&dir().join("wal")).unwrap(),
        vec![wal::segment_name(2)],
        "the old generation is gone"
    );
    let snap = dir().join("snap").join(files::snapshot_name(d.log.base()));
    fs.flip_bit(&snap, 40, 0);
    let err = open(&fs, opts()).unwrap_err().to_string();
    assert!(err.contains(".snap at byte"), "{err}");
    fs.remove(&snap).unwrap();
    let err = open(&fs, opts()).unwrap_err().to_string();
    assert!(err.contains("cannot be read"), "{err}");
    fs.flip_bit(&dir().join("hardstate"), 5, 0);
    let err = open(&fs, opts()).unwrap_err().to_string();
    assert!(err.contains("hardstate at byte 0"), "{err}");
}

/// An fsync that fails is reported, never retried into a false success.
#[test]
fn failed_fsync_is_an_error() {
    let fs = FaultFs::new();
    let (mut st, _) = open(&fs, opts()).unwrap();
    fs.fail_sync_after(0);
    let err = st
        .commit(&[PersistOp::Append {
            first: LogIndex(1),
            entries: vec![entry(0, 1)],
        }])
        .unwrap_err();
    assert!(matches!(err, StorageError::Sync { .. }), "{err}");
}
