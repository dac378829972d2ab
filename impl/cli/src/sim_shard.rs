//! `aver sim shard`: the sharded KV's simulated suites (`aver_tests::shard`) over seeds.
//!
//! Each failure prints as it happens with its seed and the command that replays it; at the
//! end a table (test, runs, failures, operations, virtual time, events, largest stored state,
//! wall time). `--json` prints a summary on stdout instead (the table and live failures go to
//! stderr); `--events-max N` sets every run's event budget (default each scenario's own,
//! ten times the most a 200-seed soak needed). Exit code 1 on any failure, 2 on bad arguments.

use aver_core::shardkv::{Bug, Bugs};
use aver_tests::shard::{SHARD, ShardScenario, find};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

/// The output and budget switches of `aver sim shard`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Opts {
    /// A JSON summary on stdout; everything else on stderr.
    pub json: bool,
    /// Every run's event budget.
    pub events_max: Option<u64>,
}

/// Runs `aver sim shard [--test NAME] [--seeds N | --seed S] [--bug NAME]... [--json]
/// [--events-max N]`.
pub fn run(
    test: Option<&str>,
    seeds: Range<u64>,
    bugs: &[String],
    opts: Opts,
) -> anyhow::Result<u8> {
    let bugs = bugs.iter().try_fold(Bugs::NONE, |b, name| {
        let bug: Bug = name.parse().map_err(anyhow::Error::msg)?;
        Ok::<_, anyhow::Error>(b.with(bug))
    })?;
    let scenarios: Vec<&ShardScenario> = match test {
        None => SHARD.iter().collect(),
        Some(name) => vec![find(name).ok_or_else(|| {
            let names: Vec<_> = SHARD.iter().map(|s| s.name).collect();
            anyhow::anyhow!("no shard test {name}; known: {}", names.join(", "))
        })?],
    };
    let redirect = if opts.json {
        Some(crate::check::StdoutToStderr::start()?)
    } else {
        None
    };
    println!(
        "{:<32} {:>5} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "test", "runs", "failures", "ops", "virtual s", "events", "state B", "wall ms"
    );
    let t = Instant::now();
    let mut failed = 0;
    let mut records = Vec::new();
    let mut failures = Vec::new();
    for s in &scenarios {
        let (mut runs, mut fails, mut ops, mut virt, mut events, mut state) = (0, 0, 0, 0, 0, 0);
        let ts = Instant::now();
        for seed in seeds.clone() {
            runs += 1;
            let t_run = Instant::now();
            let outcome = run_one(s, seed, bugs, opts.events_max);
            records.push(crate::sim::RunRecord {
                test: s.name,
                seed,
                ok: outcome.is_ok(),
                virtual_us: outcome.as_ref().map_or_else(|f| f.at, |r| r.virtual_us),
                events: outcome.as_ref().ok().map(|r| r.events),
                wall: t_run.elapsed(),
            });
            match outcome {
                Ok(r) => {
                    ops += r.ops;
                    virt += r.virtual_us;
                    events += r.events;
                    state = state.max(r.state_bytes);
                }
                Err(mut f) => {
                    if let Some(n) = opts.events_max {
                        f.replay.push_str(&format!(" --events-max {n}"));
                    }
                    fails += 1;
                    println!("FAIL {f}");
                    failures.push(f);
                }
            }
        }
        failed += fails;
        let ok = (runs - fails).max(1);
        println!(
            "{:<32} {:>5} {:>8} {:>6} {:>9.1} {:>9} {:>9} {:>9.1}",
            s.name,
            runs,
            fails,
            ops / ok as usize,
            virt as f64 / 1e6 / ok as f64,
            events / ok,
            state,
            ts.elapsed().as_secs_f64() * 1e3 / runs as f64
        );
    }
    println!(
        "(ops, virtual s, events: mean per passing run; state B: largest Raft state + snapshot \
         summed over every group server, seen by a storage check)\n{} failures, wall {:.2} s",
        failed,
        t.elapsed().as_secs_f64()
    );
    if let Some(redirect) = redirect {
        redirect.finish()?;
        let summary = serde_json::json!({
            "suite": "shard",
            "seeds": seeds.end - seeds.start,
            "runs": records.len(),
            "failures": failures.len(),
            "wall_s": t.elapsed().as_secs_f64(),
            "runs_detail": records.iter().map(crate::sim::RunRecord::json).collect::<Vec<_>>(),
            "failed": failures.iter().map(crate::sim::failure_json).collect::<Vec<_>>(),
        });
        println!("{summary}");
    }
    Ok(u8::from(failed > 0))
}

/// One run; a panic in a core or the harness is a failure with its seed, not a crash.
fn run_one(
    s: &ShardScenario,
    seed: u64,
    bugs: Bugs,
    events_max: Option<u64>,
) -> Result<aver_tests::shard::Summary, aver_sim::Failure> {
    match catch_unwind(AssertUnwindSafe(|| s.run_seed(seed, bugs, events_max))) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|m| m.to_string()))
                .unwrap_or_else(|| "panic".into());
            let flags: String = Bug::ALL
                .iter()
                .filter(|b| bugs.has(**b))
                .map(|b| format!(" --bug {b}"))
                .collect();
            Err(aver_sim::Failure::sim(
                "shard",
                s.name,
                seed,
                0,
                format!("panicked: {message}"),
                &flags,
            ))
        }
    }
}

/// `aver bench sim --suite shard`: the shard suite's wall time per seed (every scenario once
/// per seed, seeds `1..=seeds`), per scenario, and simulated events per second.
pub fn bench(seeds: u64) -> anyhow::Result<()> {
    let mut best = f64::MAX;
    let (mut wall, mut events) = (0.0, 0);
    let mut per_test = vec![0.0; SHARD.len()];
    for seed in 1..=seeds {
        let t = Instant::now();
        for (s, total) in SHARD.iter().zip(per_test.iter_mut()) {
            let ts = Instant::now();
            let summary = run_one(s, seed, Bugs::NONE, None)
                .map_err(|f| anyhow::anyhow!("the shard suite failed: {f}"))?;
            events += summary.events;
            *total += ts.elapsed().as_secs_f64();
        }
        let elapsed = t.elapsed().as_secs_f64();
        best = best.min(elapsed);
        wall += elapsed;
    }
    println!(
        "shard suite ({} tests, release, this machine): wall best {best:.3} s, mean {:.3} s per \
         seed over {seeds} seeds",
        SHARD.len(),
        wall / seeds as f64
    );
    for (s, total) in SHARD.iter().zip(&per_test) {
        println!("  {:<34} {:>9.3} s per seed", s.name, total / seeds as f64);
    }
    println!(
        "simulated events: {events} in {wall:.3} s = {:.0} events/s",
        events as f64 / wall
    );
    Ok(())
}
