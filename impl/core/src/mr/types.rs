//! Task identities and the messages between workers and the coordinator.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A task: map task `m` reads input file `m`; reduce task `r` reads partition `r` of every
/// map task's output and writes `mr-out-r`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaskId {
    /// Map task over input file number `.0`.
    Map(u32),
    /// Reduce task over partition `.0`.
    Reduce(u32),
}

impl TaskId {
    /// The task's phase.
    pub fn phase(self) -> Phase {
        match self {
            TaskId::Map(_) => Phase::Map,
            TaskId::Reduce(_) => Phase::Reduce,
        }
    }

    /// The task's number within its phase.
    pub fn index(self) -> u32 {
        match self {
            TaskId::Map(i) | TaskId::Reduce(i) => i,
        }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskId::Map(i) => write!(f, "map {i}"),
            TaskId::Reduce(i) => write!(f, "reduce {i}"),
        }
    }
}

/// The number of one run of a task: the coordinator numbers the runs of each task 1, 2, …
/// so that a report names the run it is about.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Attempt(pub u32);

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The job's phase: every map task is done before any reduce task starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Some map task is not done.
    Map,
    /// Every map task is done; some reduce task is not.
    Reduce,
    /// Every task is done.
    Done,
}

/// One run of one task, as handed to a worker.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Assignment {
    /// Which task.
    pub task: TaskId,
    /// Which run of it.
    pub attempt: Attempt,
    /// Map tasks: the input file name, exactly as the coordinator was given it (opaque to the
    /// coordinator, which never opens it). Reduce tasks: `None`.
    pub input: Option<String>,
    /// Number of map tasks (a reduce task reads `mr-0-r` … `mr-(n_map-1)-r`).
    pub n_map: u32,
    /// Number of reduce tasks (a map task writes `mr-m-0` … `mr-m-(n_reduce-1)`).
    pub n_reduce: u32,
}

/// Worker → coordinator.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ToCoordinator {
    /// Give me a task. The coordinator answers when it has one (or `Exit`); until then the
    /// request waits at the coordinator (no polling).
    Request,
    /// I have run `task` (attempt `attempt`) to completion; its output sits in temporary
    /// files. May I commit it?
    Finished {
        /// The task.
        task: TaskId,
        /// The run.
        attempt: Attempt,
    },
    /// I renamed the output of `task` (attempt `attempt`) to its final names, as granted.
    Committed {
        /// The task.
        task: TaskId,
        /// The run.
        attempt: Attempt,
    },
    /// The run failed without crashing (an unreadable input file, an application error).
    Failed {
        /// The task.
        task: TaskId,
        /// The run.
        attempt: Attempt,
        /// What went wrong, for the user.
        reason: String,
    },
}

/// Coordinator → worker.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ToWorker {
    /// Run this task.
    Assign(Assignment),
    /// Commit your output of `task`: rename the temporary files to the final names, then
    /// report `Committed`.
    Commit {
        /// The task.
        task: TaskId,
        /// The run.
        attempt: Attempt,
    },
    /// Another run of `task` committed (or is committing) first: delete your temporary files.
    Discard {
        /// The task.
        task: TaskId,
        /// The run.
        attempt: Attempt,
    },
    /// The job is over (done or failed): exit.
    Exit,
}

/// What the coordinator tells its driver about the job's progress (the `apply` stream).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Event {
    /// A task's run was assigned to a worker.
    Assigned {
        /// The task.
        task: TaskId,
        /// The run.
        attempt: Attempt,
        /// A backup run of a task that is still running elsewhere.
        backup: bool,
    },
    /// A task is done: its output is in place under the final names.
    TaskDone(TaskId),
    /// Every task is done: the output is complete.
    JobDone,
    /// A task failed `task_failures_max` times by reported errors: the job is abandoned.
    JobFailed {
        /// The task.
        task: TaskId,
        /// The last reported reason.
        reason: String,
    },
}

/// Any message of the protocol, in either direction: one type on the wire, and the `Msg` of
/// both cores' [`crate::contract::Core`] implementations.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Message {
    /// Worker → coordinator.
    ToCoordinator(ToCoordinator),
    /// Coordinator → worker.
    ToWorker(ToWorker),
}
