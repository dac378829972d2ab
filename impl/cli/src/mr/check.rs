//! `aver mr check` and the MapReduce part of `aver check`: the Stateright model of the
//! coordinator core (`aver_models::mr`). Prints one row per property and configuration; a
//! violated property prints its counterexample step by step (and writes it as JSON under
//! `target/aver-check/`). Exit code 1 if any property fails or a `sometimes` has no example.

use crate::check::explorer::{self, ExploreLink};
use crate::check::registry::Scope;
use crate::check::{Counterexample, Outcome, Row};
use anyhow::Context as _;
use aver_core::mr::{MrBug, MrBugs};
use aver_models::mr::{MrModel, MrModelCfg, MrState, PROPERTIES, describe, describe_step, explain};
use clap::Args;
use stateright::{Checker, Expectation, HasDiscoveries, Model, Path};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `aver mr check`.
#[derive(Args, Clone, Debug)]
pub struct CheckArgs {
    /// Input files (map tasks). Any bound given replaces the CI configurations with one.
    #[arg(long)]
    files: Option<u32>,
    /// Reduce tasks.
    #[arg(long)]
    reduce: Option<u32>,
    /// Workers.
    #[arg(long)]
    workers: Option<u32>,
    /// Worker crashes in all (fewer than --workers).
    #[arg(long)]
    crashes: Option<u32>,
    /// Task timeouts (slow workers) in all.
    #[arg(long)]
    timeouts: Option<u32>,
    /// Backup tasks: true or false.
    #[arg(long)]
    backups: Option<bool>,
    /// Seed a bug (reassign-without-timeout, done-on-stale-report); repeatable.
    #[arg(long = "bug")]
    bugs: Vec<MrBug>,
    /// Breadth-first search (shorter counterexamples) instead of depth-first.
    #[arg(long)]
    bfs: bool,
    /// Directory for counterexample JSON files.
    #[arg(long, default_value = "target/aver-check")]
    out: PathBuf,
}

impl CheckArgs {
    fn configs(&self) -> anyhow::Result<Vec<(String, MrModelCfg)>> {
        let custom = self.files.is_some()
            || self.reduce.is_some()
            || self.workers.is_some()
            || self.crashes.is_some()
            || self.timeouts.is_some()
            || self.backups.is_some();
        let bases = if custom {
            vec![("custom".to_string(), MrModelCfg::ci())]
        } else {
            MrModelCfg::ci_all()
                .into_iter()
                .map(|(n, c)| (n.to_string(), c))
                .collect()
        };
        let bugs = self.bugs.iter().fold(MrBugs::NONE, |b, &bug| b.with(bug));
        bases
            .into_iter()
            .map(|(name, mut c)| {
                c.files = self.files.unwrap_or(c.files);
                c.n_reduce = self.reduce.unwrap_or(c.n_reduce);
                c.workers = self.workers.unwrap_or(c.workers);
                c.crashes = self.crashes.unwrap_or(c.crashes);
                c.timeouts = self.timeouts.unwrap_or(c.timeouts);
                c.backups = self.backups.unwrap_or(c.backups);
                c.bugs = bugs;
                anyhow::ensure!(
                    c.files >= 1 && c.n_reduce >= 1,
                    "--files and --reduce must be ≥ 1"
                );
                anyhow::ensure!(
                    c.crashes < c.workers,
                    "--crashes must be below --workers (one worker always lives)"
                );
                Ok((format!("mr/{name}"), c))
            })
            .collect()
    }
}

/// `aver mr check`: prints the shared summary table of `aver check`.
pub fn run(a: CheckArgs) -> anyhow::Result<u8> {
    let outcomes = check_configs(&a)?;
    Ok(u8::from(crate::check::print_table(&outcomes)))
}

/// The registry entry of `aver check`: every CI configuration of the MapReduce model (the
/// MapReduce bounds are `aver mr check`'s flags; `aver check` honours only `--bfs` and
/// `--out`).
pub fn check(args: &crate::check::CheckArgs, scope: Scope) -> anyhow::Result<Vec<Outcome>> {
    if scope == Scope::Named {
        let mut given = args.bounds.flags();
        if let Some(runs) = args.simulate {
            given.push_str(&format!(" --simulate {runs}"));
        }
        if let Some(config) = &args.config {
            given.push_str(&format!(" --config {config}"));
        }
        anyhow::ensure!(
            given.is_empty(),
            "`aver check mr` runs the MapReduce model's CI configurations and takes no{given}; \
             its bounds and seeded bugs are `aver mr check`'s flags (e.g. `aver mr check --bug NAME`)"
        );
    }
    let a = CheckArgs {
        files: None,
        reduce: None,
        workers: None,
        crashes: None,
        timeouts: None,
        backups: None,
        bugs: Vec::new(),
        bfs: args.bfs,
        out: args.out.clone(),
    };
    check_configs(&a)
}

