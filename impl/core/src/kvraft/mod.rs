//! # kvraft: a linearizable, exactly-once key/value service on the rsm
//!
//! The 6.5840 Lab 4 service (and its 2022–2024 ancestor), as pure cores:
//!
//! * [`KvServer`] — one replica: clerk requests in, [`crate::rsm`] submissions out. Writes go
//!   through the log as [`KvCommand`]s carrying the client's session id and sequence number;
//!   Gets go through ReadIndex (the default, [`crate::rsm::ReadMode::ReadIndex`]) or through
//!   the log ([`crate::rsm::ReadMode::Log`]).
//! * [`KvMachine`] — the replicated state: the [`Store`] and the dedup table
//!   ([`Sessions`]: client → latest applied write and its reply), both in every snapshot.
//! * [`Clerk`] — the client: one operation at a time, a fresh sequence number per operation,
//!   retries on the same number (timer for lost messages, messages for `WrongLeader`), and
//!   a cached leader.
//! * Two stores: [`VersionedStore`] (2025: `Put(key, value, version)`, `Get`, `ErrNoKey`,
//!   `ErrVersion`) and [`AppendStore`] (2022–2024: `Put`, `Append`, `Get`).
//!
//! ## Why it is exactly-once and linearizable
//!
//! A write executes when its entry is applied, and only if its sequence number is newer than
//! the client's latest applied write (KV-2): a retry that is applied again is answered from
//! the table with the first execution's reply. Replicas apply the same log, so they build the
//! same table; snapshots carry it, so a restart cannot forget it (KV-3). A server answers a
//! write only from the entry at the index the rsm gave it (the rsm checks the term there), and
//! a read only after ReadIndex confirmed its leadership and applied up to the read index —
//! so every answer reflects a state that includes every write acknowledged before the
//! operation began (KV-1). A duplicate request for the client's latest write that arrives at a
//! leader after the write was applied is answered at once from the table: the reply is a
//! committed fact.
//!
//! ## Where the lab differs
//!
//! The 2025 lab's kvraft has no dedup table: its versioned Put makes retries safe and a clerk
//! reports `ErrMaybe` for a retried Put that got `ErrVersion`. With the table, a retried Put
//! gets the first execution's reply, so our clerk never needs `ErrMaybe` — its answers are
//! exact, and the histories are checked against the stricter model.

pub mod bugs;
mod clerk;
pub mod invariants;
mod machine;
mod server;
mod sessions;
mod store;
mod types;

pub use bugs::{KvBug, KvBugs};
pub use clerk::{Busy, Clerk, ClerkConfig, ClerkOutput, ClerkReady, ClerkTimer};
pub use machine::{Effect, KvMachine, KvOutcome};
pub use server::{KvConfig, KvEntry, KvEvent, KvReady, KvServer, RaftKvServer, ServerMsg, Waiter};
pub use sessions::{Lookup, SESSIONS_MAX, Session, Sessions};
pub use store::{
    AppendOp, AppendReply, AppendStore, Store, VersionedOp, VersionedReply, VersionedStore,
};
pub use types::{ClientId, ClientMsg, KvCommand, KvError, KvMsg, Reply, Request, Seq};

#[cfg(test)]
mod tests;
