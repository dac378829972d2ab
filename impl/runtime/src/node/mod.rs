//! A real node: the kvraft server core on the Raft core ([`crate::kv::Server`]) on tokio,
//! with framed TCP, durable storage, timers from the runtime's clock, and (optionally) an
//! input trace. The node makes no protocol decisions: clerk requests, the dedup table,
//! ReadIndex, snapshots and replies are the cores'.
//!
//! # Tasks
//!
//! * the **event loop** ([`event_loop`]) owns the core (through the per-node [`Driver`]) and
//!   the clerk sessions' reply queues. It is the only task that touches them, so none of
//!   that state is shared;
//! * a **committer** makes persist operations durable (group commit, [`crate::commit`]);
//! * one **link** per peer ([`crate::net::Link`]) and one **session** per client connection
//!   ([`server`]) move frames between sockets and the event loop. Each session gets a node id
//!   of its own (above [`server::SESSION_ID_BASE`]), which the server core answers to.
//!
//! # The order of duties, with group commit
//!
//! The driver hands the environment a `Ready`'s writes, then asks for a sync, then its
//! messages and applies. The environment buffers the writes and tags every later message and
//! apply with the count of writes so far; at the end of each loop turn the buffered writes go
//! to the committer as one batch, and outputs are released only once the committer reports
//! every write before them durable. So nothing that depends on a write leaves before its
//! fsync — a vote, an acknowledgement — while the loop keeps taking
//! inputs, and one fsync covers everything that
//! arrived during the previous one. Timers are set at once (they promise nothing). The Raft
//! core runs with `leader_counts_durable_only` (specs/raft.md §2): a leader's AppendEntries
//! leave at once, in parallel with its own fsync, and the event loop reports each completed
//! commit to the core (`Raft::on_persisted`) so that the leader counts its own copy. Replies
//! to clerks then leave at once too (the server core says so: what they acknowledge is
//! durable on a majority already), instead of waiting for the leader's later writes.
//!
//! A step-check violation recorded by the core (`KvServer::violation`) stops the node with an
//! error naming the invariant before anything of that input leaves; so does a storage error
//! (a failed fsync is never retried).

mod event_loop;
mod remote;
mod server;
pub mod service;

use crate::commit::Committer;
use crate::driver::Driver;
use crate::kv::KvService;
use crate::net::{Link, Membership, Metrics, Net, PeerQueue};
use crate::storage::fs::{Fs, RealFs};
use crate::storage::{Storage, StorageError, StorageOptions, files};
use crate::trace::TraceWriter;
use crate::wire::ClusterId;
use aver_core::contract::{NodeId, Violation};
use aver_core::raft::Config;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

pub use event_loop::{Input, ServiceInput};
pub use remote::Remotes;
pub use server::SESSION_ID_BASE;
pub use service::Service;

/// Everything that configures a node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// This node.
    pub id: NodeId,
    /// The cluster.
    pub cluster: ClusterId,
    /// Every member's address (this node's included): peers dial these.
    pub members: BTreeMap<NodeId, SocketAddr>,
    /// Addresses of nodes outside the group the service may send to (as a client).
    pub directory: BTreeMap<NodeId, SocketAddr>,
    /// Where to listen (default: this node's member address; loopback unless told).
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Election timeouts are drawn uniformly from this range.
    pub election: (Duration, Duration),
    /// Seed of the node's RNG (election timeouts, backoff jitter).
    pub seed: u64,
    /// The kvraft server's snapshot threshold (`KvConfig::max_raft_state`: Raft's state
    /// without the snapshot, in bytes; 0: never).
    pub snapshot_log_bytes: u64,
    /// Write an input trace into this directory (for `aver replay`; usually `DIR/trace`).
    pub trace: Option<PathBuf>,
    /// Largest frame between nodes.
    pub frame_body_max: usize,
    /// Largest frame from a client.
    pub client_frame_max: usize,
    /// Messages queued per peer before the oldest is dropped.
    pub outbox_capacity: usize,
    /// Client requests waiting at once before new ones are refused (`KvConfig::pending_max`).
    pub waiters_max: usize,
    /// Commit on the event loop's thread instead of a committer thread (for simulated
    /// networks, whose hosts must not spawn threads).
    pub inline_commit: bool,
    /// Lock the data directory against a second process (real file systems).
    pub lock_data_dir: bool,
    /// The file system storage uses.
    pub fs: Arc<dyn Fs>,
    /// Storage tunables.
    pub storage: StorageOptions,
    /// The leader counts its own copy of an entry only once durable, and writes in parallel
    /// with replicating (`Config::leader_counts_durable_only`).
    pub leader_writes_in_parallel: bool,
}

