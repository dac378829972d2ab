//! The key/value data a kvraft server replicates, in its two flavours: the 2025 versioned
//! store (`Put(key, value, version)`, `Get`) and the 2022–2024 string store (`Put`, `Append`,
//! `Get`). Both are plain sequential objects; replication and deduplication live around them.

use crate::codec::{Decode, DecodeError, Encode, Reader};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

/// A sequential key/value object.
pub trait Store: Clone + Debug + Default + Eq + Hash + Encode + Decode + 'static {
    /// An operation.
    type Op: Clone + Debug + Eq + Ord + Hash + Encode + Serialize + 'static;
    /// Its answer.
    type Reply: Clone + Debug + Eq + Ord + Hash + Encode + Decode + Serialize + 'static;

    /// Executes `op`.
    fn apply(&mut self, op: &Self::Op) -> Self::Reply;
    /// True for operations that change nothing (reads).
    fn is_read(op: &Self::Op) -> bool;
    /// Answers a read without changing anything (`is_read(op)` must hold).
    fn read(&self, op: &Self::Op) -> Self::Reply;
    /// The key an operation is on.
    fn key(op: &Self::Op) -> &str;
}

// ---- the 2025 versioned store ----------------------------------------------------------------

/// An operation on the versioned store (6.5840 2025 `kvsrv1`/`kvraft1` RPCs).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VersionedOp {
    /// Read a key's value and version.
    Get {
        /// The key.
        key: Arc<str>,
    },
    /// Install `value` iff the key's version is `version` (0: the key must be absent).
    Put {
        /// The key.
        key: Arc<str>,
        /// The new value.
        value: Arc<str>,
        /// The version the client expects.
        version: u64,
    },
}

/// The versioned store's answers (`rpc.Err` and the Get reply).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VersionedReply {
    /// A Get found the key.
    Value {
        /// The value.
        value: Arc<str>,
        /// Its version (≥ 1).
        version: u64,
    },
    /// `ErrNoKey`: Get of an absent key, or Put with `version > 0` to one.
    NoKey,
    /// `OK`: a Put was installed.
    Ok,
    /// `ErrVersion`: a Put's version did not match.
    ErrVersion,
}

/// Keys with their value and version (a version is ≥ 1 once the key exists).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VersionedStore {
    data: BTreeMap<Arc<str>, (Arc<str>, u64)>,
}

impl VersionedStore {
    /// The value and version of `key`, if present.
    pub fn get(&self, key: &str) -> Option<(&Arc<str>, u64)> {
        self.data.get(key).map(|(v, n)| (v, *n))
    }
}

impl Store for VersionedStore {
    type Op = VersionedOp;
    type Reply = VersionedReply;

    fn apply(&mut self, op: &VersionedOp) -> VersionedReply {
        match op {
            VersionedOp::Get { .. } => self.read(op),
            VersionedOp::Put {
                key,
                value,
                version,
            } => match self.data.get_mut(key) {
                Some((v, n)) if *n == *version => {
                    *v = value.clone();
                    *n += 1;
                    VersionedReply::Ok
                }
                Some(_) => VersionedReply::ErrVersion,
                None if *version == 0 => {
                    self.data.insert(key.clone(), (value.clone(), 1));
                    VersionedReply::Ok
                }
                None => VersionedReply::NoKey,
            },
        }
    }

    fn is_read(op: &VersionedOp) -> bool {
        matches!(op, VersionedOp::Get { .. })
    }

    fn read(&self, op: &VersionedOp) -> VersionedReply {
        match self.data.get(Self::key(op)) {
            Some((value, version)) => VersionedReply::Value {
                value: value.clone(),
                version: *version,
            },
            None => VersionedReply::NoKey,
        }
    }

    fn key(op: &VersionedOp) -> &str {
        match op {
            VersionedOp::Get { key } | VersionedOp::Put { key, .. } => key,
        }
    }
}

