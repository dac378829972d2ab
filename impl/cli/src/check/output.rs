//! What `aver check` prints: the live progress line, counterexample traces (also written as
//! JSON) and the summary table.

use super::Outcome;
use anyhow::Context as _;
use aver_models::raft::{self, RaftAction, RaftState, TraceStep};
use stateright::{Checker, Expectation, Model};
use std::io::Write as _;
use std::time::{Duration, Instant};

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

/// Prints a counterexample as readable steps and writes it as JSON.
pub(crate) fn report_counterexample(
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
pub(crate) fn print_table(outcomes: &[Outcome]) -> bool {
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
        let complete = o.exhaustive && !any_violation;
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
