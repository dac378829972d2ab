//! `aver shard join|leave|move|query`: administer the controller of the sharded deployment
//! that `aver cluster up --groups G` started in this directory (`./data/cluster.json`).
//!
//! `join G` joins shard group G with the servers the cluster file lists for it; `leave G`
//! removes it (its shards move to the others); `move SHARD G` assigns one shard by hand;
//! `query [N]` prints configuration N (default: the latest). Each change goes through the
//! controller's Raft log once, whichever server leads, and prints the configuration it
//! created. Exit code 0 done, 1 refused by the controller or no answer in time, 2 bad
//! arguments.

use crate::cluster::ClusterFile;
use aver_core::shardctrler::{Config, ConfigNum, CtrlOp, CtrlReply, Gid, ShardId};
use aver_runtime::client::Outcome;
use aver_runtime::net::TokioNet;
use aver_runtime::shard_client::ShardClient;
use clap::Args;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the deployment is.
#[derive(Args, Debug)]
pub struct AdminTarget {
    /// Data directory of a deployment started with `aver cluster up --groups G`.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
}

/// An administrative operation.
pub enum AdminOp {
    /// Join groups.
    Join(Vec<u32>),
    /// Remove groups.
    Leave(Vec<u32>),
    /// Assign a shard.
    Move(u32, u32),
    /// Print a configuration.
    Query(Option<u64>),
}

fn client(data: &Path, timeout: Duration) -> anyhow::Result<(ClusterFile, ShardClient)> {
    let file = ClusterFile::load(data)?;
    let Some(mut opts) = file.shard_client()? else {
        anyhow::bail!(
            "the cluster in {} is not sharded (start one with `aver cluster up --groups 3`)",
            data.display()
        );
    };
    opts.op_timeout = timeout;
    opts.seed = crate::kv::session_seed();
    Ok((file, ShardClient::new(TokioNet, opts)))
}

/// Runs one administrative operation.
pub fn run(t: &AdminTarget, op: AdminOp) -> anyhow::Result<u8> {
    let timeout = Duration::from_secs(t.timeout_secs);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (file, mut c) = client(&t.data, timeout)?;
        let op = match op {
            AdminOp::Query(n) => {
                return match c.query(n.map(ConfigNum), timeout).await {
                    Some(config) => {
                        print_config(&config);
                        Ok(0)
                    }
                    None => {
                        eprintln!("error: no controller server answered within {timeout:?}");
                        Ok(1)
                    }
                };
            }
            AdminOp::Join(groups) => {
                let mut join = BTreeMap::new();
                for g in groups {
                    let servers: Vec<_> = file.group(g).into_keys().collect();
                    if g == 0 || servers.is_empty() {
                        anyhow::bail!("no shard group {g} in {}", t.data.display());
                    }
                    join.insert(Gid(g), servers);
                }
                CtrlOp::Join(join)
            }
            AdminOp::Leave(groups) => {
                CtrlOp::Leave(groups.into_iter().map(Gid).collect::<BTreeSet<_>>())
            }
            AdminOp::Move(shard, g) => CtrlOp::Move {
                shard: ShardId(shard),
                gid: Gid(g),
            },
        };
        match c.admin(op).await {
            Outcome::Ok(CtrlReply::Done(num)) => {
                if let Some(config) = c.query(Some(num), timeout).await {
                    print_config(&config);
                } else {
                    println!("created configuration {}", num.0);
                }
                Ok(0)
            }
            Outcome::Ok(CtrlReply::Err(e)) => {
                eprintln!("error: the controller refused: {e}");
                Ok(1)
            }
            Outcome::Ok(other) => {
                eprintln!("error: unexpected answer {other:?}");
                Ok(1)
            }
            Outcome::Unknown(why) => {
                eprintln!("error: outcome unknown (it may still take effect): {why}");
                Ok(1)
            }
        }
    })
}

/// `configuration N`, then one line per group with its shards and servers.
pub fn print_config(c: &Config) {
    println!("configuration {}", c.num.0);
    for (gid, servers) in &c.groups {
        let shards: Vec<String> = c
            .shard_ids()
            .filter(|s| c.owner(*s) == *gid)
            .map(|s| s.0.to_string())
            .collect();
        let servers: Vec<String> = servers.iter().map(|s| s.0.to_string()).collect();
        println!(
            "  group {}: shards [{}]  servers [{}]",
            gid.0,
            shards.join(" "),
            servers.join(" ")
        );
    }
    let free: Vec<String> = c
        .shard_ids()
        .filter(|s| c.owner(*s) == Gid::NONE)
        .map(|s| s.0.to_string())
        .collect();
    if !free.is_empty() {
        println!("  unassigned: shards [{}]", free.join(" "));
    }
}
