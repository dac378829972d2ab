//! The versioned key/value state machine of 6.5840 kvsrv1 (2025), on its own so that every
//! service that needs it — the single server here, the replicated KV on the rsm — applies
//! operations with the same code.
//!
//! Each key holds a value and a [`Version`]. Version 0 means "absent". `Put(key, value,
//! version)` installs the value iff `version` equals the key's version, and then bumps the
//! version by one; so a key is created by a put with version 0 and every later put must name
//! the version it read. Otherwise the put fails: `ErrNoKey` when the key is absent (and
//! `version > 0`), `ErrVersion` when it exists with another version. `Get` returns the value
//! and the version, or `ErrNoKey`. There is no delete: versions only grow, so one put can
//! take effect at most once, ever — which is what lets clerks retry without a dedup table.
//!
//! The store keeps nothing per client (the 6.5840 memory test: ≤ 200 bytes of growth per
//! client over 100,000 clients; our simulator measures the store itself).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A key's version: 0 while the key is absent; every applied put adds one.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Version(pub u64);

impl Version {
    /// The version after one more applied put.
    pub fn next(self) -> Version {
        Version(self.0 + 1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// What a `Get` returns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GetResult {
    /// `OK`: the key's value and version (version ≥ 1).
    Value {
        /// The value.
        value: String,
        /// Its version.
        version: Version,
    },
    /// `ErrNoKey`: the key is absent.
    NoKey,
}

/// What the server answers to a `Put`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PutResult {
    /// `OK`: installed; the key's version is now the put's version + 1.
    Ok,
    /// `ErrNoKey`: the key is absent and the put's version is not 0. Nothing changed.
    NoKey,
    /// `ErrVersion`: the key exists with another version. Nothing changed.
    Version,
}

impl fmt::Display for GetResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetResult::Value { value, version } => write!(f, "({value:?}, {version})"),
            GetResult::NoKey => f.write_str("ErrNoKey"),
        }
    }
}

impl fmt::Display for PutResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PutResult::Ok => "OK",
            PutResult::NoKey => "ErrNoKey",
            PutResult::Version => "ErrVersion",
        })
    }
}

/// One operation on the store.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Read a key's value and version.
    Get {
        /// The key.
        key: String,
    },
    /// Install `value` if the key's version is `version`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
        /// The version the client read (0: create).
        version: Version,
    },
}

impl Op {
    /// The key the operation is on.
    pub fn key(&self) -> &str {
        match self {
            Op::Get { key } | Op::Put { key, .. } => key,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Get { key } => write!(f, "Get({key:?})"),
            Op::Put {
                key,
                value,
                version,
            } => write!(f, "Put({key:?}, {value:?}, {version})"),
        }
    }
}

/// The store's answer to one [`Op`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OpResult {
    /// The answer to a `Get`.
    Get(GetResult),
    /// The answer to a `Put`.
    Put(PutResult),
}

/// A present key's value and version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The value.
    pub value: String,
    /// Its version (≥ 1).
    pub version: Version,
}

/// The versioned KV state machine. `Serialize` is its snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Store {
    entries: BTreeMap<String, Entry>,
}

impl Store {
    /// An empty store: every key absent.
    pub fn new() -> Store {
        Store::default()
    }

    /// `Get(key)`.
    pub fn get(&self, key: &str) -> GetResult {
        match self.entries.get(key) {
            Some(e) => GetResult::Value {
                value: e.value.clone(),
                version: e.version,
            },
            None => GetResult::NoKey,
        }
    }

    /// `Put(key, value, version)`: installs `value` iff `version` is the key's version.
    pub fn put(&mut self, key: &str, value: &str, version: Version) -> PutResult {
        match self.entries.get_mut(key) {
            Some(e) if e.version == version => {
                e.value.clear();
                e.value.push_str(value);
                e.version = version.next();
                PutResult::Ok
            }
            Some(_) => PutResult::Version,
            None if version == Version(0) => {
                let entry = Entry {
                    value: value.to_string(),
                    version: Version(1),
                };
                self.entries.insert(key.to_string(), entry);
                PutResult::Ok
            }
            None => PutResult::NoKey,
        }
    }

    /// Applies one operation.
    pub fn apply(&mut self, op: &Op) -> OpResult {
        match op {
            Op::Get { key } => OpResult::Get(self.get(key)),
            Op::Put {
                key,
                value,
                version,
            } => OpResult::Put(self.put(key, value, *version)),
        }
    }

    /// A present key's entry.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// The version of `key` (0 when absent).
    pub fn version(&self, key: &str) -> Version {
        self.entries.get(key).map_or(Version(0), |e| e.version)
    }

    /// Present keys, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, e)| (k.as_str(), e))
    }

    /// Number of present keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when every key is absent.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The semantics `TestReliablePut` checks, on the store alone.
    #[test]
    fn versioned_put_semantics() {
        let mut s = Store::new();
        assert_eq!(s.put("k", "6.5840", Version(0)), PutResult::Ok);
        let found = GetResult::Value {
            value: "6.5840".into(),
            version: Version(1),
        };
        assert_eq!(s.get("k"), found);
        assert_eq!(s.put("k", "x", Version(0)), PutResult::Version);
        assert_eq!(s.put("y", "x", Version(1)), PutResult::NoKey);
        assert_eq!(s.get("y"), GetResult::NoKey);
        assert_eq!(s.put("k", "z", Version(1)), PutResult::Ok);
        assert_eq!(s.version("k"), Version(2));
        assert_eq!(s.get("k"), found_z());
    }

    fn found_z() -> GetResult {
        GetResult::Value {
            value: "z".into(),
            version: Version(2),
        }
    }

    /// A put takes effect at most once: replaying it after it applied fails.
    #[test]
    fn a_put_applies_at_most_once() {
        let mut s = Store::new();
        let op = Op::Put {
            key: "k".into(),
            value: "a".into(),
            version: Version(0),
        };
        assert_eq!(s.apply(&op), OpResult::Put(PutResult::Ok));
        assert_eq!(s.apply(&op), OpResult::Put(PutResult::Version));
        assert_eq!(s.version("k"), Version(1));
    }
}
