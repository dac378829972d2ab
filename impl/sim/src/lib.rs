//! `aver-sim`: the deterministic simulator, the third driver of aver's cores.
//!
//! * [`sim`]: virtual time, the labrpc-equivalent network, simulated disks; nodes run through
//!   the runtime's [`aver_runtime::driver::Driver`] over a simulated environment.
//! * [`lab`]: the 6.5840 Raft tester (`one`, `wait`, `checkOneLeader`, appliers, crash and
//!   restart) with its checkers outside the nodes.
//!
//! The ported lab suites that run on it live in the `aver-tests` crate (`tests/`).
//!
//! A run is a function of its seed: same seed, same event trace (see [`lab::Report`]'s
//! `trace_hash`). A failure names its seed and the command that replays it.

#![warn(missing_docs)]

pub mod lab;
pub mod sim;

pub use lab::{Failure, Outcome, Report};
