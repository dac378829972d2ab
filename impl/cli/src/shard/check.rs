//! `aver shard check`, the shard part of `aver check`, and `aver explore shard`: the
//! shard-migration model of `aver-models`.
//!
//! `aver shard check` checks every CI configuration (`ShardModelCfg::ci_all`), or the one named
//! by `--config`, exhaustively (DFS, or BFS with `--bfs`) and prints the same table as
//! `aver check`. `--bug NAME` seeds a sharding bug (`specs/bugs.md`); the configurations are
//! small enough that exhaustive search is also how bugs are hunted, and it goes on until a
//! property that states what a user loses fails (`shard::CONSEQUENCES`). A violated property
//! prints its counterexample, shortened by dropping steps while it still fails, and writes it
//! to `<out>/shard-<ID>.json`. `aver check shard` (and `aver check`) run the CI configurations
//! with no bug; Raft's bounds and bugs are refused there.

use crate::check::explorer::{self, ExploreLink};
use crate::check::registry::Scope;
use crate::check::{Counterexample, Outcome, Row};
use anyhow::Context as _;
use aver_core::shardkv::{Bug, Bugs};
use aver_models::raft::NetworkKind;
use aver_models::shard::{self, ModelState, PROPERTIES, ShardModel, ShardModelCfg, TraceStep};
use clap::Args;
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `aver shard check`.
#[derive(Args, Clone, Debug)]
pub struct CheckArgs {
    /// One named configuration (`ci`, `ci_multi`); default: every CI configuration.
    #[arg(long)]
    config: Option<String>,
    /// Network: reliable, lossy, duplicating, lossy-duplicating, ordered.
    #[arg(long, value_parser = parse_network)]
    network: Option<NetworkKind>,
    /// Seed a sharding bug (see specs/bugs.md); repeatable.
    #[arg(long = "bug")]
    bugs: Vec<Bug>,
    /// Breadth-first search (shorter counterexamples) instead of depth-first.
    #[arg(long)]
    bfs: bool,
    /// Checker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Keep messages the receiver will ignore forever (turns off a sound reduction; for
    /// comparing state counts).
    #[arg(long)]
    keep_dead_messages: bool,
    /// Directory for counterexample JSON files.
    #[arg(long, default_value = "target/aver-check")]
    out: PathBuf,
}

fn parse_network(s: &str) -> Result<NetworkKind, String> {
    s.parse()
}

/// `aver shard check`.
pub fn run(args: &CheckArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(args.threads >= 1, "--threads must be at least 1");
    let outcomes = check_all(args)?;
    let failed = crate::check::print_table(&outcomes);
    Ok(u8::from(failed))
}

/// The shard model in `aver check` / `aver check shard`: every CI configuration, no bug.
pub fn check(args: &crate::check::CheckArgs, scope: Scope) -> anyhow::Result<Vec<Outcome>> {
    let b = &args.bounds;
    if scope == Scope::Named {
        let raft_only = [
            ("--servers", b.servers.is_some()),
            ("--max-term", b.max_term.is_some()),
            ("--max-log", b.max_log.is_some()),
            ("--crashes", b.crashes.is_some()),
            ("--compaction", b.compaction.is_some() || b.no_compaction),
            ("--bug", !b.bugs.is_empty()),
            ("--simulate", args.simulate.is_some()),
        ];
        if let Some((flag, _)) = raft_only.iter().find(|(_, given)| *given) {
            anyhow::bail!(
                "{flag} does not apply to the shard model; use `aver shard check` \
                 (--config, --network, --bug NAME, --bfs)"
            );
        }
    }
    check_all(&CheckArgs {
        config: None,
        network: if scope == Scope::Named {
            b.network
                .as_deref()
                .map(parse_network)
                .transpose()
                .map_err(anyhow::Error::msg)?
        } else {
            None
        },
        bugs: Vec::new(),
        bfs: args.bfs,
        threads: args.threads,
        keep_dead_messages: b.keep_dead_messages && scope == Scope::Named,
        out: args.out.clone(),
    })
}

