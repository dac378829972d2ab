//! Node input traces: everything a running node fed its core (the kvraft server on Raft), so
//! that `aver replay` can feed the same inputs to a fresh core and check that it does exactly
//! what the node did.
//!
//! A node writes one file per incarnation, `DIR/trace/<incarnation>.trace`, as frames
//! ([`crate::frame`]) of [`TraceRecord`]s:
//!
//! * `Start` — the configuration and the durable state recovered from disk (a restart is an
//!   input too), and the digest of the outputs of the core's construction;
//! * `Input` — one input (a message from a peer or a clerk, a timeout, the news that the log
//!   is durable through some index) and
//!   the digest of everything the core asked for in response ([`Digest`]: persist operations,
//!   messages, applies, timers, and the input's return value, in order);
//! * `Durable` — how many of this incarnation's persist operations are known to be durable.
//!
//! **When records reach the file.** The node buffers records and writes them (one `write`
//! call) before any effect of those inputs leaves the process — before messages are sent,
//! before replies are released, before their persist operations are handed to the committer.
//! A `kill -9` can therefore lose only records whose effects never happened, and the durable
//! state the next incarnation recovers is always explained by the trace: it must equal the
//! fold of a prefix of the persist operations the previous incarnation emitted, between the
//! last one known durable and the last one emitted (`aver replay` checks this).

use aver_core::contract::NodeId;
use aver_core::kvraft::{KvConfig, KvEvent};
use aver_core::raft::{Config, Durable, LogIndex, Term, Timer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest trace record read back (a `Start` holds the whole durable state).
pub const TRACE_RECORD_MAX: usize = 1 << 30;

/// One record of a trace file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceRecord<C, M> {
    /// The node (re)started from `durable`.
    Start {
        /// Its incarnation number (1 for the first start of a data directory).
        incarnation: u64,
        /// The Raft configuration.
        config: Config,
        /// The kvraft server's configuration.
        kv: KvConfig,
        /// The durable state recovered from disk.
        durable: Durable<C>,
        /// Digest of the outputs of the core's construction.
        digest: u64,
    },
    /// One input and the digest of the core's outputs for it.
    Input {
        /// The input.
        input: TraceInput<M>,
        /// [`Digest`] of the outputs.
        digest: u64,
    },
    /// The first `ops` persist operations of this incarnation are durable.
    Durable {
        /// Count of operations.
        ops: u64,
    },
}

/// One input to the node's core (the kvraft server on Raft).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceInput<M> {
    /// A message from a peer or a clerk.
    Message {
        /// The sender.
        from: NodeId,
        /// The message.
        msg: M,
    },
    /// A timer fired.
    Timeout(Timer),
    /// The log became durable through `index` (of `term`): `Raft::on_persisted`.
    Persisted {
        /// Last durable index.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
}

impl<M> TraceInput<M> {
    /// Short name, for errors.
    pub fn kind(&self) -> String {
        match self {
            TraceInput::Message { from, .. } => format!("message from {from}"),
            TraceInput::Timeout(t) => format!("{t:?} timeout"),
            TraceInput::Persisted { index, .. } => format!("durable through {}", index.0),
        }
    }
}

/// What a digest records of a server event (`KvEvent` has no serde form): a tag, the log
/// index if any, the client and the sequence number.
pub fn event_digest(event: &KvEvent) -> (u8, Option<u64>, u64, u64) {
    match *event {
        KvEvent::Executed { index, client, seq } => (0, Some(index.0), client.0, seq.0),
        KvEvent::Duplicate { index, client, seq } => (1, index.map(|i| i.0), client.0, seq.0),
        KvEvent::Restored { index } => (2, Some(index.0), 0, 0),
    }
}

/// A digest of a sequence of outputs: FNV-1a (64-bit) over each item's tag and postcard
/// encoding. Stable across runs, platforms and Rust versions (unlike `std`'s hasher).
#[derive(Clone, Debug)]
pub struct Digest {
    hash: u64,
    scratch: Vec<u8>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for Digest {
    fn default() -> Self {
        Digest {
            hash: FNV_OFFSET,
            scratch: Vec::new(),
        }
    }
}

/// Tags of the items a digest covers.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub enum Item {
    /// A persist operation.
    Persist = 1,
    /// A sync request.
    Sync = 2,
    /// A message sent.
    Send = 3,
    /// An apply.
    Apply = 4,
    /// A timer set.
    SetTimer = 5,
    /// A timer cancelled.
    CancelTimer = 6,
    /// An input's return value.
    Result = 7,
}

