//! 6.5840 kvsrv1: a key/value server whose puts carry the version they expect.
//!
//! Each key has a value and a version (0: absent). `Get` returns both, or `ErrNoKey`.
//! `Put(value, version)` installs the value and bumps the version when `version` matches;
//! otherwise it fails with `ErrVersion` (or `ErrNoKey` when the key is absent and
//! `version > 0`). A clerk whose retried put got `ErrVersion` cannot know whether its first
//! attempt was applied, and reports `ErrMaybe`: the put either took effect or did not. That
//! is why this model is nondeterministic (checked through [`crate::PowerSet`]).

use crate::NondeterministicModel;
use std::sync::Arc;

/// A versioned KV operation's input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VersionedInput {
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
        value: Arc<str>,
        /// The version the client expects the key to have.
        version: u64,
    },
}

/// A versioned KV operation's output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VersionedOutput {
    /// A get found the key.
    Value {
        /// The value.
        value: String,
        /// Its version.
        version: u64,
    },
    /// `ErrNoKey`: a get of an absent key, or a put with `version > 0` to one.
    NoKey,
    /// `OK`: a put was applied.
    Done,
    /// `ErrVersion`: a put was not applied.
    ErrVersion,
    /// `ErrMaybe`: a put may or may not have been applied.
    ErrMaybe,
}

/// One key's value and version (version 0: absent).
pub type VersionedState = (Arc<str>, u64);

/// The kvsrv1 model.
#[derive(Clone, Copy, Debug, Default)]
pub struct VersionedKv;

impl VersionedInput {
    /// The key the operation is on.
    pub fn key(&self) -> &str {
        match self {
            VersionedInput::Get { key } | VersionedInput::Put { key, .. } => key,
        }
    }
}

fn step_get(state: &VersionedState, output: Option<&VersionedOutput>) -> bool {
    match output {
        None => true,
        Some(VersionedOutput::NoKey) => state.1 == 0,
        Some(VersionedOutput::Value { value, version }) => {
            state.1 != 0 && *version == state.1 && **value == *state.0
        }
        Some(_) => false,
    }
}

fn step_put(
    state: &VersionedState,
    value: &Arc<str>,
    version: u64,
    output: Option<&VersionedOutput>,
) -> Vec<VersionedState> {
    let applied = (value.clone(), state.1 + 1);
    let matches = version == state.1;
    let refusal = if state.1 == 0 {
        VersionedOutput::NoKey
    } else {
        VersionedOutput::ErrVersion
    };
    match output {
        None | Some(VersionedOutput::ErrMaybe) if matches => vec![state.clone(), applied],
        None | Some(VersionedOutput::ErrMaybe) => vec![state.clone()],
        Some(VersionedOutput::Done) if matches => vec![applied],
        Some(out) if !matches && *out == refusal => vec![state.clone()],
        Some(_) => vec![],
    }
}

impl NondeterministicModel for VersionedKv {
    type State = VersionedState;
    type Input = VersionedInput;
    type Output = VersionedOutput;

    fn init(&self) -> Vec<VersionedState> {
        vec![(Arc::from(""), 0)]
    }

    fn step(
        &self,
        state: &VersionedState,
        input: &VersionedInput,
        output: Option<&VersionedOutput>,
    ) -> Vec<VersionedState> {
        match input {
            VersionedInput::Get { .. } => {
                if step_get(state, output) {
                    vec![state.clone()]
                } else {
                    vec![]
                }
            }
            VersionedInput::Put { value, version, .. } => step_put(state, value, *version, output),
        }
    }

    fn partition(&self, input: &VersionedInput) -> String {
        input.key().to_string()
    }

    fn describe_operation(
        &self,
        input: &VersionedInput,
        output: Option<&VersionedOutput>,
    ) -> String {
        let out = match output {
            None => "?".to_string(),
            Some(VersionedOutput::Value { value, version }) => format!("({value:?}, v{version})"),
            Some(VersionedOutput::NoKey) => "ErrNoKey".to_string(),
            Some(VersionedOutput::Done) => "OK".to_string(),
            Some(VersionedOutput::ErrVersion) => "ErrVersion".to_string(),
            Some(VersionedOutput::ErrMaybe) => "ErrMaybe".to_string(),
        };
        match input {
            VersionedInput::Get { key } => format!("get({key:?}) -> {out}"),
            VersionedInput::Put {
                key,
                value,
                version,
            } => {
                format!("put({key:?}, {value:?}, v{version}) -> {out}")
            }
        }
    }

    fn describe_state(&self, state: &VersionedState) -> String {
        if state.1 == 0 {
            "absent".to_string()
        } else {
            format!("({:?}, v{})", state.0, state.1)
        }
    }
}
