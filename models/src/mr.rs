//! # The MapReduce coordinator, model-checked
//!
//! This model runs the coordinator core (`aver_core::mr::Coordinator`) and one worker core
//! (`aver_core::mr::Worker`) per worker, and explores every interleaving of their inputs with
//! crashing and slow workers. It is written directly against Stateright's `Model` (not its
//! actor framework) because the world around the cores has three parts of its own: ordered
//! connections, a file system, and the moment a dead worker's connection closes.
//!
//! ## What is modelled
//!
//! * **Connections.** One FIFO queue per direction per worker, like the runtime's Unix
//!   stream. A worker's messages sent before it died are still delivered; then the
//!   coordinator learns of the death (`NoticeLoss` → `on_worker_lost`), exactly as the
//!   runtime reads a closed connection after the buffered frames.
//! * **Workers.** The worker core decides; the model carries out its actions one step at a
//!   time: `Execute` (the run completes into temporary files, then `on_executed`), `Commit`
//!   (the rename: the task's final files now hold this run's output, then `on_committed`),
//!   `Discard`, `Exit`. A worker may crash between any two steps (`Crash`, within
//!   `crashes`); at least one worker never crashes.
//! * **Slow workers.** Any armed timer may fire at any moment: a `TaskTimeout` firing while
//!   the run's worker is still working is exactly a slow worker. Firings of `TaskTimeout` are
//!   bounded by `timeouts` (so runs are finite); `Backup` timers fire freely.
//! * **The file system** is `fs: task → run`: which run's rename put the task's final files
//!   in place (a map task's `mr-X-*`, a reduce task's `mr-out-Y`).
//! * **Faults** per task are counted as ghost state for MR-5: a `TaskTimeout` of a running
//!   run, a `Backup` timer that asked for a copy, the loss of a worker running or committing
//!   it.
//!
//! ## Properties
//!
//! `always`: MR-1 (no task lost), MR-2 (reduce after maps), MR-3 (outputs from completed
//! tasks: a done task's files hold the accepted run, so `done` implies every output is
//! present and final), MR-4 (an older run never replaces a newer run's output), MR-5 (runs
//! justified by faults), and MR-6 (the job completes while a worker lives: from every
//! reachable state, running the system fairly with no further faults ends with the job done
//! and every live worker told to exit). `sometimes`: the job is done; the job is done after
//! every fault the bounds allow (a crash and a timeout in `ci`).
//!
//! Seeded bugs ([`MrBug`]) are caught by what a user loses: `reassign-without-timeout` by
//! MR-5 (an extra run that side-effecting apps observe), `done-on-stale-report` by MR-3 (the
//! job reports done while an output is missing or is replaced afterwards).

use aver_core::contract::{NodeId, TimerCmd, Violation};
use aver_core::mr::invariants::{
    no_stale_overwrite, no_task_lost, outputs_committed, reduce_after_maps, runs_justified,
};
use aver_core::mr::{
    Attempt, Coordinator, CoordinatorConfig, Message, MrBug, MrBugs, TaskId, Timer, ToCoordinator,
    ToWorker, Worker, WorkerAction, WorkerState,
};
use stateright::{Expectation, Model, Property};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;

/// Bounds and switches of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MrModelCfg {
    /// Input files (map tasks).
    pub files: u32,
    /// Reduce tasks.
    pub n_reduce: u32,
    /// Worker processes.
    pub workers: u32,
    /// Worker crashes in all (fewer than `workers`: one worker always lives).
    pub crashes: u32,
    /// `TaskTimeout` firings in all.
    pub timeouts: u32,
    /// Backup tasks enabled in the coordinator.
    pub backups: bool,
    /// Seeded bugs.
    pub bugs: MrBugs,
}

impl MrModelCfg {
    /// The main CI configuration: 2 map tasks, 1 reduce task, 2 workers, one crash, one
    /// timeout.
    pub fn ci() -> Self {
        MrModelCfg {
            files: 2,
            n_reduce: 1,
            workers: 2,
            crashes: 1,
            timeouts: 1,
            backups: false,
            bugs: MrBugs::NONE,
        }
    }

    /// The second CI configuration: backups on, with a timeout.
    pub fn ci_backups() -> Self {
        MrModelCfg {
            crashes: 0,
            backups: true,
            ..MrModelCfg::ci()
        }
    }

