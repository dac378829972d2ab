//! # aver-core: the pure protocol cores
//!
//! Every protocol in aver is written exactly once, here, as a deterministic state machine:
//! inputs go in through `on_*` methods, and everything the protocol wants done in the world
//! comes out as one [`contract::Ready`] value. The cores never touch clocks, sockets, files,
//! threads or ambient randomness: time arrives as named timer events whose durations the
//! driver chooses, and randomness is the driver's business too.
//!
//! * [`raft`]: Raft (elections, replication, snapshots, ReadIndex).
//! * [`rsm`]: a replicated state machine over a consensus engine (Raft).
//! * [`kvraft`]: the exactly-once, linearizable KV service on the rsm, and its clerk.
//!
//! Three drivers run the same cores: the Stateright models (`models/`), the deterministic
//! simulator (`impl/sim`) and the real runtime (`impl/runtime`). Invariants are plain
//! functions (see [`raft::invariants`], [`kvsrv::invariants`]) so that all three check the same
//! thing.
//!
//! * [`kvsrv`]: the versioned key/value store ([`kvsrv::store`], reusable by any service that
//!   applies versioned puts), its single server, its clerk, and the lock built on the clerk.
#![deny(missing_docs)]

pub mod codec;
pub mod contract;
pub mod kvraft;
pub mod kvsrv;
pub mod mr;
pub mod raft;
pub mod rsm;
pub mod shardctrler;
pub mod shardkv;

pub use contract::{Core, NodeId, Ready, TimerCmd, Violation};
