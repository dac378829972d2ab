//! `aver sim` and `aver bench sim`: the simulated 6.5840 suites over many seeds, and their
//! throughput.
//!
//! `aver sim SUITE` (`raft`, `kv`) runs every scenario of the suite (or `--test NAME`) on seeds
//! `--first-seed .. --first-seed + --seeds` (or exactly `--seed S`), prints a table (test,
//! runs, failures, virtual time, wall time) and every failure with the command that replays
//! it; exit code 1 on any failure. `--trace` prints one line per event (use with one test and
//! one seed). `--bug NAME` seeds a bug of the suite's cores.

use aver_sim::Failure;
use aver_tests::{Scenario, Suite as Registered, run_one};
use clap::{Args, ValueEnum};
use std::time::{Duration, Instant};

/// Which suite to simulate.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Suite {
    /// The 28 Raft tests of 6.5840 Lab 3 (3A–3D).
    Raft,
    /// The KV services: Lab 2's kvsrv1 and lock (8 tests).
    Kv,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Raft => "raft",
            Suite::Kv => "kv",
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
            Suite::Kv => {
                let mut bugs = aver_core::kvsrv::Bugs::NONE;
                for n in names {
                    bugs = bugs.with(n.parse().map_err(anyhow::Error::msg)?);
                }
                aver_tests::kv_lab::seed_bugs(bugs);
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
    /// `errmaybe-as-ok` for kv) to see the checkers catch it; repeatable.
    #[arg(long = "bug")]
    bugs: Vec<String>,
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
    wall: Duration,
    log_size_max: usize,
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
fn run_suite(scenarios: &[&Scenario], seeds: &[u64]) -> (Vec<Row>, Vec<Failure>) {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for s in scenarios {
        let mut row = Row::default();
        for &seed in seeds {
            let t = Instant::now();
            let outcome = run_one(s, seed);
            row.wall += t.elapsed();
            row.runs += 1;
            match outcome {
                Ok(r) => {
                    row.virtual_us += r.virtual_us;
                    row.events += r.events;
                    row.log_size_max = row.log_size_max.max(r.log_size_max);
                }
                Err(f) => {
                    row.failures += 1;
                    failures.push(f);
                }
            }
        }
        rows.push(row);
    }
    (rows, failures)
}

fn print_table(scenarios: &[&Scenario], rows: &[Row]) {
    println!(
        "{:<32} {:>6} {:>8} {:>11} {:>11} {:>9} {:>10}",
        "test", "runs", "failures", "virtual s", "events", "state B", "wall ms"
    );
    for (s, r) in scenarios.iter().zip(rows) {
        let ok = (r.runs - r.failures).max(1);
        let runs = r.runs.max(1);
        let state = match r.log_size_max {
            0 => "-".to_string(),
            b => b.to_string(),
        };
        println!(
            "{:<32} {:>6} {:>8} {:>11.1} {:>11} {:>9} {:>10.1}",
            s.name,
            r.runs,
            r.failures,
            r.virtual_us as f64 / 1e6 / ok as f64,
            r.events / runs,
            state,
            r.wall.as_secs_f64() * 1e3 / runs as f64
        );
    }
    println!(
        "(virtual s: mean per passing run; events, wall ms: mean per run; \
         state B: largest persisted Raft state, 3D)"
    );
}

/// Runs `aver sim`.
pub fn run(args: SimArgs) -> anyhow::Result<u8> {
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
    let t = Instant::now();
    let (rows, failures) = run_suite(&scenarios, &seeds);
    print_table(&scenarios, &rows);
    let runs: u64 = rows.iter().map(|r| r.runs).sum();
    let events: u64 = rows.iter().map(|r| r.events).sum();
    let wall = t.elapsed().as_secs_f64();
    println!(
        "\nseeds: {} × tests: {} = {runs} runs, {} failures, wall {wall:.2} s, \
         {:.0} events/s",
        seeds.len(),
        scenarios.len(),
        failures.len(),
        events as f64 / wall
    );
    for f in &failures {
        println!(
            "\nFAIL {} seed={} at {:.3}s: {}",
            f.test,
            f.seed,
            f.at as f64 / 1e6,
            f.message
        );
        println!("  replay: {}", f.replay());
    }
    Ok(u8::from(!failures.is_empty()))
}

/// Runs `aver bench sim`: per suite, the wall time of one seed's run of every test (and per
/// test), and simulated events per second.
pub fn bench(args: BenchArgs) -> anyhow::Result<u8> {
    let suites = match args.suite {
        Some(s) => vec![s],
        None => vec![Suite::Raft, Suite::Kv],
    };
    for suite in suites {
        bench_suite(suite, args.seeds.max(1));
    }
    Ok(0)
}

fn bench_suite(suite: Suite, seeds: u64) {
    let scenarios = suite.registered().scenarios(false);
    let mut best = Duration::MAX;
    let mut events = 0;
    let mut wall = Duration::ZERO;
    let mut per_test = vec![Duration::ZERO; scenarios.len()];
    for seed in 1..=seeds {
        let t = Instant::now();
        let (rows, failures) = run_suite(&scenarios, &[seed]);
        let elapsed = t.elapsed();
        best = best.min(elapsed);
        wall += elapsed;
        events += rows.iter().map(|r| r.events).sum::<u64>();
        for (total, row) in per_test.iter_mut().zip(&rows) {
            *total += row.wall;
        }
        for f in &failures {
            println!("FAIL {f}");
        }
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
}
