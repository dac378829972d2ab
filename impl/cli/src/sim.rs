//! `aver sim` and `aver bench sim`: the simulated 6.5840 suites over many seeds, and their
//! throughput.
//!
//! `aver sim SUITE` (`raft`, `kv`, `shardctrler`, …) runs every scenario of the suite (or `--test NAME`) on seeds `--first-seed ..
//! --first-seed + --seeds` (or exactly `--seed S`). Each failure prints as it happens, with its
//! seed and the command that replays it; at the end a table (test, runs, failures, virtual
//! time, events, wall time) and the failures again. `--json` prints a machine-readable
//! summary on stdout instead (failures still print to stderr as they happen). Exit code 1 on
//! any failure — a checker's verdict, a server's failed step check, an exceeded event budget
//! — 2 on bad arguments. `--trace` prints one line per event (one test, one seed).
//! `--bug NAME` seeds a bug of the suite's cores.

use aver_sim::Failure;
use aver_tests::{Scenario, Suite as Registered, run_with_budget};
use clap::{Args, ValueEnum};
use serde_json::json;
use std::time::{Duration, Instant};

/// Which suite to simulate.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Suite {
    /// The 28 Raft tests of 6.5840 Lab 3 (3A–3D).
    Raft,
    /// The KV services: Lab 2's kvsrv1 and lock, Lab 4's rsm and kvraft1 (38 tests).
    Kv,
    /// The sharded KV tests (older shardkv with both challenges, 2025 shardkv1 scenarios).
    Shard,
    /// Lab 4's rsm tests alone (also part of `kv`).
    Rsm,
    /// Lab 4's kvraft1 tests alone (also part of `kv`).
    Kvraft,
    /// The older shardctrler tests on a Raft-replicated controller (TestBasic, TestMulti,
    /// TestMinimalAgain; `--extra`: unreliable with partitions and crashes).
    Shardctrler,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Raft => "raft",
            Suite::Kv => "kv",
            Suite::Shard => "shard",
            Suite::Rsm => "rsm",
            Suite::Kvraft => "kvraft",
            Suite::Shardctrler => "shardctrler",
        }
    }

    fn registered(self) -> &'static Registered {
        Registered::named(self.name()).expect("every suite is registered")
    }

    /// Seeds the named bugs into this suite's cores on this thread.
    fn seed_bugs(self, names: &[String]) -> anyhow::Result<()> {
        match self {
            Suite::Raft => {
                let mut bugs = aver_core::raft::Bugs::NONE;
                for n in names {
                    bugs = bugs.with(n.parse().map_err(anyhow::Error::msg)?);
                }
                aver_sim::raft::seed_bugs(bugs);
            }
            Suite::Kv | Suite::Rsm | Suite::Kvraft => {
                // kvsrv's bugs and kvraft's have distinct names; each goes to its service.
                let mut bugs = aver_core::kvsrv::Bugs::NONE;
                let mut kvraft = aver_core::kvraft::KvBugs::NONE;
                for n in names {
                    match (n.parse(), n.parse::<aver_core::kvraft::KvBug>()) {
                        (Ok(b), _) => bugs = bugs.with(b),
                        (_, Ok(b)) => kvraft = kvraft.with(b),
                        (Err(e), Err(f)) => anyhow::bail!("{e}; {f}"),
                    }
                }
                aver_tests::kv_lab::seed_bugs(bugs);
                aver_tests::kvraft_lab::seed_bugs(kvraft);
            }
            // The shard suite takes its bug names per run (`sim_shard::run`).
            Suite::Shard => {}
            Suite::Shardctrler => {
                let mut bugs = aver_core::shardkv::Bugs::NONE;
                for n in names {
                    bugs = bugs.with(n.parse().map_err(anyhow::Error::msg)?);
                }
                aver_tests::shardctrler::lab::seed_bugs(bugs);
            }
        }
        Ok(())
    }
}

