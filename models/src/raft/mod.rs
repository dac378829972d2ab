//! # Raft, model-checked
//!
//! This model runs the one Raft core of aver (`aver_core::raft::Raft`) as a Stateright
//! [`stateright::Model`] with its own compact state ([`state`]), and `aver check` explores every
//! interleaving of its inputs within state-based bounds with aver's search engine
//! ([`crate::search`]: symmetry reduction, covering, shortest counterexamples in BFS).
//! Stateright Explorer serves the same model (`aver explore raft`).
//!
//! ## What is modelled
//!
//! * **Servers.** Each [`Server`] is a `Raft<u8>`, its set timers, whether it is down (only
//!   with `restart_at_crash` off), the
//!   service's applied commands, and what its disk holds when that differs from the core's
//!   `durable()` (only under a seeded bug that skips a write). The adapter ([`actor`]) makes no
//!   protocol decision: it feeds one input to the core and carries out the `Ready` through the
//!   runtime's shared `Driver` loop, in the contract's order — persist operations folded into
//!   the disk with the core's own [`aver_core::raft::Durable::apply`], then messages, then timers (any set
//!   timer may fire at any moment), then applies into the service. After every input the
//!   server forgets its leader hint (`forget_leader_hint`): only a client that asks a
//!   follower reads it, and the model's clients ask leaders.
//! * **Crash and recover.** A crash keeps only the disk. Recovery restarts the core with
//!   `Raft::new(config, disk)`, so a seeded bug that forgets to persist (`vote-not-persisted`)
//!   really loses the write. The two are one step, `Restart` (`restart_at_crash`): a down
//!   server is, to everyone else, a server that takes no input, and messages to it wait in
//!   the network either way, so the time it would stay down is time it is not scheduled
//!   (`RaftModel::restart`). With that off, a crash and the recovery are two steps; the down
//!   server's core is the restarted core from the crash on (`forget_on_crash`: its lost
//!   memory would only split states), so properties read a crashed server as its disk has it.
//! * **Clients and the service.** `Propose` asks a leader to `propose` one command (its term
//!   and id) while its log is shorter than `max_log`; `Compact` asks a server that applied
//!   entries beyond its snapshot to `snapshot(applied, data)`, where `data` is the applied
//!   commands' bytes. Every apply (entry or snapshot) is checked against a ghost record of the
//!   first command applied at each index (RAFT-A1, RAFT-A2).
//! * **Network.** Unordered or ordered; optionally lossy and/or duplicating (Stateright's
//!   network semantics; networks that hold copies are bounded to a few messages in flight per
//!   server). The CI configurations use the duplicating network without explicit drops: any
//!   message may arrive any number of times, late, or never — and "never" is loss as far as
//!   safety properties can tell, while explicit drops only add powerset states
//!   (`--network lossy-duplicating` has them). Messages their receiver will ignore forever
//!   (by the core's [`aver_core::raft::Raft::ignores_forever`]) are removed: a sound reduction that keeps
//!   exactly the same reachable server states (tested). So are requests that can have no
//!   effect within the term bound (`collect_stale_requests`, [`RaftState::dead_within_bound`]):
//!   a stale request whose sender is at `max_term` already, so the refusal it would bring back
//!   tells the sender nothing, and a RequestVote at `max_term` to a server that voted for
//!   another then — sound for the bounded model, also tested against the unreduced search.
//!   Messages whose deliveries have the same effect forever (the core's
//!   [`aver_core::raft::Raft::delivery_class`]: stale requests, replies that can only announce
//!   a term their receiver can no longer win, acknowledgments a leader already has,
//!   AppendEntries a follower already holds) count as one: the search keys a state by its
//!   classes and one member per class is delivered ([`RaftState::delivery_classes`]; tested
//!   against the search that keeps them apart).
//! * **Ghost records.** Besides the apply record, the terms some server has led, ever
//!   ([`state::Leaders`]): an election into a term already led fails RAFT-1 even when the
//!   first leader crashed before it, which a check of each state alone would miss.
//!
//! ## Bounds
//!
//! Bounds are on the state, never on path depth (a depth bound makes DFS incomplete): every
//! server's term ≤ `max_term` ([`RaftModelCfg::within_boundary`]); a leader proposes only while
//! its log is shorter than `max_log`, so every log holds ≤ `max_log` entries and the number of
//! proposals is ≤ `max_term × max_log`; servers crash only if `max_crashes` ≥ 1 (with a down
//! interval, `restart_at_crash` off: at most `max_crashes` servers are down at once — the same
//! runs, since servers down together are servers restarted one after another and kept idle).
//!
//! [`Limits`] (none by default; `aver check raft --max-campaigns N --max-heartbeats N
//! --max-proposals N --one-candidate`) bound what a run *does* instead: budgets of election
//! timeouts, heartbeat timeouts and proposals per run, and campaigns that never overlap. They
//! cut runs that stay within the state bounds, so a search with them is an
//! under-approximation — every violation it finds is a real run of the unrestricted model,
//! but a pass says nothing about the runs cut — used to reach bugs that need several
//! elections and few messages (specs/bugs.md). The budgets spent are counted in the state.
//!
//! [`RaftModelCfg::ci_all`] lists the exhaustive CI configurations (`aver check` runs them
//! all); [`RaftModelCfg::terms2_logs2`] (terms ≤ 2, logs ≤ 2, snapshots, a crash) and
//! [`RaftModelCfg::nightly`] (terms ≤ 3) are deeper exhaustive configurations beyond CI's
//! budget; [`RaftModelCfg::deep`] (the nightly bounds) is also covered by witness paths (tests)
//! and seeded random walks ([`random_walks`], `aver check --simulate`).
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
//! `--no-step-checks` turns the servers' own checks off, so that only what a user loses can
//! fail (RAFT-1, 3, 4, 5, 7, A1, A2); a panic of the core is a failed property too.
//!
//! `sometimes` properties keep the model from passing vacuously, one per kind of progress a
//! correct core makes: a leader is elected, an entry is committed, a follower applies an entry,
//! truncates a conflicting entry or installs a snapshot, a leader backs up by the conflict
//! hint, an entry of an earlier term is committed, and a new leader is elected after a leader
//! crashed.

pub mod actor;
mod config;
mod model;
mod properties;
mod replay;
pub mod state;
pub mod symmetry;
mod trace;

pub use config::{IN_FLIGHT_MAX_PER_SERVER, Limits, NetworkKind, RaftModelCfg};
pub use model::{Cmd, RaftAction, RaftModel};
pub use properties::{PROPERTIES, RaftProperty, property_named, safety_properties};
pub use replay::{StatePath, WalkReport, random_walks, random_walks_checking, replay};
pub use state::{RaftState, Server};
pub use trace::{TraceStep, describe_msg, describe_server, trace};
