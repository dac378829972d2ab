//! The coordinator process: a Unix-socket server around the pure
//! [`aver_core::mr::Coordinator`], run through the per-node [`Driver`]. One thread accepts
//! connections, one thread per connection reads frames; the main loop owns the core, feeds it
//! one input at a time (a message, a closed connection, a due timer) and carries out its
//! outputs. A closed connection is a dead worker ([`Coordinator::on_worker_lost`]).

use super::transport::{read_frame, write_frame};
use crate::driver::{Driver, Environment};
use aver_core::contract::NodeId;
use aver_core::mr::invariants::check_coordinator;
use aver_core::mr::{Coordinator, CoordinatorConfig, Event, Message, TaskId, Timer};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// Timer durations and shutdown, chosen by the driver (never by the core).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `TaskTimeout`: how long a run may take before the task goes to another worker.
    pub task_timeout: Duration,
    /// `Backup`: how long a run may take before a waiting worker may start a backup copy
    /// (only when the job enables backups).
    pub backup_after: Duration,
    /// After the job is over, how long to wait for workers to disconnect before leaving.
    pub exit_grace: Duration,
    /// Set by the caller to stop serving a job that cannot finish (say, every worker it
    /// started has exited); [`serve`] then returns an `Interrupted` error.
    pub abort: Option<Arc<AtomicBool>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            task_timeout: Duration::from_secs(10),
            backup_after: Duration::from_secs(1),
            exit_grace: Duration::from_secs(1),
            abort: None,
        }
    }
}

/// How the job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every output is in place.
    Done,
    /// A task failed too often; the reason its worker gave.
    Failed {
        /// The task.
        task: TaskId,
        /// The worker's reason.
        reason: String,
    },
}

/// A bound coordinator socket. The file is removed when this is dropped.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
}

