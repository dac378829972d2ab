//! # Stateright models of the aver cores
//!
//! Each model is a thin Stateright actor around one pure core from `aver-core`: it feeds the
//! core one input at a time and maps the core's `Ready` to Stateright's `Out` (persist ops →
//! `save`, messages → `send`, timers → `set_timer`/`cancel_timer`). The models contain no
//! protocol logic; their properties are the invariant functions the simulator also runs,
//! named after the catalogue IDs in `specs/invariants.md`.
//!
//! * [`raft`]: the Raft core (elections, replication, commit, snapshots, crash/recover).
//! * [`shard`]: shard migration (controller, groups as atomic replicas, clerks).
//!
//! [`MODELS`] lists the registered models; `aver check` with no protocol runs each of them at
//! its CI bounds.
#![deny(missing_docs)]

pub mod raft;
pub mod shard;

/// Every registered model, by the protocol name `aver check <protocol>` takes.
pub const MODELS: &[&str] = &["raft", "shard"];
