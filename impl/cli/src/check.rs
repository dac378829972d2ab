//! `aver check`, `aver explore` and `aver bench check`: the Stateright models of `aver-models`.
//!
//! `aver check raft [bounds] [--dfs|--bfs|--simulate RUNS]` checks one model and prints a live
//! progress line, then a table with each property's verdict. A violated property prints its
//! counterexample as a step-by-step trace and writes it as JSON. `aver check` with no protocol
//! checks every registered model at each of its CI configurations (for Raft,
//! `RaftModelCfg::ci_all`: `ci`, `ci_crash`, `ci_reelect`, `ci_crash_snapshots`) and prints one
//! table, one block of rows per configuration.
//!
//! Exit codes: 0 every property holds (and every `sometimes` example was found), 1 a property
//! failed, 2 bad arguments.

use anyhow::Context as _;
use aver_core::raft::{Bug, Bugs};
use aver_models::raft::{
    self, NetworkKind, PROPERTIES, RaftAction, RaftModel, RaftModelCfg, RaftState, TraceStep,
};
use clap::Args;
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `aver check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Protocol to check (`raft`, `shard`). Omitted: every registered model at its CI bounds.
    pub protocol: Option<String>,
    #[command(flatten)]
    pub bounds: Bounds,
    /// Depth-first search (the default; honours the bounds exactly, little memory).
    #[arg(long, conflicts_with_all = ["bfs", "simulate"])]
    pub dfs: bool,
    /// Breadth-first search (more memory; shorter counterexamples, though 0.31 does not
    /// guarantee the shortest).
    #[arg(long, conflicts_with = "simulate")]
    pub bfs: bool,
    /// Random walks instead of exhaustive search: RUNS walks from the initial state.
    #[arg(long, value_name = "RUNS")]
    pub simulate: Option<u64>,
    /// Checker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Directory for counterexample JSON files.
    #[arg(long, default_value = "target/aver-check")]
    pub out: PathBuf,
}

/// The model bounds shared by `check`, `explore` and `bench check`.
#[derive(Args, Debug, Clone)]
pub struct Bounds {
    /// Servers.
    #[arg(long)]
    pub servers: Option<usize>,
    /// Largest term a server may reach.
    #[arg(long)]
    pub max_term: Option<u64>,
    /// Longest log a leader appends to.
    #[arg(long)]
    pub max_log: Option<u64>,
    /// Servers that may be crashed at the same time (each recovers from its storage).
    #[arg(long)]
    pub crashes: Option<usize>,
    /// Network: reliable, lossy, duplicating, lossy-duplicating, ordered.
    #[arg(long, value_parser = parse_network)]
    pub network: Option<NetworkKind>,
    /// Whether servers take snapshots (the `Compact` timer): true or false.
    #[arg(long)]
    pub compaction: Option<bool>,
    /// Same as `--compaction false`.
    #[arg(long, conflicts_with = "compaction")]
    pub no_compaction: bool,
    /// Seed a historical bug into the core (see specs/bugs.md; each protocol has its own);
    /// repeatable. For Raft, without --dfs/--bfs/--simulate this searches by random walks at
    /// the deep bounds.
    #[arg(long = "bug")]
    pub bugs: Vec<String>,
    /// Keep messages the receiver will ignore forever on the duplicating network (turns
    /// off a sound reduction; for comparing state counts).
    #[arg(long)]
    pub keep_dead_messages: bool,
    /// A named configuration of the model (shard: `ci`, `ci_multi`; default: all of them).
    #[arg(long)]
    pub config: Option<String>,
}

fn parse_network(s: &str) -> Result<NetworkKind, String> {
    s.parse()
}

fn parse_bugs(names: &[String]) -> anyhow::Result<Bugs> {
    names.iter().try_fold(Bugs::NONE, |b, name| {
        let bug: Bug = name.parse().map_err(anyhow::Error::msg)?;
        Ok(b.with(bug))
    })
}

impl Bounds {
    fn cfg(&self) -> anyhow::Result<RaftModelCfg> {
        self.cfg_from(RaftModelCfg::ci())
    }

    /// `base` with every bound given on the command line applied.
    fn cfg_from(&self, base: RaftModelCfg) -> anyhow::Result<RaftModelCfg> {
        let mut cfg = base;
        if let Some(n) = self.servers {
            anyhow::ensure!((1..=9).contains(&n), "--servers must be 1..=9");
            cfg.servers = n;
        }
        if let Some(t) = self.max_term {
            cfg.max_term = t;
        }
        if let Some(l) = self.max_log {
            cfg.max_log = l;
        }
        if let Some(c) = self.crashes {
            cfg.max_crashes = c;
        }
        if let Some(n) = self.network {
            cfg.network = n;
        }
        if let Some(c) = self.compaction {
            cfg.compaction = c;
        }
        cfg.compaction &= !self.no_compaction;
        cfg.bugs = parse_bugs(&self.bugs)?;
        cfg.collect_dead_messages &= !self.keep_dead_messages;
        Ok(cfg)
    }
}

/// Arguments of `aver bench check`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub bounds: Bounds,
    /// Checker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// Arguments of `aver explore`.
#[derive(Args, Debug, Clone)]
pub struct ExploreArgs {
    /// Protocol to explore (`raft`, `shard`).
    pub protocol: String,
    #[command(flatten)]
    pub bounds: Bounds,
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}

/// Random walks `aver check --bug NAME` runs by default.
const BUG_HUNT_RUNS: u64 = 1_000_000;

/// How to search.
#[derive(Clone, Copy, Debug)]
enum Search {
    Dfs,
    Bfs,
    Simulate(u64),
}

/// The outcome of checking one model.
pub(crate) struct Outcome {
    pub(crate) model: String,
    pub(crate) rows: Vec<Row>,
    pub(crate) unique: usize,
    pub(crate) total: usize,
    pub(crate) depth: usize,
    pub(crate) secs: f64,
}

pub(crate) struct Row {
    pub(crate) property: &'static str,
    pub(crate) expectation: Expectation,
    /// Length of the discovery path, if any.
    pub(crate) discovery: Option<usize>,
    /// False when the bounds make this `sometimes` property unreachable by construction.
    pub(crate) reachable: bool,
}

impl Row {
    fn verdict(&self, complete: bool) -> (&'static str, bool) {
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
    if args.protocol.as_deref() == Some("shard") {
        return crate::check_shard::run(&args);
    }
    // With a seeded bug and no search named, search where bugs live: random walks at the
    // deep bounds (exhaustive search cannot reach most of them; see specs/bugs.md).
    let hunting = !args.bounds.bugs.is_empty() && !args.dfs && !args.bfs && args.simulate.is_none();
    let search = match (args.bfs, args.simulate) {
        (true, _) => Search::Bfs,
        (_, Some(runs)) => Search::Simulate(runs),
        _ if hunting => Search::Simulate(BUG_HUNT_RUNS),
        _ => Search::Dfs,
    };
    anyhow::ensure!(args.threads >= 1, "--threads must be at least 1");
    let protocols: Vec<&str> = match args.protocol.as_deref() {
        Some(p) => {
            anyhow::ensure!(
                aver_models::MODELS.contains(&p),
                "unknown protocol `{p}`; known: {}",
                aver_models::MODELS.join(", ")
            );
            vec![p]
        }
        None => vec!["raft"],
    };
    // `aver check raft` checks one configuration; `aver check` every CI configuration.
    let bases: Vec<(String, RaftModelCfg)> = if hunting {
        vec![(String::new(), RaftModelCfg::deep())]
    } else if args.protocol.is_none() {
        RaftModelCfg::ci_all()
            .into_iter()
            .map(|(name, cfg)| (format!("/{name}"), cfg))
            .collect()
    } else {
        vec![(String::new(), RaftModelCfg::ci())]
    };
    let mut outcomes = Vec::new();
    for p in protocols {
        for (suffix, base) in &bases {
            let cfg = args.bounds.cfg_from(base.clone())?;
            let how = match search {
                Search::Dfs => format!("DFS, {} threads", args.threads),
                Search::Bfs => format!("BFS, {} threads", args.threads),
                Search::Simulate(runs) => format!("up to {runs} random walks"),
            };
            println!("checking {p}{suffix} ({how}): {}", describe_cfg(&cfg));
            let mut outcome = check_raft(cfg, search, args.threads, &args.out)?;
            outcome.model = format!("{p}{suffix}");
            outcomes.push(outcome);
        }
    }
    if args.protocol.is_none() {
        outcomes.extend(crate::check_shard::ci(&args)?);
    }
    let failed = print_table(&outcomes, !matches!(search, Search::Simulate(_)));
    Ok(u8::from(failed))
}

fn describe_cfg(cfg: &RaftModelCfg) -> String {
    let bugs: Vec<&str> = Bug::ALL
        .iter()
        .filter(|b| cfg.bugs.has(**b))
        .map(|b| b.name())
        .collect();
    format!(
        "servers={} max-term={} max-log={} crashes={} network={} compaction={} bugs=[{}]{}",
        cfg.servers,
        cfg.max_term,
        cfg.max_log,
        cfg.max_crashes,
        cfg.network,
        cfg.compaction,
        bugs.join(","),
        if cfg.collect_dead_messages {
            ""
        } else {
            " keep-dead-messages"
        }
    )
}

fn check_raft(
    cfg: RaftModelCfg,
    search: Search,
    threads: usize,
    out_dir: &std::path::Path,
) -> anyhow::Result<Outcome> {
    let model = cfg.into_model();
    let start = Instant::now();
    let (rows, unique, total, depth, paths) = match search {
        Search::Simulate(runs) => simulate(&model, runs),
        Search::Dfs | Search::Bfs => {
            let builder = model
                .clone()
                .checker()
                .threads(threads)
                .finish_when(HasDiscoveries::AnyFailures);
            match search {
                Search::Bfs => collect(builder.spawn_bfs(), &model, start),
                _ => collect(builder.spawn_dfs(), &model, start),
            }
        }
    };
    let secs = start.elapsed().as_secs_f64();
    for (name, path, encoded) in paths {
        report_counterexample(name, &path, encoded.as_deref(), out_dir)?;
    }
    Ok(Outcome {
        model: "raft".into(),
        rows,
        unique,
        total,
        depth,
        secs,
    })
}

type Collected = (Vec<Row>, usize, usize, usize, Vec<Found>);

/// Waits for `checker` (printing progress) and collects verdicts and counterexample paths.
fn collect<C: Checker<RaftModel>>(checker: C, model: &RaftModel, start: Instant) -> Collected {
    let checker = progress(checker, start);
    let discoveries = checker.discoveries();
    let mut rows = Vec::new();
    let mut paths = Vec::new();
    for p in PROPERTIES {
        let path = discoveries.get(p.name);
        rows.push(Row {
            property: p.name,
            expectation: p.expectation.clone(),
            discovery: path.map(|path| path.clone().into_actions().len()),
            reachable: model.cfg.can_reach(p.name),
        });
        if let (Expectation::Always, Some(path)) = (&p.expectation, path) {
            paths.push((p.name, path.clone().into_vec(), Some(path.encode(model))));
        }
    }
    (
        rows,
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        paths,
    )
}

/// Prints the live progress line until the checker is done.
pub(crate) fn progress<M: Model, C: Checker<M>>(checker: C, start: Instant) -> C {
    let mut err = std::io::stderr();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(250));
        let secs = start.elapsed().as_secs_f64().max(1e-3);
        let total = checker.state_count();
        let _ = write!(
            err,
            "\r  states={total} unique={} depth={} states/s={:.0} t={secs:.0}s   ",
            checker.unique_state_count(),
            checker.max_depth(),
            total as f64 / secs
        );
        let _ = err.flush();
    }
    let checker = checker.join();
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    let total = checker.state_count();
    let _ = writeln!(
        err,
        "\r  states={total} unique={} depth={} states/s={:.0} t={secs:.1}s   ",
        checker.unique_state_count(),
        checker.max_depth(),
        total as f64 / secs
    );
    checker
}

type Found = (&'static str, raft::StatePath, Option<String>);

/// Random walks (see `aver_models::raft::random_walks`), with a progress line.
fn simulate(model: &RaftModel, runs: u64) -> Collected {
    const WALK_STEPS_MAX: usize = 60;
    let report = raft::random_walks(model, runs, WALK_STEPS_MAX, 0x9E37_79B9_7F4A_7C15);
    eprintln!(
        "  runs={} states={} depth={}",
        report.runs, report.states, report.depth
    );
    let rows = PROPERTIES
        .iter()
        .zip(&report.discoveries)
        .map(|(p, d)| Row {
            property: p.name,
            expectation: p.expectation.clone(),
            discovery: d.as_ref().map(|d| d.len() - 1),
            reachable: model.cfg.can_reach(p.name),
        })
        .collect();
    let found = PROPERTIES
        .iter()
        .zip(report.discoveries)
        .filter(|(p, _)| matches!(p.expectation, Expectation::Always))
        .filter_map(|(p, d)| Some((p.name, d?, None)))
        .collect();
    (rows, report.states, report.states, report.depth, found)
}

/// Prints a counterexample as readable steps and writes it as JSON.
fn report_counterexample(
    name: &str,
    path: &[(RaftState, Option<RaftAction>)],
    encoded: Option<&str>,
    out_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let steps = raft::trace(path);
    println!("\n{name} VIOLATED — counterexample, {} steps:", steps.len());
    for s in &steps {
        println!("{:>3}. [{}] {}", s.step, s.actor, s.action);
        for p in &s.persisted {
            println!("       persisted: {p}");
        }
        for c in &s.changed {
            println!("       changed:   {c}");
        }
        for m in &s.sent {
            println!("       sent:      {m}");
        }
    }
    if let Some(last) = path.last() {
        println!("  final state:");
        for (i, s) in last.0.actor_states.iter().enumerate() {
            let down = if last.0.crashed[i] { " (crashed)" } else { "" };
            println!("    n{i}{down}: {}", raft::describe_server(s));
        }
    }
    if let Some(e) = encoded {
        println!("  Explorer path (aver explore raft, same bounds): #/steps/{e}");
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let id = name.split(' ').next().unwrap_or(name);
    let file = out_dir.join(format!("raft-{id}.json"));
    let json = serde_json::json!({
        "model": "raft",
        "property": name,
        "explorer_path": encoded,
        "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
    });
    std::fs::write(&file, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", file.display()))?;
    println!("  written to {}", file.display());
    Ok(())
}

fn step_json(s: &TraceStep) -> serde_json::Value {
    serde_json::json!({
        "step": s.step,
        "actor": s.actor,
        "action": s.action,
        "persisted": s.persisted,
        "changed": s.changed,
        "sent": s.sent,
    })
}

/// Prints the summary table; returns true if any property failed.
pub(crate) fn print_table(outcomes: &[Outcome], exhaustive: bool) -> bool {
    let mut failed = false;
    println!();
    println!(
        "{:<24} {:<34} {:<10} {:<14} {:>6}",
        "model", "property", "kind", "verdict", "steps"
    );
    for o in outcomes {
        // A run stopped early by a counterexample is not complete for `sometimes`.
        let any_violation = o
            .rows
            .iter()
            .any(|r| !matches!(r.expectation, Expectation::Sometimes) && r.discovery.is_some());
        let complete = exhaustive && !any_violation;
        for r in &o.rows {
            let (verdict, ok) = r.verdict(complete);
            failed |= !ok;
            let kind = match r.expectation {
                Expectation::Always => "always",
                Expectation::Sometimes => "sometimes",
                Expectation::Eventually => "eventually",
            };
            let steps = r.discovery.map_or("-".into(), |n| n.to_string());
            println!(
                "{:<24} {:<34} {:<10} {:<14} {:>6}",
                o.model, r.property, kind, verdict, steps
            );
        }
        println!(
            "{}: unique={} states={} depth={} time={:.1}s states/s={:.0}",
            o.model,
            o.unique,
            o.total,
            o.depth,
            o.secs,
            o.total as f64 / o.secs.max(1e-3)
        );
    }
    println!("{}", if failed { "FAILED" } else { "OK" });
    failed
}

/// Runs `aver bench check`: DFS at the CI bounds (or the given ones), printing states/s and
/// CPU-seconds.
pub fn bench(args: BenchArgs) -> anyhow::Result<u8> {
    let cfg = args.bounds.cfg()?;
    println!(
        "bench check raft (DFS, {} threads): {}",
        args.threads,
        describe_cfg(&cfg)
    );
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let checker = cfg.into_model().checker().threads(args.threads).spawn_dfs();
    let checker = progress(checker, start);
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().map(|c| c - cpu0.unwrap_or(0.0));
    let total = checker.state_count();
    println!(
        "unique={} states={} depth={} wall={secs:.2}s cpu={} states/s={:.0} states/cpu-s={}",
        checker.unique_state_count(),
        total,
        checker.max_depth(),
        cpu.map_or("?".into(), |c| format!("{c:.2}s")),
        total as f64 / secs,
        cpu.map_or("?".into(), |c| format!("{:.0}", total as f64 / c)),
    );
    Ok(0)
}

/// User + system CPU time of this process, from /proc (Linux only).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Runs `aver explore`: Stateright Explorer on 127.0.0.1 (blocks until interrupted).
pub fn explore(args: ExploreArgs) -> anyhow::Result<u8> {
    if args.protocol == "shard" {
        return crate::check_shard::explore(&args);
    }
    anyhow::ensure!(
        aver_models::MODELS.contains(&args.protocol.as_str()),
        "unknown protocol `{}`; known: {}",
        args.protocol,
        aver_models::MODELS.join(", ")
    );
    let cfg = args.bounds.cfg()?;
    let addr = format!("127.0.0.1:{}", args.port);
    println!("explore raft: {}", describe_cfg(&cfg));
    println!("Stateright Explorer on http://{addr}/ (Ctrl-C to stop)");
    cfg.into_model().checker().serve(addr);
    Ok(0)
}
