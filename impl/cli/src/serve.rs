//! `aver serve kv`: one real node of a replicated key/value cluster.
//!
//! ```text
//! aver serve kv --id 1 --peers 1=127.0.0.1:7401,2=127.0.0.1:7402,3=127.0.0.1:7403 --data data/n1
//! aver serve shardctrler --id 1 --peers 1=127.0.0.1:7501,2=...,3=... --data data/c1
//! aver serve shardkv --group 1 --id 101 --peers 101=127.0.0.1:7511,102=...,103=... \
//!     --ctrl 1=127.0.0.1:7501,2=...,3=... --nodes 201=127.0.0.1:7521,... --data data/g1n101
//! ```
//!
//! A sharded deployment's nodes share one cluster id (by default derived from the
//! controller's list, so every node given the same `--ctrl` agrees); node ids are unique
//! across the deployment. A shard group's node polls the controller (`--ctrl`) for
//! configurations and moves shards to and from the other groups' servers, whose addresses it
//! finds in `--nodes`.
//!
//! The node listens on its own address from `--peers` (loopback unless you give another)
//! for peers and clients alike, keeps its WAL, hard state and snapshots under `--data`, logs
//! one line per significant event (filter with `RUST_LOG`, default `info`), and stops cleanly
//! on SIGINT/SIGTERM. Exit code 0 after a clean stop, 1 when the node stopped on an error
//! (the message names it: a violated invariant, damaged storage, a failed fsync).

use aver_core::contract::NodeId;
use aver_runtime::kv::KvService;
use aver_runtime::net::TokioNet;
use aver_runtime::node::{self, NodeOptions};
use aver_runtime::shard::{CtrlService, GroupService};
use aver_runtime::wire::ClusterId;
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which service a node runs.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ServiceKind {
    /// The replicated key/value store (get, put, append): the kvraft server core on Raft.
    Kv,
    /// A shard controller server: the shardctrler core on the rsm on Raft.
    Shardctrler,
    /// A shard group server: the shardkv core on the rsm on Raft (needs `--group`, `--ctrl`).
    Shardkv,
}

/// Arguments of `aver serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The service.
    service: ServiceKind,
    /// This node's id (one of `--peers`).
    #[arg(long)]
    id: u32,
    /// Every member: `1=127.0.0.1:7401,2=...` (or bare addresses, numbered from 1).
    #[arg(long)]
    peers: String,
    /// Data directory (WAL, hard state, snapshots, traces).
    #[arg(long)]
    data: PathBuf,
    /// Listen here instead of this node's address in `--peers`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Cluster id (hex); default: derived from `--peers`, so nodes given the same list agree.
    #[arg(long)]
    cluster_id: Option<String>,
    /// Write an input trace to DATA/trace (for `aver replay`).
    #[arg(long)]
    trace: bool,
    /// Seed of the node's RNG (election timeouts); default: from the clock (logged).
    #[arg(long)]
    seed: Option<u64>,
    /// Snapshot when Raft's state besides the snapshot exceeds this many bytes (the kvraft
    /// server's `max_raft_state`; 0: never). The rsm keeps that size up to date op by op, so
    /// the bound costs nothing to check; each snapshot writes the whole state machine and
    /// fsyncs it, so a larger bound snapshots less often at the price of a longer log to keep
    /// and replay (measured, 64 clients of 256-byte puts, 1,000 keys, loaded machine, runs
    /// alternated: 256 KiB ~20,400 ops/s with p99 17–27 ms, 4 MiB ~23,700 ops/s with p99
    /// 10–11 ms; 16 MiB no clearer gain).
    #[arg(long, default_value_t = 4 << 20)]
    snapshot_bytes: u64,
    /// Heartbeat interval, milliseconds.
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    /// Election timeout range, milliseconds: MIN-MAX.
    #[arg(long, default_value = "300-600")]
    election_ms: String,
    /// Shard group id (shardkv; at least 1).
    #[arg(long)]
    group: Option<u32>,
    /// The controller's servers, `1=127.0.0.1:7501,...` (shardkv; for shardctrler the
    /// default cluster id comes from `--peers`).
    #[arg(long)]
    ctrl: Option<String>,
    /// Other shard groups' servers, `201=127.0.0.1:7521,...` (shardkv: where shards move).
    #[arg(long, default_value = "")]
    nodes: String,
    /// Number of shards (sharded services; every node of a deployment must agree).
    #[arg(long, default_value_t = aver_core::shardctrler::SHARDS_DEFAULT)]
    shards: usize,
}

/// Parses `1=host:port,2=host:port` (or `host:port,host:port`, numbered from 1).
pub fn parse_members(text: &str) -> anyhow::Result<BTreeMap<NodeId, SocketAddr>> {
    let mut members = BTreeMap::new();
    for (k, part) in text.split(',').filter(|p| !p.trim().is_empty()).enumerate() {
        let (id, addr) = match part.split_once('=') {
            Some((id, addr)) => {
                let id: u32 = id
                    .trim()
                    .parse()
                    .map_err(|e| anyhow::anyhow!("member `{part}`: id `{id}`: {e}"))?;
                (id, addr)
            }
            None => (k as u32 + 1, part),
        };
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("member `{part}`: address `{addr}`: {e}"))?;
        if members.insert(NodeId(id), addr).is_some() {
            anyhow::bail!("member id {id} appears twice in `{text}`");
        }
    }
    if members.is_empty() {
        anyhow::bail!("no members in `{text}`");
    }
    Ok(members)
}

