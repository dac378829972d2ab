//! The network side of a node: one framed TCP stream per pair of members, client sessions,
//! and the handshake that keeps strangers out.
//!
//! * **One stream per pair.** The member with the smaller id dials; the other accepts. Both
//!   directions use the stream. The dialer reconnects with exponential backoff (seeded
//!   jitter) whenever the stream breaks; the acceptor replaces its stream when the dialer
//!   comes back.
//! * **Bounded queues.** Each peer has an [`Outbox`] that drops its oldest message when full;
//!   the node's inbox is a bounded channel, so a flood of input slows the readers (TCP
//!   backpressure) rather than growing memory.
//! * **Limits.** Handshake frames may be at most [`HANDSHAKE_BODY_MAX`] bytes; later frames
//!   at most the configured maximum. An oversized, corrupt or undecodable frame is counted,
//!   logged with the remote address, and closes that connection — never the node.
//! * **Liveness.** An idle link sends a ping every [`PING_INTERVAL`]; a link that hears
//!   nothing for [`PEER_IDLE_TIMEOUT`] is closed and redialed, so a peer whose machine died
//!   (no FIN) or whose connection is half-open is noticed in about a second.
//! * **Pluggable sockets.** Everything is written against [`Net`], implemented here with
//!   tokio's TCP and, in tests, with turmoil's simulated network.

use crate::frame::{self, FrameError, HANDSHAKE_BODY_MAX};
use crate::outbox::Outbox;
use crate::wire::{ClusterId, Endpoint, Hello, MAGIC, PROTOCOL_VERSION, PeerFrame, Welcome};
use aver_core::contract::NodeId;
use aver_core::raft::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, watch};

/// Sockets, so that the same server code runs on tokio's TCP and on a simulated network.
pub trait Net: Clone + Send + Sync + 'static {
    /// A connected stream.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// A listening socket.
    type Listener: Send + 'static;
    /// Listens on `addr`.
    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    /// Accepts one connection.
    fn accept(
        &self,
        listener: &mut Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
    /// Connects to `addr`.
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// The address a listener is bound to.
    fn local_addr(&self, listener: &Self::Listener) -> io::Result<SocketAddr>;
}

/// Real TCP (with `TCP_NODELAY`: frames are small and latency matters).
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioNet;

impl Net for TokioNet {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;

    async fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(addr).await
    }
    async fn accept(
        &self,
        listener: &mut Self::Listener,
    ) -> io::Result<(Self::Stream, SocketAddr)> {
        let (s, a) = listener.accept().await?;
        s.set_nodelay(true)?;
        Ok((s, a))
    }
    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }
    fn local_addr(&self, listener: &Self::Listener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }
}

/// Counters of bad input and overload, shared by a node's tasks.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Frames that were oversized, failed their CRC or did not decode.
    pub malformed_frames: AtomicU64,
    /// Handshakes refused.
    pub refused_handshakes: AtomicU64,
    /// Peer connections established.
    pub peer_connections: AtomicU64,
    /// Peer connections closed because nothing arrived for [`PEER_IDLE_TIMEOUT`].
    pub idle_disconnects: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A link that has written nothing for this long sends a [`PeerFrame::Ping`].
pub const PING_INTERVAL: Duration = Duration::from_millis(200);
/// A link that has received nothing (not even a ping) for this long is considered dead: it
/// is closed and, on the dialing side, dialed again. Without it a connection to a machine
/// that crashed (no FIN, no RST) would swallow messages until TCP gives up, minutes later.
pub const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Bytes a connection's reader buffers: a read takes every frame already received (a peer's
/// batch, a client's pipelined requests) in one system call.
pub const READ_BUFFER: usize = 64 << 10;

/// How long a handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(20);
/// Largest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What a node's listener needs to judge a hello.
#[derive(Clone, Debug)]
pub struct Membership {
    /// This node.
    pub me: NodeId,
    /// The cluster.
    pub cluster: ClusterId,
    /// Every member, this node included.
    pub members: Vec<NodeId>,
}

impl Membership {
    /// `Ok(endpoint)` if a node of this cluster should accept `hello`; else the reason.
    pub fn judge(&self, hello: &Hello) -> Result<Endpoint, String> {
        if hello.magic != MAGIC {
            return Err("not an aver hello (bad magic)".into());
        }
        if hello.version != PROTOCOL_VERSION {
            return Err(format!(
                "protocol version {} (this node speaks {PROTOCOL_VERSION})",
                hello.version
            ));
        }
        if hello.cluster != self.cluster {
            return Err(format!(
                "cluster {} is not this node's cluster {}",
                hello.cluster, self.cluster
            ));
        }
        if let Some(to) = hello.to.filter(|&to| to != self.me) {
            return Err(format!("addressed to {to}, this is {}", self.me));
        }
        match hello.from {
            Endpoint::Client => Ok(Endpoint::Client),
            Endpoint::Peer(p) if p == self.me => Err(format!("{p} is this node itself")),
            Endpoint::Peer(p) if !self.members.contains(&p) => {
                Err(format!("{p} is not a member of cluster {}", self.cluster))
            }
            Endpoint::Peer(p) if p > self.me => Err(format!(
                "{p} should accept {}'s connection, not dial it",
                self.me
            )),
            Endpoint::Peer(p) => Ok(Endpoint::Peer(p)),
        }
    }
}

