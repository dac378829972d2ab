//! What `aver check` prints: the live progress line, counterexample traces (also written as
//! JSON) and the summary table.

use super::Outcome;
use super::explorer::ExploreLink;
use anyhow::Context as _;
use aver_models::raft::{self, RaftAction, RaftState, TraceStep};
use aver_models::search::Stats;
use stateright::{Checker, Expectation, Model};
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs `work` while printing progress from `stats` to stderr: a line rewritten in place on a
/// terminal, one plain line every few seconds otherwise (CI logs).
pub(crate) fn with_progress<T: Send>(stats: &Stats, work: impl FnOnce() -> T + Send) -> T {
    const PLAIN_EVERY: Duration = Duration::from_secs(5);
    let start = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let done = AtomicBool::new(false);
    let line = || {
        let secs = start.elapsed().as_secs_f64().max(1e-3);
        let total = stats.generated.load(Ordering::Relaxed);
        format!(
            "  states={total} unique={} depth={} states/s={:.0} t={secs:.1}s",
            stats.unique.load(Ordering::Relaxed),
            stats.depth.load(Ordering::Relaxed),
            total as f64 / secs
        )
    };
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let result = work();
            done.store(true, Ordering::Release);
            result
        });
        let mut err = std::io::stderr();
        let mut printed = Instant::now();
        while !done.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(100));
            if tty {
                let _ = write!(err, "\r{}   ", line());
                let _ = err.flush();
            } else if printed.elapsed() >= PLAIN_EVERY {
                let _ = writeln!(err, "{}", line());
                printed = Instant::now();
            }
        }
        let result = worker.join().expect("the search does not panic");
        let _ = writeln!(err, "{}{}", if tty { "\r" } else { "" }, line());
        result
    })
}

/// Waits for a Stateright checker (the models not yet on aver's own search) while printing its
/// progress the same way as [`with_progress`]: in place on a terminal, one plain line every few
/// seconds otherwise.
pub(crate) fn progress<M: Model, C: Checker<M>>(checker: C, start: Instant) -> C {
    const PLAIN_EVERY: Duration = Duration::from_secs(5);
    let tty = std::io::stderr().is_terminal();
    let line = |checker: &C| {
        let secs = start.elapsed().as_secs_f64().max(1e-3);
        let total = checker.state_count();
        format!(
            "  states={total} unique={} depth={} states/s={:.0} t={secs:.1}s",
            checker.unique_state_count(),
            checker.max_depth(),
            total as f64 / secs
        )
    };
    let mut err = std::io::stderr();
    let mut printed = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(100));
        if tty {
            let _ = write!(err, "\r{}   ", line(&checker));
            let _ = err.flush();
        } else if printed.elapsed() >= PLAIN_EVERY {
            let _ = writeln!(err, "{}", line(&checker));
            printed = Instant::now();
        }
    }
    let checker = checker.join();
    let _ = writeln!(err, "{}{}", if tty { "\r" } else { "" }, line(&checker));
    checker
}

/// Prints a counterexample as readable steps (and where it opens in Explorer) and writes it
/// as JSON; returns the file.
pub(crate) fn report_counterexample(
    name: &str,
    path: &[(RaftState, Option<RaftAction>)],
    explore: Option<&ExploreLink>,
    out_dir: &std::path::Path,
) -> anyhow::Result<PathBuf> {
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
        for (i, s) in last.0.servers.iter().enumerate() {
            let down = if s.down { " (crashed)" } else { "" };
            println!("    n{i}{down}: {}", raft::describe_server(s));
        }
    }
    if let Some(e) = explore {
        super::explorer::print(e);
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let id = name.split(' ').next().unwrap_or(name);
    let file = out_dir.join(format!("raft-{id}.json"));
    let json = serde_json::json!({
        "model": "raft",
        "property": name,
        "explorer_path": explore.map(|e| &e.path),
        "explore_command": explore.map(|e| &e.command),
        "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
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
        "persisted": s.persisted,
        "changed": s.changed,
        "sent": s.sent,
    })
}

/// Prints the summary table; returns true if any property failed.
pub(crate) fn print_table(outcomes: &[Outcome]) -> bool {
    let mut failed = false;
    println!();
    println!(
        "{:<24} {:<34} {:<10} {:<14} {:>6}",
        "model", "property", "kind", "verdict", "steps"
    );
    for o in outcomes {
        // A run stopped early by a counterexample is not complete for `sometimes`.
        let complete = o.complete();
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

/// User + system CPU time of this process, from /proc (Linux only).
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident memory of this process in KiB, from /proc (Linux only).
pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
