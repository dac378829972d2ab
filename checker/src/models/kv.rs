//! A string key/value store with get, put and append (6.5840 kvraft; Porcupine's kv
//! histories). Every key starts as the empty string. Partitioned by key.
//!
//! States are [`KvValue`]s, so that a get (which keeps the state), a put (whose state is its
//! argument) and an append cost no copy of a long appended value.

use super::KvValue;
use crate::{Model, Operation};
use std::sync::Arc;

/// A KV operation's input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Read the key's value.
    Get {
        /// The key.
        key: String,
    },
    /// Overwrite the key's value.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Arc<str>,
    },
    /// Append to the key's value.
    Append {
        /// The key.
        key: String,
        /// The suffix.
        value: Arc<str>,
    },
}

/// A KV operation's output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The value a get returned.
    Value(String),
    /// A put or append completed.
    Done,
}

/// The key/value model; state is one key's value.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kv;

impl KvInput {
    /// The key the operation is on.
    pub fn key(&self) -> &str {
        match self {
            KvInput::Get { key } | KvInput::Put { key, .. } | KvInput::Append { key, .. } => key,
        }
    }
}

impl Model for Kv {
    type State = KvValue;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> KvValue {
        KvValue::new(Arc::from(""))
    }

    fn step(&self, state: &KvValue, input: &KvInput, output: Option<&KvOutput>) -> Option<KvValue> {
        match (input, output) {
            (KvInput::Get { .. }, None) => Some(state.clone()),
            (KvInput::Get { .. }, Some(KvOutput::Value(v))) => {
                state.equals(v).then(|| state.clone())
            }
            (KvInput::Put { value, .. }, None | Some(KvOutput::Done)) => {
                Some(KvValue::new(value.clone()))
            }
            (KvInput::Append { value, .. }, None | Some(KvOutput::Done)) => {
                Some(state.append(value))
            }
            _ => None,
        }
    }

    fn is_read_only(&self, input: &KvInput, _output: Option<&KvOutput>) -> bool {
        matches!(input, KvInput::Get { .. })
    }

    /// Never-returned puts and appends whose value no get's output contains. Sound: after
    /// such an operation, the key's value contains its argument until the next put, so no
    /// get with a known output lies in that span; dropping the operation changes the value
    /// only there, where nobody observes it (appends and puts are legal on any value).
    fn unneeded(&self, ops: &[&Operation<KvInput, KvOutput>]) -> Vec<bool> {
        let seen: Vec<&str> = ops
            .iter()
            .filter_map(|o| match &o.output {
                Some(KvOutput::Value(v)) => Some(v.as_str()),
                _ => None,
            })
            .collect();
        ops.iter()
            .map(|o| match (&o.input, o.ret, &o.output) {
                (KvInput::Put { value, .. } | KvInput::Append { value, .. }, None, None) => {
                    !seen.iter().any(|v| v.contains(&**value))
                }
                _ => false,
            })
            .collect()
    }

    fn partition(&self, input: &KvInput) -> String {
        input.key().to_string()
    }

    /// An append makes a value no configuration had before, and appends are most of a KV
    /// history's writes: on porcupine/kv/c50-ok, 170,000 configurations and 4,500 memo hits.
    fn states_recur(&self) -> bool {
        false
    }

    fn describe_operation(&self, input: &KvInput, output: Option<&KvOutput>) -> String {
        let out = match output {
            None => "?".to_string(),
            Some(KvOutput::Value(v)) => format!("{v:?}"),
            Some(KvOutput::Done) => "ok".to_string(),
        };
        match input {
            KvInput::Get { key } => format!("get({key:?}) -> {out}"),
            KvInput::Put { key, value } => format!("put({key:?}, {value:?}) -> {out}"),
            KvInput::Append { key, value } => format!("append({key:?}, {value:?}) -> {out}"),
        }
    }

    fn describe_state(&self, state: &KvValue) -> String {
        format!("{state:?}")
    }
}
