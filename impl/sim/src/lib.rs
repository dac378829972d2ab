//! `aver-sim`: the deterministic simulator, the third driver of aver's cores.
//!
//! * [`sim`]: the engine. Virtual time, the labrpc-equivalent network, crashing disks, per-link
//!   accounting, traces and a trace hash, run limits; generic over any [`aver_core::Core`]
//!   run through the runtime's [`aver_runtime::Driver`].
//! * [`pair`]: servers and clients (clerks) of one protocol as nodes of one simulation.
//! * [`history`]: clients' operations recorded in the checker's JSON Lines format and
//!   checked for linearizability with `aver-checker`.
//! * [`raft`]: Raft servers as simulated nodes; [`lab`]: the 6.5840 Raft tester on them;
//!   [`cluster`]: Raft's cluster invariants after every event, incrementally.
//! * [`kvsrv`]: the kvsrv message type on the simulated network.
//! * [`run`]: what a scenario returns: a report, or a [`Failure`] with its seed and the one
//!   command that replays it.
//!
//! The ported lab suites that run on it live in the `aver-tests` crate (`tests/`). A run is a
//! function of its seed: same seed, same event trace ([`sim::Sim::trace_hash`]).
//!
//! # Plugging in a protocol
//!
//! A protocol is a pure core (`impl/core`) implementing [`aver_core::Core`]; its clerk is a
//! core too. To simulate it:
//!
//! 1. **Messages**: implement [`sim::Wire`] on the message type: request or reply (labrpc
//!    treats them differently: see [`sim`]), size in bytes ([`sim::postcard_size`]), a few
//!    words for the trace hash, a label and a one-line rendering for traces.
//! 2. **Nodes**: implement [`sim::NodeKind`] for a small configuration struct: `boot` builds
//!    node `i`'s core from what its disk holds (a blank disk at first, the synced state after
//!    a crash); `write` folds one persist operation into the disk, with the core's own fold
//!    function; `timer_delay` draws each named timer's duration from the run's RNG; and
//!    `violation` exposes what the core's own step checks recorded, so the engine halts the
//!    run on it. A composite server (a service core wrapping Raft) is one core: its disk is
//!    whatever its persist operations fold into — keep Raft's part as a [`raft::RaftDisk`]
//!    and implement [`cluster::RaftHost`], and [`cluster::ClusterCheck`] checks Raft's
//!    cluster invariants on the servers after every event (`impl/sim/tests/raft_host.rs`).
//! 3. **Clients**: a clerk is a core with its own timers (retries) and messages to servers.
//!    Give it a kind of its own and put both in one simulation with [`pair::Pair`]: nodes
//!    `0..servers` are servers, the rest clients, each a [`pair::Member`].
//! 4. **Harness**: create a [`sim::Sim`], enable the links you want in
//!    [`sim::Sim::net_mut`] (all start disabled), hand operations to clerks with
//!    [`sim::Sim::input`] and record each call in a [`history::History`], run
//!    [`sim::Sim::step`] until a virtual deadline, drain [`sim::Sim::take_applied`] after each
//!    step (a clerk's output is its answer: record the return), check the properties that sit
//!    outside the nodes, and stop at [`sim::Sim::halt`]. At the end,
//!    [`history::History::check_or_fail`] decides linearizability; a failure names the seed,
//!    the replay command, the history file and the `aver lin FILE --html OUT` command.
//!
//! `impl/sim/tests/echo.rs` does all four for a register server with a dedup table and a
//! retrying clerk, in about 250 lines, and shows the checker and the event budget catching
//! two deliberately broken variants.

#![warn(missing_docs)]

pub mod cluster;
pub mod history;
pub mod kvraft;
pub mod kvsrv;
pub mod lab;
pub mod pair;
pub mod raft;
pub mod run;
pub mod shardctrler;
pub mod sim;

pub use lab::Report;
pub use run::{Failure, Outcome};
