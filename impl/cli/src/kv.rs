//! `aver kv get|put|append KEY [VALUE]`: one operation on a running cluster.
//!
//! Finds the cluster that `aver cluster up` started in this directory (`./data/cluster.json`)
//! or the one given with `--cluster ADDRS`, and runs the operation through the kvraft clerk
//! core (`aver_runtime::client`): it finds the leader and retries on the same sequence number,
//! so the servers execute the operation exactly once. Prints the value (`get`) or `ok`. Exit
//! code 0 on success; 1 when no answer came in time (the outcome is unknown: it may still be
//! executed).
//!
//! When `./data` holds a sharded deployment (`aver cluster up --groups G`), the operation
//! runs through the sharded KV's clerk core instead: key → shard → group by the controller's
//! configuration, retried with the same sequence number wherever the shard moves.

mod bench;
mod etcd;

pub use bench::{BenchArgs, run as bench};

use crate::cluster::Target;
use aver_core::kvraft::{AppendOp, AppendReply};
use aver_core::shardkv::{Op as ShardOp, OpReply};
use aver_runtime::client::{Client, ClientOptions, Outcome};
use aver_runtime::net::TokioNet;
use aver_runtime::shard_client::{ShardClient, ShardClientOptions};
use clap::{Args, Subcommand};
use std::time::Duration;

/// Arguments of `aver kv`.
#[derive(Args)]
pub struct KvArgs {
    #[command(subcommand)]
    op: KvCmd,
    #[command(flatten)]
    target: Target,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

#[derive(Subcommand)]
enum KvCmd {
    /// Print a key's value (empty if never written).
    Get {
        /// The key.
        key: String,
    },
    /// Set a key's value.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Append to a key's value.
    Append {
        /// The key.
        key: String,
        /// What to append.
        value: String,
    },
}

/// Runs `aver kv`.
pub fn run(args: KvArgs) -> anyhow::Result<u8> {
    if args.target.cluster.is_none()
        && let Ok(file) = crate::cluster::ClusterFile::load(&args.target.data)
        && let Some(opts) = file.shard_client()?
    {
        return run_sharded(args, opts);
    }
    let (cluster, members) = args.target.resolve()?;
    let op = match args.op {
        KvCmd::Get { key } => AppendOp::Get { key: key.into() },
        KvCmd::Put { key, value } => AppendOp::Put {
            key: key.into(),
            value: value.into(),
        },
        KvCmd::Append { key, value } => AppendOp::Append {
            key: key.into(),
            value: value.into(),
        },
    };
    let mut opts = ClientOptions::new(cluster, members);
    opts.op_timeout = Duration::from_secs(args.timeout_secs);
    opts.seed = session_seed();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(async {
        let mut client: Client<TokioNet> = Client::new(TokioNet, opts);
        client.call(op).await
    });
    match outcome {
        Outcome::Ok(AppendReply::Value(v)) => println!("{v}"),
        Outcome::Ok(AppendReply::Ok) => println!("ok"),
        Outcome::Unknown(why) => {
            eprintln!("error: outcome unknown (it may or may not have been executed): {why}");
            return Ok(1);
        }
    }
    Ok(0)
}

/// Runs the operation through the sharded KV's clerk core: key → shard → group by the
/// controller's configuration.
fn run_sharded(args: KvArgs, mut opts: ShardClientOptions) -> anyhow::Result<u8> {
    let op = match args.op {
        KvCmd::Get { key } => ShardOp::Get(key),
        KvCmd::Put { key, value } => ShardOp::Put(key, value),
        KvCmd::Append { key, value } => ShardOp::Append(key, value),
    };
    opts.op_timeout = Duration::from_secs(args.timeout_secs);
    opts.seed = session_seed();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(ShardClient::new(TokioNet, opts).call(op));
    match outcome {
        Outcome::Ok(OpReply::Value(v)) => println!("{v}"),
        Outcome::Ok(OpReply::NoKey) => println!(),
        Outcome::Ok(_) => println!("ok"),
        Outcome::Unknown(why) => {
            eprintln!("error: outcome unknown (it may or may not have been executed): {why}");
            return Ok(1);
        }
    }
    Ok(0)
}

/// Seed of a process's clerk session ids. A session id must never repeat against one
/// cluster (the servers would take a new session's first operations for old retries and
/// ignore them), so it comes from the clock and the process id, not from a fixed seed.
pub fn session_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32).rotate_left(17)
}
