//! # The sharded key/value service, as pure cores
//!
//! Keys are split into shards ([`key2shard`]); the shard controller
//! ([`crate::shardctrler`]) assigns each shard to a replica group by numbered configurations.
//! Each group is a replicated state machine ([`ShardKv`]) on its own log. When the
//! configuration changes, shards move between groups with their data **and** their
//! duplicate-detection tables, while every shard the change does not touch stays served.
//!
//! ## Roles
//!
//! * [`ShardKv`] — the state of one group, the same on each of its replicas, changed only by
//!   applying committed [`Command`]s in order. It consumes applied commands and produces
//!   replies; it knows nothing of leaders, timers or networks, so it sits on any replicated
//!   log (Raft through the rsm layer, or an atomic "log" in the model checker).
//! * [`ShardServer`] — the rest of a group's server: answers clerks and other groups from the
//!   applied state, polls the controller, drives migrations; it only *proposes* commands.
//! * [`Clerk`] — the client: key → shard → group by its cached configuration; refreshes the
//!   configuration on `WrongGroup` and on retries.
//!
//! ## Shard states and the migration protocol
//!
//! Every shard a group holds is in one of four states ([`ShardState`]):
//!
//! | state | owner in current config? | data here? | served? |
//! |---|---|---|---|
//! | `Serving` | yes | yes | yes |
//! | `Pulling` | yes | not yet | no (`WrongGroup`) |
//! | `Offering` | no | yes, frozen | no |
//! | `Garbage` | yes | yes | yes — and the previous holder's copy must still be deleted |
//!
//! A group applies configuration `n + 1` only when it is in configuration `n` and every shard
//! it holds is `Serving` (one reconfiguration at a time, strictly in order, through the log):
//! shards it keeps stay `Serving`, shards it loses become `Offering`, shards it gains become
//! `Pulling` (or `Serving` and empty if no group ever held them). Then, per shard:
//!
//! 1. the new owner sends `Pull { shard, n }` to the previous holder, which answers (from its
//!    applied state, once it is itself in configuration `n`) with the data and the session
//!    table; the new owner logs `InsertShard`, and the shard is `Garbage`: **served at once**,
//!    whatever happens to the other shards of the change;
//! 2. the new owner sends `Delete { shard, n }`; the previous holder logs `DeleteShard` and
//!    drops its copy — only now, **after the new owner confirmed** it holds the shard — and
//!    answers `DeleteReply`; the new owner logs `ShardDeleted`: `Serving`.
//!
//! Every message is idempotent, fenced by the configuration number, and resent on the
//! `Migrate` timer until it is no longer needed, so loss, duplication and reordering are
//! harmless and neither side keeps requests in flight. When every group leaves, shards are
//! assigned to no group; their last holder keeps them (serving no one, since no clerk routes
//! to it) and hands them to whichever group a later configuration assigns them to.
//!
//! ## Guarantees (`specs/shardkv.md`, `specs/invariants.md`)
//!
//! SHARD-1 at most one group serves a shard; SHARD-2 no acknowledged write is lost across a
//! move; SHARD-3 a write takes effect at most once across moves (sessions move with the
//! shard); SHARD-4 a deleted shard is never needed again; client operations are linearizable
//! across reconfigurations. [`invariants`] implements SHARD-1..4 as plain functions.
//!
//! ## Deviations from the lab, and why
//!
//! * Sessions are per shard and travel with it, rather than one table copied wholesale.
//! * A `Pull` is answered from the applied state without a log entry: an offered shard is
//!   frozen, so every replica that has reached configuration `n` answers the same.
//! * Shards assigned to no group are kept by their last holder instead of being dropped.

pub mod bugs;
pub mod clerk;
mod codec;
pub mod invariants;
pub mod replica;
pub mod server;
pub mod state;
pub mod types;

pub use bugs::{Bug, Bugs};
pub use clerk::{Clerk, ClerkReady, ClerkTimer, Completed};
pub use server::{Proposal, ServerReady, ShardServer, Timer};
pub use state::{Command, Shard, ShardKv, ShardState};
pub use types::{
    Key, Msg, Op, OpReply, SessionEntry, ShardData, Source, Value, export_sessions, key2shard,
};

#[cfg(test)]
mod tests;