/// Arguments of `aver sim`.
#[derive(Args)]
pub struct SimArgs {
    /// The suite.
    suite: Suite,
    /// Number of seeds per test.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Run only this test (our name, e.g. `figure8_unreliable_3c`, or the lab's).
    #[arg(long)]
    test: Option<String>,
    /// Run exactly this seed (replay).
    #[arg(long, conflicts_with_all = ["seeds", "first_seed"])]
    seed: Option<u64>,
    /// Also run the extra (non-lab) scenarios, e.g. `figure8_torn_writes`.
    #[arg(long)]
    extra: bool,
    /// Print one line per simulated event.
    #[arg(long)]
    trace: bool,
    /// Run the suite's cores with a seeded bug (e.g. `figure8-commit` for raft,
    /// `errmaybe-as-ok` for kv, `drop-dedup` for shard) to see the checkers catch it; repeatable.
    #[arg(long = "bug")]
    bugs: Vec<String>,
    /// Event budget of every run, instead of each scenario's own (about ten times what a
    /// passing run needs); a run that exceeds it fails.
    #[arg(long)]
    events_max: Option<u64>,
    /// Print a JSON summary on stdout (per scenario: runs, failures, wall; per run: test, seed,
    /// verdict, virtual time, events, wall; per failure: seed, message, replay command, history
    /// file) instead of the table; failures still print to stderr as they happen.
    #[arg(long)]
    json: bool,
}

/// Arguments of `aver bench sim`.
#[derive(Args)]
pub struct BenchArgs {
    /// Seeds per test (the suite runs once per seed).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Only this suite (default: every suite).
    #[arg(long)]
    suite: Option<Suite>,
}

/// Per-test totals.
#[derive(Default)]
struct Row {
    runs: u64,
    failures: u64,
    virtual_us: u64,
    events: u64,
    events_max: u64,
    wall: Duration,
    log_size_max: usize,
    /// One record per seed, for `--json`.
    records: Vec<RunRecord>,
}

/// One run (one test, one seed) as `--json` reports it.
pub(crate) struct RunRecord {
    /// The scenario.
    pub test: &'static str,
    /// Its seed.
    pub seed: u64,
    /// Whether it passed.
    pub ok: bool,
    /// Virtual time at the end (or of the failure).
    pub virtual_us: u64,
    /// Simulated events (`None` for a failed run: the failure does not carry the count).
    pub events: Option<u64>,
    /// Wall time.
    pub wall: Duration,
}

impl RunRecord {
    /// The record as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        json!({
            "test": self.test,
            "seed": self.seed,
            "verdict": if self.ok { "pass" } else { "fail" },
            "virtual_s": self.virtual_us as f64 / 1e6,
            "events": self.events,
            "wall_s": self.wall.as_secs_f64(),
        })
    }
}

/// A failure as `--json` reports it: its seed, message, replay command and, when the failing
/// check wrote one, the history file.
pub(crate) fn failure_json(f: &Failure) -> serde_json::Value {
    // A history checker's failure says "... written to FILE" (`aver_sim::history`).
    let history = f
        .message
        .split_once("written to ")
        .map(|(_, rest)| rest.split_whitespace().next().unwrap_or(rest));
    json!({
        "test": f.test,
        "seed": f.seed,
        "at_s": f.at as f64 / 1e6,
        "message": f.message,
        "replay": f.replay(),
        "history_file": history,
    })
}

/// How a suite runs: budgets, and where failures print as they happen.
#[derive(Clone, Copy, Default)]
struct RunOpts {
    /// Overrides every scenario's event budget.
    events_max: Option<u64>,
    /// Print failures as they happen (to stderr when stdout carries JSON).
    live: Option<Live>,
}

#[derive(Clone, Copy)]
enum Live {
    Stdout,
    Stderr,
}

fn selected(
    suite: Suite,
    test: Option<&str>,
    extra: bool,
) -> anyhow::Result<Vec<&'static Scenario>> {
    let all = suite.registered().scenarios(true);
    match test {
        None => Ok(suite.registered().scenarios(extra)),
        Some(name) => match all.iter().find(|s| s.name == name || s.lab_name == name) {
            Some(s) => Ok(vec![s]),
            None => {
                let names: Vec<&str> = all.iter().map(|s| s.name).collect();
                anyhow::bail!(
                    "no test {name} in the {} suite; its tests: {}",
                    suite.name(),
                    names.join(", ")
                )
            }
        },
    }
}

