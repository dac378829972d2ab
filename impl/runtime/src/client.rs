//! A client of a cluster: leader discovery, retries where they are safe, timeouts.
//!
//! The client sends an operation to the node it believes leads; a `NotLeader` answer names the
//! leader (or the client tries the next node), and `NotApplied`/`Busy` or a connection that
//! cannot be made mean the operation was not executed, so it is retried — until the
//! operation's deadline. Once a request may have reached a leader and no definite answer came
//! back (a timeout, a dropped connection, `Unknown`), the client stops and reports
//! [`Outcome::Unknown`] — unless the operation says it is safe to repeat ([`RetrySafe`], e.g.
//! a read): the services here keep no table of client requests, so a retry could execute a
//! write twice. A history records such an operation without a return.

use crate::frame;
use crate::net::{Net, dial};
use crate::wire::{ClusterId, Endpoint, Hello, NodeStatus, OpResult, Reply, Request};
use aver_core::contract::NodeId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Whether an operation may be executed more than once with the same effect as once (a
/// read), so that the client may retry it after an ambiguous failure.
pub trait RetrySafe {
    /// True if repeating the operation is harmless.
    fn retry_safe(&self) -> bool;
}

impl RetrySafe for crate::service::KvOp {
    fn retry_safe(&self) -> bool {
        matches!(self, crate::service::KvOp::Get { .. })
    }
}

/// How a client finds and waits for a cluster.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The cluster.
    pub cluster: ClusterId,
    /// Its members and their addresses.
    pub nodes: BTreeMap<NodeId, SocketAddr>,
    /// How long one attempt waits for its reply.
    pub attempt_timeout: Duration,
    /// How long one operation may take, retries included.
    pub op_timeout: Duration,
    /// Largest reply frame accepted.
    pub frame_max: usize,
}

impl ClientOptions {
    /// Defaults: 2 s per attempt, 10 s per operation.
    pub fn new(cluster: ClusterId, nodes: BTreeMap<NodeId, SocketAddr>) -> ClientOptions {
        ClientOptions {
            cluster,
            nodes,
            attempt_timeout: Duration::from_secs(2),
            op_timeout: Duration::from_secs(10),
            frame_max: crate::frame::FRAME_BODY_MAX_DEFAULT,
        }
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<Out> {
    /// Executed, with this output (an acknowledgement).
    Ok(Out),
    /// Not executed: no leader could be reached before the deadline.
    Failed(String),
    /// May or may not have been executed.
    Unknown(String),
}

struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
}

/// A client issuing one operation at a time.
pub struct Client<N: Net, Op, Out> {
    net: N,
    opts: ClientOptions,
    leader: Option<NodeId>,
    conns: BTreeMap<NodeId, Conn<N::Stream>>,
    next_id: u64,
    rotate: usize,
    _types: PhantomData<fn(Op) -> Out>,
}

enum Attempt<Out> {
    Done(Outcome<Out>),
    /// Not executed; try again (after `pause`).
    Retry(Duration),
}

impl<N: Net, Op: Serialize + Clone + RetrySafe, Out: DeserializeOwned> Client<N, Op, Out> {
    /// A client of the cluster in `opts`.
    pub fn new(net: N, opts: ClientOptions) -> Self {
        Client {
            net,
            opts,
            leader: None,
            conns: BTreeMap::new(),
            next_id: 1,
            rotate: 0,
            _types: PhantomData,
        }
    }

