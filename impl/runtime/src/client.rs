//! A client of a cluster: the kvraft clerk core ([`aver_core::kvraft::Clerk`]) driven over TCP.
//!
//! The clerk decides everything a client decides — the sequence number of each operation,
//! which server to ask, when to move to the hinted leader, when to resend (on the same
//! sequence number, so the servers' dedup table executes the operation once). This driver
//! only carries its requests to sockets, its replies back, and runs its `Retry` timer.
//!
//! An operation not answered within [`ClientOptions::op_timeout`] is abandoned: the caller
//! learns [`Outcome::Unknown`] (it may still execute), and the next operation starts a new
//! clerk with a new session id — the core has no input to give up an operation, and a new
//! session cannot be confused with the old one's retries.

use crate::driver::{Driver, Environment};
use crate::frame;
use crate::kv::{ClientMessage, Op, OpReply, Store};
use crate::net::{Net, dial};
use crate::wire::{ClusterId, Endpoint, Hello, NodeStatus, Reply, Request};
use aver_core::contract::{NodeId, TimerCmd};
use aver_core::kvraft::{Clerk, ClerkConfig, ClerkOutput, ClerkTimer, ClientId, ClientMsg, KvBugs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How a client finds and waits for a cluster.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The cluster.
    pub cluster: ClusterId,
    /// Its members and their addresses (the clerk tries them in this order).
    pub nodes: BTreeMap<NodeId, SocketAddr>,
    /// The clerk's `Retry` timer: how long it waits for an answer before resending to the
    /// next server.
    pub retry: Duration,
    /// How long one operation may take, retries included, before it is abandoned.
    pub op_timeout: Duration,
    /// How long connecting to a server (and its handshake) may take.
    pub connect_timeout: Duration,
    /// Largest reply frame accepted.
    pub frame_max: usize,
    /// Seed of the session ids this client draws (one per clerk).
    pub seed: u64,
}

