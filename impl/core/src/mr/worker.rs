//! The worker loop as a pure core: request a task, run it, ask to commit, commit or discard,
//! request again; exit when told. The driver does the actual work (reading input, running the
//! application, writing and renaming files) when the core asks for it through
//! [`WorkerAction`]s, and reports back with [`Worker::on_executed`], [`Worker::on_committed`]
//! or [`Worker::on_failed`].

use super::types::{Assignment, Attempt, Message, TaskId, ToCoordinator, ToWorker};
use crate::contract::{self, NodeId, Ready};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;

/// What the worker asks its driver to do (the `apply` stream).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkerAction {
    /// Run the task into temporary files; then call [`Worker::on_executed`] (or
    /// [`Worker::on_failed`]).
    Execute(Assignment),
    /// Rename the run's temporary files to their final names; then call
    /// [`Worker::on_committed`] (or [`Worker::on_failed`]).
    Commit {
        /// The task.
        task: TaskId,
        /// The run.
        attempt: Attempt,
    },
    /// Delete the run's temporary files (another run committed first). Nothing to report.
    Discard {
        /// The task.
        task: TaskId,
        /// The run.
        attempt: Attempt,
    },
    /// The job is over: exit.
    Exit,
}

/// What the worker asks of its driver after one input. No storage, no timers.
pub type WorkerReady = Ready<Infallible, Message, WorkerAction, Infallible>;

/// Where the worker is in its loop.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkerState {
    /// A `Request` is outstanding.
    Requesting,
    /// Running a task (the driver is executing it).
    Running(TaskId, Attempt),
    /// Finished a run; waiting for `Commit` or `Discard`.
    Finishing(TaskId, Attempt),
    /// Granted the commit; the driver is renaming.
    Committing(TaskId, Attempt),
    /// Told to exit.
    Exited,
}

/// The worker core.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Worker {
    coordinator: NodeId,
    state: WorkerState,
    ready: WorkerReady,
}

impl Worker {
    /// A worker that talks to `coordinator`. Its first output is a `Request`.
    pub fn new(coordinator: NodeId) -> Self {
        let mut w = Worker {
            coordinator,
            state: WorkerState::Requesting,
            ready: WorkerReady::default(),
        };
        w.send(ToCoordinator::Request);
        w
    }

    /// Where the worker is.
    pub fn state(&self) -> &WorkerState {
        &self.state
    }

    /// A message from the coordinator. Messages that do not fit the current state are
    /// ignored (they cannot come from a correct coordinator over an ordered connection).
    pub fn on_message(&mut self, msg: ToWorker) {
        match (self.state.clone(), msg) {
            (_, ToWorker::Exit) if self.state != WorkerState::Exited => {
                self.state = WorkerState::Exited;
                self.ready.apply.push(WorkerAction::Exit);
            }
            (WorkerState::Requesting, ToWorker::Assign(a)) => {
                self.state = WorkerState::Running(a.task, a.attempt);
                self.ready.apply.push(WorkerAction::Execute(a));
            }
            (WorkerState::Finishing(t, a), ToWorker::Commit { task, attempt })
                if (t, a) == (task, attempt) =>
            {
                self.state = WorkerState::Committing(t, a);
                self.ready
                    .apply
                    .push(WorkerAction::Commit { task, attempt });
            }
            (WorkerState::Finishing(t, a), ToWorker::Discard { task, attempt })
                if (t, a) == (task, attempt) =>
            {
                self.ready
                    .apply
                    .push(WorkerAction::Discard { task, attempt });
                self.request();
            }
            _ => {}
        }
    }

    /// The driver ran the task into temporary files.
    pub fn on_executed(&mut self, task: TaskId, attempt: Attempt) {
        assert_eq!(
            self.state,
            WorkerState::Running(task, attempt),
            "not running it"
        );
        self.state = WorkerState::Finishing(task, attempt);
        self.send(ToCoordinator::Finished { task, attempt });
    }

    /// The driver renamed the output into place.
    pub fn on_committed(&mut self, task: TaskId, attempt: Attempt) {
        assert_eq!(
            self.state,
            WorkerState::Committing(task, attempt),
            "not committing it"
        );
        self.send(ToCoordinator::Committed { task, attempt });
        self.request();
    }

    /// Running or committing the task failed without a crash (unreadable input, an
    /// application error, a full disk). The driver has removed its temporary files.
    pub fn on_failed(&mut self, task: TaskId, attempt: Attempt, reason: String) {
        assert!(
            matches!(self.state, WorkerState::Running(t, a) | WorkerState::Committing(t, a)
                if (t, a) == (task, attempt)),
            "not running or committing {task} {attempt}"
        );
        self.send(ToCoordinator::Failed {
            task,
            attempt,
            reason,
        });
        self.request();
    }

    /// Drains the outputs of the inputs so far.
    pub fn take_ready(&mut self) -> WorkerReady {
        std::mem::take(&mut self.ready)
    }

    fn request(&mut self) {
        self.state = WorkerState::Requesting;
        self.send(ToCoordinator::Request);
    }

    fn send(&mut self, msg: ToCoordinator) {
        let to = self.coordinator;
        self.ready.messages.push((to, Message::ToCoordinator(msg)));
    }
}

impl contract::Core for Worker {
    type Persist = Infallible;
    type Msg = Message;
    type Apply = WorkerAction;
    type Timer = Infallible;

    /// Messages meant for the coordinator are ignored.
    fn on_message(&mut self, _from: NodeId, msg: Message) {
        if let Message::ToWorker(msg) = msg {
            Worker::on_message(self, msg)
        }
    }
    fn on_timeout(&mut self, timer: Infallible) {
        match timer {}
    }
    fn take_ready(&mut self) -> WorkerReady {
        Worker::take_ready(self)
    }
}