/// Runs every selected scenario over `seeds`; returns rows and failures.
fn run_suite(scenarios: &[&Scenario], seeds: &[u64], opts: RunOpts) -> (Vec<Row>, Vec<Failure>) {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for s in scenarios {
        let mut row = Row::default();
        for &seed in seeds {
            let t = Instant::now();
            let outcome = run_with_budget(s, seed, opts.events_max.unwrap_or(s.events_max));
            let wall = t.elapsed();
            row.wall += wall;
            row.runs += 1;
            row.records.push(RunRecord {
                test: s.name,
                seed,
                ok: outcome.is_ok(),
                virtual_us: outcome.as_ref().map_or_else(|f| f.at, |r| r.virtual_us),
                events: outcome.as_ref().ok().map(|r| r.events),
                wall,
            });
            match outcome {
                Ok(r) => {
                    row.virtual_us += r.virtual_us;
                    row.events += r.events;
                    row.events_max = row.events_max.max(r.events);
                    row.log_size_max = row.log_size_max.max(r.log_size_max);
                }
                Err(mut f) => {
                    if let Some(n) = opts.events_max {
                        f.replay.push_str(&format!(" --events-max {n}"));
                    }
                    match opts.live {
                        Some(Live::Stdout) => println!("{}", fail_text(&f)),
                        Some(Live::Stderr) => eprintln!("{}", fail_text(&f)),
                        None => {}
                    }
                    row.failures += 1;
                    failures.push(f);
                }
            }
        }
        rows.push(row);
    }
    (rows, failures)
}

fn fail_text(f: &Failure) -> String {
    format!(
        "FAIL {} seed={} at {:.3}s: {}\n  replay: {}",
        f.test,
        f.seed,
        f.at as f64 / 1e6,
        f.message,
        f.replay()
    )
}

fn print_table(scenarios: &[&Scenario], rows: &[Row]) {
    println!(
        "{:<32} {:>6} {:>8} {:>10} {:>9} {:>10} {:>8} {:>9}",
        "test", "runs", "failures", "virtual s", "events", "events max", "state B", "wall ms"
    );
    for (s, r) in scenarios.iter().zip(rows) {
        let ok = (r.runs - r.failures).max(1);
        let runs = r.runs.max(1);
        let state = match r.log_size_max {
            0 => "-".to_string(),
            b => b.to_string(),
        };
        println!(
            "{:<32} {:>6} {:>8} {:>10.1} {:>9} {:>10} {:>8} {:>9.1}",
            s.name,
            r.runs,
            r.failures,
            r.virtual_us as f64 / 1e6 / ok as f64,
            r.events / runs,
            r.events_max,
            state,
            r.wall.as_secs_f64() * 1e3 / runs as f64
        );
    }
    println!(
        "(virtual s: mean per passing run; events, wall ms: mean per run; events max: most \
         in a passing run; state B: largest persisted Raft state, 3D)"
    );
}

/// Runs `aver sim`.
pub fn run(args: SimArgs) -> anyhow::Result<u8> {
    if let Suite::Shard = args.suite {
        let seeds = match args.seed {
            Some(s) => s..s + 1,
            None => args.first_seed..args.first_seed + args.seeds,
        };
        let opts = crate::sim_shard::Opts {
            json: args.json,
            events_max: args.events_max,
        };
        return crate::sim_shard::run(args.test.as_deref(), seeds, &args.bugs, opts);
    }
    let scenarios = selected(args.suite, args.test.as_deref(), args.extra)?;
    if args.trace {
        anyhow::ensure!(
            scenarios.len() == 1 && args.seed.is_some(),
            "--trace needs --test NAME and --seed S"
        );
        aver_sim::sim::trace_next_run();
    }
    args.suite.seed_bugs(&args.bugs)?;
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.first_seed..args.first_seed + args.seeds).collect(),
    };
    let live = if args.json {
        Live::Stderr
    } else {
        Live::Stdout
    };
    let opts = RunOpts {
        events_max: args.events_max,
        live: Some(live),
    };
    let t = Instant::now();
    let (rows, failures) = run_suite(&scenarios, &seeds, opts);
    let wall = t.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            summary_json(args.suite, &scenarios, &rows, &failures, seeds.len(), wall)
        );
        return Ok(u8::from(!failures.is_empty()));
    }
    print_table(&scenarios, &rows);
    let runs: u64 = rows.iter().map(|r| r.runs).sum();
    let events: u64 = rows.iter().map(|r| r.events).sum();
    println!(
        "\nseeds: {} × tests: {} = {runs} runs, {} failures, wall {wall:.2} s, \
         {:.0} events/s",
        seeds.len(),
        scenarios.len(),
        failures.len(),
        events as f64 / wall
    );
    for f in &failures {
        println!("\n{}", fail_text(f));
    }
    Ok(u8::from(!failures.is_empty()))
}

