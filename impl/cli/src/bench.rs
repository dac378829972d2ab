//! `aver bench`: benchmarks that print figures (never assertions).

use clap::{Args, Subcommand};

/// Arguments of `aver bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCmd,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Simulated events per second and the Raft suite's wall time.
    Sim(crate::sim::BenchArgs),
    /// The linearizability checker over the Porcupine corpus.
    Lin(crate::lin::BenchArgs),
    /// Model-checking throughput (states per second).
    Check(crate::check::BenchArgs),
    /// Put load on a running aver cluster (and on etcd with `--against etcd`).
    Kv(crate::kv::BenchArgs),
    /// MapReduce word count over ~300 MB: 1 vs 2 workers vs `tr | sort | uniq -c`.
    Mr(crate::mr::BenchArgs),
}

/// Runs the chosen benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<u8> {
    match args.what {
        BenchCmd::Sim(a) => crate::sim::bench(a),
        BenchCmd::Lin(a) => crate::lin::bench(a),
        BenchCmd::Check(a) => crate::check::bench(a),
        BenchCmd::Kv(a) => crate::kv::bench(a),
        BenchCmd::Mr(a) => crate::mr::bench(a),
    }
}
