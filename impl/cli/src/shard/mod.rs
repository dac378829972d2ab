//! `aver shard`: the sharded KV service and its controller.
//!
//! * `aver shard check` model-checks shard migration (also part of `aver check`); see
//!   [`check`].
//!
//! The simulated suites run under `aver sim shard`.

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
}

/// Runs `aver shard`.
pub fn run(args: ShardArgs) -> anyhow::Result<u8> {
    match args.cmd {
        ShardCmd::Check(a) => check::run(&a),
    }
}
