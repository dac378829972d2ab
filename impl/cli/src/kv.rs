//! `aver kv get|put|append KEY [VALUE]`: one operation on a running cluster.
//!
//! Finds the cluster that `aver cluster up` started in this directory (`./data/cluster.json`)
//! or the one given with `--cluster ADDRS`, discovers the leader and retries where that is
//! safe (see `aver_runtime::client`). Prints the value (`get`) or `ok`. Exit code 0 on
//! success; 1 when no leader answered in time (not executed) or the outcome is unknown (it
//! may have been executed — the message says which).

mod bench;
mod etcd;

pub use bench::{BenchArgs, run as bench};

use crate::cluster::Target;
use aver_runtime::client::{Client, ClientOptions, Outcome};
use aver_runtime::net::TokioNet;
use aver_runtime::service::{KvOp, KvOutput};
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
    let (cluster, members) = args.target.resolve()?;
    let op = match args.op {
        KvCmd::Get { key } => KvOp::Get { key },
        KvCmd::Put { key, value } => KvOp::Put { key, value },
        KvCmd::Append { key, value } => KvOp::Append { key, value },
    };
    let mut opts = ClientOptions::new(cluster, members);
    opts.op_timeout = Duration::from_secs(args.timeout_secs);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(async {
        let mut client: Client<TokioNet, KvOp, KvOutput> = Client::new(TokioNet, opts);
        client.call(&op).await
    });
    match outcome {
        Outcome::Ok(KvOutput::Value(v)) => println!("{v}"),
        Outcome::Ok(KvOutput::Done) => println!("ok"),
        Outcome::Failed(why) => {
            eprintln!("error: not executed: {why}");
            return Ok(1);
        }
        Outcome::Unknown(why) => {
            eprintln!("error: outcome unknown (it may or may not have been executed): {why}");
            return Ok(1);
        }
    }
    Ok(0)
}
