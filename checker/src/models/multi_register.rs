//! Knossos's multi-register: transactions of reads and writes over named registers, each
//! holding an `i64` (initially `init`, `nil` by default). A read whose value is unknown
//! (Jepsen's `nil`) matches anything. Not partitioned: a transaction may span registers.

use super::show;
use crate::{Model, Operation};
use std::collections::BTreeMap;

/// One micro-operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MicroOp {
    /// Read a register.
    Read(String),
    /// Write a register.
    Write(String, i64),
}

/// A transaction's input: its micro-operations in order.
pub type Txn = Vec<MicroOp>;

/// A transaction's output: per micro-operation, the value a read returned (`None`: unknown;
/// always `None` for writes).
pub type TxnOutput = Vec<Option<i64>>;

/// The multi-register model.
#[derive(Clone, Copy, Debug, Default)]
pub struct MultiRegister {
    /// Every register's value before any write (`None`: nil).
    pub init: Option<i64>,
}

/// Registers written so far (the others hold `init`).
pub type MultiState = BTreeMap<String, i64>;

impl Model for MultiRegister {
    type State = MultiState;
    type Input = Txn;
    type Output = TxnOutput;

    fn init(&self) -> MultiState {
        MultiState::new()
    }

    fn step(&self, state: &MultiState, txn: &Txn, out: Option<&TxnOutput>) -> Option<MultiState> {
        let mut next: Option<MultiState> = None;
        for (i, mop) in txn.iter().enumerate() {
            let now = next.as_ref().unwrap_or(state);
            match mop {
                MicroOp::Read(k) => {
                    let seen = out.and_then(|o| o.get(i).copied().flatten());
                    let value = now.get(k).copied().or(self.init);
                    if seen.is_some_and(|v| Some(v) != value) {
                        return None;
                    }
                }
                MicroOp::Write(k, v) => {
                    next.get_or_insert_with(|| state.clone())
                        .insert(k.clone(), *v);
                }
            }
        }
        Some(next.unwrap_or_else(|| state.clone()))
    }

    fn is_read_only(&self, txn: &Txn, _output: Option<&TxnOutput>) -> bool {
        txn.iter().all(|m| matches!(m, MicroOp::Read(_)))
    }

    fn unneeded(&self, ops: &[&Operation<Txn, TxnOutput>]) -> Vec<bool> {
        vec![false; ops.len()]
    }

    fn describe_operation(&self, txn: &Txn, out: Option<&TxnOutput>) -> String {
        let parts: Vec<String> = txn
            .iter()
            .enumerate()
            .map(|(i, m)| match m {
                MicroOp::Read(k) => {
                    let seen = out.and_then(|o| o.get(i).copied().flatten());
                    format!("r {k} {}", seen.map_or("?".to_string(), |v| v.to_string()))
                }
                MicroOp::Write(k, v) => format!("w {k} {v}"),
            })
            .collect();
        format!("txn[{}]", parts.join(", "))
    }

    fn describe_state(&self, state: &MultiState) -> String {
        let parts: Vec<String> = state.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{{{}}} (others {})", parts.join(", "), show(self.init))
    }
}
