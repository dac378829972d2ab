//! The coordinator: hands out tasks, takes them back when a run times out or its worker is
//! lost, grants exactly one run of each task the right to commit its output, and declares the
//! job done when every task's output is in place. See the module docs of [`crate::mr`].

use super::bugs::{MrBug, MrBugs};
use super::types::{Assignment, Attempt, Event, Message, Phase, TaskId, ToCoordinator, ToWorker};
use crate::contract::{self, NodeId, Ready, TimerCmd};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;

/// The coordinator's named timers; the driver chooses their durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// A run has been going for too long (the lab: 10 s): give the task to someone else.
    /// The run itself is not cancelled; if it finishes first it may still commit.
    TaskTimeout(TaskId, Attempt),
    /// A run has been going long enough to deserve a backup copy near the end of its phase
    /// (MapReduce paper §3.6). Set only when backups are enabled.
    Backup(TaskId, Attempt),
}

/// What the coordinator asks of its driver after one input. It persists nothing.
pub type CoordinatorReady = Ready<Infallible, Message, Event, Timer>;

/// The job.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CoordinatorConfig {
    /// Input files, one map task each, as given (never opened by the coordinator).
    pub files: Vec<String>,
    /// Number of reduce tasks (the lab: 10).
    pub n_reduce: u32,
    /// Start backup runs of straggling tasks near the end of a phase.
    pub backups: bool,
    /// Reported failures of one task (not crashes or timeouts) after which the job is
    /// abandoned: an input file that cannot be read will not become readable by retrying.
    pub task_failures_max: u32,
    /// Seeded bugs (tests and `aver mr check` only).
    pub bugs: MrBugs,
}

impl CoordinatorConfig {
    /// A job over `files` with `n_reduce` reduce tasks, no backups, three tries per task.
    pub fn new(files: Vec<String>, n_reduce: u32) -> Self {
        CoordinatorConfig {
            files,
            n_reduce,
            backups: false,
            task_failures_max: 3,
            bugs: MrBugs::NONE,
        }
    }
}

/// The coordinator's record of one task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Task {
    /// Runs handed out so far; the next run is `Attempt(started + 1)`.
    pub started: u32,
    /// Runs the coordinator is waiting for, and their workers. A run leaves this map when it
    /// finishes, times out, fails, or its worker is lost.
    pub running: BTreeMap<Attempt, NodeId>,
    /// The one run allowed to commit (rename its output into place), and its worker.
    pub committing: Option<(Attempt, NodeId)>,
    /// The run whose output is in place: the task is done.
    pub done: Option<Attempt>,
    /// The `Backup` timer of the task's only run fired: a waiting worker may get a copy.
    pub backup_wanted: bool,
    /// Failures reported by workers (not crashes, not timeouts).
    pub failures: u32,
}

impl Task {
    /// Not done, not committing, and nobody running it: the next request gets it.
    pub fn is_idle(&self) -> bool {
        self.done.is_none() && self.committing.is_none() && self.running.is_empty()
    }
}

/// The MapReduce coordinator core.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Coordinator {
    config: Arc<CoordinatorConfig>,
    maps: Vec<Task>,
    reduces: Vec<Task>,
    /// Workers whose `Request` waits for a task, in id order.
    waiting: BTreeSet<NodeId>,
    /// Workers known to be dead (their connection closed). Their messages are ignored.
    lost: BTreeSet<NodeId>,
    /// The job was abandoned: the task and the reason.
    failed: Option<(TaskId, String)>,
    ready: CoordinatorReady,
}

impl Coordinator {
    /// A coordinator for `config`'s job, every task idle.
    pub fn new(config: Arc<CoordinatorConfig>) -> Self {
        assert!(config.n_reduce >= 1, "a job needs at least one reduce task");
        let n_map = config.files.len();
        Coordinator {
            maps: vec![Task::default(); n_map],
            reduces: vec![Task::default(); config.n_reduce as usize],
            config,
            waiting: BTreeSet::new(),
            lost: BTreeSet::new(),
            failed: None,
            ready: CoordinatorReady::default(),
        }
    }

