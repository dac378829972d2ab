//! `aver check`, `aver explore` and `aver bench check`: the Stateright models of `aver-models`.
//!
//! `aver check raft [bounds] [--dfs|--bfs|--simulate RUNS]` checks one model and prints a live
//! progress line, then a table with each property's verdict. A violated property prints its
//! counterexample as a step-by-step trace and writes it as JSON. `aver check` with no protocol
//! checks every registered model ([`registry::REGISTRY`]) at each of its CI configurations
//! and prints one table, one block of rows per configuration.
//!
//! `--json` prints a machine-readable summary on stdout instead ([`json`]); everything else
//! goes to stderr. Each counterexample also prints the `aver explore` command and the link
//! that open it in Stateright Explorer ([`explorer`]).
//!
//! Exit codes: 0 every property holds (and every `sometimes` example was found), 1 a property
//! failed, 2 bad arguments.
//!
//! The modules: [`args`] (the flags), [`registry`] (which models exist), one module per model
//! ([`raft`]; [`kv`] for the kv-dedup and kv-raft models; [`kvsrv`] for the kvsrv and lock
//! models) that turns flags into configurations and runs the search, and [`output`] (what is
//! printed and written).

pub mod args;
pub mod explorer;
mod json;
mod kv;
mod kvsrv;
mod output;
mod raft;
pub mod registry;

pub use args::{BenchArgs, CheckArgs, ExploreArgs};
pub(crate) use json::StdoutToStderr;
pub(crate) use output::{print_table, progress};

use registry::Scope;
use stateright::Expectation;

/// How to search.
#[derive(Clone, Copy, Debug)]
pub enum Search {
    /// Exhaustive depth-first search.
    Dfs,
    /// Exhaustive breadth-first search.
    Bfs,
    /// This many seeded random walks.
    Simulate(u64),
}

/// The outcome of checking one configuration of one model.
#[derive(Default)]
pub struct Outcome {
    /// The model and configuration, e.g. `raft/ci`.
    pub model: String,
    /// The named configuration the bounds were applied to (e.g. `ci`, `deep`).
    pub config: String,
    /// The bounds and switches, as printed before the search.
    pub bounds: String,
    /// How it was searched (e.g. `DFS, 2 threads`).
    pub search: String,
    /// The counterexamples of the violated `always` properties.
    pub counterexamples: Vec<Counterexample>,
    /// One row per property.
    pub rows: Vec<Row>,
    /// Distinct states visited.
    pub unique: usize,
    /// States generated (repeats included).
    pub total: usize,
    /// Longest path.
    pub depth: usize,
    /// Wall time.
    pub secs: f64,
    /// Whether the search was exhaustive (so a missing `sometimes` example is a failure).
    pub exhaustive: bool,
}

/// A counterexample as `aver check` reported it.
#[derive(Clone, Debug, Default)]
pub struct Counterexample {
    /// The violated property.
    pub property: String,
    /// Steps of the printed trace.
    pub steps: usize,
    /// Steps of the first trace found, when a second search shortened it.
    pub first_found_steps: Option<usize>,
    /// The JSON file it was written to.
    pub file: std::path::PathBuf,
    /// How to open it in Stateright Explorer (`None` if the model has no Explorer server for
    /// this configuration).
    pub explore: Option<explorer::ExploreLink>,
}

/// The verdict on one property.
pub struct Row {
    /// The property's name.
    pub property: &'static str,
    /// Always, sometimes or eventually.
    pub expectation: Expectation,
    /// Length of the discovery path, if any.
    pub discovery: Option<usize>,
    /// False when the bounds make this `sometimes` property unreachable by construction.
    pub reachable: bool,
}

impl Row {
    /// The verdict's word and whether it passes; `complete` when the search explored every
    /// state.
    pub(crate) fn verdict(&self, complete: bool) -> (&'static str, bool) {
        match (&self.expectation, self.discovery) {
            (Expectation::Sometimes, Some(_)) => ("example found", true),
            (Expectation::Sometimes, None) if !self.reachable => ("n/a (bounds)", true),
            (Expectation::Sometimes, None) if complete => ("NO EXAMPLE", false),
            (Expectation::Sometimes, None) => ("not reached", true),
            (_, Some(_)) => ("VIOLATED", false),
            (_, None) => ("holds", true),
        }
    }
}

/// Runs `aver check`.
pub fn run(args: CheckArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(args.threads >= 1, "--threads must be at least 1");
    if args.config.is_some() {
        anyhow::ensure!(
            matches!(args.protocol.as_deref(), Some("kv-dedup" | "kv-raft")),
            "--config names a configuration of kv-dedup or kv-raft; the other models take \
             their bounds as flags (--max-term, --max-log, ...)"
        );
    }
    if args.bounds.limits_given() {
        anyhow::ensure!(
            args.protocol.as_deref() == Some("raft"),
            "--max-campaigns, --max-heartbeats, --max-proposals and --one-candidate limit the \
             Raft model's runs: use them with `aver check raft`"
        );
    }
    let (entries, scope) = match args.protocol.as_deref() {
        Some(name) => (vec![registry::lookup(name)?], Scope::Named),
        None => (registry::REGISTRY.iter().collect(), Scope::Ci),
    };
    // Under --json, stdout carries only the summary: what the models print goes to stderr.
    let redirect = if args.json {
        Some(json::StdoutToStderr::start()?)
    } else {
        None
    };
    let mut outcomes = Vec::new();
    for entry in entries {
        outcomes.extend((entry.check)(&args, scope)?);
    }
    let failed = output::print_table(&outcomes);
    if let Some(redirect) = redirect {
        redirect.finish()?;
        println!("{}", json::summary(&outcomes, failed));
    }
    Ok(u8::from(failed))
}

impl Outcome {
    /// Whether `sometimes` verdicts are final: the search was exhaustive and no violation
    /// stopped it early.
    pub(crate) fn complete(&self) -> bool {
        let any_violation = self
            .rows
            .iter()
            .any(|r| !matches!(r.expectation, Expectation::Sometimes) && r.discovery.is_some());
        self.exhaustive && !any_violation
    }
}

/// Runs `aver explore`: Stateright Explorer on 127.0.0.1 (blocks until interrupted).
pub fn explore(args: ExploreArgs) -> anyhow::Result<u8> {
    (registry::lookup(&args.protocol)?.explore)(&args)
}

/// Runs `aver bench check`: DFS at the CI bounds (or the given ones), printing states/s and
/// CPU-seconds.
pub fn bench(args: BenchArgs) -> anyhow::Result<u8> {
    raft::bench(&args)
}