/// Reads a hello from a fresh connection and answers it. `Ok(endpoint)` if accepted.
pub async fn accept_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    membership: &Membership,
    metrics: &Metrics,
) -> Result<Endpoint, String> {
    let mut buf = Vec::new();
    let read = frame::read_value::<_, Hello>(stream, HANDSHAKE_BODY_MAX, &mut buf);
    let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read).await {
        Err(_) => return Err("no hello within the handshake timeout".into()),
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => return Err("closed before saying hello".into()),
        Ok(Err(e)) => {
            if e.is_malformed() {
                Metrics::bump(&metrics.malformed_frames);
            }
            return Err(format!("bad hello: {e}"));
        }
    };
    match membership.judge(&hello) {
        Ok(endpoint) => {
            let welcome = Welcome::Accepted {
                node: membership.me,
            };
            frame::write_value(stream, &welcome, HANDSHAKE_BODY_MAX)
                .await
                .map_err(|e| e.to_string())?;
            Ok(endpoint)
        }
        Err(reason) => {
            Metrics::bump(&metrics.refused_handshakes);
            let refused = Welcome::Refused {
                reason: reason.clone(),
            };
            let _ = frame::write_value(stream, &refused, HANDSHAKE_BODY_MAX).await;
            Err(reason)
        }
    }
}

/// Connects to `addr` and says hello as `from`; `Ok` once `to` (if given) accepted.
pub async fn dial<N: Net>(net: &N, addr: SocketAddr, hello: &Hello) -> Result<N::Stream, String> {
    let mut stream = net
        .connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let exchange = async {
        frame::write_value(&mut stream, hello, HANDSHAKE_BODY_MAX).await?;
        let mut buf = Vec::new();
        frame::read_value::<_, Welcome>(&mut stream, HANDSHAKE_BODY_MAX, &mut buf).await
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange).await {
        Err(_) => Err(format!("{addr}: no welcome within the handshake timeout")),
        Ok(Err(e)) => Err(format!("{addr}: handshake failed: {e}")),
        Ok(Ok(None)) => Err(format!("{addr}: closed during the handshake")),
        Ok(Ok(Some(Welcome::Refused { reason }))) => Err(format!("{addr} refused: {reason}")),
        Ok(Ok(Some(Welcome::Accepted { node }))) => match hello.to {
            Some(to) if to != node => Err(format!("{addr} is {node}, expected {to}")),
            _ => Ok(stream),
        },
    }
}

/// One peer link's shared half: what the event loop pushes messages into.
#[derive(Debug)]
pub struct PeerQueue<M> {
    /// The messages.
    pub outbox: Outbox<M>,
    /// Wakes the writer.
    pub wake: Notify,
}

impl<M> PeerQueue<M> {
    /// An empty queue of `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        PeerQueue {
            outbox: Outbox::new(capacity),
            wake: Notify::new(),
        }
    }

    /// Queues a message (dropping the oldest when full) and wakes the writer.
    pub fn push(&self, msg: M) {
        self.outbox.push(msg);
        self.wake.notify_one();
    }
}

/// Everything a peer link task needs.
pub struct Link<N: Net, C> {
    /// Sockets.
    pub net: N,
    /// This node.
    pub me: NodeId,
    /// The peer.
    pub peer: NodeId,
    /// The peer's address (dialed if `me < peer`).
    pub addr: SocketAddr,
    /// The cluster.
    pub cluster: ClusterId,
    /// Outgoing messages.
    pub queue: Arc<PeerQueue<Message<C>>>,
    /// Streams the listener accepted from this peer (if `me > peer`).
    pub accepted: mpsc::Receiver<N::Stream>,
    /// Where received messages go.
    pub deliver: mpsc::Sender<(NodeId, Message<C>)>,
    /// Largest frame body.
    pub frame_max: usize,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Seed for the backoff jitter.
    pub seed: u64,
    /// Becomes true when the node stops.
    pub stop: watch::Receiver<bool>,
}

