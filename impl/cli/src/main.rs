//! `aver`: model checks, simulation, linearizability checking and benchmarks.
//!
//! Each subcommand lives in its own module and returns the process exit code.

mod bench;
mod check;
mod check_shard;
mod lin;
mod sim;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    /// Run the simulated lab suites (e.g. `aver sim raft --seeds 200`).
    Sim(sim::SimArgs),
    /// Check a history for linearizability.
    Lin(lin::LinArgs),
    /// Benchmarks: `aver bench sim`, `aver bench lin`, `aver bench check`.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
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
    let result = match cli.command {
        Command::Check(a) => check::run(a),
        Command::Explore(a) => check::explore(a),
        Command::Sim(a) => sim::run(a),
        Command::Lin(a) => lin::run(a),
        Command::Bench(a) => bench::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