impl NodeOptions {
    /// Options for member `id` with defaults for everything else.
    pub fn new(
        id: NodeId,
        cluster: ClusterId,
        members: BTreeMap<NodeId, SocketAddr>,
        data_dir: PathBuf,
    ) -> NodeOptions {
        let listen = members
            .get(&id)
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        NodeOptions {
            id,
            cluster,
            members,
            directory: BTreeMap::new(),
            listen,
            data_dir,
            heartbeat: Duration::from_millis(50),
            election: (Duration::from_millis(300), Duration::from_millis(600)),
            seed: id.0 as u64,
            snapshot_log_bytes: 4 << 20,
            trace: None,
            frame_body_max: crate::frame::FRAME_BODY_MAX_DEFAULT,
            client_frame_max: 1 << 20,
            outbox_capacity: 4096,
            waiters_max: 65_536,
            inline_commit: false,
            lock_data_dir: true,
            fs: Arc::new(RealFs),
            storage: StorageOptions::default(),
            leader_writes_in_parallel: true,
        }
    }
}

/// Why a node stopped (or could not start).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Storage failed or holds damaged data.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The core's own step checks found a violated invariant.
    #[error("stopping: the core (kvraft server or Raft) reports {0}")]
    Violation(Violation),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The trace could not be written.
    #[error("trace {path}: {source}", path = .path.display())]
    Trace {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The service failed (e.g. a snapshot it cannot restore).
    #[error("service: {0}")]
    Service(String),
    /// The data directory belongs to another node or cluster, or is in use.
    #[error("data directory {dir}: {what}", dir = .dir.display())]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The options are inconsistent.
    #[error("configuration: {0}")]
    Config(String),
}

/// A started node.
pub struct RunningNode {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<Result<(), NodeError>>,
}

impl RunningNode {
    /// The address the node listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks the node to stop (it finishes the commit in flight, flushes its trace, closes).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// A handle that can stop the node from elsewhere.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }

    /// Waits until the node stops; its error if it failed.
    pub async fn wait(self) -> Result<(), NodeError> {
        match self.join.await {
            Ok(r) => r,
            Err(e) => Err(NodeError::Service(format!("event loop task failed: {e}"))),
        }
    }
}

/// Starts a node of the kvraft service (see [`start_service`]).
pub async fn start<N: Net>(opts: NodeOptions, net: N) -> Result<RunningNode, NodeError> {
    start_service(KvService, opts, net).await
}

