//! # The versioned key/value server (6.5840 kvsrv1) and the lock built on it
//!
//! One server holds a versioned store ([`store`]): `Put(key, value, version)` applies only at
//! the version it names, so a put takes effect at most once ever, and a clerk can retry without
//! the server remembering anything per client. Clerks ([`clerk`]) do one operation at a time,
//! retransmit on a timer, and report `ErrMaybe` when a retransmitted put comes back
//! `ErrVersion`. The lock ([`lock`]) is one key holding its holder's id, driven by a clerk.
//!
//! ## Roles and message flow
//!
//! * **Clerk** → `Get`/`Put` (one [`message::Seq`] per operation, the same for every copy) →
//!   **server** → `GetReply`/`PutReply` echoing the `Seq` → the clerk, which accepts a reply only
//!   for its pending operation.
//! * **Lock client** = a clerk plus the acquire/release logic; its only messages are its
//!   clerk's.
//!
//! ## Contract with the driver
//!
//! Each core implements [`crate::Core`]: inputs `on_message`, `on_timeout`, plus `start`
//! (clerk) or `acquire`/`release` (lock); outputs drained with `take_ready`. Nothing is
//! persisted (the lab's kvsrv keeps its store in memory). The clerk's `Apply` stream is its
//! history: a call record on the first send of an operation, a return record when it accepts
//! the reply. The one assumption on the network — a retransmission only after the previous
//! copy is resolved, each send delivered at most once — is stated in [`clerk`] and in
//! `specs/kvsrv.md`, with the model that shows it is needed.
//!
//! ## Deviations from the lab, and why
//!
//! * Requests and replies are messages, not RPC returns: a reply names the operation it
//!   answers (`Seq`), so a late reply to an earlier operation cannot complete a later one.
//! * The lock's client id is given by the driver (the cores have no randomness).

pub mod bugs;
pub mod clerk;
pub mod invariants;
pub mod lock;
pub mod message;
pub mod server;
pub mod store;

pub use bugs::{Bug, Bugs};
pub use clerk::{Clerk, ClerkEvent, ClerkTimer, Output, PutOutcome, put_outcome};
pub use lock::{LockClient, LockEvent, LockTimer, Phase};
pub use message::{Message, Seq};
pub use server::Server;
pub use store::{Entry, GetResult, Op, OpResult, PutResult, Store, Version};

use crate::contract::Ready;
use serde::{Deserialize, Serialize};

/// A type with no values: the persist, apply or timer type of a core that has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Never {}

/// The server's `Ready`: replies only.
pub type ServerReady = Ready<Never, Message, Never, Never>;
/// The clerk's `Ready`: requests, its call/return records, its retry timer.
pub type ClerkReady = Ready<Never, Message, ClerkEvent, ClerkTimer>;
/// The lock client's `Ready`.
pub type LockReady = Ready<Never, Message, LockEvent, LockTimer>;
