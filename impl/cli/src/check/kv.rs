//! The KV models in `aver check`: `kv-dedup` (the service over an abstract atomic log) and
//! `kv-raft` (the service on the real Raft core). Configurations from the flags, the search,
//! verdicts, and counterexamples (printed step by step and written as JSON).
//!
//! `aver check kv-dedup` checks the CI configuration `ci`; `aver check` runs every CI
//! configuration of both. `--bug NAME` (a KV service bug, `specs/bugs.md`) without a search
//! named hunts it by seeded random walks at the model's deep bounds, with only the properties
//! that state what a user loses (KV-1, KV-2), and prints the shrunk counterexample.

use super::args::{Bounds, CheckArgs, ExploreArgs};
use super::explorer;
use super::output::progress;
use super::registry::Scope;
use super::{Counterexample, Outcome, Row, Search};
use anyhow::Context as _;
use aver_core::kvraft::{KvBug, KvBugs};
use aver_models::kv_dedup::{self, KvDedupCfg};
use aver_models::kv_raft::{self, KvRaftCfg};
use aver_models::walk::{self, Path};
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::time::Instant;

use walk::{HUNT_RUNS as BUG_HUNT_RUNS, HUNT_SEED as WALK_SEED, HUNT_STEPS as WALK_STEPS_MAX};

fn kv_bugs(bounds: &Bounds) -> anyhow::Result<KvBugs> {
    bounds.bugs.iter().try_fold(KvBugs::NONE, |bugs, name| {
        let bug: KvBug = name.parse().map_err(anyhow::Error::msg)?;
        Ok(bugs.with(bug))
    })
}

fn search_for(args: &CheckArgs, hunting: bool) -> Search {
    args.search().unwrap_or(if hunting {
        Search::Simulate(BUG_HUNT_RUNS)
    } else {
        Search::Dfs
    })
}

fn describe_search(search: Search, threads: usize) -> String {
    match search {
        Search::Dfs => format!("DFS, {threads} threads"),
        Search::Bfs => format!("BFS, {threads} threads"),
        Search::Simulate(runs) => format!("up to {runs} random walks"),
    }
}

// ---- kv-dedup --------------------------------------------------------------------------------