    /// Every CI configuration, by name.
    pub fn ci_all() -> Vec<(&'static str, MrModelCfg)> {
        vec![
            ("ci", MrModelCfg::ci()),
            ("ci_backups", MrModelCfg::ci_backups()),
        ]
    }

    /// The boundary on runs per task: one more than a correct coordinator can reach (one run
    /// plus one per fault), so that a seeded bug that re-runs tasks without faults stays
    /// finite yet its first extra run is still inside the bounds and seen by MR-5.
    pub fn runs_max(&self) -> u32 {
        2 + self.crashes + self.timeouts + u32::from(self.backups) * 2
    }

    /// The model.
    pub fn into_model(self) -> MrModel {
        assert!(self.crashes < self.workers, "one worker must always live");
        assert!(self.files >= 1 && self.n_reduce >= 1 && self.workers >= 1);
        MrModel { cfg: self }
    }
}

impl fmt::Display for MrModelCfg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bugs: Vec<&str> = MrBug::ALL
            .iter()
            .filter(|b| self.bugs.has(**b))
            .map(|b| b.name())
            .collect();
        write!(
            f,
            "files={} reduce={} workers={} crashes={} timeouts={} backups={} bugs=[{}]",
            self.files,
            self.n_reduce,
            self.workers,
            self.crashes,
            self.timeouts,
            self.backups,
            bugs.join(",")
        )
    }
}

/// The model.
#[derive(Clone, Debug)]
pub struct MrModel {
    /// Its configuration.
    pub cfg: MrModelCfg,
}

/// One worker process, its connection, and what its core asked it to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorkerSlot {
    /// The worker core.
    pub core: Worker,
    /// Running (not crashed, not exited).
    pub alive: bool,
    /// Crashed (as opposed to exited when told).
    pub crashed: bool,
    /// The coordinator has read this worker's closed connection.
    pub loss_noticed: bool,
    /// The action the core asked for, not yet carried out.
    pub pending: Option<WorkerAction>,
    /// Worker → coordinator messages in flight, in order.
    pub to_coordinator: VecDeque<ToCoordinator>,
    /// Coordinator → worker messages in flight, in order.
    pub to_worker: VecDeque<ToWorker>,
}

/// One state of [`MrModel`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MrState {
    /// The coordinator core.
    pub coord: Coordinator,
    /// The coordinator's armed timers.
    pub armed: BTreeSet<Timer>,
    /// The workers.
    pub workers: Vec<WorkerSlot>,
    /// Which run's output each task's final files hold.
    pub fs: BTreeMap<TaskId, Attempt>,
    /// Faults per task (ghost state for MR-5).
    pub faults: BTreeMap<TaskId, u32>,
    /// The first MR-4 violation seen by a rename (ghost state).
    pub stale_overwrite: Option<Violation>,
    /// Crashes left.
    pub crashes_left: u32,
    /// `TaskTimeout` firings left.
    pub timeouts_left: u32,
}

/// One step of [`MrModel`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MrAction {
    /// The coordinator reads the next message from worker `.0`.
    DeliverToCoordinator(usize),
    /// Worker `.0` reads the next message from the coordinator.
    DeliverToWorker(usize),
    /// Worker `.0` carries out its pending action.
    WorkerStep(usize),
    /// Worker `.0` crashes.
    Crash(usize),
    /// The coordinator reads worker `.0`'s closed connection.
    NoticeLoss(usize),
    /// A coordinator timer fires.
    Fire(Timer),
}

impl fmt::Display for MrAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MrAction::DeliverToCoordinator(w) => write!(f, "coordinator reads from w{w}"),
            MrAction::DeliverToWorker(w) => write!(f, "w{w} reads from the coordinator"),
            MrAction::WorkerStep(w) => write!(f, "w{w} carries out its action"),
            MrAction::Crash(w) => write!(f, "w{w} crashes"),
            MrAction::NoticeLoss(w) => write!(f, "coordinator sees w{w}'s connection close"),
            MrAction::Fire(t) => write!(f, "timer {t:?} fires"),
        }
    }
}

fn node(w: usize) -> NodeId {
    NodeId(w as u32 + 1)
}