    // ---- inputs -----------------------------------------------------------------------------

    /// A message from worker `from`.
    pub fn on_message(&mut self, from: NodeId, msg: ToCoordinator) {
        if self.lost.contains(&from) {
            return;
        }
        match msg {
            ToCoordinator::Request => {
                self.waiting.insert(from);
                self.serve_waiting();
            }
            ToCoordinator::Finished { task, attempt } => self.on_finished(from, task, attempt),
            ToCoordinator::Committed { task, attempt } => self.on_committed(from, task, attempt),
            ToCoordinator::Failed {
                task,
                attempt,
                reason,
            } => self.on_failed(from, task, attempt, reason),
        }
    }

    /// A named timer fired.
    pub fn on_timeout(&mut self, timer: Timer) {
        match timer {
            Timer::TaskTimeout(id, attempt) => {
                let Some(task) = self.task_mut(id) else {
                    return;
                };
                if task.running.remove(&attempt).is_some() {
                    self.cancel_backup(id, attempt);
                    self.serve_waiting();
                }
            }
            Timer::Backup(id, attempt) => {
                let Some(task) = self.task_mut(id) else {
                    return;
                };
                let only_run = task.running.len() == 1 && task.running.contains_key(&attempt);
                if only_run && task.committing.is_none() && task.done.is_none() {
                    task.backup_wanted = true;
                    self.serve_waiting();
                }
            }
        }
    }

    /// Worker `worker` is known to be dead (its connection closed): its runs are given up at
    /// once, without waiting for their timeouts, and a commit it was granted is revoked (a
    /// dead process renames nothing any more).
    pub fn on_worker_lost(&mut self, worker: NodeId) {
        if !self.lost.insert(worker) {
            return;
        }
        self.waiting.remove(&worker);
        let mut cancelled = Vec::new();
        for id in self.task_ids() {
            let task = self.task_mut(id).expect("own task id");
            task.running.retain(|&attempt, w| {
                let keep = *w != worker;
                if !keep {
                    cancelled.push((id, attempt));
                }
                keep
            });
            if task.committing.is_some_and(|(_, w)| w == worker) {
                task.committing = None;
            }
        }
        for (id, attempt) in cancelled {
            self.cancel_timers(id, attempt);
        }
        self.serve_waiting();
    }

    /// Drains the outputs of the inputs so far.
    pub fn take_ready(&mut self) -> CoordinatorReady {
        std::mem::take(&mut self.ready)
    }

    // ---- message handlers -------------------------------------------------------------------

    /// A run finished: the first finished run of a task (timed out or not) is granted the
    /// commit; every later one is told to discard its output.
    fn on_finished(&mut self, from: NodeId, id: TaskId, attempt: Attempt) {
        let bugs = self.config.bugs;
        let Some(task) = self.task_mut(id) else {
            return;
        };
        if attempt.0 == 0 || attempt.0 > task.started {
            return; // never handed out: not a run of ours
        }
        let was_running = match task.running.get(&attempt) {
            Some(&w) if w == from => task.running.remove(&attempt).is_some(),
            Some(_) => return, // this run belongs to another worker
            None => false,     // a run we gave up on (timed out): it may still commit
        };
        let reply = if task.done.is_some() || task.committing.is_some() {
            ToWorker::Discard { task: id, attempt }
        } else if bugs.has(MrBug::DoneOnStaleReport) && !was_running {
            task.done = Some(attempt);
            self.send(from, ToWorker::Commit { task: id, attempt });
            self.note_done(id);
            return;
        } else {
            task.committing = Some((attempt, from));
            task.backup_wanted = false;
            ToWorker::Commit { task: id, attempt }
        };
        if was_running {
            self.cancel_timers(id, attempt);
        }
        self.send(from, reply);
    }

    /// The granted run renamed its output into place: the task is done.
    fn on_committed(&mut self, from: NodeId, id: TaskId, attempt: Attempt) {
        let Some(task) = self.task_mut(id) else {
            return;
        };
        if task.committing != Some((attempt, from)) {
            return;
        }
        task.committing = None;
        task.done = Some(attempt);
        self.note_done(id);
    }