    /// The node believed to lead, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Executes `op`.
    pub async fn call(&mut self, op: &Op) -> Outcome<Out> {
        let deadline = tokio::time::Instant::now() + self.opts.op_timeout;
        let mut last_error = String::from("no attempt made");
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Outcome::Failed(format!(
                    "no leader answered within {:?} ({last_error})",
                    self.opts.op_timeout
                ));
            }
            let node = self.pick();
            match self.attempt(node, op).await {
                Ok(Attempt::Done(outcome)) => return outcome,
                Ok(Attempt::Retry(pause)) => tokio::time::sleep(pause).await,
                Err(e) => {
                    last_error = e;
                    self.forget(node);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn pick(&mut self) -> NodeId {
        if let Some(l) = self.leader.filter(|l| self.opts.nodes.contains_key(l)) {
            return l;
        }
        let ids: Vec<NodeId> = self.opts.nodes.keys().copied().collect();
        self.rotate = (self.rotate + 1) % ids.len().max(1);
        ids[self.rotate]
    }

    fn forget(&mut self, node: NodeId) {
        self.conns.remove(&node);
        if self.leader == Some(node) {
            self.leader = None;
        }
    }

    /// One attempt at `node`. `Err`: the request was certainly not delivered (connecting or
    /// writing failed).
    async fn attempt(&mut self, node: NodeId, op: &Op) -> Result<Attempt<Out>, String> {
        let id = self.next_id;
        self.next_id += 1;
        let request = Request::Op { id, op: op.clone() };
        let why = match self.exchange(node, &request, id).await? {
            Ok(Reply::Op { result, .. }) => return Ok(self.judge(node, result, op.retry_safe())),
            Ok(other) => format!("{node} answered {}", describe(&other)),
            Err(why) => why,
        };
        self.forget(node);
        if op.retry_safe() {
            return Err(why);
        }
        Ok(Attempt::Done(Outcome::Unknown(why)))
    }

    fn judge(&mut self, node: NodeId, reply: OpResult<Out>, retry_safe: bool) -> Attempt<Out> {
        match reply {
            OpResult::Ok(out) => {
                self.leader = Some(node);
                Attempt::Done(Outcome::Ok(out))
            }
            OpResult::NotLeader { leader } => {
                self.leader = leader.map(|l| l.0).filter(|&l| l != node);
                let pause = if self.leader.is_some() { 0 } else { 50 };
                Attempt::Retry(Duration::from_millis(pause))
            }
            OpResult::NotApplied => Attempt::Retry(Duration::ZERO),
            OpResult::Busy => Attempt::Retry(Duration::from_millis(20)),
            OpResult::Unknown if retry_safe => {
                self.leader = None;
                Attempt::Retry(Duration::from_millis(20))
            }
            OpResult::Unknown => {
                self.leader = None;
                let why = format!("{node} lost its leadership before the entry applied");
                Attempt::Done(Outcome::Unknown(why))
            }
        }
    }

    /// Sends `request` to `node` and waits for the reply with `id`. `Err`: not delivered;
    /// `Ok(Err(why))`: perhaps delivered, but no reply came (timeout, broken connection).
    async fn exchange(
        &mut self,
        node: NodeId,
        request: &Request<Op>,
        id: u64,
    ) -> Result<Result<Reply<Out>, String>, String> {
        let (frame_max, timeout) = (self.opts.frame_max, self.opts.attempt_timeout);
        let bytes = frame::encode_to_vec(request, frame_max).map_err(|e| e.to_string())?;
        let conn = self.connection(node).await?;
        if let Err(e) = conn.stream.write_all(&bytes).await {
            return Err(format!("{node}: {e}"));
        }
        let wait = async {
            loop {
                let read =
                    frame::read_value::<_, Reply<Out>>(&mut conn.stream, frame_max, &mut conn.buf);
                let reply = match read.await {
                    Ok(Some(reply)) => reply,
                    Ok(None) => return Err(format!("{node} closed the connection")),
                    Err(e) => return Err(format!("{node}: {e}")),
                };
                match &reply {
                    Reply::Op { id: got, .. } | Reply::Status { id: got, .. } if *got != id => {}
                    _ => return Ok(reply),
                }
            }
        };
        Ok(tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| Err(format!("{node} did not answer within {timeout:?}"))))
    }

    async fn connection(&mut self, node: NodeId) -> Result<&mut Conn<N::Stream>, String> {
        if !self.conns.contains_key(&node) {
            let addr = *self
                .opts
                .nodes
                .get(&node)
                .ok_or_else(|| format!("{node} is not a member"))?;
            let hello = Hello::new(self.opts.cluster, Endpoint::Client, Some(node));
            let connect = dial(&self.net, addr, &hello);
            let stream = tokio::time::timeout(self.opts.attempt_timeout, connect)
                .await
                .map_err(|_| format!("{node} at {addr}: connect timed out"))??;
            self.conns.insert(
                node,
                Conn {
                    stream,
                    buf: Vec::new(),
                },
            );
        }
        Ok(self.conns.get_mut(&node).expect("just inserted"))
    }

    /// Asks `node` for its status.
    pub async fn status(&mut self, node: NodeId) -> Result<NodeStatus, String> {
        let id = self.next_id;
        self.next_id += 1;
        match self.exchange(node, &Request::Status { id }, id).await {
            Ok(Ok(Reply::Status { status, .. })) => Ok(status),
            Ok(Ok(other)) => Err(format!("{node} answered {}", describe(&other))),
            Ok(Err(e)) | Err(e) => {
                self.forget(node);
                Err(e)
            }
        }
    }
}

fn describe<Out>(reply: &Reply<Out>) -> String {
    match reply {
        Reply::Op { .. } => "an operation reply".into(),
        Reply::Status { .. } => "a status".into(),
        Reply::Error { what } => format!("an error: {what}"),
    }
}
