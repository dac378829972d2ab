//! The write-ahead log's on-disk unit: the **batch**, one per group commit.
//!
//! ```text
//! header, 24 bytes:  "AVWB" | seq u64 | body length u32 | body CRC u32 | header CRC u32
//! body:              postcard(Vec<WalRecord<C>>)
//! ```
//!
//! All integers are little endian; the header CRC covers the 20 bytes before it. A batch is
//! written with one `write` and made durable with one `fdatasync`, and the next batch is only
//! written after that sync returned. Hence at most one batch — the last one — can be torn by
//! a crash, and **an intact batch anywhere after a damaged one proves the damaged one had been
//! synced**: that is corruption of acknowledged data, never a torn tail. [`scan`] applies this
//! rule: a damaged batch followed by nothing intact is a torn tail (truncated on recovery); a
//! damaged batch followed by an intact one is reported with its offset. Segments are
//! preallocated with zeros (see the storage module); a batch starts with its magic, never a
//! zero byte, so the scan stops at the zeros, and recovery cuts a tail of nothing but zeros
//! without reporting it as torn.
//!
//! Limit: a bit flip in the very last synced batch is indistinguishable from a torn write of
//! it, and is truncated like one. Raft re-replicates entries a follower lost this way, but a
//! lost entry the follower had acknowledged can, together with a second fault, break a
//! quorum's promise; that is the price of a single-copy WAL without a separate sync marker.

use aver_core::raft::{Entry, LogIndex, SnapshotMeta};
use serde::{Deserialize, Serialize};

/// The batch header's first bytes.
pub const BATCH_MAGIC: [u8; 4] = *b"AVWB";
/// Bytes in a batch header.
pub const BATCH_HEADER_LEN: usize = 24;
/// The largest batch body accepted when reading (a limit on what a damaged length can make
/// the reader allocate or scan).
pub const BATCH_BODY_MAX: usize = 1 << 30;

/// One WAL record. Hard state and snapshot data live in files of their own; the log carries
/// only what changes the entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalRecord<C> {
    /// The first record of a segment that starts a new generation: the log's base (the
    /// snapshot it rests on, `(0, 0)` for none) and every entry after it. Recovery starts at
    /// the newest segment that begins with one.
    Checkpoint {
        /// Index and term of the snapshot the log rests on.
        base: SnapshotMeta,
        /// The entries after `base`.
        entries: Vec<Entry<C>>,
    },
    /// Delete every entry with index `>=` this one.
    Truncate(LogIndex),
    /// Append `entries`, the first at index `first`.
    Append {
        /// Index of the first entry.
        first: LogIndex,
        /// The entries.
        entries: Vec<Entry<C>>,
    },
}

/// [`WalRecord`] by reference, so that writing a batch clones no entry. Postcard encodes a
/// slice and a `Vec` alike, so the two types share one encoding.
#[derive(Debug, Serialize)]
pub enum WalRecordRef<'a, C> {
    /// See [`WalRecord::Checkpoint`].
    Checkpoint {
        /// The base.
        base: SnapshotMeta,
        /// The entries.
        entries: &'a [Entry<C>],
    },
    /// See [`WalRecord::Truncate`].
    Truncate(LogIndex),
    /// See [`WalRecord::Append`].
    Append {
        /// Index of the first entry.
        first: LogIndex,
        /// The entries.
        entries: &'a [Entry<C>],
    },
}

/// Appends one batch (header and body) holding `records` to `out`.
pub fn encode_batch<C: Serialize>(
    seq: u64,
    records: &[WalRecordRef<'_, C>],
    out: &mut Vec<u8>,
) -> Result<(), postcard::Error> {
    let start = out.len();
    out.extend_from_slice(&[0; BATCH_HEADER_LEN]);
    let encoded = postcard::to_extend(records, std::mem::take(out))?;
    *out = encoded;
    let len = out.len() - start - BATCH_HEADER_LEN;
    assert!(len <= BATCH_BODY_MAX, "a batch of {len} bytes is too large");
    let body_crc = crc32fast::hash(&out[start + BATCH_HEADER_LEN..]);
    let h = &mut out[start..start + BATCH_HEADER_LEN];
    h[0..4].copy_from_slice(&BATCH_MAGIC);
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    h[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    h[16..20].copy_from_slice(&body_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&h[0..20]);
    h[20..24].copy_from_slice(&header_crc.to_le_bytes());
    Ok(())
}

/// An intact batch found in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawBatch<'a> {
    /// Byte offset of its header in the segment.
    pub offset: usize,
    /// Its sequence number.
    pub seq: u64,
    /// Its body (CRC checked, not yet decoded).
    pub body: &'a [u8],
}

/// Why the bytes at some offset are not an intact batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The file ends inside the header or the body.
    Short,
    /// The header's magic or CRC is wrong.
    BadHeader,
    /// The header is intact, the body's CRC is not.
    BadBody,
}

/// The result of scanning a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan<'a> {
    /// The intact batches before the first damage, in order.
    pub batches: Vec<RawBatch<'a>>,
    /// The first damage, if any: its offset and kind.
    pub damage: Option<(usize, Damage)>,
    /// An intact batch found after the damage (proof that the damage is not a torn tail):
    /// its offset and sequence number.
    pub intact_after_damage: Option<(usize, u64)>,
}

