//! The state machine above Raft in a real node, and a plain key/value store for it.
//!
//! A node proposes each client operation as a log entry, applies committed entries in order,
//! and answers the client whose entry it applied at the index and term it was given. The
//! service decides what an entry means; Raft never looks inside.

use aver_core::raft::{Command, LogIndex};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// A replicated state machine run by a node.
pub trait Service: Send + 'static {
    /// What a log entry holds.
    type Command: Command + Serialize + DeserializeOwned + Send + Sync;
    /// What a client asks for.
    type Op: Serialize + DeserializeOwned + Send + Debug + 'static;
    /// What a client is told.
    type Output: Serialize + DeserializeOwned + Send + Clone + Debug + 'static;

    /// The log entry that carries `op`.
    fn command(&mut self, op: Self::Op) -> Self::Command;
    /// Applies a committed entry (entries arrive in index order, each once).
    fn apply(&mut self, index: LogIndex, command: &Self::Command) -> Self::Output;
    /// The whole state, encoded.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot's. An error stops the node.
    fn restore(&mut self, data: &[u8]) -> Result<(), String>;
}

/// A key/value operation (6.5840's kvraft vocabulary; keys start as `""`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KvOp {
    /// Read a key.
    Get {
        /// The key.
        key: String,
    },
    /// Replace a key's value.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Append to a key's value.
    Append {
        /// The key.
        key: String,
        /// What to append.
        value: String,
    },
}

impl KvOp {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Get { key } | KvOp::Put { key, .. } | KvOp::Append { key, .. } => key,
        }
    }
}

/// The outcome of a [`KvOp`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOutput {
    /// A `Get`'s value.
    Value(String),
    /// A `Put` or `Append` took effect.
    Done,
}

/// A key/value map applied through the log. Every operation, reads included, is a log entry,
/// so every acknowledged operation is linearizable. It keeps no table of client requests, so
/// a client must not retry an operation whose outcome is `Unknown` (it could apply twice);
/// the client in [`crate::client`] does not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvMap {
    map: BTreeMap<String, String>,
}

impl KvMap {
    /// The value of `key` (`""` when absent).
    pub fn get(&self, key: &str) -> &str {
        self.map.get(key).map_or("", String::as_str)
    }
}

impl Service for KvMap {
    type Command = KvOp;
    type Op = KvOp;
    type Output = KvOutput;

    fn command(&mut self, op: KvOp) -> KvOp {
        op
    }

    fn apply(&mut self, _index: LogIndex, op: &KvOp) -> KvOutput {
        match op {
            KvOp::Get { key } => KvOutput::Value(self.get(key).to_string()),
            KvOp::Put { key, value } => {
                self.map.insert(key.clone(), value.clone());
                KvOutput::Done
            }
            KvOp::Append { key, value } => {
                self.map.entry(key.clone()).or_default().push_str(value);
                KvOutput::Done
            }
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        postcard::to_allocvec(&self.map).expect("a map of strings encodes")
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        self.map = crate::frame::decode_body(data).map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_applies_and_snapshots() {
        let mut kv = KvMap::default();
        let put = |k: &str, v: &str| KvOp::Put {
            key: k.into(),
            value: v.into(),
        };
        kv.apply(LogIndex(1), &put("a", "1"));
        kv.apply(
            LogIndex(2),
            &KvOp::Append {
                key: "a".into(),
                value: "2".into(),
            },
        );
        let got = kv.apply(LogIndex(3), &KvOp::Get { key: "a".into() });
        assert_eq!(got, KvOutput::Value("12".into()));
        let mut other = KvMap::default();
        other.restore(&kv.snapshot()).unwrap();
        assert_eq!(other, kv);
        assert!(other.restore(&[0xff, 0xff, 0xff]).is_err());
    }
}
