//! The MapReduce invariants of `specs/invariants.md` (`MR-*`), one function each. The
//! Stateright model evaluates them on every state; the runtime's coordinator checks
//! [`check_coordinator`] after every input; tests use them on real runs.
//!
//! Some need facts outside the coordinator: which timers its driver holds armed, which run's
//! output each task's final files hold, and how many faults hit each task. Drivers that know
//! those facts (the model, tests) pass them in.

use super::coordinator::{Coordinator, Timer};
use super::types::{Attempt, Phase, TaskId};
use crate::contract::Violation;
use std::collections::{BTreeMap, BTreeSet};

/// Every coordinator-local invariant: MR-1's local part and MR-2.
pub fn check_coordinator(c: &Coordinator) -> Result<(), Violation> {
    reduce_after_maps(c)?;
    runs_held_by_live_workers(c)
}

/// MR-2 Reduce After Maps: no reduce task has been handed out while some map task is not
/// done (a reduce task reads every map task's output).
pub fn reduce_after_maps(c: &Coordinator) -> Result<(), Violation> {
    let (maps_done, n_map) = c.progress(Phase::Map);
    for r in 0..c.config().n_reduce {
        let started = c.task(TaskId::Reduce(r)).map_or(0, |t| t.started);
        if started > 0 && maps_done < n_map {
            return Err(Violation::new(
                "MR-2",
                format!("reduce {r} handed out with {maps_done}/{n_map} map tasks done"),
            ));
        }
    }
    Ok(())
}

/// MR-1 No Task Lost, local part: a task's runs and its commit grant are held by workers not
/// known dead; a done task has no run and no grant; run numbers were handed out.
pub fn runs_held_by_live_workers(c: &Coordinator) -> Result<(), Violation> {
    for id in c.task_ids() {
        let t = c.task(id).expect("own task id");
        let holders = t
            .running
            .values()
            .chain(t.committing.iter().map(|(_, w)| w));
        if let Some(w) = holders.into_iter().find(|w| c.lost().contains(w)) {
            return Err(Violation::new(
                "MR-1",
                format!("{id} held by lost worker {w}"),
            ));
        }
        if t.done.is_some() && (!t.running.is_empty() || t.committing.is_some()) {
            return Err(Violation::new(
                "MR-1",
                format!("{id} done but still running"),
            ));
        }
        let max_run = t
            .running
            .keys()
            .chain(t.committing.iter().map(|(a, _)| a))
            .max();
        if max_run.is_some_and(|a| a.0 > t.started) {
            return Err(Violation::new(
                "MR-1",
                format!("{id} runs a number never handed out"),
            ));
        }
    }
    Ok(())
}

/// MR-1 No Task Lost, with the driver's timers: every task that is not done is idle (the
/// next request takes it), committing (its worker renames, or is lost and the task becomes
/// idle), or running with a `TaskTimeout` armed for each run — so no task can wait forever
/// for a worker that never answers.
pub fn no_task_lost(c: &Coordinator, armed: &BTreeSet<Timer>) -> Result<(), Violation> {
    runs_held_by_live_workers(c)?;
    for id in c.task_ids() {
        let t = c.task(id).expect("own task id");
        if let Some(a) = t
            .running
            .keys()
            .find(|&&a| !armed.contains(&Timer::TaskTimeout(id, a)))
        {
            return Err(Violation::new(
                "MR-1",
                format!("{id} run {a} has no timeout armed"),
            ));
        }
    }
    Ok(())
}

/// MR-3 Outputs From Completed Tasks: the final files of every done task hold the output of
/// the run the coordinator accepted (`outputs[task]` = the run whose rename put the files
/// there), so when the job is done every output is present and no output changes afterwards.
pub fn outputs_committed(
    c: &Coordinator,
    outputs: &BTreeMap<TaskId, Attempt>,
) -> Result<(), Violation> {
    for id in c.task_ids() {
        let Some(done) = c.task(id).and_then(|t| t.done) else {
            continue;
        };
        match outputs.get(&id) {
            Some(&a) if a == done => {}
            Some(&a) => {
                return Err(Violation::new(
                    "MR-3",
                    format!("{id} done by run {done} but its files hold run {a}"),
                ));
            }
            None => {
                return Err(Violation::new(
                    "MR-3",
                    format!("{id} done by run {done} but its output is missing"),
                ));
            }
        }
    }
    Ok(())
}

/// MR-4 No Stale Overwrite (one rename): the output of run `new` of `task` replaces the files
/// that run `old` put there. An older run must never replace a newer one.
pub fn no_stale_overwrite(
    task: TaskId,
    old: Option<Attempt>,
    new: Attempt,
) -> Result<(), Violation> {
    match old {
        Some(old) if old > new => Err(Violation::new(
            "MR-4",
            format!("{task}: run {new}'s output replaced the newer run {old}'s"),
        )),
        _ => Ok(()),
    }
}

/// MR-5 Runs Justified: a task is run more than once only because of faults —
/// `started(task) ≤ 1 + faults(task)`, where a fault is a `TaskTimeout` or `Backup` timer of
/// one of its runs firing, the loss of a worker running it or committing it, or a reported
/// failure. Side-effecting applications see every extra run (the lab's job-count test counts
/// them), so a re-run without a fault is visible to the user.
pub fn runs_justified(c: &Coordinator, faults: &BTreeMap<TaskId, u32>) -> Result<(), Violation> {
    for id in c.task_ids() {
        let started = c.task(id).map_or(0, |t| t.started);
        let faults = faults.get(&id).copied().unwrap_or(0);
        if started > 1 + faults {
            return Err(Violation::new(
                "MR-5",
                format!("{id} ran {started} times after {faults} fault(s)"),
            ));
        }
    }
    Ok(())
}