impl MrModel {
    fn initial(&self) -> MrState {
        let files = (0..self.cfg.files).map(|i| format!("f{i}")).collect();
        let mut job = CoordinatorConfig::new(files, self.cfg.n_reduce);
        job.backups = self.cfg.backups;
        job.bugs = self.cfg.bugs;
        let mut s = MrState {
            coord: Coordinator::new(Arc::new(job)),
            armed: BTreeSet::new(),
            workers: Vec::new(),
            fs: BTreeMap::new(),
            faults: BTreeMap::new(),
            stale_overwrite: None,
            crashes_left: self.cfg.crashes,
            timeouts_left: self.cfg.timeouts,
        };
        for w in 0..self.cfg.workers as usize {
            s.workers.push(WorkerSlot {
                core: Worker::new(NodeId(0)),
                alive: true,
                crashed: false,
                loss_noticed: false,
                pending: None,
                to_coordinator: VecDeque::new(),
                to_worker: VecDeque::new(),
            });
            drain_worker(&mut s, w);
        }
        s
    }

    /// Applies `action` to `s` in place; false if it is not enabled.
    pub fn step(&self, s: &mut MrState, action: &MrAction) -> bool {
        match *action {
            MrAction::DeliverToCoordinator(w) => {
                let Some(msg) = s.workers[w].to_coordinator.pop_front() else {
                    return false;
                };
                s.coord.on_message(node(w), msg);
                drain_coordinator(s);
            }
            MrAction::DeliverToWorker(w) => {
                let slot = &mut s.workers[w];
                if !slot.alive || slot.pending.is_some() {
                    return false;
                }
                let Some(msg) = slot.to_worker.pop_front() else {
                    return false;
                };
                slot.core.on_message(msg);
                drain_worker(s, w);
            }
            MrAction::WorkerStep(w) => {
                if !s.workers[w].alive {
                    return false;
                }
                let Some(action) = s.workers[w].pending.take() else {
                    return false;
                };
                carry_out(s, w, action);
            }
            MrAction::Crash(w) => {
                let slot = &mut s.workers[w];
                if !slot.alive || s.crashes_left == 0 {
                    return false;
                }
                s.crashes_left -= 1;
                slot.alive = false;
                slot.crashed = true;
                slot.pending = None;
                slot.to_worker.clear();
            }
            MrAction::NoticeLoss(w) => {
                let slot = &s.workers[w];
                if slot.alive || slot.loss_noticed || !slot.to_coordinator.is_empty() {
                    return false;
                }
                count_loss_faults(s, node(w));
                s.workers[w].loss_noticed = true;
                s.coord.on_worker_lost(node(w));
                drain_coordinator(s);
            }
            MrAction::Fire(t) => return self.fire(s, t),
        }
        true
    }

    fn fire(&self, s: &mut MrState, t: Timer) -> bool {
        if !s.armed.contains(&t) {
            return false;
        }
        match t {
            Timer::TaskTimeout(id, a) => {
                if s.timeouts_left == 0 {
                    return false;
                }
                s.timeouts_left -= 1;
                let running = s.coord.task(id).is_some_and(|k| k.running.contains_key(&a));
                *s.faults.entry(id).or_default() += u32::from(running);
            }
            Timer::Backup(..) => {}
        }
        let before = backup_state(&s.coord, t);
        s.armed.remove(&t);
        s.coord.on_timeout(t);
        if let Timer::Backup(id, _) = t {
            // The timer asked for a copy if it set `backup_wanted` or a copy started at once.
            let after = backup_state(&s.coord, t);
            let asked = (!before.0 && after.0) || after.1 > before.1;
            *s.faults.entry(id).or_default() += u32::from(asked);
        }
        drain_coordinator(s);
        true
    }

    /// Every action, enabled or not, in a fixed order (faults last).
    fn candidate_actions(&self, s: &MrState, out: &mut Vec<MrAction>) {
        for w in 0..s.workers.len() {
            out.push(MrAction::DeliverToCoordinator(w));
            out.push(MrAction::DeliverToWorker(w));
            out.push(MrAction::WorkerStep(w));
            out.push(MrAction::NoticeLoss(w));
        }
        out.extend(s.armed.iter().map(|&t| MrAction::Fire(t)));
        for w in 0..s.workers.len() {
            out.push(MrAction::Crash(w));
        }
    }

