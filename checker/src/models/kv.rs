//! A string key/value store with get, put and append (6.5840 kvraft; Porcupine's kv
//! histories). Every key starts as the empty string. Partitioned by key.
//!
//! States are `Arc<str>` so that a get (which keeps the state) and a put (whose state is
//! its argument) cost a reference-count bump, not a copy of a long appended value.

use crate::Model;
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
    type State = Arc<str>;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> Arc<str> {
        Arc::from("")
    }

    fn step(
        &self,
        state: &Arc<str>,
        input: &KvInput,
        output: Option<&KvOutput>,
    ) -> Option<Arc<str>> {
        match (input, output) {
            (KvInput::Get { .. }, None) => Some(state.clone()),
            (KvInput::Get { .. }, Some(KvOutput::Value(v))) => {
                (**v == **state).then(|| state.clone())
            }
            (KvInput::Put { value, .. }, None | Some(KvOutput::Done)) => Some(value.clone()),
            (KvInput::Append { value, .. }, None | Some(KvOutput::Done)) => {
                let mut next = String::with_capacity(state.len() + value.len());
                next.push_str(state);
                next.push_str(value);
                Some(Arc::from(next))
            }
            _ => None,
        }
    }

    fn partition(&self, input: &KvInput) -> String {
        input.key().to_string()
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

    fn describe_state(&self, state: &Arc<str>) -> String {
        format!("{state:?}")
    }
}