/// The cluster id nodes and clients derive from the member list when none is given.
pub fn default_cluster_id(members: &BTreeMap<NodeId, SocketAddr>) -> ClusterId {
    let text: Vec<String> = members
        .iter()
        .map(|(i, a)| format!("{}={a}", i.0))
        .collect();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.join(",").bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    ClusterId(h)
}

/// Parses a cluster id given on the command line, or derives the default.
pub fn cluster_id(
    given: Option<&str>,
    members: &BTreeMap<NodeId, SocketAddr>,
) -> anyhow::Result<ClusterId> {
    match given {
        Some(text) => text.parse().map_err(|e: String| anyhow::anyhow!(e)),
        None => Ok(default_cluster_id(members)),
    }
}

/// Sets up logging to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

fn parse_range(text: &str) -> anyhow::Result<(Duration, Duration)> {
    let (lo, hi) = text
        .split_once('-')
        .ok_or_else(|| anyhow::anyhow!("--election-ms `{text}`: expected MIN-MAX"))?;
    let lo: u64 = lo.trim().parse()?;
    let hi: u64 = hi.trim().parse()?;
    if lo == 0 || lo > hi {
        anyhow::bail!("--election-ms `{text}`: need 0 < MIN <= MAX");
    }
    Ok((Duration::from_millis(lo), Duration::from_millis(hi)))
}

fn options(a: &ServeArgs) -> anyhow::Result<NodeOptions> {
    let members = parse_members(&a.peers)?;
    let id = NodeId(a.id);
    if !members.contains_key(&id) {
        anyhow::bail!("--id {} is not in --peers {}", a.id, a.peers);
    }
    let cluster = match (a.service, &a.ctrl) {
        (ServiceKind::Shardkv, Some(ctrl)) => {
            cluster_id(a.cluster_id.as_deref(), &parse_members(ctrl)?)?
        }
        _ => cluster_id(a.cluster_id.as_deref(), &members)?,
    };
    let mut o = NodeOptions::new(id, cluster, members, a.data.clone());
    if let Some(ctrl) = &a.ctrl {
        o.directory.extend(parse_members(ctrl)?);
    }
    if !a.nodes.trim().is_empty() {
        o.directory.extend(parse_members(&a.nodes)?);
    }
    if let Some(listen) = a.listen {
        o.listen = listen;
    }
    o.trace = a.trace.then(|| a.data.join("trace"));
    o.seed = a.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        t.map_or(0, |d| d.as_nanos() as u64) ^ ((a.id as u64) << 48)
    });
    o.snapshot_log_bytes = a.snapshot_bytes;
    o.heartbeat = Duration::from_millis(a.heartbeat_ms);
    o.election = parse_range(&a.election_ms)?;
    if o.heartbeat >= o.election.0 {
        anyhow::bail!("--heartbeat-ms must be shorter than the smallest election timeout");
    }
    Ok(o)
}

/// Runs `aver serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    init_logging();
    let opts = options(&args)?;
    let svc = service(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        tracing::info!(
            node = %opts.id, cluster = %opts.cluster, listen = %opts.listen,
            data = %opts.data_dir.display(), seed = opts.seed, "starting"
        );
        let started = match svc {
            Svc::Kv => node::start_service(KvService, opts, TokioNet).await,
            Svc::Ctrl(s) => node::start_service(s, opts, TokioNet).await,
            Svc::Group(s) => node::start_service(s, opts, TokioNet).await,
        };
        let node = match started {
            Ok(n) => n,
            Err(e) => {
                tracing::error!("cannot start: {e}");
                eprintln!("error: {e}");
                return Ok(1);
            }
        };
        let stopper = node.stopper();
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stopper.send(true);
        });
        match node.wait().await {
            Ok(()) => Ok(0),
            Err(e) => {
                eprintln!("error: {e}");
                Ok(1)
            }
        }
    })
}

enum Svc {
    Kv,
    Ctrl(CtrlService),
    Group(GroupService),
}

/// The service `aver serve` runs, with its arguments checked.
fn service(a: &ServeArgs) -> anyhow::Result<Svc> {
    use aver_core::shardctrler::{Gid, SHARDS_MAX};
    let shards = a.shards;
    if !(1..=SHARDS_MAX).contains(&shards) {
        anyhow::bail!("--shards {shards}: must be 1..={SHARDS_MAX}");
    }
    Ok(match a.service {
        ServiceKind::Kv => Svc::Kv,
        ServiceKind::Shardctrler => Svc::Ctrl(CtrlService { shards }),
        ServiceKind::Shardkv => {
            let gid = match a.group {
                Some(g) if g >= 1 => Gid(g),
                Some(_) => anyhow::bail!("--group 0 is reserved (\"no group\"); use 1 or more"),
                None => anyhow::bail!("serve shardkv needs --group G"),
            };
            let ctrl = a
                .ctrl
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("serve shardkv needs --ctrl ADDRS"))?;
            let ctrl = parse_members(ctrl)?.into_keys().collect();
            Svc::Group(GroupService { gid, shards, ctrl })
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_with_and_without_ids() {
        let m = parse_members("1=127.0.0.1:1,3=127.0.0.1:3").unwrap();
        assert_eq!(m.keys().map(|n| n.0).collect::<Vec<_>>(), vec![1, 3]);
        let m = parse_members("127.0.0.1:1,127.0.0.1:2").unwrap();
        assert_eq!(m.keys().map(|n| n.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!(
            parse_members("1=x")
                .unwrap_err()
                .to_string()
                .contains("address `x`")
        );
        assert!(parse_members("1=127.0.0.1:1,1=127.0.0.1:2").is_err());
        assert_eq!(default_cluster_id(&m), default_cluster_id(&m.clone()));
    }
}
