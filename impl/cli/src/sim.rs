//! `aver sim` and `aver bench sim`: the simulated 6.5840 Raft suite over many seeds, and its
//! throughput.
//!
//! `aver sim raft` runs every scenario (or `--test NAME`) on seeds `--first-seed ..
//! --first-seed + --seeds` (or exactly `--seed S`), prints a table (test, runs, failures,
//! virtual time, wall time) and every failure with the command that replays it; exit code 1 on
//! any failure. `--trace` prints one line per event (use with one test and one seed).

use aver_sim::Failure;
use aver_tests::{EXTRA, RAFT, Scenario, find, run_one};
use clap::{Args, ValueEnum};
use std::time::{Duration, Instant};

/// Which suite to simulate.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Suite {
    /// The 28 Raft tests of 6.5840 Lab 3 (3A–3D).
    Raft,
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
    /// Run the servers with a seeded bug (e.g. `figure8-commit`) to see the checkers catch
    /// it; repeatable.
    #[arg(long = "bug")]
    bugs: Vec<aver_core::raft::Bug>,
}

/// Arguments of `aver bench sim`.
#[derive(Args)]
pub struct BenchArgs {
    /// Seeds per test (the suite runs once per seed).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
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

fn selected(test: Option<&str>, extra: bool) -> anyhow::Result<Vec<&'static Scenario>> {
    match test {
        None if extra => Ok(RAFT.iter().chain(EXTRA).collect()),
        None => Ok(RAFT.iter().collect()),
        Some(name) => match find(name) {
            Some(s) => Ok(vec![s]),
            None => anyhow::bail!("no test {name}; see `aver sim raft --help`"),
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
    let Suite::Raft = args.suite;
    let scenarios = selected(args.test.as_deref(), args.extra)?;
    if args.trace {
        anyhow::ensure!(
            scenarios.len() == 1 && args.seed.is_some(),
            "--trace needs --test NAME and --seed S"
        );
        aver_sim::sim::trace_next_run();
    }
    let bugs = args
        .bugs
        .iter()
        .fold(aver_core::raft::Bugs::NONE, |b, &bug| b.with(bug));
    aver_sim::raft::seed_bugs(bugs);
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

/// Runs `aver bench sim`: simulated events per second and the suite's wall time.
pub fn bench(args: BenchArgs) -> anyhow::Result<u8> {
    let scenarios: Vec<&Scenario> = RAFT.iter().collect();
    let mut best = Duration::MAX;
    let mut events = 0;
    let mut wall = Duration::ZERO;
    for seed in 1..=args.seeds.max(1) {
        let t = Instant::now();
        let (rows, failures) = run_suite(&scenarios, &[seed]);
        let elapsed = t.elapsed();
        best = best.min(elapsed);
        wall += elapsed;
        events += rows.iter().map(|r| r.events).sum::<u64>();
        for f in &failures {
            println!("FAIL {f}");
        }
    }
    let runs = args.seeds.max(1);
    println!(
        "raft suite ({} tests, release, this machine): wall best {:.3} s, mean {:.3} s \
         over {runs} seeds",
        scenarios.len(),
        best.as_secs_f64(),
        wall.as_secs_f64() / runs as f64,
    );
    println!(
        "simulated events: {events} in {:.3} s = {:.0} events/s",
        wall.as_secs_f64(),
        events as f64 / wall.as_secs_f64()
    );
    Ok(0)
}
