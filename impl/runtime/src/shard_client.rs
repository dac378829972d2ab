//! A client of a sharded deployment over TCP: the sharded KV's clerk core
//! ([`aver_core::shardkv::Clerk`]: key → shard → group by the controller's configuration) for
//! Get/Put/Append, and administration of the controller (Join, Leave, Move, Query).
//!
//! The clerk core decides everything (which server, when to re-read the configuration, when
//! to retry with the same sequence number); this driver carries its messages over
//! connections it opens as a client ([`Remotes`]) and runs its retry timer. An operation that
//! gets no final answer before the deadline is reported [`Outcome::Unknown`], and the next
//! operation runs in a new session, like [`crate::client::Client`].

use crate::client::Outcome;
use crate::net::Net;
use crate::node::Remotes;
use crate::wire::{ClusterId, Reply, Request};
use aver_core::contract::{NodeId, TimerCmd};
use aver_core::kvraft::{ClientId, Seq};
use aver_core::shardctrler::{Config, ConfigNum, CtrlOp, CtrlReply};
use aver_core::shardkv::replica::NetMsg;
use aver_core::shardkv::{Clerk, ClerkTimer, Msg, Op, OpReply};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How a sharded client finds the deployment.
#[derive(Clone, Debug)]
pub struct ShardClientOptions {
    /// The deployment's cluster id (every node of it shares one).
    pub cluster: ClusterId,
    /// The controller's servers.
    pub ctrl: Vec<NodeId>,
    /// Every server's address (controller and groups).
    pub directory: BTreeMap<NodeId, SocketAddr>,
    /// Give up on an operation after this long.
    pub op_timeout: Duration,
    /// Resend after this long without an answer.
    pub retry: Duration,
    /// Seed of session ids.
    pub seed: u64,
    /// Largest frame.
    pub frame_max: usize,
}

impl ShardClientOptions {
    /// Options with defaults (10 s deadline, 100 ms retry, like the lab's clerk).
    pub fn new(
        cluster: ClusterId,
        ctrl: Vec<NodeId>,
        directory: BTreeMap<NodeId, SocketAddr>,
    ) -> ShardClientOptions {
        ShardClientOptions {
            cluster,
            ctrl,
            directory,
            op_timeout: Duration::from_secs(10),
            retry: Duration::from_millis(100),
            seed: 0,
            frame_max: 16 << 20,
        }
    }
}

/// A sharded-KV client and controller administrator.
pub struct ShardClient {
    opts: ShardClientOptions,
    remotes: Remotes<NetMsg>,
    incoming: mpsc::Receiver<(NodeId, Reply<NetMsg>)>,
    _stop: watch::Sender<bool>,
    rng: ChaCha8Rng,
    clerk: Clerk,
    admin: (ClientId, Seq),
}

impl ShardClient {
    /// A client over `net`.
    pub fn new<N: Net>(net: N, opts: ShardClientOptions) -> ShardClient {
        assert!(!opts.ctrl.is_empty(), "a controller has servers");
        let (tx, incoming) = mpsc::channel(4096);
        let (stop, stop_rx) = watch::channel(false);
        let remotes = Remotes::new(
            net,
            (opts.cluster, opts.frame_max),
            opts.directory.clone(),
            tx,
            stop_rx,
        );
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let clerk = Clerk::new(ClientId(rng.random()), opts.ctrl.clone());
        let admin = (ClientId(rng.random()), Seq(0));
        ShardClient {
            opts,
            remotes,
            incoming,
            _stop: stop,
            rng,
            clerk,
            admin,
        }
    }

    /// The clerk's session id (for histories).
    pub fn client_id(&self) -> ClientId {
        self.clerk.id()
    }

