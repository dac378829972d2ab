//! The listening side of a node: the handshake on every connection, then either the peer's
//! link takes the stream or a client session serves it.

use super::event_loop::Input;
use crate::frame;
use crate::net::{self, Membership, Metrics, Net};
use crate::wire::{Endpoint, Reply, Request};
use aver_core::contract::NodeId;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// Node ids of clerk sessions start here (members' ids are small), so that the server core
/// can address its replies to a session like to any node.
pub const SESSION_ID_BASE: u32 = 1 << 31;

/// Replies queued per client session before the node starts dropping them (the client then
/// times out); the event loop never waits on a client.
pub const SESSION_REPLIES_MAX: usize = 4096;

/// What the accept loop needs.
pub(super) struct Acceptor<N: Net, Q, R> {
    pub net: N,
    pub listener: N::Listener,
    pub membership: Membership,
    pub metrics: Arc<Metrics>,
    /// Where streams accepted from each peer go (its link).
    pub peers: BTreeMap<NodeId, mpsc::Sender<N::Stream>>,
    pub clients: mpsc::Sender<Input<Q, R>>,
    pub client_frame_max: usize,
    pub stop: watch::Receiver<bool>,
}

/// Accepts connections until the node stops; each gets its own task.
pub(super) async fn accept_loop<N, Q, R>(mut a: Acceptor<N, Q, R>)
where
    N: Net,
    Q: DeserializeOwned + Send + 'static,
    R: serde::Serialize + Send + 'static,
{
    let mut stop = a.stop.clone();
    let membership = Arc::new(a.membership.clone());
    let peers = Arc::new(a.peers.clone());
    let mut sessions: u32 = 0;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            r = a.net.accept(&mut a.listener) => r,
        };
        let (stream, addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        sessions = sessions.wrapping_add(1) % SESSION_ID_BASE;
        let conn = Connection::<N, Q, R> {
            session: NodeId(SESSION_ID_BASE + sessions),
            addr,
            membership: membership.clone(),
            metrics: a.metrics.clone(),
            peers: peers.clone(),
            clients: a.clients.clone(),
            client_frame_max: a.client_frame_max,
            stop: a.stop.clone(),
        };
        tokio::spawn(conn.serve(stream));
    }
}

struct Connection<N: Net, Q, R> {
    session: NodeId,
    addr: SocketAddr,
    membership: Arc<Membership>,
    metrics: Arc<Metrics>,
    peers: Arc<BTreeMap<NodeId, mpsc::Sender<N::Stream>>>,
    clients: mpsc::Sender<Input<Q, R>>,
    client_frame_max: usize,
    stop: watch::Receiver<bool>,
}

impl<N, Q, R> Connection<N, Q, R>
where
    N: Net,
    Q: DeserializeOwned + Send + 'static,
    R: serde::Serialize + Send + 'static,
{
    async fn serve(self, mut stream: N::Stream) {
        match net::accept_handshake(&mut stream, &self.membership, &self.metrics).await {
            Ok(Endpoint::Peer(p)) => {
                if let Some(link) = self.peers.get(&p) {
                    let _ = link.send(stream).await;
                }
            }
            Ok(Endpoint::Client) => self.client_session(stream).await,
            Err(reason) => tracing::warn!("refused connection from {}: {reason}", self.addr),
        }
    }

    /// Serves one client: requests go to the event loop, replies come back through a bounded
    /// queue and are written in batches. A malformed request is answered with an error
    /// naming what was wrong, counted, and closes the session.
    async fn client_session(self, stream: N::Stream) {
        let (reader, writer) = tokio::io::split(stream);
        let mut reader = tokio::io::BufReader::with_capacity(net::READ_BUFFER, reader);
        let (tx, rx) = mpsc::channel::<Reply<R>>(SESSION_REPLIES_MAX);
        let from = self.session;
        let open = Input::Open {
            from,
            reply: tx.clone(),
        };
        if self.clients.send(open).await.is_err() {
            return;
        }
        let frame_max = self.client_frame_max;
        let writer_task = tokio::spawn(write_replies(writer, rx, frame_max));
        let mut buf = Vec::new();
        let mut stop = self.stop.clone();
        loop {
            let read = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                r = frame::read_value::<_, Request<Q>>(&mut reader, frame_max, &mut buf) => r,
            };
            match read {
                Ok(Some(request)) => {
                    let input = Input::Request { from, request };
                    if self.clients.send(input).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    net::log_bad_frame(&self.metrics, &format!("client {}", self.addr), &e);
                    if e.is_malformed() {
                        let what = format!("malformed request: {e}");
                        let _ = tx.send(Reply::Error { what }).await;
                    }
                    break;
                }
            }
        }
        let _ = self.clients.send(Input::Closed(from)).await;
        drop(tx);
        let _ = writer_task.await;
    }
}

async fn write_replies<W: AsyncWrite + Unpin, O: serde::Serialize>(
    mut writer: W,
    mut rx: mpsc::Receiver<Reply<O>>,
    frame_max: usize,
) {
    let mut buf = Vec::new();
    while let Some(first) = rx.recv().await {
        buf.clear();
        let mut next = Some(first);
        while let Some(reply) = next {
            if let Err(e) = frame::encode(&reply, frame_max, &mut buf) {
                tracing::error!("reply not sent: {e}");
            }
            next = rx.try_recv().ok();
        }
        if writer.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}
