//! The Raft model in `aver check`: configurations from the flags, the search, and verdicts.

use super::args::{BenchArgs, CheckArgs, ExploreArgs};
use super::explorer;
use super::output::{cpu_seconds, peak_rss, report_counterexample, with_progress};
use super::registry::Scope;
use super::{Counterexample, Outcome, Row, Search};
use aver_core::raft::Bug;
use aver_models::raft::{self, PROPERTIES, RaftModel, RaftModelCfg, symmetry};
use aver_models::search::{self, Options, Order, Stats};
use stateright::Expectation;
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
    // (configuration name, label suffix, base configuration)
    let bases: Vec<(&str, String, RaftModelCfg)> = if hunting {
        vec![("deep", String::new(), RaftModelCfg::deep())]
    } else if scope == Scope::Ci {
        RaftModelCfg::ci_all()
            .into_iter()
            .map(|(name, cfg)| (name, format!("/{name}"), cfg))
            .collect()
    } else {
        vec![("ci", String::new(), RaftModelCfg::ci())]
    };
    let mut outcomes = Vec::new();
    for (name, suffix, base) in bases {
        let cfg = args.bounds.cfg_from(base)?;
        let how = match search {
            Search::Dfs => format!("DFS, {} threads", args.threads),
            Search::Bfs => format!("BFS, {} threads", args.threads),
            Search::Simulate(runs) => format!("up to {runs} random walks"),
        };
        println!("checking raft{suffix} ({how}): {}", describe_cfg(&cfg));
        let run = RaftRun {
            search,
            threads: args.threads,
            out_dir: &args.out,
            shortest: !args.no_shortest,
            explore_flags: format!(" --config {name}{}", args.bounds.flags()),
        };
        let bounds = describe_cfg(&cfg);
        let mut outcome = check_raft(cfg, &run)?;
        outcome.model = format!("raft{suffix}");
        outcome.config = name.to_string();
        outcome.bounds = bounds;
        outcome.search = how;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// How to check one Raft configuration.
struct RaftRun<'a> {
    search: Search,
    threads: usize,
    out_dir: &'a std::path::Path,
    /// After a DFS finds a violation, search breadth-first for the shortest one.
    shortest: bool,
    /// The `aver explore raft` flags that rebuild this model.
    explore_flags: String,
}

fn describe_cfg(cfg: &RaftModelCfg) -> String {
    let bugs: Vec<&str> = Bug::ALL
        .iter()
        .filter(|b| cfg.bugs.has(**b))
        .map(|b| b.name())
        .collect();
    format!(
        "servers={} max-term={} max-log={} crashes={} network={} compaction={} bugs=[{}]{}{}",
        cfg.servers,
        cfg.max_term,
        cfg.max_log,
        cfg.max_crashes,
        cfg.network,
        cfg.compaction,
        bugs.join(","),
        [
            (!cfg.collect_dead_messages, " keep-dead-messages"),
            (!cfg.collect_stale_requests, " keep-stale-requests"),
            (!cfg.merge_equivalent_messages, " keep-equivalent-messages"),
            (!cfg.symmetry, " no-symmetry"),
            (!cfg.step_checks, " no-step-checks"),
            (!cfg.covering, " no-covering"),
            (!cfg.forget_on_crash, " no-forget-on-crash"),
            (!cfg.restart_at_crash, " no-restart-at-crash"),
            (!cfg.forget_leader_hint, " keep-leader-hint"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, s)| *s)
        .collect::<String>(),
        if cfg.limits.any() {
            format!(
                " limits:{} (under-approximation: runs beyond the limits are not explored)",
                cfg.limits.flags()
            )
        } else {
            String::new()
        }
    )
}

fn check_raft(cfg: RaftModelCfg, run: &RaftRun) -> anyhow::Result<Outcome> {
    let model = cfg.into_model();
    let start = Instant::now();
    let (mut rows, unique, total, depth, mut paths, complete) = match run.search {
        Search::Simulate(runs) => simulate(&model, runs),
        Search::Dfs => exhaustive(&model, Order::Dfs, run.threads),
        Search::Bfs => exhaustive(&model, Order::Bfs, run.threads),
    };
    let mut first_found = Vec::new();
    if matches!(run.search, Search::Dfs) && run.shortest && !paths.is_empty() {
        first_found = paths.iter().map(|(n, p)| (*n, p.len() - 1)).collect();
        paths = if model.cfg.limits.any() {
            shrunk(&model, &mut rows, paths)
        } else {
            shortest(&model, run.threads, &mut rows, paths)
        };
    }
    let secs = start.elapsed().as_secs_f64();
    let mut counterexamples = Vec::new();
    for (name, path) in paths {
        let explore = explorer::locate(&model, &path, "raft", &run.explore_flags);
        let file = report_counterexample(name, &path, explore.as_ref(), run.out_dir)?;
        // The first trace DFS found for this property, else its shortest for any.
        let dfs = first_found
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, l)| *l);
        let dfs = dfs.or_else(|| first_found.iter().map(|(_, l)| *l).min());
        if let Some(d) = dfs {
            let how = if model.cfg.limits.any() {
                "shrunk"
            } else {
                "breadth-first"
            };
            println!("\n{name}: {} steps {how}, {d} depth-first", path.len() - 1);
        }
        counterexamples.push(Counterexample {
            property: name.to_string(),
            steps: path.len() - 1,
            first_found_steps: dfs,
            file,
            explore,
        });
    }
    Ok(Outcome {
        model: "raft".into(),
        rows,
        unique,
        total,
        depth,
        secs,
        exhaustive: complete,
        counterexamples,
        ..Outcome::default()
    })
}

