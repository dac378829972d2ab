//! `aver shard`: the sharded KV service and its controller.
//!
//! * `aver shard check` model-checks shard migration (also part of `aver check`); see
//!   [`check`].
//!
//! * `aver shard join|leave|move|query` administer the controller of a real sharded
//!   deployment ([`admin`]).
//!
//! The simulated suites run under `aver sim shard`.

pub mod admin;
mod check;

pub use check::{check, explore};

use clap::{Args, Subcommand};

/// Arguments of `aver shard`.
#[derive(Args)]
pub struct ShardArgs {
    #[command(subcommand)]
    cmd: ShardCmd,
}

#[derive(Subcommand)]
enum ShardCmd {
    /// Model-check shard migration (Stateright): controller, groups, retrying clerks.
    Check(check::CheckArgs),
    /// Join shard groups (by number, servers from ./data/cluster.json) to the controller.
    Join {
        /// The groups.
        #[arg(required = true)]
        groups: Vec<u32>,
        #[command(flatten)]
        target: admin::AdminTarget,
    },
    /// Remove shard groups; their shards move to the others.
    Leave {
        /// The groups.
        #[arg(required = true)]
        groups: Vec<u32>,
        #[command(flatten)]
        target: admin::AdminTarget,
    },
    /// Assign one shard to one group.
    Move {
        /// The shard.
        shard: u32,
        /// The group.
        group: u32,
        #[command(flatten)]
        target: admin::AdminTarget,
    },
    /// Print configuration N (default: the latest).
    Query {
        /// The configuration number.
        num: Option<u64>,
        #[command(flatten)]
        target: admin::AdminTarget,
    },
}

/// Runs `aver shard`.
pub fn run(args: ShardArgs) -> anyhow::Result<u8> {
    match args.cmd {
        ShardCmd::Check(a) => check::run(&a),
        ShardCmd::Join { groups, target } => admin::run(&target, admin::AdminOp::Join(groups)),
        ShardCmd::Leave { groups, target } => admin::run(&target, admin::AdminOp::Leave(groups)),
        ShardCmd::Move {
            shard,
            group,
            target,
        } => admin::run(&target, admin::AdminOp::Move(shard, group)),
        ShardCmd::Query { num, target } => admin::run(&target, admin::AdminOp::Query(num)),
    }
}