    /// A run failed by report: retry elsewhere, or abandon the job after too many failures.
    fn on_failed(&mut self, from: NodeId, id: TaskId, attempt: Attempt, reason: String) {
        let max = self.config.task_failures_max;
        let Some(task) = self.task_mut(id) else {
            return;
        };
        let running = task.running.get(&attempt) == Some(&from);
        let committing = task.committing == Some((attempt, from));
        if !running && !committing {
            return;
        }
        task.running.remove(&attempt);
        if committing {
            task.committing = None;
        }
        task.failures += 1;
        let give_up = task.failures >= max;
        self.cancel_timers(id, attempt);
        if give_up && self.failed.is_none() {
            self.failed = Some((id, reason.clone()));
            self.ready.apply.push(Event::JobFailed { task: id, reason });
        }
        self.serve_waiting();
    }

    // ---- scheduling -------------------------------------------------------------------------

    /// Hands a task to every waiting worker that can get one; tells them all to exit once the
    /// job is over.
    fn serve_waiting(&mut self) {
        if self.is_over() {
            for w in std::mem::take(&mut self.waiting) {
                self.send(w, ToWorker::Exit);
            }
            return;
        }
        for w in self.waiting.clone() {
            if let Some((id, backup)) = self.pick(w) {
                self.waiting.remove(&w);
                self.assign(w, id, backup);
            }
        }
    }

    /// The task for worker `w`: the first idle task of the current phase; else, near the
    /// end of the phase (nothing idle), a backup copy of a straggler that `w` is not running.
    fn pick(&self, w: NodeId) -> Option<(TaskId, bool)> {
        let (phase_tasks, make): (&[Task], fn(u32) -> TaskId) = match self.phase() {
            Phase::Map => (&self.maps, TaskId::Map),
            Phase::Reduce => (&self.reduces, TaskId::Reduce),
            Phase::Done => return None,
        };
        let id = |i: usize| make(i as u32);
        if let Some(i) = phase_tasks.iter().position(Task::is_idle) {
            return Some((id(i), false));
        }
        let copy_ok = |t: &Task, need_backup: bool| {
            t.done.is_none()
                && t.committing.is_none()
                && !t.running.is_empty()
                && !t.running.values().any(|&r| r == w)
                && (!need_backup || (t.backup_wanted && t.running.len() == 1))
        };
        if self.config.backups
            && let Some(i) = phase_tasks.iter().position(|t| copy_ok(t, true))
        {
            return Some((id(i), true));
        }
        if self.config.bugs.has(MrBug::ReassignWithoutTimeout)
            && let Some(i) = phase_tasks.iter().position(|t| copy_ok(t, false))
        {
            return Some((id(i), true));
        }
        None
    }

    fn assign(&mut self, w: NodeId, id: TaskId, backup: bool) {
        let (n_map, n_reduce) = (self.n_map(), self.config.n_reduce);
        let input = match id {
            TaskId::Map(i) => Some(self.config.files[i as usize].clone()),
            TaskId::Reduce(_) => None,
        };
        let backups = self.config.backups;
        let task = self.task_mut(id).expect("picked task exists");
        task.started += 1;
        let attempt = Attempt(task.started);
        task.running.insert(attempt, w);
        task.backup_wanted = false;
        self.ready
            .timers
            .push(TimerCmd::Set(Timer::TaskTimeout(id, attempt)));
        if backups {
            self.ready
                .timers
                .push(TimerCmd::Set(Timer::Backup(id, attempt)));
        }
        let assignment = Assignment {
            task: id,
            attempt,
            input,
            n_map,
            n_reduce,
        };
        self.send(w, ToWorker::Assign(assignment));
        self.ready.apply.push(Event::Assigned {
            task: id,
            attempt,
            backup,
        });
    }