impl Digest {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash = (self.hash ^ b as u64).wrapping_mul(FNV_PRIME);
        }
    }

    /// Adds one item.
    pub fn item<T: Serialize + ?Sized>(&mut self, tag: Item, value: &T) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch = postcard::to_extend(value, scratch).expect("trace items encode");
        self.bytes(&[tag as u8]);
        self.bytes(&(scratch.len() as u64).to_le_bytes());
        self.bytes(&scratch);
        self.scratch = scratch;
    }

    /// The digest so far; starts a new one.
    pub fn finish(&mut self) -> u64 {
        std::mem::replace(&mut self.hash, FNV_OFFSET)
    }
}

/// Appends records to one incarnation's trace file.
#[derive(Debug)]
pub struct TraceWriter {
    file: std::fs::File,
    path: PathBuf,
    buf: Vec<u8>,
    incarnation: u64,
}

impl TraceWriter {
    /// Creates the next incarnation's file in `dir` (`DIR/trace`).
    pub fn create(dir: &Path) -> std::io::Result<TraceWriter> {
        std::fs::create_dir_all(dir)?;
        let incarnation = trace_files(dir)?.len() as u64 + 1;
        let path = dir.join(format!("{incarnation:06}.trace"));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        Ok(TraceWriter {
            file,
            path,
            buf: Vec::new(),
            incarnation,
        })
    }

    /// This incarnation's number.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Buffers one record.
    pub fn push<C: Serialize, M: Serialize>(&mut self, record: &TraceRecord<C, M>) {
        crate::frame::encode(record, TRACE_RECORD_MAX, &mut self.buf)
            .expect("a trace record fits its limit");
    }

    /// Writes the buffered records (one `write`; no fsync: the trace must survive the
    /// process, not the machine).
    pub fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// The trace files in `dir`, oldest incarnation first.
pub fn trace_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if !dir.exists() {
        return Ok(files);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "trace") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A trace file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path} at byte {offset}: {what}", path = .path.display())]
pub struct TraceError {
    /// The file.
    pub path: PathBuf,
    /// Where.
    pub offset: u64,
    /// What is wrong.
    pub what: String,
}

/// What [`read_trace`] found.
#[derive(Debug)]
pub struct TraceFile<C, M> {
    /// The records, in order.
    pub records: Vec<TraceRecord<C, M>>,
    /// Bytes of an incomplete last record (the process died inside a `write`), ignored.
    pub torn_bytes: usize,
}

/// Reads a trace file. An incomplete last record is ignored (and reported); any other damage
/// is an error naming the offset.
pub fn read_trace<C: DeserializeOwned, M: DeserializeOwned>(
    path: &Path,
) -> Result<TraceFile<C, M>, TraceError> {
    let bytes = std::fs::read(path).map_err(|e| TraceError {
        path: path.to_path_buf(),
        offset: 0,
        what: e.to_string(),
    })?;
    parse_trace(path, &bytes)
}

/// Parses a trace file's bytes (`path` only names it in errors). Never panics.
pub fn parse_trace<C: DeserializeOwned, M: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
) -> Result<TraceFile<C, M>, TraceError> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let err = |what: String| TraceError {
            path: path.to_path_buf(),
            offset: at as u64,
            what,
        };
        match crate::frame::split_frame(&bytes[at..], TRACE_RECORD_MAX) {
            Ok(Some((body, used))) => {
                let record = crate::frame::decode_body(body)
                    .map_err(|e| err(format!("record {} does not decode: {e}", records.len())))?;
                records.push(record);
                at += used;
            }
            Ok(None) => {
                return Ok(TraceFile {
                    records,
                    torn_bytes: bytes.len() - at,
                });
            }
            Err(e) => return Err(err(format!("record {}: {e}", records.len()))),
        }
    }
    Ok(TraceFile {
        records,
        torn_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Bad input: any bytes as a trace file give records or an error naming the offset.
        #[test]
        fn trace_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_trace::<u64, u64>(Path::new("fuzz.trace"), &bytes);
        }
    }

    #[test]
    fn torn_last_record_is_ignored_and_damage_named() {
        let mut bytes = Vec::new();
        for ops in 0..3 {
            crate::frame::encode(&TraceRecord::<u64, u64>::Durable { ops }, 1024, &mut bytes)
                .unwrap();
        }
        let p = Path::new("t.trace");
        let whole = parse_trace::<u64, u64>(p, &bytes).unwrap();
        assert_eq!(whole.records.len(), 3);
        let torn = parse_trace::<u64, u64>(p, &bytes[..bytes.len() - 2]).unwrap();
        assert_eq!(
            (torn.records.len(), torn.torn_bytes),
            (2, bytes.len() - 2 - 2 * (bytes.len() / 3))
        );
        let mut bad = bytes.clone();
        bad[9] ^= 1;
        let err = parse_trace::<u64, u64>(p, &bad).unwrap_err().to_string();
        assert!(err.contains("t.trace at byte 0"), "{err}");
    }
}
