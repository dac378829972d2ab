//! # aver-runtime
//!
//! The per-node driver — the one thin loop that feeds inputs to a core and carries out its
//! outputs in the contract's order — and the real environment it runs in:
//!
//! * [`frame`] and [`wire`]: length + CRC + postcard frames and what travels in them;
//! * [`net`]: one TCP stream per pair of members, the handshake, bounded queues, reconnects;
//! * [`storage`] and [`commit`]: a segmented WAL, hard state and snapshots, made durable by
//!   group commit;
//! * [`kv`] and [`node`]: the event loop that runs the kvraft server core on the Raft core on
//!   tokio;
//! * [`shard`] and [`shard_client`]: the shard controller's and shard groups' servers as
//!   node services, and their client (the sharded KV's clerk core, administration);
//! * [`client`]: the driver of the kvraft clerk core over TCP, recording histories;
//! * [`trace`] and [`replay`]: node input traces, and replaying them into the core.
//!
//! The deterministic simulator (`impl/sim`) runs cores through the same [`Driver`] with a
//! different [`Environment`].
//!
//! [`mr`] runs MapReduce's coordinator and workers as real processes.
#![deny(missing_docs)]

pub mod client;
pub mod commit;
pub mod driver;
pub mod frame;
pub mod group;
pub mod kv;
pub mod mr;
pub mod net;
pub mod node;
pub mod outbox;
pub mod replay;
pub mod shard;
pub mod shard_client;
pub mod storage;
pub mod trace;
pub mod wire;

#[cfg(test)]
mod loom_tests;

/// Synchronisation primitives of the shared-state pieces ([`group`], [`outbox`]); their loom
/// model checks compile the same files against loom's primitives instead.
pub(crate) mod sync {
    pub use std::sync::{Condvar, Mutex};
}

pub use driver::{Driver, Environment};
