//! A linearizability checker in the manner of Porcupine, with readable counterexamples.
//!
//! A history is *linearizable* when every operation can be given a single instant inside its
//! call/return interval at which it takes effect, such that the operations, replayed in the
//! order of those instants through a sequential [`Model`], produce exactly the outputs that
//! the clients observed.
//!
//! # What is checked, and why this way
//!
//! - **Closed intervals.** An operation's interval includes both its call and its return time.
//!   Two operations whose interval ends touch (`a.ret == b.call`) are *concurrent*: clocks on
//!   different clients are never precise enough to order events that share a timestamp, and
//!   calling them concurrent can only make the checker more permissive, never report a bug
//!   that is not there.
//! - **Unknown outcomes.** A client that crashed or timed out never saw a reply (Jepsen's
//!   `:info`). Such an operation has `ret: None`: it may take effect at any instant after its
//!   call, or never. Its `output` is `None`, which models must accept as "any output".
//!   An operation that did return but whose output is unknown (a timed-out read) has
//!   `ret: Some(t)` and `output: None`.
//! - **The algorithm** is Wing & Gong's backtracking search with Lowe's memoisation: a set of
//!   already-visited (linearized operations, model state) configurations prunes the search.
//!   It runs per partition (P-compositionality: a history is linearizable iff each per-key
//!   sub-history is), partitions run in parallel, and the first illegal partition stops
//!   the others.
//! - **Honest `Unknown`.** With a timeout the answer may be [`CheckResult::Unknown`]; it never
//!   turns into `Ok`.
//!
//! # Using it
//!
//! ```
//! use aver_checker::{check_operations, models::Register, CheckResult, Operation};
//! use aver_checker::models::{RegisterInput as In, RegisterOutput as Out};
//!
//! let history = vec![
//!     Operation { client: 0, input: In::Write(1), call: 0, output: Some(Out::Write), ret: Some(10) },
//!     Operation { client: 1, input: In::Read, call: 5, output: Some(Out::Read(Some(1))), ret: Some(6) },
//! ];
//! assert_eq!(check_operations(&Register, &history, None), CheckResult::Ok);
//! ```
//!
//! # Your own model
//!
//! A model is a type implementing [`Model`] (or [`NondeterministicModel`], checked through
//! [`PowerSet`]); [`models`] has four complete ones. A counter, for example:
//!
//! ```
//! use aver_checker::{check_operations, CheckResult, Model, Operation};
//!
//! #[derive(PartialEq)]
//! enum Op { Add(u64), Get }
//!
//! struct Counter;
//!
//! impl Model for Counter {
//!     type State = u64;
//!     type Input = Op;
//!     type Output = u64; // the value after the operation
//!
//!     fn init(&self) -> u64 { 0 }
//!
//!     fn step(&self, state: &u64, input: &Op, output: Option<&u64>) -> Option<u64> {
//!         let next = match input { Op::Add(n) => state + n, Op::Get => *state };
//!         // `None`: the output is unknown, anything goes.
//!         output.is_none_or(|&seen| seen == next).then_some(next)
//!     }
//!
//!     fn describe_operation(&self, input: &Op, output: Option<&u64>) -> String {
//!         let call = match input { Op::Add(n) => format!("add({n})"), Op::Get => "get()".into() };
//!         format!("{call} -> {output:?}")
//!     }
//!
//!     fn describe_state(&self, state: &u64) -> String { state.to_string() }
//! }
//!
//! let op = |client, input, call, output, ret| Operation { client, input, call, output, ret };
//! let history = vec![
//!     op(0, Op::Add(2), 0, Some(2), Some(10)),
//!     op(1, Op::Get, 20, Some(0), Some(30)), // reads 0 after the add completed
//! ];
//! assert_eq!(check_operations(&Counter, &history, None), CheckResult::Illegal);
//! ```
//!
//! To read your own histories in our JSON Lines format, also implement
//! [`formats::Decode`] and use [`formats::read_history`]. `partition` (a key per operation)
//! lets independent parts of the state be checked separately and in parallel.
#![deny(missing_docs)]

mod check;
pub mod counterexample;
pub mod formats;
pub mod generate;
mod hash;
pub mod html;
mod model;
pub mod models;
mod search;

pub use check::{
    Analysis, CheckOptions, CheckResult, MEMORY_MAX_DEFAULT, PartitionAnalysis, check_events,
    check_operations, check_operations_verbose, check_operations_with,
};
pub use model::{Model, NondeterministicModel, PowerSet};
pub use search::SearchStats;

/// One operation of a history: a call and, if the client saw one, its return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client that issued the operation (one client has at most one operation open).
    pub client: u64,
    /// What the client asked for.
    pub input: I,
    /// Time of the call (any monotonic unit; only the order matters).
    pub call: u64,
    /// What the client observed; `None` when the outcome is unknown.
    pub output: Option<O>,
    /// Time of the return, `>= call`; `None` when the client never saw a reply, in which case
    /// the operation may take effect at any time after `call`, or never.
    pub ret: Option<u64>,
}

/// A history of operations checked against model `M`.
pub type History<M> = Vec<Operation<<M as Model>::Input, <M as Model>::Output>>;

/// One event of a history given as an ordered sequence of calls and returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<I, O> {
    /// The client that issued the operation.
    pub client: u64,
    /// Matches a return to its call; unique per operation.
    pub id: u64,
    /// Call or return.
    pub kind: EventKind<I, O>,
}

/// Whether an [`Event`] is a call or a return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind<I, O> {
    /// The call, with the operation's input.
    Call(I),
    /// The return, with the observed output (`None`: unknown). A call without a return is an
    /// operation whose client never saw a reply.
    Return(Option<O>),
}