impl Encode for VersionedOp {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            VersionedOp::Get { key } => {
                out.push(0);
                key.encode(out);
            }
            VersionedOp::Put {
                key,
                value,
                version,
            } => {
                out.push(1);
                key.encode(out);
                value.encode(out);
                version.encode(out);
            }
        }
    }
    fn encoded_len(&self) -> usize {
        1 + match self {
            VersionedOp::Get { key } => key.encoded_len(),
            VersionedOp::Put {
                key,
                value,
                version,
            } => key.encoded_len() + value.encoded_len() + version.encoded_len(),
        }
    }
}

impl Encode for VersionedReply {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            VersionedReply::Value { value, version } => {
                out.push(0);
                value.encode(out);
                version.encode(out);
            }
            VersionedReply::NoKey => out.push(1),
            VersionedReply::Ok => out.push(2),
            VersionedReply::ErrVersion => out.push(3),
        }
    }
}

impl Decode for VersionedReply {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.take(1, "versioned reply tag")?[0] {
            0 => Ok(VersionedReply::Value {
                value: Decode::decode(r)?,
                version: Decode::decode(r)?,
            }),
            1 => Ok(VersionedReply::NoKey),
            2 => Ok(VersionedReply::Ok),
            3 => Ok(VersionedReply::ErrVersion),
            t => Err(r.error(format!("versioned reply: unknown tag {t}"))),
        }
    }
}

impl Encode for VersionedStore {
    fn encode(&self, out: &mut Vec<u8>) {
        self.data.encode(out)
    }
}

impl Decode for VersionedStore {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let data: BTreeMap<Arc<str>, (Arc<str>, u64)> = Decode::decode(r)?;
        if data.values().any(|(_, version)| *version == 0) {
            return Err(r.error("versioned store: a present key has version 0"));
        }
        Ok(VersionedStore { data })
    }
}

// ---- the 2022–2024 string store --------------------------------------------------------------

/// An operation on the string store (6.5840 2022–2024 kvraft: `Get`, `Put`, `Append`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AppendOp {
    /// Read a key's value (`""` if absent).
    Get {
        /// The key.
        key: Arc<str>,
    },
    /// Replace a key's value.
    Put {
        /// The key.
        key: Arc<str>,
        /// The new value.
        value: Arc<str>,
    },
    /// Append to a key's value.
    Append {
        /// The key.
        key: Arc<str>,
        /// The suffix.
        value: Arc<str>,
    },
}

/// The string store's answers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AppendReply {
    /// A Get's value.
    Value(Arc<str>),
    /// A Put or Append was applied.
    Ok,
}

/// Keys with string values; an absent key reads as `""`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AppendStore {
    data: BTreeMap<Arc<str>, Arc<str>>,
}

impl AppendStore {
    /// The value of `key` (`""` if absent).
    pub fn get(&self, key: &str) -> &str {
        self.data.get(key).map_or("", |v| v)
    }
}

impl Store for AppendStore {
    type Op = AppendOp;
    type Reply = AppendReply;

    fn apply(&mut self, op: &AppendOp) -> AppendReply {
        match op {
            AppendOp::Get { .. } => self.read(op),
            AppendOp::Put { key, value } => {
                self.data.insert(key.clone(), value.clone());
                AppendReply::Ok
            }
            AppendOp::Append { key, value } => {
                let old = self
                    .data
                    .entry(key.clone())
                    .or_insert_with(|| Arc::from(""));
                *old = Arc::from(format!("{old}{value}"));
                AppendReply::Ok
            }
        }
    }

    fn is_read(op: &AppendOp) -> bool {
        matches!(op, AppendOp::Get { .. })
    }

    fn read(&self, op: &AppendOp) -> AppendReply {
        AppendReply::Value(Arc::from(self.get(Self::key(op))))
    }

    fn key(op: &AppendOp) -> &str {
        match op {
            AppendOp::Get { key } | AppendOp::Put { key, .. } | AppendOp::Append { key, .. } => key,
        }
    }
}