/// `aver check kv-dedup` and its part of `aver check`.
pub fn check_dedup(args: &CheckArgs, scope: Scope) -> anyhow::Result<Vec<Outcome>> {
    let bugs = kv_bugs(&args.bounds)?;
    let hunting = !bugs.is_empty() && args.search().is_none();
    let search = search_for(args, hunting);
    let bases = if let Some(name) = &args.config {
        let mut all = KvDedupCfg::ci_all();
        all.push(("deep", KvDedupCfg::deep()));
        let (config, cfg) = named_entry(all, name, "kv-dedup")?;
        vec![(format!("kv-dedup/{config}"), config, cfg)]
    } else if hunting {
        vec![("kv-dedup/deep".to_string(), "deep", KvDedupCfg::deep())]
    } else if scope == Scope::Ci {
        KvDedupCfg::ci_all()
            .into_iter()
            .map(|(n, c)| (format!("kv-dedup/{n}"), n, c))
            .collect()
    } else {
        vec![("kv-dedup".to_string(), "ci", KvDedupCfg::ci())]
    };
    let mut outcomes = Vec::new();
    for (label, config, base) in bases {
        let cfg = dedup_cfg(&args.bounds, base, bugs)?;
        let bounds = cfg.describe();
        println!(
            "checking {label} ({}): {}",
            describe_search(search, args.threads),
            cfg.describe()
        );
        let can_reach = |name: &str| cfg.can_reach(name);
        let reach: Vec<bool> = kv_dedup::PROPERTIES
            .iter()
            .map(|p| can_reach(p.name))
            .collect();
        let model = cfg.into_model();
        let run = Run {
            label: &label,
            search,
            threads: args.threads,
            out_dir: &args.out,
            protocol: "kv-dedup",
            explore_flags: format!(" --config {config}{}", args.bounds.flags()),
        };
        let mut outcome = run.check(&model, &reach, kv_dedup::trace)?;
        outcome.config = config.to_string();
        outcome.bounds = bounds;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn dedup_cfg(b: &Bounds, base: KvDedupCfg, bugs: KvBugs) -> anyhow::Result<KvDedupCfg> {
    let mut cfg = base;
    if let Some(n) = b.servers {
        anyhow::ensure!((1..=5).contains(&n), "--servers must be 1..=5 for kv-dedup");
        cfg.servers = n;
    }
    cfg.max_term = b.max_term.unwrap_or(cfg.max_term);
    cfg.max_log = b.max_log.unwrap_or(cfg.max_log);
    if let Some(c) = b.crashes {
        cfg.max_restarts = u8::try_from(c).context("--crashes (restarts) must be ≤ 255")?;
    }
    if !bugs.is_empty() {
        cfg.bugs = bugs;
        cfg.consequences_only = true;
    }
    Ok(cfg)
}

/// `aver explore kv-dedup`: the named configuration (default `ci`; `deep` is where `--bug`
/// hunts) with the bounds and bugs given.
pub fn explore_dedup(args: &ExploreArgs) -> anyhow::Result<u8> {
    let name = args.config.as_deref().unwrap_or("ci");
    let mut all = KvDedupCfg::ci_all();
    all.push(("deep", KvDedupCfg::deep()));
    let base = named(all, name, "kv-dedup")?;
    let cfg = dedup_cfg(&args.bounds, base, kv_bugs(&args.bounds)?)?;
    let description = format!("{name}: {}", cfg.describe());
    explorer::serve("kv-dedup", &description, cfg.into_model(), args)
}

/// The configuration called `name` among `all`, or an error listing them.
fn named<C>(all: Vec<(&'static str, C)>, name: &str, model: &str) -> anyhow::Result<C> {
    named_entry(all, name, model).map(|(_, c)| c)
}

/// The configuration called `name` among `all`, with its name, or an error listing them.
fn named_entry<C>(
    all: Vec<(&'static str, C)>,
    name: &str,
    model: &str,
) -> anyhow::Result<(&'static str, C)> {
    let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
    let names = names.join(", ");
    all.into_iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| anyhow::anyhow!("no {model} configuration `{name}`; known: {names}"))
}

// ---- kv-raft ---------------------------------------------------------------------------------

/// `aver check kv-raft` and its part of `aver check`.
pub fn check_kv_raft(args: &CheckArgs, scope: Scope) -> anyhow::Result<Vec<Outcome>> {
    let bugs = kv_bugs(&args.bounds)?;
    let hunting = !bugs.is_empty() && args.search().is_none();
    let search = search_for(args, hunting);
    let bases = if let Some(name) = &args.config {
        let mut all = KvRaftCfg::ci_all();
        all.push(("hunt", KvRaftCfg::hunt(bugs)));
        let (config, cfg) = named_entry(all, name, "kv-raft")?;
        vec![(format!("kv-raft/{config}"), config, cfg)]
    } else if hunting {
        vec![("kv-raft/hunt".to_string(), "hunt", KvRaftCfg::hunt(bugs))]
    } else if scope == Scope::Ci {
        KvRaftCfg::ci_all()
            .into_iter()
            .map(|(n, c)| (format!("kv-raft/{n}"), n, c))
            .collect()
    } else {
        vec![("kv-raft".to_string(), "ci", KvRaftCfg::ci())]
    };
    let mut outcomes = Vec::new();
    for (label, config, base) in bases {
        let cfg = kv_raft_cfg(&args.bounds, base, bugs)?;
        let bounds = cfg.describe();
        println!(
            "checking {label} ({}): {}",
            describe_search(search, args.threads),
            cfg.describe()
        );
        let reach: Vec<bool> = kv_raft::PROPERTIES
            .iter()
            .map(|p| cfg.can_reach(p.name))
            .collect();
        let model = cfg.into_model();
        let run = Run {
            label: &label,
            search,
            threads: args.threads,
            out_dir: &args.out,
            protocol: "kv-raft",
            explore_flags: format!(" --config {config}{}", args.bounds.flags()),
        };
        let mut outcome = run.check(&model, &reach, kv_raft::trace)?;
        outcome.config = config.to_string();
        outcome.bounds = bounds;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// `base` with the bounds and bugs of the command line applied.
fn kv_raft_cfg(b: &Bounds, base: KvRaftCfg, bugs: KvBugs) -> anyhow::Result<KvRaftCfg> {
    let mut cfg = base;
    if let Some(n) = b.servers {
        anyhow::ensure!((1..=5).contains(&n), "--servers must be 1..=5 for kv-raft");
        cfg.servers = n;
    }
    cfg.max_term = b.max_term.unwrap_or(cfg.max_term);
    cfg.max_log = b.max_log.unwrap_or(cfg.max_log);
    if !bugs.is_empty() {
        cfg.bugs = bugs;
        cfg.consequences_only = true;
    }
    Ok(cfg)
}

/// `aver explore kv-raft`: the named configuration (default `ci`; `hunt` is where `--bug`
/// hunts) with the bounds and bugs given.
pub fn explore_kv_raft(args: &ExploreArgs) -> anyhow::Result<u8> {
    let name = args.config.as_deref().unwrap_or("ci");
    let bugs = kv_bugs(&args.bounds)?;
    let mut all = KvRaftCfg::ci_all();
    all.push(("hunt", KvRaftCfg::hunt(bugs)));
    let base = named(all, name, "kv-raft")?;
    let cfg = kv_raft_cfg(&args.bounds, base, bugs)?;
    let description = format!("{name}: {}", cfg.describe());
    explorer::serve("kv-raft", &description, cfg.into_model(), args)
}

// ---- the search ------------------------------------------------------------------------------

/// A model's counterexample printer.
type Tracer<M> = fn(&[(<M as Model>::State, Option<<M as Model>::Action>)]) -> Vec<String>;

/// One configuration to check.
struct Run<'a> {
    label: &'a str,
    search: Search,
    threads: usize,
    out_dir: &'a std::path::Path,
    /// The `aver explore` protocol name and the flags that rebuild this model.
    protocol: &'a str,
    explore_flags: String,
}

impl Run<'_> {
    /// Searches `model`, reports counterexamples, returns the outcome. `reach[k]` says
    /// whether property `k`'s example is reachable at these bounds.
    fn check<M>(&self, model: &M, reach: &[bool], trace: Tracer<M>) -> anyhow::Result<Outcome>
    where
        M: Model + Clone + Send + Sync + 'static,
        M::State: Clone + PartialEq + std::fmt::Debug + std::hash::Hash + Send + Sync,
        M::Action: Clone + PartialEq + std::fmt::Debug + Send + Sync,
    {
        let start = Instant::now();
        let properties = model.properties();
        let (found, unique, total, depth): (Vec<Option<Path<M>>>, _, _, _) = match self.search {
            Search::Simulate(runs) => {
                let w = walk::random_walks(model, runs, WALK_STEPS_MAX, WALK_SEED);
                eprintln!("  runs={} states={}", w.runs, w.states);
                let found = w.discoveries.into_iter().map(|(_, _, p)| p).collect();
                (found, w.states, w.states, WALK_STEPS_MAX)
            }
            Search::Dfs | Search::Bfs => {
                let builder = model
                    .clone()
                    .checker()
                    .threads(self.threads)
                    .finish_when(HasDiscoveries::AnyFailures);
                if matches!(self.search, Search::Bfs) {
                    exhaustive(builder.spawn_bfs(), &properties, start)
                } else {
                    exhaustive(builder.spawn_dfs(), &properties, start)
                }
            }
        };
        let secs = start.elapsed().as_secs_f64();
        let mut rows = Vec::new();
        let mut counterexamples = Vec::new();
        for (k, (p, path)) in properties.iter().zip(&found).enumerate() {
            rows.push(Row {
                property: p.name,
                expectation: p.expectation.clone(),
                discovery: path.as_ref().map(|path| path.len() - 1),
                reachable: reach.get(k).copied().unwrap_or(true),
            });
            if let (Expectation::Always, Some(path)) = (&p.expectation, path) {
                let explore = explorer::locate(model, path, self.protocol, &self.explore_flags);
                let file = self.report(p.name, &trace(path), explore.as_ref())?;
                counterexamples.push(Counterexample {
                    property: p.name.to_string(),
                    steps: path.len() - 1,
                    file,
                    explore,
                    ..Counterexample::default()
                });
            }
        }
        Ok(Outcome {
            model: self.label.to_string(),
            search: describe_search(self.search, self.threads),
            rows,
            unique,
            total,
            depth,
            secs,
            exhaustive: !matches!(self.search, Search::Simulate(_)),
            counterexamples,
            ..Outcome::default()
        })
    }

    /// Prints a counterexample (and where it opens in Explorer) and writes it as JSON under
    /// the output directory; returns the file.
    fn report(
        &self,
        property: &str,
        lines: &[String],
        explore: Option<&explorer::ExploreLink>,
    ) -> anyhow::Result<std::path::PathBuf> {
        println!("\n{property} VIOLATED — counterexample:");
        for l in lines {
            println!("{l}");
        }
        if let Some(e) = explore {
            explorer::print(e);
        }
        let dir = self.out_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let id = property.split(' ').next().unwrap_or(property);
        let model = self.label.split('/').next().unwrap_or(self.label);
        let file = dir.join(format!("{model}-{id}.json"));
        let json = serde_json::json!({
            "model": self.label,
            "property": property,
            "trace": lines,
            "explorer_path": explore.map(|e| &e.path),
            "explore_command": explore.map(|e| &e.command),
        });
        std::fs::write(&file, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", file.display()))?;
        println!("  written to {}", file.display());
        Ok(file)
    }
}

/// Waits for an exhaustive search (printing progress); the discovery per property and the
/// unique, total and depth counts.
fn exhaustive<M: Model, C: Checker<M>>(
    checker: C,
    properties: &[stateright::Property<M>],
    start: Instant,
) -> (Vec<Option<Path<M>>>, usize, usize, usize)
where
    M::State: Clone + PartialEq + std::fmt::Debug + std::hash::Hash,
    M::Action: Clone + PartialEq + std::fmt::Debug,
{
    let checker = progress(checker, start);
    let d = checker.discoveries();
    let found = properties
        .iter()
        .map(|p| d.get(p.name).map(|path| path.clone().into_vec()))
        .collect();
    (
        found,
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
    )
}
