//! `aver`: model checks, simulation, linearizability checking and benchmarks.
//!
//! Each subcommand lives in its own module and returns the process exit code.

mod bench;
mod check;
mod cluster;
#[path = "gen.rs"] // `gen` is a reserved word in Rust 2024
mod gen_history;
mod kv;
mod lin;
mod mr;
mod replay;
mod serve;
mod shard;
mod sim;
mod sim_shard;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Counts heap bytes per thread, so the simulated 6.5840 memory tests can measure a server
/// (`aver sim kv`); otherwise the system allocator.
#[global_allocator]
static ALLOC: aver_tests::alloc::CountingAlloc = aver_tests::alloc::CountingAlloc;

/// aver: a verification-first distributed-systems stack.
#[derive(Parser)]
#[command(name = "aver", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Model-check protocols with Stateright (no protocol: every registered model at CI bounds).
    Check(check::CheckArgs),
    /// Serve Stateright Explorer for a model on 127.0.0.1.
    Explore(check::ExploreArgs),
    /// Run the simulated lab suites (e.g. `aver sim raft --seeds 200`, `aver sim kv`).
    Sim(sim::SimArgs),
    /// Check a history for linearizability.
    Lin(lin::LinArgs),
    /// MapReduce as real processes: `aver mr run --workers 3 --app wc FILES...`.
    Mr(mr::MrArgs),
    /// The sharded KV service: `aver shard check` model-checks shard migration;
    /// `join|leave|move|query` administer a real deployment (`aver cluster up --groups 3`).
    Shard(shard::ShardArgs),
    /// Generate test data: `aver gen history ...`.
    Gen(gen_history::GenArgs),
    /// Benchmarks: `aver bench sim`, `aver bench lin`, `aver bench check`, `aver bench mr`,
    /// `aver bench kv`.
    Bench(bench::BenchArgs),
    /// Run one real node (e.g. `aver serve kv --id 1 --peers ... --data data/n1`).
    Serve(serve::ServeArgs),
    /// A local cluster of real processes: `up`, `down`, `status`.
    Cluster(cluster::ClusterArgs),
    /// One key/value operation on a running cluster: `get`, `put`, `append`.
    Kv(kv::KvArgs),
    /// Replay node traces into the node's core (kvraft on Raft) and check every invariant.
    Replay(replay::ReplayArgs),
}

/// `aver` with only its `lin` subcommand: the same arguments, help and errors for
/// `aver lin ...`, without building the parser of every other subcommand.
#[derive(Parser)]
#[command(name = "aver")]
struct LinCli {
    #[command(subcommand)]
    command: LinOnly,
}

#[derive(Subcommand)]
enum LinOnly {
    /// Check a history for linearizability.
    Lin(lin::LinArgs),
}

fn main() -> ExitCode {
    // `aver lin` is run once per history file, often on thousands of small files, where
    // building the whole command-line parser (every subcommand's arguments) was a fifth of
    // the process's CPU on a small file: parse with the `lin` subcommand alone.
    let parsed = if std::env::args_os().nth(1).is_some_and(|a| a == "lin") {
        LinCli::try_parse().map(|c| match c.command {
            LinOnly::Lin(a) => Command::Lin(a),
        })
    } else {
        Cli::try_parse().map(|c| c.command)
    };
    let command = match parsed {
        Ok(command) => command,
        Err(e) => {
            let _ = e.print();
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                // `aver lin` reserves 2 for "unknown"; bad input is 3 there.
                _ if std::env::args().nth(1).as_deref() == Some("lin") => 3,
                _ => 2,
            };
            return ExitCode::from(code);
        }
    };
    let result = match command {
        Command::Check(a) => check::run(a),
        Command::Explore(a) => check::explore(a),
        Command::Sim(a) => sim::run(a),
        Command::Lin(a) => lin::run(a),
        Command::Mr(a) => mr::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Cluster(a) => cluster::run(a),
        Command::Kv(a) => kv::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Gen(a) => gen_history::run(a),
        Command::Shard(a) => shard::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
