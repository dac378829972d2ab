//! The kvsrv and lock models in `aver check`: configurations from the flags, the search, and
//! counterexamples — a step-by-step trace, and for the kvsrv model the history as JSON Lines
//! with the `aver lin` command that explains it.

use super::args::{Bounds, CheckArgs, ExploreArgs};
use super::explorer::{self, ExploreLink};
use super::output::progress;
use super::registry::Scope;
use super::{Counterexample, Outcome, Row, Search};
use anyhow::Context as _;
use aver_core::kvsrv::Bug;
use aver_models::kvsrv::trace::{self, TraceStep};
use aver_models::kvsrv::{KvNetwork, KvsrvAction, KvsrvModel, KvsrvModelCfg, KvsrvState, Workload};
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::time::Instant;

/// `aver check kvsrv`.
pub fn check_kvsrv(args: &CheckArgs, scope: Scope) -> anyhow::Result<Vec<Outcome>> {
    let bases = match scope {
        Scope::Ci => vec![
            ("kvsrv/ci", "ci", KvsrvModelCfg::kv_ci()),
            ("kvsrv/three", "three", KvsrvModelCfg::kv_three()),
        ],
        Scope::Named => vec![("kvsrv", "", kv_base(&args.bounds)?)],
    };
    run(args, bases)
}

/// `aver check lock`.
pub fn check_lock(args: &CheckArgs, scope: Scope) -> anyhow::Result<Vec<Outcome>> {
    let bases = match scope {
        Scope::Ci => vec![
            ("lock/ci", "ci", KvsrvModelCfg::lock_ci()),
            ("lock/three", "three", KvsrvModelCfg::lock_three()),
        ],
        Scope::Named => vec![("lock", "", lock_base(&args.bounds))],
    };
    run(args, bases)
}

fn kv_base(bounds: &Bounds) -> anyhow::Result<KvsrvModelCfg> {
    let network = network(bounds)?;
    Ok(match bounds.workload.as_deref().unwrap_or("two") {
        "two" => KvsrvModelCfg::kv_ci(),
        "three" => KvsrvModelCfg::kv_three(),
        "blind-put" => KvsrvModelCfg::blind_put(network),
        other => anyhow::bail!("unknown kvsrv workload `{other}`; known: two, three, blind-put"),
    })
}

fn lock_base(bounds: &Bounds) -> KvsrvModelCfg {
    let mut cfg = KvsrvModelCfg::lock_ci();
    if let Workload::Lock { clients, rounds } = &mut cfg.workload {
        *clients = bounds.clients.unwrap_or(*clients);
        *rounds = bounds.rounds.unwrap_or(*rounds);
    }
    cfg
}

fn network(bounds: &Bounds) -> anyhow::Result<KvNetwork> {
    match &bounds.network {
        Some(n) => n.parse().map_err(anyhow::Error::msg),
        None => Ok(KvNetwork::Rpc),
    }
}

/// The flags that apply to every kvsrv/lock configuration: network and seeded bugs.
fn apply(bounds: &Bounds, mut cfg: KvsrvModelCfg) -> anyhow::Result<KvsrvModelCfg> {
    cfg.network = network(bounds)?;
    for name in &bounds.bugs {
        let bug: Bug = name.parse().map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            !bug.in_lock() || cfg.is_lock(),
            "`{bug}` is a bug of the lock: try `aver check lock --bug {bug}`"
        );
        cfg.bugs = cfg.bugs.with(bug);
    }
    Ok(cfg)
}

fn describe(cfg: &KvsrvModelCfg) -> String {
    let workload = match &cfg.workload {
        Workload::Clerks(scripts) => {
            let clerks: Vec<String> = scripts
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let ops: Vec<String> = s.iter().map(|op| op.to_string()).collect();
                    format!("c{}=[{}]", i + 1, ops.join(", "))
                })
                .collect();
            clerks.join(" ")
        }
        Workload::Lock { clients, rounds } => format!("clients={clients} rounds={rounds}"),
    };
    let bugs: Vec<&str> = cfg.bugs.list().iter().map(|b| b.name()).collect();
    format!(
        "{workload} network={} bugs=[{}]",
        cfg.network,
        bugs.join(",")
    )
}