fn check_all(args: &CheckArgs) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for (name, cfg) in configs(args)? {
        let how = if args.bfs { "BFS" } else { "DFS" };
        println!(
            "checking shard/{name} ({how}, {} threads): {}",
            args.threads,
            describe(&cfg)
        );
        let bounds = describe(&cfg);
        let flags = explore_flags(args, &name);
        let mut outcome = check_one(cfg, args.bfs, args.threads, &args.out, &flags)?;
        outcome.model = format!("shard/{name}");
        outcome.config = name;
        outcome.bounds = bounds;
        outcome.search = format!("{how}, {} threads", args.threads);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The `aver explore shard` flags that rebuild configuration `name` as `args` set it up.
fn explore_flags(args: &CheckArgs, name: &str) -> String {
    let mut flags = format!(" --config {name}");
    if let Some(n) = args.network {
        flags.push_str(&format!(" --network {n}"));
    }
    for b in &args.bugs {
        flags.push_str(&format!(" --bug {}", b.name()));
    }
    if args.keep_dead_messages {
        flags.push_str(" --keep-dead-messages");
    }
    flags
}

/// The named configurations (all if none is named), with the network, bugs and switches of
/// the command line applied.
fn configs(args: &CheckArgs) -> anyhow::Result<Vec<(String, ShardModelCfg)>> {
    if args.bugs.contains(&Bug::CtrlDropDedup) {
        anyhow::bail!(
            "--bug ctrl-drop-dedup is not in the shard model: its controller applies the \
             administrative script once, with no administrator that retries, so a controller \
             without deduplication behaves the same; the simulator catches it \
             (aver sim shard --test recover_ctrler_5b --seed 1 --bug ctrl-drop-dedup)"
        );
    }
    let bugs = args.bugs.iter().fold(Bugs::NONE, |acc, &b| acc.with(b));
    let all = ShardModelCfg::ci_all();
    let chosen: Vec<_> = match args.config.as_deref() {
        None => all,
        Some(n) => {
            let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
            let found = all.iter().find(|(m, _)| *m == n).cloned();
            vec![found.with_context(|| format!("no configuration `{n}`; known: {names:?}"))?]
        }
    };
    Ok(chosen
        .into_iter()
        .map(|(name, mut cfg)| {
            if let Some(n) = args.network {
                cfg.network = n;
            }
            cfg.bugs = bugs;
            cfg.collect_dead_messages &= !args.keep_dead_messages;
            (name.to_string(), cfg)
        })
        .collect())
}

fn describe(cfg: &ShardModelCfg) -> String {
    let bugs: Vec<&str> = Bug::ALL
        .iter()
        .filter(|b| cfg.bugs.has(**b))
        .map(|b| b.name())
        .collect();
    let ops: Vec<String> = cfg
        .clerks
        .iter()
        .map(|ops| {
            let ops: Vec<String> = ops.iter().map(|o| o.to_string()).collect();
            ops.join(" ")
        })
        .collect();
    format!(
        "shards={} groups={:?} script={:?} clerks=[{}] network={} bugs=[{}]{}",
        cfg.shards,
        cfg.groups,
        cfg.script,
        ops.join(" | "),
        cfg.network,
        bugs.join(","),
        if cfg.collect_dead_messages {
            ""
        } else {
            " keep-dead-messages"
        }
    )
}

fn check_one(
    cfg: ShardModelCfg,
    bfs: bool,
    threads: usize,
    out: &Path,
    flags: &str,
) -> anyhow::Result<Outcome> {
    // With a seeded bug, search on until a property that states what a user loses fails
    // (mechanism checks such as SHARD-4 may fail first on the way).
    let until = if cfg.bugs.is_empty() {
        HasDiscoveries::AnyFailures
    } else {
        HasDiscoveries::AnyOf(shard::CONSEQUENCES.into_iter().collect())
    };
    let model = cfg.into_model();
    let start = Instant::now();
    let builder = model.clone().checker().threads(threads).finish_when(until);
    if bfs {
        collect(
            crate::check::progress(builder.spawn_bfs(), start),
            &model,
            start,
            (out, flags),
        )
    } else {
        collect(
            crate::check::progress(builder.spawn_dfs(), start),
            &model,
            start,
            (out, flags),
        )
    }
}

/// The verdicts of a finished checker; reports each counterexample.
fn collect<C: Checker<ShardModel>>(
    checker: C,
    model: &ShardModel,
    start: Instant,
    (out, flags): (&Path, &str),
) -> anyhow::Result<Outcome> {
    let secs = start.elapsed().as_secs_f64();
    let discoveries = checker.discoveries();
    let mut rows = Vec::new();
    let mut counterexamples = Vec::new();
    for p in PROPERTIES {
        let path = discoveries.get(p.name);
        let mut discovery = path.map(|path| path.clone().into_actions().len());
        if let (Expectation::Always, Some(path)) = (&p.expectation, path) {
            let short = shard::shrink(model, &path.clone().into_vec(), p.name);
            discovery = Some(short.len() - 1);
            let explore = explorer::locate(model, &short, "shard", flags);
            let file = report(model, p.name, &short, out, explore.as_ref())?;
            counterexamples.push(Counterexample {
                property: p.name.to_string(),
                steps: short.len() - 1,
                first_found_steps: Some(path.clone().into_actions().len()),
                file,
                explore,
            });
        }
        rows.push(Row {
            property: p.name,
            expectation: p.expectation.clone(),
            discovery,
            reachable: true,
        });
    }
    Ok(Outcome {
        model: "shard".into(),
        rows,
        unique: checker.unique_state_count(),
        total: checker.state_count(),
        depth: checker.max_depth(),
        secs,
        exhaustive: true,
        counterexamples,
        ..Outcome::default()
    })
}

/// Prints a counterexample as readable steps and writes it as JSON.
fn report(
    model: &ShardModel,
    name: &str,
    path: &[(ModelState, Option<shard::ModelAction>)],
    out: &Path,
    explore: Option<&ExploreLink>,
) -> anyhow::Result<PathBuf> {
    let steps = shard::trace(model, path);
    println!("\n{name} VIOLATED — counterexample, {} steps:", steps.len());
    for s in &steps {
        println!("{:>3}. [{}] {}", s.step, s.actor, s.action);
        for c in &s.changed {
            println!("       changed:   {c}");
        }
        for m in &s.sent {
            println!("       sent:      {m}");
        }
    }
    let last = &path.last().expect("a path has a state").0;
    if let Some(v) = shard::violation(last, shard::property_id(name)) {
        println!("  {v}");
    }
    println!("  final state:");
    for (i, s) in last.actor_states.iter().enumerate() {
        println!("    actor {i}: {}", shard::describe_node(s));
    }
    println!("  history:\n{}", last.history);
    if let Some(e) = explore {
        explorer::print(e);
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let file = out.join(format!("shard-{}.json", shard::property_id(name)));
    let json = serde_json::json!({
        "model": "shard",
        "property": name,
        "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
        "explorer_path": explore.map(|e| &e.path),
        "explore_command": explore.map(|e| &e.command),
    });
    std::fs::write(&file, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", file.display()))?;
    println!("  written to {}", file.display());
    Ok(file)
}

fn step_json(s: &TraceStep) -> serde_json::Value {
    serde_json::json!({
        "step": s.step,
        "actor": s.actor,
        "action": s.action,
        "changed": s.changed,
        "sent": s.sent,
    })
}

/// `aver explore shard`: Stateright Explorer on 127.0.0.1 for `--config NAME` (default `ci`)
/// with the network and sharding bugs given (blocks until interrupted).
pub fn explore(args: &crate::check::ExploreArgs) -> anyhow::Result<u8> {
    let bugs = (args.bounds.bugs.iter())
        .map(|b| b.parse::<Bug>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    let check_args = CheckArgs {
        config: Some(args.config.clone().unwrap_or_else(|| "ci".into())),
        network: (args.bounds.network.as_deref().map(parse_network))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        bugs,
        bfs: false,
        threads: 1,
        keep_dead_messages: args.bounds.keep_dead_messages,
        out: "target/aver-check".into(),
    };
    let (name, cfg) = configs(&check_args)?.remove(0);
    let description = format!("{name}: {}", describe(&cfg));
    explorer::serve("shard", &description, cfg.into_model(), args)
}
