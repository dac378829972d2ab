//! `aver gen history`: histories of a simulated object whose verdict is known by
//! construction (see `aver_checker::generate`).

use anyhow::Context;
use aver_checker::CheckResult;
use aver_checker::generate::{Anomaly, GenModel, GenSpec, generate};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Arguments of `aver gen`.
#[derive(Args)]
pub struct GenArgs {
    #[command(subcommand)]
    what: GenCmd,
}

#[derive(Subcommand)]
enum GenCmd {
    /// A history of a simulated object, linearizable unless an anomaly is injected.
    History(HistoryArgs),
}

/// Arguments of `aver gen history`.
#[derive(Args)]
pub struct HistoryArgs {
    /// The object simulated.
    #[arg(long, value_enum)]
    model: ModelArg,
    /// Clients running at once.
    #[arg(long, default_value_t = 5)]
    clients: usize,
    /// Operations in the history.
    #[arg(long, default_value_t = 100)]
    ops: usize,
    /// Keys (kv and versioned-kv; the registers have one).
    #[arg(long, default_value_t = 1)]
    keys: usize,
    /// Probability that an operation times out (no reply; it takes effect later or never).
    #[arg(long, default_value_t = 0.0)]
    unknown: f64,
    /// Probability that a client crashes during an operation.
    #[arg(long, default_value_t = 0.0)]
    crash: f64,
    /// Inject one anomaly; the history is then not linearizable.
    #[arg(long, value_enum)]
    anomaly: Option<AnomalyArg>,
    /// Seed of every random choice.
    #[arg(long)]
    seed: u64,
    /// Write the history here instead of to standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    Kv,
    Cas,
    Register,
    VersionedKv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AnomalyArg {
    StaleRead,
    LostWrite,
    DuplicatedAppend,
    WrongCas,
}

/// Runs `aver gen`.
pub fn run(args: GenArgs) -> anyhow::Result<u8> {
    let GenCmd::History(a) = args.what;
    let spec = GenSpec {
        model: match a.model {
            ModelArg::Kv => GenModel::Kv,
            ModelArg::Cas => GenModel::Cas,
            ModelArg::Register => GenModel::Register,
            ModelArg::VersionedKv => GenModel::VersionedKv,
        },
        clients: a.clients,
        ops: a.ops,
        keys: a.keys,
        unknown: a.unknown,
        crash: a.crash,
        anomaly: a.anomaly.map(|x| match x {
            AnomalyArg::StaleRead => Anomaly::StaleRead,
            AnomalyArg::LostWrite => Anomaly::LostWrite,
            AnomalyArg::DuplicatedAppend => Anomaly::DuplicatedAppend,
            AnomalyArg::WrongCas => Anomaly::WrongCas,
        }),
        seed: a.seed,
    };
    let generated = match generate(&spec) {
        Ok(g) => g,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(2);
        }
    };
    match &a.out {
        Some(path) => std::fs::write(path, &generated.jsonl)
            .with_context(|| format!("writing {}", path.display()))?,
        None => print!("{}", generated.jsonl),
    }
    let verdict = match generated.expected {
        CheckResult::Ok => "linearizable",
        _ => "illegal",
    };
    eprintln!(
        "expected: {verdict} ({} operations, {} without a reply){}",
        a.ops,
        generated.unknown_ops,
        if generated.note.is_empty() {
            String::new()
        } else {
            format!("; {}", generated.note)
        }
    );
    Ok(0)
}