/// (label, named configuration or "" for the one the flags describe, configuration)
type Bases = Vec<(&'static str, &'static str, KvsrvModelCfg)>;

fn run(args: &CheckArgs, bases: Bases) -> anyhow::Result<Vec<Outcome>> {
    // A seeded bug without a named search: breadth-first (the models are small; shorter
    // counterexamples).
    let search = args.search().unwrap_or(if args.bounds.bugs.is_empty() {
        Search::Dfs
    } else {
        Search::Bfs
    });
    anyhow::ensure!(
        !matches!(search, Search::Simulate(_)),
        "the kvsrv and lock models are small enough to search exhaustively: use --dfs or --bfs"
    );
    let mut outcomes = Vec::new();
    for (name, config, base) in bases {
        let cfg = apply(&args.bounds, base)?;
        let how = match search {
            Search::Bfs => "BFS",
            _ => "DFS",
        };
        println!(
            "checking {name} ({how}, {} threads): {}",
            args.threads,
            describe(&cfg)
        );
        let bounds = describe(&cfg);
        let flags = match config {
            "" => args.bounds.flags(),
            c => format!(" --config {c}{}", args.bounds.flags()),
        };
        let mut outcome = check_one(name, cfg, search, args.threads, &args.out, &flags)?;
        outcome.config = if config.is_empty() { "flags" } else { config }.to_string();
        outcome.bounds = bounds;
        outcome.search = format!("{how}, {} threads", args.threads);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn check_one(
    name: &str,
    cfg: KvsrvModelCfg,
    search: Search,
    threads: usize,
    out: &std::path::Path,
    explore_flags: &str,
) -> anyhow::Result<Outcome> {
    let model = cfg.clone().into_model();
    let start = Instant::now();
    let builder = model
        .clone()
        .checker()
        .threads(threads)
        .finish_when(HasDiscoveries::AnyFailures);
    let found = match search {
        Search::Bfs => collect(builder.spawn_bfs(), &cfg, start),
        _ => collect(builder.spawn_dfs(), &cfg, start),
    };
    let secs = start.elapsed().as_secs_f64();
    let protocol = name.split('/').next().unwrap_or(name);
    let mut counterexamples = Vec::new();
    for (property, path) in &found.paths {
        let explore = explorer::locate(&model, path, protocol, explore_flags);
        let file = report(name, property, path, &model, out, explore.as_ref())?;
        counterexamples.push(Counterexample {
            property: property.to_string(),
            steps: path.len() - 1,
            file,
            explore,
            ..Counterexample::default()
        });
    }
    Ok(Outcome {
        model: name.to_string(),
        rows: found.rows,
        unique: found.unique,
        total: found.total,
        depth: found.depth,
        secs,
        exhaustive: true,
        counterexamples,
        ..Outcome::default()
    })
}

type Path = Vec<(KvsrvState, Option<KvsrvAction>)>;

/// What a finished search found.
struct Found {
    rows: Vec<Row>,
    /// Counterexamples of `always` properties.
    paths: Vec<(&'static str, Path)>,
    unique: usize,
    total: usize,
    depth: usize,
}

/// Waits for `checker` (printing progress) and collects the verdicts.
fn collect<C: Checker<KvsrvModel>>(checker: C, cfg: &KvsrvModelCfg, start: Instant) -> Found {
    let checker = progress(checker, start);
    let discoveries = checker.discoveries();
    let mut rows = Vec::new();
    let mut paths = Vec::new();
    for p in cfg.properties() {
        let path = discoveries.get(p.name);
        rows.push(Row {
            property: p.name,
            expectation: p.expectation.clone(),
            discovery: path.map(|path| path.clone().into_actions().len()),
            reachable: cfg.can_reach(p.name),
        });
        if let (Expectation::Always, Some(path)) = (&p.expectation, path) {
            paths.push((p.name, path.clone().into_vec()));
        }
    }
    Found {
        rows,
        paths,
        unique: checker.unique_state_count(),
        total: checker.state_count(),
        depth: checker.max_depth(),
    }
}

/// Prints a counterexample and writes it (and, for the kvsrv model, its history) to `out`.
fn report(
    model_name: &str,
    property: &str,
    path: &[(KvsrvState, Option<KvsrvAction>)],
    model: &KvsrvModel,
    out: &std::path::Path,
    explore: Option<&ExploreLink>,
) -> anyhow::Result<std::path::PathBuf> {
    let steps = trace::trace(path);
    println!(
        "\n{property} VIOLATED — counterexample, {} steps:",
        steps.len()
    );
    if let Some((first, _)) = path.first() {
        for e in &first.history.events {
            println!("  0. [start] history: {}", trace::describe_event(e));
        }
    }
    for s in &steps {
        println!("{:>3}. [{}] {}", s.step, s.actor, s.action);
        for c in &s.changed {
            println!("       changed:   {c}");
        }
        for m in &s.sent {
            println!("       sent:      {m}");
        }
        for r in &s.recorded {
            println!("       history:   {r}");
        }
    }
    let Some((last, _)) = path.last() else {
        anyhow::bail!("{property}: an empty counterexample");
    };
    println!("  final state:");
    for (i, s) in last.actor_states.iter().enumerate() {
        println!("    {}: {}", actor_name(i), trace::describe_state(s));
    }
    if let Some(e) = explore {
        explorer::print(e);
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let stem = format!(
        "{}-{}",
        model_name.replace('/', "-"),
        property.split(' ').next().unwrap_or(property)
    );
    let file = out.join(format!("{stem}.json"));
    let json = serde_json::json!({
        "model": model_name,
        "configuration": describe(&model.cfg),
        "property": property,
        "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
        "explorer_path": explore.map(|e| &e.path),
        "explore_command": explore.map(|e| &e.command),
    });
    std::fs::write(&file, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", file.display()))?;
    println!("  written to {}", file.display());
    if !last.history.events.is_empty() {
        let history = out.join(format!("{stem}.jsonl"));
        std::fs::write(&history, trace::history_jsonl(last))
            .with_context(|| format!("writing {}", history.display()))?;
        let html = out.join(format!("{stem}.html"));
        println!("  history written to {}", history.display());
        println!(
            "  explain: cargo run --release -- lin {} --model versioned-kv --html {}",
            history.display(),
            html.display()
        );
    }
    Ok(file)
}

fn actor_name(i: usize) -> String {
    if i == aver_models::kvsrv::SERVER {
        "server".into()
    } else {
        format!("c{i}")
    }
}

fn step_json(s: &TraceStep) -> serde_json::Value {
    serde_json::json!({
        "step": s.step,
        "actor": s.actor,
        "action": s.action,
        "changed": s.changed,
        "sent": s.sent,
        "history": s.recorded,
    })
}

/// `aver explore kvsrv|lock`: Stateright Explorer on 127.0.0.1 (blocks until interrupted), on
/// `--config ci|three` (the CI configurations) or else the one the flags describe.
pub fn explore(args: &ExploreArgs) -> anyhow::Result<u8> {
    let lock = args.protocol == "lock";
    let base = match (args.config.as_deref(), lock) {
        (None, true) => lock_base(&args.bounds),
        (None, false) => kv_base(&args.bounds)?,
        (Some("ci"), true) => KvsrvModelCfg::lock_ci(),
        (Some("three"), true) => KvsrvModelCfg::lock_three(),
        (Some("ci"), false) => KvsrvModelCfg::kv_ci(),
        (Some("three"), false) => KvsrvModelCfg::kv_three(),
        (Some(other), _) => anyhow::bail!(
            "no {} configuration `{other}`; known: ci, three",
            args.protocol
        ),
    };
    let cfg = apply(&args.bounds, base)?;
    let description = describe(&cfg);
    explorer::serve(&args.protocol, &description, cfg.into_model(), args)
}
