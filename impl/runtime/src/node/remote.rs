//! Connections a node opens, as a client, to nodes outside its own Raft group (a shard group
//! to the controller and to other groups). One task per destination, started on the first
//! message to it: it dials the address the node's directory gives, says hello as a client,
//! writes the queued requests, and hands every frame the destination answers back to the
//! event loop as a message from that destination. Best effort, like the peer links: a full
//! queue or a broken connection drops messages (the cores resend on their timers), and a
//! failed dial is retried with backoff.

use crate::frame;
use crate::net::{self, Net};
use crate::wire::{ClusterId, Endpoint, Hello, Reply, Request};
use aver_core::contract::NodeId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

/// Requests queued per destination before new ones are dropped.
pub const REMOTE_QUEUE_MAX: usize = 1024;

type Spawn<Q> = Arc<dyn Fn(NodeId, SocketAddr, mpsc::Receiver<Request<Q>>) + Send + Sync>;

/// The node's outgoing client connections, by destination.
pub struct Remotes<Q> {
    directory: BTreeMap<NodeId, SocketAddr>,
    queues: BTreeMap<NodeId, mpsc::Sender<Request<Q>>>,
    spawn: Spawn<Q>,
}

impl<Q: Serialize + Send + Sync + 'static> Remotes<Q> {
    /// Connections over `net` to the nodes of `directory`, for a node of `cluster`; what they
    /// answer goes to `deliver`.
    pub fn new<N: Net, R: DeserializeOwned + Send + 'static>(
        net: N,
        (cluster, frame_max): (ClusterId, usize),
        directory: BTreeMap<NodeId, SocketAddr>,
        deliver: mpsc::Sender<(NodeId, Reply<R>)>,
        stop: watch::Receiver<bool>,
    ) -> Remotes<Q> {
        let spawn: Spawn<Q> = Arc::new(move |to, addr, rx| {
            let link = RemoteLink {
                net: net.clone(),
                to,
                addr,
                cluster,
                frame_max,
                deliver: deliver.clone(),
                stop: stop.clone(),
            };
            tokio::spawn(link.run(rx));
        });
        Remotes {
            directory,
            queues: BTreeMap::new(),
            spawn,
        }
    }

    /// Sends `request` to `to` (dropped if `to` is unknown or its queue is full).
    pub fn send(&mut self, to: NodeId, request: Request<Q>) {
        if !self.queues.contains_key(&to) {
            let Some(&addr) = self.directory.get(&to) else {
                tracing::debug!("no address for {to}: message dropped");
                return;
            };
            let (tx, rx) = mpsc::channel(REMOTE_QUEUE_MAX);
            (self.spawn)(to, addr, rx);
            self.queues.insert(to, tx);
        }
        if let Some(q) = self.queues.get(&to) {
            let _ = q.try_send(request);
        }
    }
}

struct RemoteLink<N, R> {
    net: N,
    to: NodeId,
    addr: SocketAddr,
    cluster: ClusterId,
    frame_max: usize,
    deliver: mpsc::Sender<(NodeId, Reply<R>)>,
    stop: watch::Receiver<bool>,
}

impl<N: Net, R: DeserializeOwned + Send + 'static> RemoteLink<N, R> {
    async fn run<Q: Serialize>(mut self, mut rx: mpsc::Receiver<Request<Q>>) {
        let mut backoff = Duration::from_millis(20);
        loop {
            if *self.stop.borrow() {
                return;
            }
            let hello = Hello::new(self.cluster, Endpoint::Client, Some(self.to));
            match net::dial(&self.net, self.addr, &hello).await {
                Ok(stream) => {
                    backoff = Duration::from_millis(20);
                    if self.serve(stream, &mut rx).await {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!("remote {}: {e}", self.to);
                    // Requests queued while unreachable are stale by the time we connect.
                    while rx.try_recv().is_ok() {}
                }
            }
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(net::BACKOFF_MAX);
        }
    }

    /// Writes requests and reads answers until the connection breaks (`false`) or the node
    /// stops or drops its queue (`true`).
    async fn serve<Q: Serialize>(
        &mut self,
        stream: N::Stream,
        rx: &mut mpsc::Receiver<Request<Q>>,
    ) -> bool {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let (to, frame_max, deliver) = (self.to, self.frame_max, self.deliver.clone());
        let mut read = tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Ok(Some(reply)) =
                frame::read_value::<_, Reply<R>>(&mut reader, frame_max, &mut buf).await
            {
                if deliver.send((to, reply)).await.is_err() {
                    return;
                }
            }
        });
        let mut stop = self.stop.clone();
        let mut buf = Vec::new();
        let done = loop {
            let request = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break true,
                _ = &mut read => break false,
                r = rx.recv() => r,
            };
            let Some(request) = request else { break true };
            buf.clear();
            let mut next = Some(request);
            while let Some(r) = next {
                if let Err(e) = frame::encode(&r, self.frame_max, &mut buf) {
                    tracing::error!("request to {} not sent: {e}", self.to);
                }
                next = rx.try_recv().ok();
            }
            if writer.write_all(&buf).await.is_err() {
                break false;
            }
        };
        read.abort();
        done
    }
}
