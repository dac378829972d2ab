//! The Raft model in `aver check`: configurations from the flags, the search, and verdicts.

use super::args::{BenchArgs, CheckArgs, ExploreArgs};
use super::output::{cpu_seconds, progress, report_counterexample};
use super::registry::Scope;
use super::{Outcome, Row, Search};
use aver_core::raft::Bug;
use aver_models::raft::{self, PROPERTIES, RaftModel, RaftModelCfg};
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::time::Instant;

/// Random walks `aver check raft --bug NAME` runs by default.
const BUG_HUNT_RUNS: u64 = 1_000_000;

/// Checks Raft: with a seeded bug and no search named, random walks at the deep bounds; for
/// `aver check raft`, one configuration (the flags over `ci`); for `aver check`, every CI
/// configuration.
pub fn check(args: &CheckArgs, scope: Scope) -> anyhow::Result<Vec<Outcome>> {
    let hunting = !args.bounds.bugs.is_empty() && args.search().is_none();
    let search = args.search().unwrap_or(if hunting {
        Search::Simulate(BUG_HUNT_RUNS)
    } else {
        Search::Dfs
    });
    let bases: Vec<(String, RaftModelCfg)> = if hunting {
        vec![(String::new(), RaftModelCfg::deep())]
    } else if scope == Scope::Ci {
        RaftModelCfg::ci_all()
            .into_iter()
            .map(|(name, cfg)| (format!("/{name}"), cfg))
            .collect()
    } else {
        vec![(String::new(), RaftModelCfg::ci())]
    };
    let mut outcomes = Vec::new();
    for (suffix, base) in &bases {
        let cfg = args.bounds.cfg_from(base.clone())?;
        let how = match search {
            Search::Dfs => format!("DFS, {} threads", args.threads),
            Search::Bfs => format!("BFS, {} threads", args.threads),
            Search::Simulate(runs) => format!("up to {runs} random walks"),
        };
        println!("checking raft{suffix} ({how}): {}", describe_cfg(&cfg));
        let mut outcome = check_raft(cfg, search, args.threads, &args.out)?;
        outcome.model = format!("raft{suffix}");
        outcomes.push(outcome);
    }
    Ok(outcomes)
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
        exhaustive: !matches!(search, Search::Simulate(_)),
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

/// Runs `aver bench check`: DFS at the CI bounds (or the given ones), printing states/s and
/// CPU-seconds.
pub fn bench(args: &BenchArgs) -> anyhow::Result<u8> {
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

/// Runs `aver explore`: Stateright Explorer on 127.0.0.1 (blocks until interrupted).
pub fn explore(args: &ExploreArgs) -> anyhow::Result<u8> {
    let cfg = args.bounds.cfg()?;
    let addr = format!("127.0.0.1:{}", args.port);
    println!("explore raft: {}", describe_cfg(&cfg));
    println!("Stateright Explorer on http://{addr}/ (Ctrl-C to stop)");
    cfg.into_model().checker().serve(addr);
    Ok(0)
}
