//! # MapReduce, as pure state machines
//!
//! The coordinator and the worker loop of MapReduce (Dean & Ghemawat, OSDI 2004; MIT 6.5840
//! Lab 1) as two cores. They guarantee the `MR-*` invariants of `specs/invariants.md`
//! (functions in [`invariants`]); `specs/mapreduce.md` is the specification.
//!
//! ## Tasks
//!
//! One map task per input file, `n_reduce` reduce tasks. A task is *idle*, *running* (one or
//! more runs, each numbered by an [`Attempt`] and held by a worker), *committing* (exactly one
//! run may rename its output into place) or *done*. Reduce tasks are handed out only after
//! every map task is done; the job is done when every reduce task is done.
//!
//! ## Message flow
//!
//! ```text
//! worker                         coordinator
//!   Request            ───────▶  waits until a task is available (no polling)
//!              ◀───────  Assign(task, attempt, input, n_map, n_reduce)
//!   (runs it into temporary files)
//!   Finished(task, attempt) ──▶  first finished run of the task? grant it the commit
//!              ◀───────  Commit(task, attempt)   or   Discard(task, attempt)
//!   (renames temp files to mr-X-Y / mr-out-Y)
//!   Committed(task, attempt) ─▶  task done; after the last map, reduces become available;
//!   Request                      after the last reduce, every waiting worker gets Exit
//! ```
//!
//! ## Faults
//!
//! * **Slow or hung workers.** Each run arms a named `TaskTimeout` timer (the driver picks the
//!   duration; the lab's is 10 s). When it fires the run is given up: the task becomes idle
//!   and the next request gets it. The slow run is not cancelled — if it finishes before the
//!   new one it may still commit; the new one will then be told to discard.
//! * **Dead workers.** The driver reports a closed connection with
//!   [`Coordinator::on_worker_lost`]: the worker's runs are given up at once and a commit it
//!   was granted is revoked. (The lab's coordinator cannot tell a crash from slowness and
//!   waits for the timeout; a connection per worker tells it, so crashes cost no 10 s.)
//! * **Exactly one committer.** The commit grant goes to one run at a time and is revoked only
//!   when its worker is known dead, never by a timeout, because a slow process may still
//!   rename. So an older run can never replace the output of a newer one after the fact
//!   (MR-4), and a done task's files never change (MR-3) — which matters for applications
//!   whose output differs between runs (timing, counting, randomness).
//! * **Reported failures** (an unreadable input, an application error) make the task idle
//!   again; after `task_failures_max` of them the job is abandoned with the reason.
//!
//! ## Beyond the lab
//!
//! * **Backup tasks** (paper §3.6), off by default: each run also arms a `Backup` timer; when
//!   it fires on a task's only run and no task of the phase is idle, a waiting worker gets a
//!   second run of it. Whichever finishes first commits.
//! * **Combiners** (paper §4.3) are a property of the application ([`apps::App`]).
//!
//! Seeded bugs ([`MrBug`]) re-introduce two classic mistakes for the model checker.

pub mod apps;
pub mod bugs;
pub mod coordinator;
pub mod invariants;
pub mod types;
pub mod worker;

pub use bugs::{MrBug, MrBugs};
pub use coordinator::{Coordinator, CoordinatorConfig, CoordinatorReady, Task, Timer};
pub use types::{Assignment, Attempt, Event, Message, Phase, TaskId, ToCoordinator, ToWorker};
pub use worker::{Worker, WorkerAction, WorkerReady, WorkerState};

#[cfg(test)]
mod tests;
