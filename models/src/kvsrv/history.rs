//! The model's own history type: the clerks' call/return records in the order they happened,
//! and the linearizability verdict on them.
//!
//! An operation is invoked at the step its clerk first sends it (the clerk's `Call` record)
//! and returns at the step its clerk accepts a reply for it (its `Return` record, which
//! carries what the clerk told its client — `ErrMaybe` included). A reply counts only while
//! its operation is pending: the clerk core ignores the others and records nothing for them.
//! Times are positions in this sequence, so the history keeps exactly the real-time order
//! of calls and returns.
//!
//! The verdict is computed by `aver-checker` (model `versioned-kv`) whenever an operation
//! returns — a call alone cannot make a linearizable history non-linearizable, since an
//! operation without a return may take effect later or never.

use aver_checker::models::{VersionedInput, VersionedKv, VersionedOutput};
use aver_checker::{CheckResult, Operation, PowerSet, check_operations};
use aver_core::kvsrv::{ClerkEvent, GetResult, Op, Output, PutOutcome};
use std::sync::Arc;

/// One record of the history.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HistEvent {
    /// Client `client` invoked `op`.
    Call {
        /// The actor index of the clerk.
        client: u8,
        /// The operation.
        op: Op,
    },
    /// Client `client`'s pending operation returned `output`.
    Return {
        /// The actor index of the clerk.
        client: u8,
        /// What the clerk reported.
        output: Output,
    },
}

/// The ghost state the model carries beside the actors.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// Whether clerk records go into `events` (the KV model); the lock model keeps only flags.
    pub record: bool,
    /// The history, in order.
    pub events: Vec<HistEvent>,
    /// The verdict on `events` (true while no counterexample).
    pub linearizable: bool,
    /// A lock client's acquiring put came back `ErrMaybe`.
    pub maybe_on_acquire: bool,
    /// A lock client's releasing put came back `ErrMaybe`.
    pub maybe_on_release: bool,
}

impl Ghost {
    /// An empty history; `record`: keep the call/return records.
    pub fn new(record: bool) -> Ghost {
        Ghost {
            record,
            events: Vec::new(),
            linearizable: true,
            maybe_on_acquire: false,
            maybe_on_release: false,
        }
    }

    /// Adds one clerk record of client `client`.
    pub fn add(&mut self, client: u8, event: &ClerkEvent) {
        if let ClerkEvent::Return {
            op: Op::Put { value, .. },
            output: Output::Put(PutOutcome::Maybe),
            ..
        } = event
        {
            if value.is_empty() {
                self.maybe_on_release = true;
            } else {
                self.maybe_on_acquire = true;
            }
        }
        if !self.record {
            return;
        }
        match event {
            ClerkEvent::Call { op, .. } => self.events.push(HistEvent::Call {
                client,
                op: op.clone(),
            }),
            ClerkEvent::Return { output, .. } => {
                self.events.push(HistEvent::Return {
                    client,
                    output: output.clone(),
                });
                if self.linearizable {
                    self.linearizable = check(&operations(&self.events)) != CheckResult::Illegal;
                }
            }
        }
    }

    /// True if some put returned `ErrMaybe`.
    pub fn has_errmaybe(&self) -> bool {
        self.events.iter().any(|e| {
            matches!(
                e,
                HistEvent::Return {
                    output: Output::Put(PutOutcome::Maybe),
                    ..
                }
            )
        })
    }
}

/// The checker's input for an operation.
pub fn input(op: &Op) -> VersionedInput {
    match op {
        Op::Get { key } => VersionedInput::Get { key: key.clone() },
        Op::Put {
            key,
            value,
            version,
        } => VersionedInput::Put {
            key: key.clone(),
            value: Arc::from(value.as_str()),
            version: version.0,
        },
    }
}

/// The checker's output for what a clerk reported.
pub fn output(out: &Output) -> VersionedOutput {
    match out {
        Output::Get(GetResult::Value { value, version }) => VersionedOutput::Value {
            value: value.clone(),
            version: version.0,
        },
        Output::Get(GetResult::NoKey) | Output::Put(PutOutcome::NoKey) => VersionedOutput::NoKey,
        Output::Put(PutOutcome::Ok) => VersionedOutput::Done,
        Output::Put(PutOutcome::Version) => VersionedOutput::ErrVersion,
        Output::Put(PutOutcome::Maybe) => VersionedOutput::ErrMaybe,
    }
}

/// The history as the checker's operations; times are positions in `events`.
pub fn operations(events: &[HistEvent]) -> Vec<Operation<VersionedInput, VersionedOutput>> {
    let mut ops: Vec<Operation<VersionedInput, VersionedOutput>> = Vec::new();
    let mut open: Vec<(u8, usize)> = Vec::new();
    for (time, e) in events.iter().enumerate() {
        match e {
            HistEvent::Call { client, op } => {
                open.push((*client, ops.len()));
                ops.push(Operation {
                    client: u64::from(*client),
                    input: input(op),
                    call: time as u64,
                    output: None,
                    ret: None,
                });
            }
            HistEvent::Return {
                client,
                output: out,
            } => {
                let k = open
                    .iter()
                    .position(|(c, _)| c == client)
                    .expect("a return follows its call");
                let (_, i) = open.swap_remove(k);
                ops[i].output = Some(output(out));
                ops[i].ret = Some(time as u64);
            }
        }
    }
    ops
}

/// KVSRV-2: the checker's verdict (no timeout: model histories are a few operations long).
pub fn check(ops: &[Operation<VersionedInput, VersionedOutput>]) -> CheckResult {
    check_operations(&PowerSet(VersionedKv), ops, None)
}