impl Encode for AppendOp {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            AppendOp::Get { key } => {
                out.push(0);
                key.encode(out);
            }
            AppendOp::Put { key, value } => {
                out.push(1);
                key.encode(out);
                value.encode(out);
            }
            AppendOp::Append { key, value } => {
                out.push(2);
                key.encode(out);
                value.encode(out);
            }
        }
    }
    fn encoded_len(&self) -> usize {
        1 + match self {
            AppendOp::Get { key } => key.encoded_len(),
            AppendOp::Put { key, value } | AppendOp::Append { key, value } => {
                key.encoded_len() + value.encoded_len()
            }
        }
    }
}

impl Encode for AppendReply {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            AppendReply::Value(v) => {
                out.push(0);
                v.encode(out);
            }
            AppendReply::Ok => out.push(1),
        }
    }
}

impl Decode for AppendReply {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.take(1, "append reply tag")?[0] {
            0 => Ok(AppendReply::Value(Decode::decode(r)?)),
            1 => Ok(AppendReply::Ok),
            t => Err(r.error(format!("append reply: unknown tag {t}"))),
        }
    }
}

impl Encode for AppendStore {
    fn encode(&self, out: &mut Vec<u8>) {
        self.data.encode(out)
    }
}

impl Decode for AppendStore {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AppendStore {
            data: Decode::decode(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `encoded_len` (what the rsm counts to decide when to snapshot) is the encoding's length.
    #[test]
    fn encoded_len_is_the_encodings_length() {
        let long = "x".repeat(300);
        let ops = [
            AppendOp::Get { key: "k".into() },
            AppendOp::Put {
                key: long.as_str().into(),
                value: "v".into(),
            },
            AppendOp::Append {
                key: "k".into(),
                value: long.as_str().into(),
            },
        ];
        for op in &ops {
            assert_eq!(op.encoded_len(), op.to_bytes().len(), "{op:?}");
            let c = super::super::KvCommand {
                client: super::super::ClientId(u64::MAX),
                seq: super::super::Seq(300),
                op: op.clone(),
            };
            assert_eq!(c.encoded_len(), c.to_bytes().len(), "{c:?}");
        }
        for op in [
            put("k", &long, 1 << 40),
            VersionedOp::Get {
                key: long.as_str().into(),
            },
        ] {
            assert_eq!(op.encoded_len(), op.to_bytes().len(), "{op:?}");
        }
    }

    fn put(key: &str, value: &str, version: u64) -> VersionedOp {
        VersionedOp::Put {
            key: key.into(),
            value: value.into(),
            version,
        }
    }

    #[test]
    fn versioned_put_installs_only_at_the_expected_version() {
        let mut s = VersionedStore::default();
        let get = VersionedOp::Get { key: "k".into() };
        assert_eq!(s.apply(&get), VersionedReply::NoKey);
        assert_eq!(s.apply(&put("k", "a", 1)), VersionedReply::NoKey);
        assert_eq!(s.apply(&put("k", "a", 0)), VersionedReply::Ok);
        assert_eq!(s.apply(&put("k", "b", 0)), VersionedReply::ErrVersion);
        assert_eq!(s.apply(&put("k", "b", 1)), VersionedReply::Ok);
        let value = VersionedReply::Value {
            value: "b".into(),
            version: 2,
        };
        assert_eq!(s.read(&get), value);
        assert_eq!(VersionedStore::from_bytes(&s.to_bytes()), Ok(s));
    }

    #[test]
    fn append_store_appends_and_reads_absent_as_empty() {
        let mut s = AppendStore::default();
        let get = AppendOp::Get { key: "k".into() };
        assert_eq!(s.apply(&get), AppendReply::Value("".into()));
        let app = |v: &str| AppendOp::Append {
            key: "k".into(),
            value: v.into(),
        };
        s.apply(&app("x"));
        s.apply(&app("y"));
        assert_eq!(s.read(&get), AppendReply::Value("xy".into()));
        assert_eq!(AppendStore::from_bytes(&s.to_bytes()), Ok(s));
    }
}
