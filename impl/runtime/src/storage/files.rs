//! The two small files beside the WAL: the hard state and snapshots. Both are written whole to
//! a temporary file, synced, renamed over the old one, and the directory synced — so the name
//! always holds a complete, synced file, and a checksum failure can only be corruption.

use super::fs::Fs;
use super::{StorageError, io_err};
use aver_core::contract::NodeId;
use aver_core::raft::{HardState, LogIndex, Snapshot, SnapshotMeta, Term};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const HARD_MAGIC: [u8; 4] = *b"AVHS";
const HARD_LEN: usize = 4 + 8 + 1 + 4 + 4;
const SNAP_MAGIC: [u8; 4] = *b"AVSN";
const SNAP_HEADER_LEN: usize = 4 + 8 + 8 + 8 + 4;

/// Writes `bytes` to `path` atomically and durably: `path.tmp`, fsync, rename, fsync dir.
pub fn write_atomic(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = path.with_extension("tmp");
    let mut file = fs.create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_data().map_err(|e| StorageError::Sync {
        path: tmp.clone(),
        source: e,
    })?;
    drop(file);
    fs.rename(&tmp, path).map_err(io_err(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs.sync_dir(dir).map_err(|e| StorageError::Sync {
        path: dir.to_path_buf(),
        source: e,
    })
}

/// Encodes a hard state: magic, term, vote flag and id, CRC.
pub fn encode_hard_state(h: &HardState) -> Vec<u8> {
    let mut out = Vec::with_capacity(HARD_LEN);
    out.extend_from_slice(&HARD_MAGIC);
    out.extend_from_slice(&h.term.0.to_le_bytes());
    out.push(h.voted_for.is_some() as u8);
    out.extend_from_slice(&h.voted_for.map_or(0, |n| n.0).to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a hard state file's bytes; the error says what is wrong.
pub fn decode_hard_state(path: &Path, bytes: &[u8]) -> Result<HardState, StorageError> {
    let corrupt = |offset: u64, what: &str| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset,
        what: what.to_string(),
    };
    if bytes.len() != HARD_LEN {
        return Err(corrupt(
            0,
            &format!("{} bytes, a hard state has {HARD_LEN}", bytes.len()),
        ));
    }
    let stored = u32::from_le_bytes(bytes[17..21].try_into().expect("4 bytes"));
    if bytes[0..4] != HARD_MAGIC || crc32fast::hash(&bytes[..17]) != stored {
        return Err(corrupt(0, "hard state fails its checksum"));
    }
    let term = Term(u64::from_le_bytes(bytes[4..12].try_into().expect("8")));
    let id = u32::from_le_bytes(bytes[13..17].try_into().expect("4"));
    let voted_for = match bytes[12] {
        0 => None,
        1 => Some(NodeId(id)),
        _ => return Err(corrupt(12, "vote flag is neither 0 nor 1")),
    };
    Ok(HardState { term, voted_for })
}

/// File name of the snapshot with `meta`.
pub fn snapshot_name(meta: SnapshotMeta) -> String {
    format!("{:020}-{:020}.snap", meta.index.0, meta.term.0)
}

/// The meta a snapshot file name stands for, if it is one.
pub fn parse_snapshot_name(name: &str) -> Option<SnapshotMeta> {
    let stem = name.strip_suffix(".snap")?;
    let (i, t) = stem.split_once('-')?;
    let ok = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !ok(i) || !ok(t) {
        return None;
    }
    Some(SnapshotMeta {
        index: LogIndex(i.parse().ok()?),
        term: Term(t.parse().ok()?),
    })
}

/// Encodes a snapshot file: magic, index, term, data length, data CRC, data.
pub fn encode_snapshot(s: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAP_HEADER_LEN + s.data.len());
    out.extend_from_slice(&SNAP_MAGIC);
    out.extend_from_slice(&s.meta.index.0.to_le_bytes());
    out.extend_from_slice(&s.meta.term.0.to_le_bytes());
    out.extend_from_slice(&(s.data.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&s.data).to_le_bytes());
    out.extend_from_slice(&s.data);
    out
}

/// Decodes a snapshot file, checking it holds the snapshot `expect` names.
pub fn decode_snapshot(
    path: &Path,
    bytes: &[u8],
    expect: SnapshotMeta,
) -> Result<Snapshot, StorageError> {
    let corrupt = |offset: u64, what: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset,
        what,
    };
    if bytes.len() < SNAP_HEADER_LEN || bytes[0..4] != SNAP_MAGIC {
        return Err(corrupt(0, "not a snapshot file (bad header)".into()));
    }
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let meta = SnapshotMeta {
        index: LogIndex(word(4)),
        term: Term(word(12)),
    };
    if meta != expect {
        return Err(corrupt(
            4,
            format!("holds snapshot {meta:?}, the WAL expects {expect:?}"),
        ));
    }
    let len = word(20);
    let stored = u32::from_le_bytes(bytes[28..32].try_into().expect("4 bytes"));
    let data = &bytes[SNAP_HEADER_LEN..];
    if data.len() as u64 != len {
        return Err(corrupt(
            20,
            format!("says {len} data bytes, holds {}", data.len()),
        ));
    }
    if crc32fast::hash(data) != stored {
        return Err(corrupt(
            SNAP_HEADER_LEN as u64,
            "snapshot data fails its checksum".into(),
        ));
    }
    Ok(Snapshot {
        meta,
        data: Arc::from(data),
    })
}

/// Path of the snapshot with `meta` in `dir`.
pub fn snapshot_path(dir: &Path, meta: SnapshotMeta) -> PathBuf {
    dir.join(snapshot_name(meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_state_round_trips_and_rejects_damage() {
        let h = HardState {
            term: Term(7),
            voted_for: Some(NodeId(3)),
        };
        let bytes = encode_hard_state(&h);
        let p = Path::new("hardstate");
        assert_eq!(decode_hard_state(p, &bytes).unwrap(), h);
        for byte in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[byte] ^= 0x40;
            let err = decode_hard_state(p, &bad).unwrap_err().to_string();
            assert!(err.contains("hardstate"), "{err}");
        }
    }

    #[test]
    fn snapshot_round_trips_and_names_parse() {
        let s = Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(9),
                term: Term(2),
            },
            data: Arc::from(&b"state"[..]),
        };
        let p = Path::new("x.snap");
        assert_eq!(decode_snapshot(p, &encode_snapshot(&s), s.meta).unwrap(), s);
        assert_eq!(parse_snapshot_name(&snapshot_name(s.meta)), Some(s.meta));
        let mut bad = encode_snapshot(&s);
        *bad.last_mut().unwrap() ^= 1;
        assert!(decode_snapshot(p, &bad, s.meta).is_err());
    }
}
