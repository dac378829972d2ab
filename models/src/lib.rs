//! # Stateright models of the aver cores
//!
//! Each model is a thin Stateright actor around one pure core from `aver-core`: it feeds the
//! core one input at a time and maps the core's `Ready` to Stateright's `Out` (persist ops →
//! `save`, messages → `send`, timers → `set_timer`/`cancel_timer`). The models contain no
//! protocol logic; their properties are the invariant functions the simulator also runs,
//! named after the catalogue IDs in `specs/invariants.md`.
//!
//! * [`raft`]: the Raft core (elections, replication, commit, snapshots, crash/recover).
//! * [`kvsrv`]: the versioned KV server with retrying clerks (`kvsrv`: linearizability of
//!   the clerks' history) and the lock built on the clerk (`lock`: mutual exclusion).
//! * [`mr`]: the MapReduce coordinator and worker cores, with crashing and slow workers.
//! * [`kv_dedup`]: the KV service (clerks, servers, rsm, dedup table) over an abstract
//!   atomic log with leader changes, on a network that loses, duplicates and reorders.
//! * [`kv_raft`]: the KV service on the real Raft core, composed, with ReadIndex reads.
//! * [`shard`]: shard migration (controller, groups as atomic replicas, clerks).
//!
//! `aver check` (impl/cli) keeps the registry of models it runs; each model here exposes its
//! configurations, properties and trace rendering for it.
#![deny(missing_docs)]

pub mod kv_common;
pub mod kv_dedup;
pub mod kv_raft;
pub mod kvsrv;
pub mod mr;
pub mod raft;
pub mod search;
pub mod shard;
pub mod walk;