impl Server {
    /// Binds `path`. A leftover socket file with no process behind it is replaced; a live
    /// coordinator at `path` is an error.
    pub fn bind(path: &Path) -> io::Result<Server> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("a coordinator is already serving at {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| io::Error::new(e.kind(), format!("binding {}: {e}", path.display())))?;
        Ok(Server {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

enum Input {
    Connected(NodeId, UnixStream),
    Msg(NodeId, Message),
    Lost(NodeId),
}

/// The coordinator's world: its connections and timers; events are buffered for the caller.
struct Env {
    conns: BTreeMap<NodeId, UnixStream>,
    timers: BTreeMap<Timer, Instant>,
    events: Vec<Event>,
    broken: Vec<NodeId>,
    cfg: ServerConfig,
}

impl Environment<Coordinator> for Env {
    fn persist(&mut self, ops: &[Infallible]) {
        if let Some(&op) = ops.first() {
            match op {}
        }
    }
    fn sync(&mut self) {}
    fn send(&mut self, to: NodeId, msg: Message) {
        if let Some(conn) = self.conns.get_mut(&to)
            && write_frame(conn, &msg).is_err()
        {
            self.broken.push(to);
        }
    }
    fn apply(&mut self, event: Event) {
        self.events.push(event);
    }
    fn set_timer(&mut self, timer: Timer) {
        let after = match timer {
            Timer::TaskTimeout(..) => self.cfg.task_timeout,
            Timer::Backup(..) => self.cfg.backup_after,
        };
        self.timers.insert(timer, Instant::now() + after);
    }
    fn cancel_timer(&mut self, timer: Timer) {
        self.timers.remove(&timer);
    }
}

/// Serves `job` on `server` until it is over and its workers are gone (or `exit_grace` has
/// passed). `on_event` sees every event with the core's state after it (for progress).
/// An invariant violation ends the run with an error naming it.
pub fn serve(
    server: Server,
    job: CoordinatorConfig,
    cfg: ServerConfig,
    mut on_event: impl FnMut(&Coordinator, &Event),
) -> io::Result<Outcome> {
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let listener = server.listener.try_clone()?;
    let acceptor = {
        let stop = stop.clone();
        std::thread::spawn(move || accept_loop(listener, tx, &stop))
    };
    let grace = cfg.exit_grace;
    let mut env = Env {
        conns: BTreeMap::new(),
        timers: BTreeMap::new(),
        events: Vec::new(),
        broken: Vec::new(),
        cfg,
    };
    let mut driver = Driver::new(Coordinator::new(Arc::new(job)));
    let result = main_loop(&mut driver, &mut env, &rx, grace, &mut on_event);
    stop.store(true, Ordering::SeqCst);
    let _ = UnixStream::connect(server.path()); // wakes the acceptor
    let _ = acceptor.join();
    drop(server);
    result
}

fn main_loop(
    driver: &mut Driver<Coordinator>,
    env: &mut Env,
    rx: &Receiver<Input>,
    grace: Duration,
    on_event: &mut impl FnMut(&Coordinator, &Event),
) -> io::Result<Outcome> {
    let mut over_at: Option<Instant> = None;
    loop {
        if let Some(t) = over_at
            && (env.conns.is_empty() || t.elapsed() >= grace)
        {
            break;
        }
        let aborted = env
            .cfg
            .abort
            .as_ref()
            .is_some_and(|a| a.load(Ordering::SeqCst));
        if over_at.is_none() && aborted {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the job was aborted",
            ));
        }
        let now = Instant::now();
        let next_timer = env.timers.values().min().copied();
        let mut wait = next_timer.map_or(Duration::from_millis(200), |t| {
            t.saturating_duration_since(now)
        });
        if let Some(t) = over_at {
            wait = wait.min((t + grace).saturating_duration_since(now));
        }
        match rx.recv_timeout(wait) {
            Ok(Input::Connected(id, conn)) => {
                env.conns.insert(id, conn);
            }
            Ok(Input::Msg(id, msg)) => driver.on_message(env, id, msg),
            Ok(Input::Lost(id)) => lose(driver, env, id),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        fire_due_timers(driver, env);
        while let Some(id) = env.broken.pop() {
            lose(driver, env, id);
        }
        check_coordinator(driver.core())
            .map_err(|v| io::Error::other(format!("invariant violated: {v}")))?;
        for event in std::mem::take(&mut env.events) {
            if matches!(event, Event::JobDone | Event::JobFailed { .. }) && over_at.is_none() {
                over_at = Some(Instant::now());
            }
            on_event(driver.core(), &event);
        }
    }
    Ok(match driver.core().failed() {
        Some((task, reason)) => Outcome::Failed {
            task: *task,
            reason: reason.clone(),
        },
        None if driver.core().is_done() => Outcome::Done,
        None => {
            return Err(io::Error::other(
                "the coordinator stopped before the job was over",
            ));
        }
    })
}

fn lose(driver: &mut Driver<Coordinator>, env: &mut Env, id: NodeId) {
    if let Some(conn) = env.conns.remove(&id) {
        let _ = conn.shutdown(std::net::Shutdown::Both);
    }
    driver.input(env, |c| c.on_worker_lost(id));
}

fn fire_due_timers(driver: &mut Driver<Coordinator>, env: &mut Env) {
    let now = Instant::now();
    let due: Vec<Timer> = env
        .timers
        .iter()
        .filter(|(_, at)| **at <= now)
        .map(|(t, _)| *t)
        .collect();
    for t in due {
        if env.timers.remove(&t).is_some() {
            driver.on_timeout(env, t);
        }
    }
}

fn accept_loop(listener: UnixListener, tx: Sender<Input>, stop: &AtomicBool) {
    let mut next_id = 1u32;
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let id = NodeId(next_id);
        next_id += 1;
        let Ok(writer) = conn.try_clone() else {
            continue;
        };
        if tx.send(Input::Connected(id, writer)).is_err() {
            return;
        }
        let tx = tx.clone();
        std::thread::spawn(move || read_loop(conn, id, &tx));
    }
}

fn read_loop(mut conn: UnixStream, id: NodeId, tx: &Sender<Input>) {
    while let Ok(Some(msg)) = read_frame(&mut conn) {
        if tx.send(Input::Msg(id, msg)).is_err() {
            return;
        }
    }
    let _ = tx.send(Input::Lost(id));
}