/// Reads the batch at `offset`, if it is intact.
pub fn batch_at(bytes: &[u8], offset: usize) -> Result<RawBatch<'_>, Damage> {
    let Some(h) = bytes.get(offset..offset + BATCH_HEADER_LEN) else {
        return Err(Damage::Short);
    };
    let header_crc = u32::from_le_bytes(h[20..24].try_into().expect("4 bytes"));
    if h[0..4] != BATCH_MAGIC || crc32fast::hash(&h[0..20]) != header_crc {
        return Err(Damage::BadHeader);
    }
    let seq = u64::from_le_bytes(h[4..12].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes")) as usize;
    let body_crc = u32::from_le_bytes(h[16..20].try_into().expect("4 bytes"));
    if len > BATCH_BODY_MAX {
        return Err(Damage::BadHeader);
    }
    let start = offset + BATCH_HEADER_LEN;
    let Some(body) = bytes.get(start..start + len) else {
        return Err(Damage::Short);
    };
    if crc32fast::hash(body) != body_crc {
        return Err(Damage::BadBody);
    }
    Ok(RawBatch { offset, seq, body })
}

/// Scans a segment: every intact batch from the start until the first damage, and whether
/// anything intact follows the damage. Never panics, whatever the bytes.
pub fn scan(bytes: &[u8]) -> Scan<'_> {
    let mut batches = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        match batch_at(bytes, offset) {
            Ok(b) => {
                offset += BATCH_HEADER_LEN + b.body.len();
                batches.push(b);
            }
            Err(damage) => {
                let intact_after_damage = find_intact(bytes, offset + 1);
                return Scan {
                    batches,
                    damage: Some((offset, damage)),
                    intact_after_damage,
                };
            }
        }
    }
    Scan {
        batches,
        damage: None,
        intact_after_damage: None,
    }
}

/// The first intact batch starting at or after `from` (searching for the magic).
fn find_intact(bytes: &[u8], from: usize) -> Option<(usize, u64)> {
    let mut at = from;
    while at + BATCH_HEADER_LEN <= bytes.len() {
        let rel = bytes[at..].windows(4).position(|w| w == BATCH_MAGIC)?;
        at += rel;
        if let Ok(b) = batch_at(bytes, at) {
            return Some((at, b.seq));
        }
        at += 1;
    }
    None
}

/// Decodes a batch body into records.
pub fn decode_records<C: for<'de> Deserialize<'de>>(
    body: &[u8],
) -> Result<Vec<WalRecord<C>>, postcard::Error> {
    let (records, rest) = postcard::take_from_bytes(body)?;
    if !rest.is_empty() {
        return Err(postcard::Error::DeserializeBadEncoding);
    }
    Ok(records)
}

/// Name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("{n:020}.wal")
}

/// The number of a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aver_core::raft::Term;
    use proptest::prelude::*;

    fn entries(n: u64) -> Vec<Entry<u64>> {
        (0..n)
            .map(|i| Entry {
                term: Term(1),
                command: i,
            })
            .collect()
    }

    fn segment(batches: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in 1..=batches {
            let e = entries(3);
            let rec = [WalRecordRef::Append {
                first: LogIndex(seq * 3 - 2),
                entries: &e,
            }];
            encode_batch(seq, &rec, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn intact_segment_scans_to_its_end() {
        let bytes = segment(4);
        let s = scan(&bytes);
        assert_eq!(s.batches.len(), 4);
        assert_eq!(s.damage, None);
        let recs: Vec<WalRecord<u64>> = decode_records(s.batches[1].body).unwrap();
        assert_eq!(
            recs,
            vec![WalRecord::Append {
                first: LogIndex(4),
                entries: entries(3)
            }]
        );
    }

    #[test]
    fn torn_tail_has_nothing_intact_after_it() {
        let bytes = segment(3);
        let cut = bytes.len() - 5;
        let s = scan(&bytes[..cut]);
        assert_eq!(s.batches.len(), 2);
        assert_eq!(s.damage.as_ref().map(|d| d.1.clone()), Some(Damage::Short));
        assert_eq!(s.intact_after_damage, None);
    }

    #[test]
    fn flipped_bit_before_an_intact_batch_is_corruption() {
        let mut bytes = segment(3);
        let second = scan(&bytes).batches[1].offset;
        bytes[second + BATCH_HEADER_LEN + 2] ^= 4;
        let s = scan(&bytes);
        assert_eq!(s.batches.len(), 1);
        assert_eq!(s.damage, Some((second, Damage::BadBody)));
        assert_eq!(s.intact_after_damage.map(|x| x.1), Some(3));
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("42.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.wal"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Bad input: the WAL reader never panics on arbitrary bytes, and whatever it accepts
        /// passed both CRCs.
        #[test]
        fn wal_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let s = scan(&bytes);
            for b in &s.batches {
                let _ = decode_records::<u64>(b.body);
            }
        }

        /// Damage anywhere in a valid segment. A flipped bit is found, and something intact
        /// is reported after it exactly when it is not in the last batch (corruption rather
        /// than a torn tail); a cut leaves nothing intact after it. Every batch reported
        /// intact is one that was written.
        #[test]
        fn damage_is_located(byte in 0usize..10_000, bit in 0u8..8, cut in any::<bool>()) {
            let good = segment(5);
            let mut bytes = good.clone();
            let at = byte % bytes.len();
            if cut { bytes.truncate(at) } else { bytes[at] ^= 1 << bit }
            let s = scan(&bytes);
            let offsets: Vec<usize> = scan(&good).batches.iter().map(|b| b.offset).collect();
            for b in &s.batches {
                prop_assert!(offsets.contains(&b.offset));
            }
            match (s.damage, cut) {
                (Some(_), true) => prop_assert!(s.intact_after_damage.is_none()),
                (Some((off, _)), false) => {
                    let last = *offsets.last().unwrap();
                    prop_assert_eq!(s.intact_after_damage.is_none(), off >= last);
                }
                (None, cut) => prop_assert!(cut || bytes == good),
            }
        }
    }
}
