//! Ready-made models, and examples of how to write your own.
//!
//! | model | operations | partitioned by |
//! | --- | --- | --- |
//! | [`Register`] | read, write of an `i64` (initially absent) | nothing |
//! | [`CasRegister`] | read, write, compare-and-set (Jepsen's etcd tests) | nothing |
//! | [`MultiRegister`] | transactions of reads and writes over named registers (Knossos) | nothing |
//! | [`Kv`] | get, put, append on string keys (6.5840 kvraft) | key |
//! | [`VersionedKv`] | get, versioned put (6.5840 kvsrv1), via [`crate::PowerSet`] | key |
//! | [`ShardCtrl`] | join, leave, move, query of numbered configurations (6.5840 shardctrler) | nothing |
//!
//! A model of your own is a type implementing [`crate::Model`]; copy [`Register`] (30 lines)
//! as a start. If one operation can have several effects, implement
//! [`crate::NondeterministicModel`] as [`VersionedKv`] does and check with
//! `PowerSet(YourModel)`.

mod kv;
mod kv_value;
mod multi_register;
mod register;
mod shard_ctrl;
mod versioned_kv;

pub use kv::{Kv, KvInput, KvOutput};
pub use kv_value::KvValue;
pub use multi_register::{MicroOp, MultiRegister, MultiState, Txn, TxnOutput};
pub use register::{CasRegister, Initial, Register, RegisterInput, RegisterOutput};
pub use shard_ctrl::{
    CtrlConfig, CtrlGid, CtrlGroups, CtrlInput, CtrlOutput, CtrlState, ShardCtrl, Slot,
};
pub use versioned_kv::{VersionedInput, VersionedKv, VersionedOutput, VersionedState};

/// Renders an optional register value the way Jepsen does (`nil` when absent).
fn show(value: Option<i64>) -> String {
    value.map_or_else(|| "nil".to_string(), |v| v.to_string())
}