    /// Runs `op` to completion or the deadline.
    pub async fn call(&mut self, op: Op) -> Outcome<OpReply> {
        let deadline = Instant::now() + self.opts.op_timeout;
        self.clerk.invoke(op);
        let mut retry_at = None;
        loop {
            let r = self.clerk.take_ready();
            for (to, m) in r.messages {
                self.remotes.send(to, Request::Msg(NetMsg::Shard(m)));
            }
            for t in r.timers {
                retry_at = match t {
                    TimerCmd::Set(ClerkTimer::Retry) => Some(Instant::now() + self.opts.retry),
                    TimerCmd::Cancel(ClerkTimer::Retry) => None,
                };
            }
            if let Some(done) = r.completed.into_iter().next() {
                return Outcome::Ok(done.reply);
            }
            tokio::select! {
                biased;
                Some((from, reply)) = self.incoming.recv() => {
                    if let Reply::Msg(NetMsg::Shard(m)) = reply {
                        self.clerk.on_message(from, m);
                    }
                }
                _ = sleep_until(retry_at) => {
                    retry_at = None;
                    self.clerk.on_timeout(ClerkTimer::Retry);
                }
                _ = tokio::time::sleep_until(deadline) => {
                    // A new session: the abandoned operation's retries must not be taken
                    // for the next operation's.
                    let config = self.clerk.config().cloned();
                    self.clerk = Clerk::new(ClientId(self.rng.random()), self.opts.ctrl.clone());
                    if let Some(c) = config {
                        self.clerk.on_message(self.opts.ctrl[0], Msg::QueryReply { config: c });
                        let _ = self.clerk.take_ready();
                    }
                    return Outcome::Unknown(format!("no answer within {:?}", self.opts.op_timeout));
                }
            }
        }
    }

    /// Runs an administrative operation (`Join`, `Leave`, `Move`) on the controller: through
    /// its log, once, whichever server leads.
    pub async fn admin(&mut self, op: CtrlOp) -> Outcome<CtrlReply> {
        self.admin.1 = Seq(self.admin.1.0 + 1);
        let (client, seq) = self.admin;
        let deadline = Instant::now() + self.opts.op_timeout;
        let mut k = 0usize;
        loop {
            let to = self.opts.ctrl[k % self.opts.ctrl.len()];
            let msg = NetMsg::Admin {
                client,
                seq,
                op: op.clone(),
            };
            self.remotes.send(to, Request::Msg(msg));
            let retry = Instant::now() + self.opts.retry * 3;
            loop {
                tokio::select! {
                    biased;
                    Some((_, reply)) = self.incoming.recv() => match reply {
                        Reply::Msg(NetMsg::AdminReply { client: c, seq: s, result })
                            if c == client && s == seq => match result {
                            Ok(r) => return Outcome::Ok(r),
                            Err(_) => break,
                        },
                        _ => {}
                    },
                    _ = tokio::time::sleep_until(retry) => break,
                    _ = tokio::time::sleep_until(deadline) => {
                        self.admin = (ClientId(self.rng.random()), Seq(0));
                        return Outcome::Unknown(format!(
                            "no answer within {:?}", self.opts.op_timeout
                        ));
                    }
                }
            }
            k += 1;
            if Instant::now() >= deadline {
                return Outcome::Unknown("no controller server answered".into());
            }
        }
    }

    /// The newest configuration any controller server reports within `wait` (configuration
    /// `num`, or the latest for `None`).
    pub async fn query(&mut self, num: Option<ConfigNum>, wait: Duration) -> Option<Config> {
        for &c in &self.opts.ctrl.clone() {
            let m = NetMsg::Shard(Msg::Query { num });
            self.remotes.send(c, Request::Msg(m));
        }
        let deadline = Instant::now() + wait;
        let mut best: Option<Config> = None;
        let mut answers = 0;
        while answers < self.opts.ctrl.len() {
            tokio::select! {
                Some((_, reply)) = self.incoming.recv() => {
                    if let Reply::Msg(NetMsg::Shard(Msg::QueryReply { config })) = reply {
                        answers += 1;
                        if best.as_ref().is_none_or(|b| b.num < config.num) {
                            best = Some(config);
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        best
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