/// A DFS counterexample is whichever branch the search went down first. Breadth-first search
/// stops at the first level where an `always` property fails, so its trace is the shortest
/// within the bounds — and it explores no deeper than the DFS trace. Returns BFS's traces, and
/// DFS's for the properties BFS did not reach; `rows` get the shorter lengths.
fn shortest(model: &RaftModel, threads: usize, rows: &mut [Row], dfs: Vec<Found>) -> Vec<Found> {
    let longest = dfs.iter().map(|(_, p)| p.len() - 1).max().unwrap_or(0);
    println!(
        "  DFS found a counterexample of {longest} steps or fewer; searching breadth-first \
         for the shortest (--no-shortest keeps the DFS one)"
    );
    let (bfs_rows, _, _, _, mut paths, _) = exhaustive(model, Order::Bfs, threads);
    for (row, b) in rows.iter_mut().zip(bfs_rows) {
        if matches!(row.expectation, Expectation::Always) {
            row.discovery = match (row.discovery, b.discovery) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    for (name, path) in dfs {
        if !paths.iter().any(|(n, _)| *n == name) {
            paths.push((name, path));
        }
    }
    paths
}

/// With behaviour limits, breadth-first search is out of reach where depth-first search
/// finishes: BFS cannot saturate states (saturating lengthens paths), so covering merges far
/// fewer of them (figure8-commit at its limits: a complete DFS keeps 214,440 states; BFS had
/// kept over 3 million after 300 s, at depth 18 of the 46-step trace). So each DFS trace is
/// shrunk instead: steps are dropped one at a time while the rest still replays within the
/// bounds and limits and still violates the property (not necessarily the shortest trace).
fn shrunk(model: &RaftModel, rows: &mut [Row], dfs: Vec<Found>) -> Vec<Found> {
    println!(
        "  DFS found a counterexample; shrinking it by dropping steps (--no-shortest keeps it)"
    );
    dfs.into_iter()
        .map(|(name, path)| {
            let property = PROPERTIES
                .iter()
                .find(|p| p.name == name)
                .expect("a checked property");
            let path = aver_models::walk::shrink(model, &path, property.condition);
            if let Some(row) = rows.iter_mut().find(|r| r.property == name) {
                row.discovery = Some(path.len() - 1);
            }
            (name, path)
        })
        .collect()
}

type Collected = (Vec<Row>, usize, usize, usize, Vec<Found>, bool);

/// Searches exhaustively (printing progress) and collects verdicts and counterexample paths.
fn exhaustive(model: &RaftModel, order: Order, threads: usize) -> Collected {
    let stats = Stats::default();
    let options = Options {
        threads,
        order,
        stop_at_failure: true,
        saturate: order == Order::Dfs,
    };
    let found = with_progress(&stats, || {
        search::search(model, symmetry::hooks(model), options, &stats)
    });
    let mut rows = Vec::new();
    let mut paths = Vec::new();
    for (p, d) in model.checked_properties().zip(&found.discoveries) {
        rows.push(Row {
            property: p.name,
            expectation: p.expectation.clone(),
            discovery: d.as_ref().map(|d| d.len() - 1),
            reachable: model.cfg.can_reach(p.name),
        });
        if let (Expectation::Always, Some(indices)) = (&p.expectation, d) {
            let path = search::replay_indices(model, indices).expect("a found path replays");
            paths.push((p.name, path));
        }
    }
    (
        rows,
        found.unique,
        found.generated,
        found.depth,
        paths,
        found.complete,
    )
}

type Found = (&'static str, raft::StatePath);

/// Random walks (see `aver_models::raft::random_walks`), with a progress line.
fn simulate(model: &RaftModel, runs: u64) -> Collected {
    const WALK_STEPS_MAX: usize = 60;
    let report = raft::random_walks(model, runs, WALK_STEPS_MAX, 0x9E37_79B9_7F4A_7C15);
    eprintln!(
        "  runs={} states={} depth={}",
        report.runs, report.states, report.depth
    );
    // Properties the model does not check (step checks, when off) get no row.
    let checked = |(p, _): &(&raft::RaftProperty, _)| model.cfg.step_checks || !p.step_check;
    let rows = PROPERTIES
        .iter()
        .zip(&report.discoveries)
        .filter(checked)
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
        .filter_map(|(p, d)| Some((p.name, d?)))
        .collect();
    (
        rows,
        report.states,
        report.states,
        report.depth,
        found,
        false,
    )
}

/// Runs `aver bench check`: DFS at the CI bounds (or the given ones), printing states/s and
/// CPU-seconds.
pub fn bench(args: &BenchArgs) -> anyhow::Result<u8> {
    if args.compare {
        return compare_reductions();
    }
    let cfg = args.bounds.cfg()?;
    println!(
        "bench check raft (DFS, {} threads): {}",
        args.threads,
        describe_cfg(&cfg)
    );
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let model = cfg.into_model();
    let stats = Stats::default();
    let options = Options {
        threads: args.threads,
        order: Order::Dfs,
        stop_at_failure: false,
        saturate: true,
    };
    let found = with_progress(&stats, || {
        search::search(&model, symmetry::hooks(&model), options, &stats)
    });
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().map(|c| c - cpu0.unwrap_or(0.0));
    let total = found.generated;
    println!(
        "unique={} states={} depth={} wall={secs:.2}s cpu={} states/s={:.0} \
         states/cpu-s={} peak-rss={}",
        found.unique,
        total,
        found.depth,
        cpu.map_or("?".into(), |c| format!("{c:.2}s")),
        total as f64 / secs,
        cpu.map_or("?".into(), |c| format!("{:.0}", total as f64 / c)),
        peak_rss().map_or("?".into(), |kb| format!("{}MB", kb / 1024)),
    );
    Ok(0)
}

/// The reductions `aver bench check --compare` switches off one at a time, by flag.
const REDUCTIONS: [&str; 8] = [
    "--no-symmetry",
    "--no-covering",
    "--no-restart-at-crash",
    "--no-forget-on-crash",
    "--keep-dead-messages",
    "--keep-stale-requests",
    "--keep-equivalent-messages",
    "--keep-leader-hint",
];

/// `aver bench check --compare`: reruns this command (without `--compare`) once with every
/// reduction on and once per reduction with it off, each in a fresh process so its peak
/// memory is its own, and prints one table row per run.
fn compare_reductions() -> anyhow::Result<u8> {
    let exe = std::env::current_exe()?;
    let base: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--compare")
        .collect();
    // One column wide enough for the longest flag, for the header and every row.
    let width = REDUCTIONS.iter().map(|f| f.len()).max().unwrap_or(0);
    println!(
        "{:<width$} {:>10} {:>12} {:>9} {:>9} {:>9}",
        "reductions", "unique", "generated", "wall", "cpu", "peak-rss"
    );
    for off in std::iter::once(None).chain(REDUCTIONS.iter().map(Some)) {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(&base);
        if let Some(flag) = off {
            cmd.arg(flag);
        }
        let out = cmd.stderr(std::process::Stdio::null()).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("unique="))
            .unwrap_or("");
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name).map(str::to_string))
                .unwrap_or_else(|| "?".into())
        };
        let label = off.map_or("all on".to_string(), |f| f.to_string());
        println!(
            "{label:<width$} {:>10} {:>12} {:>9} {:>9} {:>9}",
            field("unique="),
            field("states="),
            field("wall="),
            field("cpu="),
            field("peak-rss=")
        );
    }
    Ok(0)
}

/// Runs `aver explore raft`: Stateright Explorer on 127.0.0.1 (blocks until interrupted), on
/// the named configuration (default `ci`; `deep` is where `--bug` hunts) with the bounds given.
pub fn explore(args: &ExploreArgs) -> anyhow::Result<u8> {
    let name = args.config.as_deref().unwrap_or("ci");
    let mut all = RaftModelCfg::ci_all();
    all.push(("deep", RaftModelCfg::deep()));
    let Some((_, base)) = all.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
        anyhow::bail!(
            "no raft configuration `{name}`; known: {}",
            names.join(", ")
        );
    };
    let cfg = args.bounds.cfg_from(base.clone())?;
    let description = format!("{name}: {}", describe_cfg(&cfg));
    explorer::serve("raft", &description, cfg.into_model(), args)
}