    /// MR-6: runs the system from `s` with no further fault — always the first enabled
    /// delivery, worker step or loss notice — until nothing is enabled, and checks that the
    /// job is done and every live worker was told to exit.
    pub fn completes_fairly(&self, s: &MrState) -> Result<(), Violation> {
        const STEPS_MAX: usize = 10_000;
        let mut s = s.clone();
        s.crashes_left = 0;
        s.timeouts_left = 0;
        let mut actions = Vec::new();
        for _ in 0..STEPS_MAX {
            actions.clear();
            self.candidate_actions(&s, &mut actions);
            let progressed = actions
                .iter()
                .filter(|a| !matches!(a, MrAction::Fire(_) | MrAction::Crash(_)))
                .any(|a| self.step(&mut s, a));
            if !progressed {
                break;
            }
        }
        let live_waiting = s
            .workers
            .iter()
            .any(|w| w.alive && *w.core.state() != WorkerState::Exited);
        if !s.coord.is_done() {
            return Err(Violation::new("MR-6", "the job stalls with a worker alive"));
        }
        if live_waiting {
            return Err(Violation::new(
                "MR-6",
                "job done but a live worker was never told",
            ));
        }
        Ok(())
    }
}

/// `(backup_wanted, started)` of the timer's task.
fn backup_state(c: &Coordinator, t: Timer) -> (bool, u32) {
    let (Timer::Backup(id, _) | Timer::TaskTimeout(id, _)) = t;
    c.task(id)
        .map_or((false, 0), |k| (k.backup_wanted, k.started))
}

fn drain_coordinator(s: &mut MrState) {
    let ready = s.coord.take_ready();
    for (to, msg) in ready.messages {
        let w = to.0 as usize - 1;
        if let Message::ToWorker(m) = msg
            && s.workers[w].alive
        {
            s.workers[w].to_worker.push_back(m);
        }
    }
    for cmd in ready.timers {
        match cmd {
            TimerCmd::Set(t) => s.armed.insert(t),
            TimerCmd::Cancel(t) => s.armed.remove(&t),
        };
    }
}

fn drain_worker(s: &mut MrState, w: usize) {
    let slot = &mut s.workers[w];
    let ready = slot.core.take_ready();
    for (_, msg) in ready.messages {
        if let Message::ToCoordinator(m) = msg {
            slot.to_coordinator.push_back(m);
        }
    }
    assert!(ready.apply.len() <= 1, "one action per input");
    if let Some(a) = ready.apply.into_iter().next() {
        slot.pending = Some(a);
    }
}

/// Carries out one worker action: the file-system effects happen here.
fn carry_out(s: &mut MrState, w: usize, action: WorkerAction) {
    match action {
        WorkerAction::Execute(a) => s.workers[w].core.on_executed(a.task, a.attempt),
        WorkerAction::Commit { task, attempt } => {
            let old = s.fs.insert(task, attempt);
            if s.stale_overwrite.is_none()
                && let Err(v) = no_stale_overwrite(task, old, attempt)
            {
                s.stale_overwrite = Some(v);
            }
            s.workers[w].core.on_committed(task, attempt);
        }
        WorkerAction::Discard { .. } => {}
        WorkerAction::Exit => s.workers[w].alive = false,
    }
    drain_worker(s, w);
}

/// A lost worker is a fault for every task it was running or committing.
fn count_loss_faults(s: &mut MrState, worker: NodeId) {
    for id in s.coord.task_ids() {
        let t = s.coord.task(id).expect("own task");
        let holds = t.running.values().any(|&w| w == worker)
            || t.committing.is_some_and(|(_, w)| w == worker);
        if holds {
            *s.faults.entry(id).or_default() += 1;
        }
    }
}

/// A named property with its evaluation, shared by the model and the tests.
pub struct MrProperty {
    /// Name, prefixed with the catalogue ID for invariants.
    pub name: &'static str,
    /// always or sometimes.
    pub expectation: Expectation,
    /// The condition.
    pub condition: fn(&MrModel, &MrState) -> bool,
}

/// Every property of the model.
pub const PROPERTIES: &[MrProperty] = &[
    MrProperty {
        name: "MR-1 no task lost",
        expectation: Expectation::Always,
        condition: |_, s| no_task_lost(&s.coord, &s.armed).is_ok(),
    },
    MrProperty {
        name: "MR-2 reduce after maps",
        expectation: Expectation::Always,
        condition: |_, s| reduce_after_maps(&s.coord).is_ok(),
    },
    MrProperty {
        name: "MR-3 outputs from completed tasks",
        expectation: Expectation::Always,
        condition: |_, s| outputs_committed(&s.coord, &s.fs).is_ok(),
    },
    MrProperty {
        name: "MR-4 no stale overwrite",
        expectation: Expectation::Always,
        condition: |_, s| s.stale_overwrite.is_none(),
    },
    MrProperty {
        name: "MR-5 runs justified",
        expectation: Expectation::Always,
        condition: |_, s| runs_justified(&s.coord, &s.faults).is_ok(),
    },
    MrProperty {
        name: "MR-6 job completes while a worker lives",
        expectation: Expectation::Always,
        condition: |m, s| m.completes_fairly(s).is_ok(),
    },
    MrProperty {
        name: "job done",
        expectation: Expectation::Sometimes,
        condition: |_, s| s.coord.is_done(),
    },
    MrProperty {
        name: "job done after every fault the bounds allow",
        expectation: Expectation::Sometimes,
        condition: |m, s| {
            s.coord.is_done() && (m.cfg.crashes == 0 || s.crashes_left == 0) && s.timeouts_left == 0
        },
    },
];