fn check_configs(a: &CheckArgs) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for (name, cfg) in a.configs()? {
        let bounds = cfg.to_string();
        // Explorer rebuilds the named configurations (not custom bounds).
        let flags = name
            .strip_prefix("mr/")
            .filter(|n| *n != "custom")
            .map(|n| {
                let bugs: String = a
                    .bugs
                    .iter()
                    .map(|b| format!(" --bug {}", b.name()))
                    .collect();
                format!(" --config {n}{bugs}")
            });
        println!(
            "checking {name} ({}): {cfg}",
            if a.bfs { "BFS" } else { "DFS" }
        );
        let model = cfg.into_model();
        let start = Instant::now();
        let builder = model
            .clone()
            .checker()
            .threads(1)
            .finish_when(HasDiscoveries::AnyFailures);
        let (found, (unique, total, depth)) = if a.bfs {
            collect(builder.spawn_bfs().join())
        } else {
            collect(builder.spawn_dfs().join())
        };
        let secs = start.elapsed().as_secs_f64();
        let mut rows = Vec::new();
        let mut counterexamples = Vec::new();
        for (p, found) in PROPERTIES.iter().zip(found) {
            rows.push(Row {
                property: p.name,
                expectation: p.expectation.clone(),
                discovery: found.as_ref().map(|d| d.clone().into_actions().len()),
                reachable: true,
            });
            if let (Expectation::Always, Some(path)) = (&p.expectation, found) {
                let pairs = path.clone().into_vec();
                let explore =
                    (flags.as_deref()).and_then(|f| explorer::locate(&model, &pairs, "mr", f));
                let file = counterexample(&model, p.name, path, &a.out, explore.as_ref())?;
                counterexamples.push(Counterexample {
                    property: p.name.to_string(),
                    steps: pairs.len() - 1,
                    file,
                    explore,
                    ..Counterexample::default()
                });
            }
        }
        outcomes.push(Outcome {
            config: name.strip_prefix("mr/").unwrap_or(&name).to_string(),
            model: name,
            bounds,
            search: if a.bfs { "BFS" } else { "DFS" }.to_string(),
            counterexamples,
            rows,
            unique,
            total,
            depth,
            secs,
            // DFS or BFS; the table treats a search stopped by a violation as incomplete.
            exhaustive: true,
        });
    }
    Ok(outcomes)
}

type Found = Vec<Option<Path<MrState, aver_models::mr::MrAction>>>;

/// Each property's discovery (in [`PROPERTIES`] order) and the state counts.
fn collect(checker: impl Checker<MrModel>) -> (Found, (usize, usize, usize)) {
    let found = PROPERTIES
        .iter()
        .map(|p| checker.discovery(p.name))
        .collect();
    let counts = (
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
    );
    (found, counts)
}

/// `aver explore mr`: Stateright Explorer on `--config NAME` (a CI configuration; default
/// the first) with the MapReduce bugs given.
pub fn explore(args: &crate::check::ExploreArgs) -> anyhow::Result<u8> {
    let all = MrModelCfg::ci_all();
    let name = args.config.as_deref().unwrap_or(all[0].0);
    let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
    let Some((_, mut cfg)) = all.into_iter().find(|(n, _)| *n == name) else {
        anyhow::bail!("no mr configuration `{name}`; known: {}", names.join(", "));
    };
    for b in &args.bounds.bugs {
        cfg.bugs = cfg
            .bugs
            .with(b.parse::<MrBug>().map_err(anyhow::Error::msg)?);
    }
    let description = format!("{name}: {cfg}");
    explorer::serve("mr", &description, cfg.into_model(), args)
}

fn counterexample(
    model: &MrModel,
    name: &'static str,
    path: Path<MrState, aver_models::mr::MrAction>,
    out: &std::path::Path,
    explore: Option<&ExploreLink>,
) -> anyhow::Result<std::path::PathBuf> {
    let pairs = path.clone().into_vec();
    let steps: Vec<String> = pairs
        .iter()
        .filter_map(|(state, action)| Some(describe_step(state, action.as_ref()?)))
        .collect();
    let last = path.last_state();
    let why = explain(model, name, last).unwrap_or_default();
    println!(
        "\n{name} VIOLATED: {why}\ncounterexample, {} steps:",
        steps.len()
    );
    for (i, s) in steps.iter().enumerate() {
        println!("{:>3}. {s}", i + 1);
    }
    println!("  final state:");
    let state = describe(last);
    for line in &state {
        println!("    {line}");
    }
    if let Some(e) = explore {
        explorer::print(e);
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let id = name.split(' ').next().unwrap_or(name);
    let file = out.join(format!("mr-{id}.json"));
    let json = serde_json::json!({
        "model": "mr", "property": name, "why": why, "steps": steps, "final_state": state,
        "explorer_path": explore.map(|e| &e.path),
        "explore_command": explore.map(|e| &e.command),
    });
    std::fs::write(&file, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", file.display()))?;
    println!("  written to {}", file.display());
    Ok(file)
}