/// Recovers the node's state from disk, opens its sockets and starts its tasks, running
/// `service`'s core.
pub async fn start_service<S: Service, N: Net>(
    service: S,
    opts: NodeOptions,
    net: N,
) -> Result<RunningNode, NodeError> {
    if opts.trace.is_some() && !S::TRACES {
        return Err(NodeError::Config("this service writes no traces".into()));
    }
    if !opts.members.contains_key(&opts.id) {
        return Err(NodeError::Config(format!(
            "{} is not among the members {:?}",
            opts.id,
            opts.members.keys().collect::<Vec<_>>()
        )));
    }
    let lock = lock_data_dir(&opts)?;
    check_identity(&opts)?;
    let (storage, durable, report) =
        Storage::<S::Entry>::open(opts.fs.clone(), &opts.data_dir, opts.storage)?;
    tracing::info!(
        node = %opts.id,
        term = durable.hard.term.0,
        snapshot = durable.log.base().index.0,
        last_index = durable.log.last_index().0,
        segments = report.segments,
        batches = report.batches,
        torn_bytes = report.torn_bytes,
        removed_files = report.removed_files,
        "WAL recovered"
    );
    let mut config = Config::new(opts.id, opts.members.keys().copied().collect());
    config.leader_counts_durable_only = opts.leader_writes_in_parallel;
    let trace = match &opts.trace {
        Some(dir) => Some(open_trace(dir)?),
        None => None,
    };
    let (commit_tx, commit_rx) = mpsc::unbounded_channel();
    let committer = if opts.inline_commit {
        Committer::inline(storage, commit_tx)
    } else {
        Committer::spawn(storage, commit_tx)
    };
    let listener = net
        .bind(opts.listen)
        .await
        .map_err(|source| NodeError::Listen {
            addr: opts.listen,
            source,
        })?;
    let addr = net.local_addr(&listener).unwrap_or(opts.listen);
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let (peer_tx, peer_rx) = mpsc::channel(4096);
    let (client_tx, client_rx) = mpsc::channel(4096);
    let (remote_tx, remote_rx) = mpsc::channel(4096);
    let remotes: Remotes<S::ClientOp> = Remotes::new(
        net.clone(),
        (opts.cluster, opts.client_frame_max),
        opts.directory.clone(),
        remote_tx,
        stop_rx.clone(),
    );
    let mut queues = BTreeMap::new();
    let mut accepted = BTreeMap::new();
    for (&peer, &peer_addr) in opts.members.iter().filter(|(p, _)| **p != opts.id) {
        let queue = Arc::new(PeerQueue::new(opts.outbox_capacity));
        let (acc_tx, acc_rx) = mpsc::channel(4);
        queues.insert(peer, queue.clone());
        accepted.insert(peer, acc_tx);
        let link = Link {
            net: net.clone(),
            me: opts.id,
            peer,
            addr: peer_addr,
            cluster: opts.cluster,
            queue,
            accepted: acc_rx,
            deliver: peer_tx.clone(),
            frame_max: opts.frame_body_max,
            metrics: metrics.clone(),
            seed: opts.seed ^ ((peer.0 as u64) << 32),
            stop: stop_rx.clone(),
        };
        tokio::spawn(link.run());
    }
    let membership = Membership {
        me: opts.id,
        cluster: opts.cluster,
        members: opts.members.keys().copied().collect(),
    };
    tokio::spawn(server::accept_loop(server::Acceptor {
        net,
        listener,
        membership,
        metrics: metrics.clone(),
        peers: accepted,
        clients: client_tx,
        client_frame_max: opts.client_frame_max,
        stop: stop_rx.clone(),
    }));
    let core = service.build(&opts, config, durable)?;
    let event_loop = event_loop::EventLoop::<S>::new(event_loop::Parts {
        opts: Arc::new(opts),
        driver: Driver::new(core),
        peers: queues,
        remotes,
        committer,
        commits: commit_rx,
        trace,
        metrics,
    });
    let join = tokio::spawn(async move {
        let _lock = lock;
        event_loop.run(peer_rx, client_rx, remote_rx, stop_rx).await
    });
    Ok(RunningNode {
        addr,
        stop: stop_tx,
        join,
    })
}

fn open_trace(dir: &Path) -> Result<TraceWriter, NodeError> {
    TraceWriter::create(dir).map_err(|source| NodeError::Trace {
        path: dir.to_path_buf(),
        source,
    })
}

/// The data directory remembers which node of which cluster it belongs to; starting another
/// node (or a node of another cluster) on it is refused.
fn check_identity(opts: &NodeOptions) -> Result<(), NodeError> {
    let path = opts.data_dir.join("identity");
    let expect = format!("aver node\ncluster {}\nnode {}\n", opts.cluster, opts.id.0);
    let fs = &*opts.fs;
    match fs.read(&path) {
        Ok(bytes) if bytes == expect.as_bytes() => Ok(()),
        Ok(bytes) => Err(NodeError::DataDir {
            dir: opts.data_dir.clone(),
            what: format!(
                "belongs to another node or cluster ({:?}); this is node {} of cluster {}",
                String::from_utf8_lossy(&bytes).replace('\n', "; "),
                opts.id.0,
                opts.cluster
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs.create_dir_all(&opts.data_dir)
                .map_err(|e| StorageError::Io {
                    path: opts.data_dir.clone(),
                    source: e,
                })?;
            files::write_atomic(fs, &path, expect.as_bytes())?;
            Ok(())
        }
        Err(e) => Err(StorageError::Io { path, source: e }.into()),
    }
}

/// Holds an exclusive `flock` on `DIR/lock` for the node's lifetime (released by the kernel
/// when the process dies, so a `kill -9` never leaves a stale lock).
struct DirLock {
    _file: Option<std::fs::File>,
}

fn lock_data_dir(opts: &NodeOptions) -> Result<DirLock, NodeError> {
    if !opts.lock_data_dir {
        return Ok(DirLock { _file: None });
    }
    let dir_err = |what: String| NodeError::DataDir {
        dir: opts.data_dir.clone(),
        what,
    };
    std::fs::create_dir_all(&opts.data_dir).map_err(|e| dir_err(e.to_string()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(opts.data_dir.join("lock"))
        .map_err(|e| dir_err(format!("lock file: {e}")))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(dir_err(
            "in use by another process (its lock is held)".to_string(),
        ));
    }
    Ok(DirLock { _file: Some(file) })
}