/// Why a property fails in `s` (the invariant function's message), for counterexamples.
pub fn explain(model: &MrModel, name: &str, s: &MrState) -> Option<String> {
    let r = match name.split(' ').next()? {
        "MR-1" => no_task_lost(&s.coord, &s.armed),
        "MR-2" => reduce_after_maps(&s.coord),
        "MR-3" => outputs_committed(&s.coord, &s.fs),
        "MR-4" => s.stale_overwrite.clone().map_or(Ok(()), Err),
        "MR-5" => runs_justified(&s.coord, &s.faults),
        "MR-6" => model.completes_fairly(s),
        _ => return None,
    };
    r.err().map(|v| v.detail)
}

/// One step of a path in words, with the message read or the action carried out.
pub fn describe_step(s: &MrState, action: &MrAction) -> String {
    match *action {
        MrAction::DeliverToCoordinator(w) => match s.workers[w].to_coordinator.front() {
            Some(m) => format!("coordinator reads {m:?} from w{w}"),
            None => action.to_string(),
        },
        MrAction::DeliverToWorker(w) => match s.workers[w].to_worker.front() {
            Some(m) => format!("w{w} reads {m:?}"),
            None => action.to_string(),
        },
        MrAction::WorkerStep(w) => match &s.workers[w].pending {
            Some(a) => format!("w{w} carries out {a:?}"),
            None => action.to_string(),
        },
        _ => action.to_string(),
    }
}

impl Model for MrModel {
    type State = MrState;
    type Action = MrAction;

    fn init_states(&self) -> Vec<MrState> {
        vec![self.initial()]
    }

    fn actions(&self, s: &MrState, actions: &mut Vec<MrAction>) {
        self.candidate_actions(s, actions);
    }

    fn next_state(&self, last: &MrState, action: MrAction) -> Option<MrState> {
        let mut next = last.clone();
        self.step(&mut next, &action).then_some(next)
    }

    fn format_action(&self, action: &MrAction) -> String {
        action.to_string()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        PROPERTIES
            .iter()
            .map(|p| match p.expectation {
                Expectation::Always => Property::always(p.name, p.condition),
                Expectation::Sometimes => Property::sometimes(p.name, p.condition),
                Expectation::Eventually => Property::eventually(p.name, p.condition),
            })
            .collect()
    }

    fn within_boundary(&self, s: &MrState) -> bool {
        let max = self.cfg.runs_max();
        s.coord
            .task_ids()
            .iter()
            .all(|&id| s.coord.task(id).is_some_and(|t| t.started <= max))
    }
}

/// A state in words, for counterexamples.
pub fn describe(s: &MrState) -> Vec<String> {
    let mut lines = Vec::new();
    for id in s.coord.task_ids() {
        let t = s.coord.task(id).expect("own task");
        lines.push(format!(
            "{id}: started={} running={:?} committing={:?} done={:?} files={:?} faults={}",
            t.started,
            t.running
                .iter()
                .map(|(a, w)| format!("{a}@{w}"))
                .collect::<Vec<_>>(),
            t.committing.map(|(a, w)| format!("{a}@{w}")),
            t.done.map(|a| a.to_string()),
            s.fs.get(&id).map(|a| a.to_string()),
            s.faults.get(&id).copied().unwrap_or(0)
        ));
    }
    for (i, w) in s.workers.iter().enumerate() {
        let status = match (w.alive, w.crashed) {
            (true, _) => "alive",
            (false, true) => "crashed",
            (false, false) => "exited",
        };
        lines.push(format!(
            "w{i} ({status}): {:?} pending={:?}",
            w.core.state(),
            w.pending
        ));
    }
    lines
}