impl<N: Net, C: Serialize + DeserializeOwned + Send + Sync + 'static> Link<N, C> {
    /// Runs the link until the node stops: get a stream (dial or accept), pump messages both
    /// ways until it breaks, repeat.
    pub async fn run(mut self) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut backoff = BACKOFF_MIN;
        let mut stop = self.stop.clone();
        loop {
            let stream = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                s = self.next_stream(&mut rng, &mut backoff) => s,
            };
            let Some(stream) = stream else { return };
            Metrics::bump(&self.metrics.peer_connections);
            tracing::debug!(peer = %self.peer, "connected");
            self.pump(stream).await;
            if *self.stop.borrow() {
                return;
            }
        }
    }

    async fn next_stream(
        &mut self,
        rng: &mut ChaCha8Rng,
        backoff: &mut Duration,
    ) -> Option<N::Stream> {
        if self.me > self.peer {
            return self.accepted.recv().await;
        }
        let hello = Hello::new(self.cluster, Endpoint::Peer(self.me), Some(self.peer));
        loop {
            match dial(&self.net, self.addr, &hello).await {
                Ok(stream) => {
                    *backoff = BACKOFF_MIN;
                    return Some(stream);
                }
                Err(e) => {
                    tracing::debug!(peer = %self.peer, "dial failed: {e}");
                    let jitter = rng.random_range(0..=backoff.as_millis() as u64 / 2);
                    tokio::time::sleep(*backoff + Duration::from_millis(jitter)).await;
                    *backoff = (*backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Moves messages both ways on `stream` until it fails, the node stops, or (acceptor
    /// side) the peer reconnects.
    async fn pump(&mut self, stream: N::Stream) {
        let (reader, mut writer) = tokio::io::split(stream);
        let mut read_task = tokio::spawn(read_peer(
            reader,
            self.peer,
            self.deliver.clone(),
            self.frame_max,
            self.metrics.clone(),
        ));
        let mut buf = Vec::new();
        let mut stop = self.stop.clone();
        let mut ping = false;
        loop {
            let msgs = self.queue.outbox.drain();
            if !msgs.is_empty() || ping {
                buf.clear();
                for m in msgs {
                    self.encode(PeerFrame::Raft(m), &mut buf);
                }
                if std::mem::take(&mut ping) {
                    self.encode(PeerFrame::Ping, &mut buf);
                }
                if let Err(e) = writer.write_all(&buf).await {
                    tracing::debug!(peer = %self.peer, "write failed: {e}");
                    break;
                }
                continue;
            }
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                _ = &mut read_task => break,
                _ = tokio::time::sleep(PING_INTERVAL) => ping = true,
                replacement = self.accepted.recv(), if self.me > self.peer => {
                    if let Some(s) = replacement {
                        read_task.abort();
                        let (r, w) = tokio::io::split(s);
                        writer = w;
                        read_task = tokio::spawn(read_peer(
                            r, self.peer, self.deliver.clone(), self.frame_max,
                            self.metrics.clone(),
                        ));
                    } else {
                        break;
                    }
                }
                _ = self.queue.wake.notified() => {}
            }
        }
        read_task.abort();
    }

    fn encode(&self, frame: PeerFrame<C>, buf: &mut Vec<u8>) {
        if let Err(e) = frame::encode(&frame, self.frame_max, buf) {
            tracing::error!(peer = %self.peer, "message not sent: {e}");
        }
    }
}

/// Reads frames from a peer and delivers its messages until the stream ends or sends
/// something malformed (counted and logged; the connection is then dropped).
async fn read_peer<R: AsyncRead + Unpin, C: DeserializeOwned>(
    reader: R,
    peer: NodeId,
    deliver: mpsc::Sender<(NodeId, Message<C>)>,
    frame_max: usize,
    metrics: Arc<Metrics>,
) {
    // Buffered: one `read` takes every frame that arrived, instead of two per frame.
    let mut reader = tokio::io::BufReader::with_capacity(READ_BUFFER, reader);
    let mut buf = Vec::new();
    loop {
        let read = frame::read_value::<_, PeerFrame<C>>(&mut reader, frame_max, &mut buf);
        let Ok(read) = tokio::time::timeout(PEER_IDLE_TIMEOUT, read).await else {
            Metrics::bump(&metrics.idle_disconnects);
            tracing::debug!(peer = %peer, "nothing received for {PEER_IDLE_TIMEOUT:?}; closing");
            return;
        };
        match read {
            Ok(Some(PeerFrame::Raft(msg))) => {
                if deliver.send((peer, msg)).await.is_err() {
                    return;
                }
            }
            Ok(Some(PeerFrame::Ping)) => {}
            Ok(None) => return,
            Err(e) => {
                log_bad_frame(&metrics, &format!("peer {peer}"), &e);
                return;
            }
        }
    }
}

/// Counts and logs a frame error (only malformed input counts; a broken connection does not).
pub fn log_bad_frame(metrics: &Metrics, from: &str, e: &FrameError) {
    if e.is_malformed() {
        Metrics::bump(&metrics.malformed_frames);
        tracing::warn!("malformed frame from {from}: {e}; closing the connection");
    } else {
        tracing::debug!("connection to {from} ended: {e}");
    }
}