impl ClientOptions {
    /// Defaults: resend after 1 s, give up after 10 s.
    pub fn new(cluster: ClusterId, nodes: BTreeMap<NodeId, SocketAddr>) -> ClientOptions {
        ClientOptions {
            cluster,
            nodes,
            retry: Duration::from_secs(1),
            op_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_millis(500),
            frame_max: crate::frame::FRAME_BODY_MAX_DEFAULT,
            seed: 0,
        }
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<R> {
    /// Executed (exactly once), with this reply: an acknowledgement.
    Ok(R),
    /// Abandoned without an answer: it may or may not execute.
    Unknown(String),
}

/// What the clerk asked for during one input.
#[derive(Default)]
struct ClerkEnv {
    sends: Vec<(NodeId, ClientMessage)>,
    outputs: Vec<ClerkOutput<OpReply>>,
    timer: Option<TimerCmd<ClerkTimer>>,
}

impl Environment<Clerk<Store>> for ClerkEnv {
    fn persist(&mut self, _: &[Infallible]) {}
    fn sync(&mut self) {}
    fn send(&mut self, to: NodeId, msg: ClientMessage) {
        self.sends.push((to, msg));
    }
    fn apply(&mut self, output: ClerkOutput<OpReply>) {
        self.outputs.push(output);
    }
    fn set_timer(&mut self, timer: ClerkTimer) {
        self.timer = Some(TimerCmd::Set(timer));
    }
    fn cancel_timer(&mut self, timer: ClerkTimer) {
        self.timer = Some(TimerCmd::Cancel(timer));
    }
}

/// A reply read from a server, or the end of its connection (`None`).
type Incoming = (NodeId, u64, Option<Reply<OpReply>>);

/// A client issuing one operation at a time through a kvraft clerk.
pub struct Client<N: Net> {
    net: N,
    opts: ClientOptions,
    rng: ChaCha8Rng,
    driver: Driver<Clerk<Store>>,
    env: ClerkEnv,
    retry_at: Option<Instant>,
    /// Write halves of the open connections, with a generation number each.
    conns: BTreeMap<NodeId, (u64, WriteHalf<N::Stream>)>,
    generation: u64,
    incoming_tx: mpsc::UnboundedSender<Incoming>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    /// Why the last request could not be delivered (for the message of an abandoned one).
    last_error: Option<String>,
}

impl<N: Net> Client<N> {
    /// A client of the cluster in `opts`.
    pub fn new(net: N, opts: ClientOptions) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let driver = Driver::new(new_clerk(&opts, &mut rng));
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        Client {
            net,
            opts,
            rng,
            driver,
            env: ClerkEnv::default(),
            retry_at: None,
            conns: BTreeMap::new(),
            generation: 0,
            incoming_tx,
            incoming,
            last_error: None,
        }
    }

    /// The clerk's current session id.
    pub fn client_id(&self) -> ClientId {
        self.driver.core().config().client
    }

    /// The server the clerk believes leads.
    pub fn leader(&self) -> NodeId {
        self.driver.core().leader()
    }

    /// Asks `node` for its status (on a connection of its own).
    pub async fn status(&self, node: NodeId) -> Result<NodeStatus, String> {
        status(&self.net, &self.opts, node).await
    }

    /// Executes `op` through the clerk.
    pub async fn call(&mut self, op: Op) -> Outcome<OpReply> {
        let deadline = Instant::now() + self.opts.op_timeout;
        if self.driver.core().outstanding().is_some() {
            self.abandon();
        }
        let invoked = self.driver.input(&mut self.env, |clerk| clerk.invoke(op));
        if invoked.is_err() {
            return Outcome::Unknown("the clerk is busy".into());
        }
        loop {
            self.carry_out().await;
            if let Some(out) = self.env.outputs.pop() {
                return Outcome::Ok(out.reply);
            }
            // `biased`: branches in a fixed order (replies, retry, deadline), so a seeded run
            // under a simulated network is reproducible; tokio would pick at random otherwise.
            tokio::select! {
                biased;
                Some((node, generation, reply)) = self.incoming.recv() => match reply {
                    Some(Reply::Kv(r)) => {
                        let msg = ClientMsg::Reply(r);
                        self.driver.on_message(&mut self.env, node, msg);
                    }
                    Some(_) => {}
                    None => self.forget(node, generation),
                },
                _ = sleep_until(self.retry_at) => {
                    self.retry_at = None;
                    self.driver.on_timeout(&mut self.env, ClerkTimer::Retry);
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.abandon();
                    let last = self.last_error.take().map_or(String::new(), |e| format!(" ({e})"));
                    return Outcome::Unknown(format!(
                        "no answer within {:?}{last}", self.opts.op_timeout
                    ));
                }
            }
        }
    }

    /// Gives up the outstanding operation: the next one runs in a new session.
    fn abandon(&mut self) {
        self.driver = Driver::new(new_clerk(&self.opts, &mut self.rng));
        self.env = ClerkEnv::default();
        self.retry_at = None;
    }

    /// Sends what the clerk asked to send and sets its timer. A request that cannot be
    /// delivered is lost like any message; the clerk's timer resends it.
    async fn carry_out(&mut self) {
        match self.env.timer.take() {
            Some(TimerCmd::Set(_)) => self.retry_at = Some(Instant::now() + self.opts.retry),
            Some(TimerCmd::Cancel(_)) => self.retry_at = None,
            None => {}
        }
        for (to, msg) in std::mem::take(&mut self.env.sends) {
            let ClientMsg::Request(r) = msg else { continue };
            if let Err(e) = self.send(to, &Request::Kv(r)).await {
                tracing::debug!("request to {to} not delivered: {e}");
                self.last_error = Some(e);
            }
        }
    }

    async fn send(&mut self, to: NodeId, request: &Request<Op>) -> Result<(), String> {
        let bytes =
            frame::encode_to_vec(request, self.opts.frame_max).map_err(|e| e.to_string())?;
        if !self.conns.contains_key(&to) {
            self.connect(to).await?;
        }
        let (generation, writer) = self.conns.get_mut(&to).expect("connected");
        let generation = *generation;
        if let Err(e) = writer.write_all(&bytes).await {
            self.forget(to, generation);
            return Err(format!("{to}: {e}"));
        }
        Ok(())
    }

    async fn connect(&mut self, node: NodeId) -> Result<(), String> {
        let addr = *self
            .opts
            .nodes
            .get(&node)
            .ok_or_else(|| format!("{node} is not a member"))?;
        let hello = Hello::new(self.opts.cluster, Endpoint::Client, Some(node));
        let stream = tokio::time::timeout(self.opts.connect_timeout, dial(&self.net, addr, &hello))
            .await
            .map_err(|_| format!("{node} at {addr}: connect timed out"))??;
        let (reader, writer) = tokio::io::split(stream);
        let mut reader = tokio::io::BufReader::with_capacity(crate::net::READ_BUFFER, reader);
        self.generation += 1;
        let generation = self.generation;
        let tx = self.incoming_tx.clone();
        let frame_max = self.opts.frame_max;
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                match frame::read_value::<_, Reply<OpReply>>(&mut reader, frame_max, &mut buf).await
                {
                    Ok(Some(reply)) => {
                        if tx.send((node, generation, Some(reply))).is_err() {
                            return;
                        }
                    }
                    Ok(None) | Err(_) => {
                        let _ = tx.send((node, generation, None));
                        return;
                    }
                }
            }
        });
        self.conns.insert(node, (generation, writer));
        Ok(())
    }

    fn forget(&mut self, node: NodeId, generation: u64) {
        if self.conns.get(&node).is_some_and(|(g, _)| *g == generation) {
            self.conns.remove(&node);
        }
    }
}

fn new_clerk(opts: &ClientOptions, rng: &mut ChaCha8Rng) -> Clerk<Store> {
    Clerk::new(ClerkConfig {
        client: ClientId(rng.random()),
        servers: opts.nodes.keys().copied().collect(),
        bugs: KvBugs::NONE,
    })
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Asks `node` for its status (on a connection of its own).
pub async fn status<N: Net>(
    net: &N,
    opts: &ClientOptions,
    node: NodeId,
) -> Result<NodeStatus, String> {
    let addr = *opts
        .nodes
        .get(&node)
        .ok_or_else(|| format!("{node} is not a member"))?;
    let hello = Hello::new(opts.cluster, Endpoint::Client, Some(node));
    let exchange = async {
        let mut stream = dial(net, addr, &hello).await?;
        frame::write_value(
            &mut stream,
            &Request::<Op>::Status { id: 1 },
            opts.frame_max,
        )
        .await
        .map_err(|e| format!("{node}: {e}"))?;
        let mut buf = Vec::new();
        match frame::read_value::<_, Reply<OpReply>>(&mut stream, opts.frame_max, &mut buf).await {
            Ok(Some(Reply::Status { status, .. })) => Ok(status),
            Ok(Some(Reply::Error { what })) => Err(format!("{node} answered an error: {what}")),
            Ok(Some(Reply::Kv(_) | Reply::Msg(_))) => {
                Err(format!("{node} answered an operation reply"))
            }
            Ok(None) => Err(format!("{node} closed the connection")),
            Err(e) => Err(format!("{node}: {e}")),
        }
    };
    tokio::time::timeout(opts.op_timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "{node} did not answer within {:?}",
                opts.op_timeout
            ))
        })
}