/// The `--json` summary.
fn summary_json(
    suite: Suite,
    scenarios: &[&Scenario],
    rows: &[Row],
    failures: &[Failure],
    seeds: usize,
    wall: f64,
) -> serde_json::Value {
    let per_scenario: Vec<_> = scenarios
        .iter()
        .zip(rows)
        .map(|(s, r)| {
            json!({
                "test": s.name,
                "lab_test": s.lab_name,
                "runs": r.runs,
                "failures": r.failures,
                "wall_s": r.wall.as_secs_f64(),
                "events": r.events,
                "events_max": r.events_max,
                "events_budget": s.events_max,
            })
        })
        .collect();
    let failed: Vec<_> = failures.iter().map(failure_json).collect();
    let runs: Vec<_> = rows
        .iter()
        .flat_map(|r| &r.records)
        .map(RunRecord::json)
        .collect();
    json!({
        "suite": suite.name(),
        "seeds": seeds,
        "runs": rows.iter().map(|r| r.runs).sum::<u64>(),
        "failures": failures.len(),
        "wall_s": wall,
        "scenarios": per_scenario,
        "runs_detail": runs,
        "failed": failed,
    })
}

/// Runs `aver bench sim`: per suite, the wall time of one seed's run of every test (and per
/// test), and simulated events per second.
pub fn bench(args: BenchArgs) -> anyhow::Result<u8> {
    let suites = match args.suite {
        Some(s) => vec![s],
        None => vec![Suite::Raft, Suite::Kv, Suite::Shardctrler, Suite::Shard],
    };
    for suite in suites {
        if let Suite::Shard = suite {
            crate::sim_shard::bench(args.seeds.max(1))?;
            continue;
        }
        bench_suite(suite, args.seeds.max(1))?;
    }
    Ok(0)
}

fn bench_suite(suite: Suite, seeds: u64) -> anyhow::Result<()> {
    let scenarios = suite.registered().scenarios(false);
    let mut best = Duration::MAX;
    let mut events = 0;
    let mut wall = Duration::ZERO;
    let mut per_test = vec![Duration::ZERO; scenarios.len()];
    for seed in 1..=seeds {
        let t = Instant::now();
        let opts = RunOpts {
            events_max: None,
            live: Some(Live::Stdout),
        };
        let (rows, failures) = run_suite(&scenarios, &[seed], opts);
        let elapsed = t.elapsed();
        best = best.min(elapsed);
        wall += elapsed;
        events += rows.iter().map(|r| r.events).sum::<u64>();
        for (total, row) in per_test.iter_mut().zip(&rows) {
            *total += row.wall;
        }
        anyhow::ensure!(
            failures.is_empty(),
            "the {} suite failed on seed {seed}",
            suite.name()
        );
    }
    println!(
        "{} suite ({} tests, release, this machine): wall best {:.3} s, mean {:.3} s per seed \
         over {seeds} seeds",
        suite.name(),
        scenarios.len(),
        best.as_secs_f64(),
        wall.as_secs_f64() / seeds as f64,
    );
    for (s, total) in scenarios.iter().zip(&per_test) {
        println!(
            "  {:<34} {:>9.3} s per seed",
            s.name,
            total.as_secs_f64() / seeds as f64
        );
    }
    println!(
        "simulated events: {events} in {:.3} s = {:.0} events/s",
        wall.as_secs_f64(),
        events as f64 / wall.as_secs_f64()
    );
    Ok(())
}