    /// `id` just became done: forget its other runs, and move the job on.
    fn note_done(&mut self, id: TaskId) {
        let task = self.task_mut(id).expect("done task exists");
        let others: Vec<Attempt> = std::mem::take(&mut task.running).into_keys().collect();
        task.backup_wanted = false;
        for attempt in others {
            self.cancel_timers(id, attempt);
        }
        self.ready.apply.push(Event::TaskDone(id));
        if self.phase() == Phase::Done {
            self.ready.apply.push(Event::JobDone);
        }
        self.serve_waiting();
    }

    fn cancel_timers(&mut self, id: TaskId, attempt: Attempt) {
        self.ready
            .timers
            .push(TimerCmd::Cancel(Timer::TaskTimeout(id, attempt)));
        self.cancel_backup(id, attempt);
    }

    fn cancel_backup(&mut self, id: TaskId, attempt: Attempt) {
        if self.config.backups {
            self.ready
                .timers
                .push(TimerCmd::Cancel(Timer::Backup(id, attempt)));
        }
    }

    fn send(&mut self, to: NodeId, msg: ToWorker) {
        self.ready.messages.push((to, Message::ToWorker(msg)));
    }

    fn task_mut(&mut self, id: TaskId) -> Option<&mut Task> {
        match id {
            TaskId::Map(i) => self.maps.get_mut(i as usize),
            TaskId::Reduce(i) => self.reduces.get_mut(i as usize),
        }
    }

    // ---- queries ----------------------------------------------------------------------------

    /// The job's configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// Number of map tasks (= input files).
    pub fn n_map(&self) -> u32 {
        self.maps.len() as u32
    }

    /// The current phase: map until every map task is done, then reduce, then done.
    pub fn phase(&self) -> Phase {
        if self.maps.iter().any(|t| t.done.is_none()) {
            Phase::Map
        } else if self.reduces.iter().any(|t| t.done.is_none()) {
            Phase::Reduce
        } else {
            Phase::Done
        }
    }

    /// Every task is done: every output is in place. (The lab's `Done()`.)
    pub fn is_done(&self) -> bool {
        self.phase() == Phase::Done
    }

    /// The job was abandoned: which task failed too often, and its last reason.
    pub fn failed(&self) -> Option<&(TaskId, String)> {
        self.failed.as_ref()
    }

    /// Done or abandoned: workers are told to exit.
    pub fn is_over(&self) -> bool {
        self.is_done() || self.failed.is_some()
    }

    /// One task's record.
    pub fn task(&self, id: TaskId) -> Option<&Task> {
        match id {
            TaskId::Map(i) => self.maps.get(i as usize),
            TaskId::Reduce(i) => self.reduces.get(i as usize),
        }
    }

    /// Every task id: maps first, then reduces.
    pub fn task_ids(&self) -> Vec<TaskId> {
        let maps = (0..self.n_map()).map(TaskId::Map);
        maps.chain((0..self.config.n_reduce).map(TaskId::Reduce))
            .collect()
    }

    /// Tasks done in a phase, as `(done, total)`.
    pub fn progress(&self, phase: Phase) -> (usize, usize) {
        let tasks = match phase {
            Phase::Map => &self.maps,
            Phase::Reduce => &self.reduces,
            Phase::Done => return (0, 0),
        };
        let done = tasks.iter().filter(|t| t.done.is_some()).count();
        (done, tasks.len())
    }

    /// Workers whose request waits for a task.
    pub fn waiting(&self) -> &BTreeSet<NodeId> {
        &self.waiting
    }

    /// Workers known to be dead.
    pub fn lost(&self) -> &BTreeSet<NodeId> {
        &self.lost
    }
}

impl contract::Core for Coordinator {
    type Persist = Infallible;
    type Msg = Message;
    type Apply = Event;
    type Timer = Timer;

    /// Messages meant for workers are ignored.
    fn on_message(&mut self, from: NodeId, msg: Message) {
        if let Message::ToCoordinator(msg) = msg {
            Coordinator::on_message(self, from, msg)
        }
    }
    fn on_timeout(&mut self, timer: Timer) {
        Coordinator::on_timeout(self, timer)
    }
    fn take_ready(&mut self) -> CoordinatorReady {
        Coordinator::take_ready(self)
    }
}
