//! The worker process: connects to the coordinator's socket and runs the pure
//! [`aver_core::mr::Worker`] loop through the per-node [`Driver`], carrying out its actions
//! with an [`Executor`]. It exits when told to, or when the coordinator goes away.

use super::exec::Executor;
use super::transport::{read_frame, write_frame};
use crate::driver::{Driver, Environment};
use aver_core::contract::NodeId;
use aver_core::mr::{Assignment, Attempt, Message, TaskId, Worker, WorkerAction};
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The coordinator, as the worker core names it.
const COORDINATOR: NodeId = NodeId(0);

/// How a worker's run ended (errors aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerEnd {
    /// The coordinator said the job is over.
    Told,
    /// The coordinator closed the connection (it finished, or died).
    CoordinatorGone,
}

/// Worker options chosen by the user.
#[derive(Clone, Debug, Default)]
pub struct WorkerConfig {
    /// Sleep this long before each task (to play a slow machine in experiments).
    pub task_delay: Duration,
    /// Print one line per task to stderr.
    pub log: bool,
}

struct Env {
    conn: UnixStream,
    actions: VecDeque<WorkerAction>,
    send_error: Option<io::Error>,
}

impl Environment<Worker> for Env {
    fn persist(&mut self, ops: &[Infallible]) {
        if let Some(&op) = ops.first() {
            match op {}
        }
    }
    fn sync(&mut self) {}
    fn send(&mut self, _to: NodeId, msg: Message) {
        if self.send_error.is_none()
            && let Err(e) = write_frame(&mut self.conn, &msg)
        {
            self.send_error = Some(e);
        }
    }
    fn apply(&mut self, action: WorkerAction) {
        self.actions.push_back(action);
    }
    fn set_timer(&mut self, timer: Infallible) {
        match timer {}
    }
    fn cancel_timer(&mut self, timer: Infallible) {
        match timer {}
    }
}

/// Connects to `socket`, retrying for up to `wait` (a worker may start just before its
/// coordinator).
pub fn connect(socket: &Path, wait: Duration) -> io::Result<UnixStream> {
    let deadline = Instant::now() + wait;
    loop {
        match UnixStream::connect(socket) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("no coordinator at {}: {e}", socket.display()),
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Runs the worker loop on `conn` until the job is over or the coordinator is gone.
pub fn run(conn: UnixStream, exec: &Executor, cfg: &WorkerConfig) -> io::Result<WorkerEnd> {
    let mut reader = conn.try_clone()?;
    let mut env = Env {
        conn,
        actions: VecDeque::new(),
        send_error: None,
    };
    let mut driver = Driver::new(Worker::new(COORDINATOR));
    driver.flush(&mut env);
    let mut runs: BTreeMap<(TaskId, Attempt), Assignment> = BTreeMap::new();
    loop {
        while let Some(action) = env.actions.pop_front() {
            if let Some(end) = act(&mut driver, &mut env, exec, cfg, &mut runs, action) {
                return Ok(end);
            }
        }
        if env.send_error.take().is_some() {
            return Ok(WorkerEnd::CoordinatorGone);
        }
        match read_frame(&mut reader) {
            Ok(Some(msg)) => driver.on_message(&mut env, COORDINATOR, msg),
            Ok(None) | Err(_) => return Ok(WorkerEnd::CoordinatorGone),
        }
    }
}

/// Carries out one action of the worker core.
fn act(
    driver: &mut Driver<Worker>,
    env: &mut Env,
    exec: &Executor,
    cfg: &WorkerConfig,
    runs: &mut BTreeMap<(TaskId, Attempt), Assignment>,
    action: WorkerAction,
) -> Option<WorkerEnd> {
    let pid = std::process::id();
    match action {
        WorkerAction::Execute(a) => {
            std::thread::sleep(cfg.task_delay);
            let (task, attempt) = (a.task, a.attempt);
            let started = Instant::now();
            match exec.execute(&a) {
                Ok(stats) => {
                    if cfg.log {
                        eprintln!(
                            "worker {pid}: {task} {attempt} ran in {:.2}s ({} bytes in, {} out)",
                            started.elapsed().as_secs_f64(),
                            stats.bytes_in,
                            stats.records_out
                        );
                    }
                    runs.insert((task, attempt), a);
                    driver.input(env, |w| w.on_executed(task, attempt));
                }
                Err(reason) => {
                    eprintln!("worker {pid}: {task} {attempt} failed: {reason}");
                    driver.input(env, |w| w.on_failed(task, attempt, reason));
                }
            }
        }
        WorkerAction::Commit { task, attempt } => {
            let a = runs
                .remove(&(task, attempt))
                .expect("committing a run we executed");
            match exec.commit(&a) {
                Ok(()) => driver.input(env, |w| w.on_committed(task, attempt)),
                Err(reason) => {
                    exec.discard(&a);
                    eprintln!("worker {pid}: committing {task} {attempt} failed: {reason}");
                    driver.input(env, |w| w.on_failed(task, attempt, reason));
                }
            }
        }
        WorkerAction::Discard { task, attempt } => {
            if let Some(a) = runs.remove(&(task, attempt)) {
                exec.discard(&a);
            }
        }
        WorkerAction::Exit => return Some(WorkerEnd::Told),
    }
    None
}
