//! # Raft, model-checked
//!
//! This model runs the one Raft core of aver (`aver_core::raft::Raft`) inside Stateright's
//! actor framework and explores every interleaving of its inputs within state-based bounds.
//!
//! ## What is modelled
//!
//! * **Servers.** Each actor is one [`RaftServer`]: a `Raft<u8>` plus what its disk holds.
//!   The actor makes no protocol decision. Every handler feeds one input to the core, drains
//!   `take_ready()` and maps it to Stateright commands, in the contract's order: persist ops
//!   are folded into the disk with the core's own [`Durable::apply`] and saved with
//!   `o.save(..)`, then messages are sent, then timers are set or cancelled (with
//!   `model_timeout()`: any set timer may fire at any moment).
//! * **Crash and recover.** `Storage` is exactly a [`Durable`] folded from the persist ops
//!   the core emitted, nothing else. Recovery restarts the core with `Raft::new(config,
//!   storage)`, so a seeded bug that forgets to persist (`vote-not-persisted`) really loses
//!   the write. The actor keeps its disk image in its state only when it differs from the
//!   core's own `durable()` (that is, only under such a bug), so a correct server pays
//!   nothing for it.
//! * **Clients and the service.** Two extra per-server timers stand for the world above Raft.
//!   `Propose` asks a leader to `propose` one command (the command is the proposer's id) while
//!   its log is shorter than `max_log`; `Compact` asks a server that applied entries beyond
//!   its snapshot to `snapshot(applied, data)`, where `data` is the applied commands' bytes.
//!   When they do nothing they are pruned as no-ops, so they cost no states.
//! * **Network.** Unordered or ordered; optionally lossy and/or duplicating (Stateright's
//!   networks; networks that hold copies are bounded to a few messages in flight per server).
//!   The CI configuration uses the duplicating network without explicit drops: any message
//!   may arrive any number of times, late, or never — and "never" is loss as far as safety
//!   properties can tell, while explicit drops only add powerset states
//!   (`--network lossy-duplicating` has them). The network's "last delivered" field is
//!   cleared after each step, and messages their receiver will ignore forever (by the core's
//!   [`Raft::ignores_forever`]) are removed from it ([`RaftModel::next_state`]): a sound
//!   reduction that keeps exactly the same reachable server states.
//!
//! ## Bounds
//!
//! Bounds are on the state, never on path depth (a depth bound makes DFS incomplete): every
//! server's term ≤ `max_term` ([`RaftModelCfg::within_boundary`]); a leader proposes only while
//! its log is shorter than `max_log`, so every log holds ≤ `max_log` entries and the number of
//! proposals is ≤ `max_term × max_log`; at most `max_crashes` servers are down at once.
//!
//! [`RaftModelCfg::ci`] and [`RaftModelCfg::ci_crash`] are the exhaustive CI configurations
//! ([`RaftModelCfg::ci_all`]; `aver check` runs them all); [`RaftModelCfg::deep`] is the target (terms ≤ 3, logs
//! ≤ 2, crashes, snapshots), too large to exhaust, and covered by explicit witness paths
//! (tests) and seeded random walks ([`random_walks`], `aver check --simulate`), which is also
//! how the seeded bugs are hunted.
//!
//! ## Properties
//!
//! Every safety invariant of the catalogue is an `always` property named after its ID and
//! evaluated by the function the simulator uses ([`aver_core::raft::invariants`]): cluster
//! invariants (RAFT-1, 3, 4, 5, 7) over every server's latest state, crashed servers
//! included; node invariants (RAFT-8, 9) on each server; and step invariants (RAFT-2, 6, 10),
//! which each server checks itself after every input and records in `Raft::violation()`, so a
//! violation — seeded or real — fails the property with a counterexample.
//!
//! Four `sometimes` properties make sure the model is not vacuous: a leader is elected, an
//! entry is committed, a snapshot is installed by InstallSnapshot, and a new leader is
//! elected after a leader crashed.

mod actor;
mod config;
mod model;
mod properties;
mod replay;
mod trace;

pub use actor::{ModelTimer, RaftServer, ServerState};
pub use config::{IN_FLIGHT_MAX_PER_SERVER, NetworkKind, RaftModelCfg};
pub use model::{Cmd, RaftAction, RaftModel, RaftState};
pub use properties::{PROPERTIES, RaftProperty, property_named, safety_properties};
pub use replay::{StatePath, WalkReport, random_walks, replay};
pub use trace::{TraceStep, describe_msg, describe_server, trace};

use aver_core::NodeId;
use stateright::actor::Id;

fn node_id(id: Id) -> NodeId {
    NodeId(usize::from(id) as u32)
}

fn actor_id(id: NodeId) -> Id {
    Id::from(id.0 as usize)
}
