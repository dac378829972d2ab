//! `aver check --json`: the summary a CI system parses, and the redirect that keeps stdout
//! for it alone.
//!
//! The summary is one JSON object:
//!
//! ```text
//! { "ok": false, "exit_code": 1,
//!   "configurations": [ { "model": "raft", "configuration": "ci", "label": "raft",
//!       "bounds": "servers=3 ...", "search": "DFS, 2 threads", "states": 1900,
//!       "unique_states": 1437, "max_depth": 31, "time_s": 0.4, "complete": true,
//!       "properties": [ { "name": "RAFT-1 Election Safety", "kind": "always",
//!                         "verdict": "holds", "ok": true, "steps": null }, ... ],
//!       "failures": [ { "property": "...", "trace_length": 9,
//!                       "first_found_length": 14, "counterexample_file": "...",
//!                       "explore_command": "cargo run --release -- explore raft ...",
//!                       "explore_link": "http://127.0.0.1:3000/#/steps/0/3/1",
//!                       "explorer_path": "0/3/1" } ] } ] }
//! ```

use super::Outcome;
use anyhow::Context as _;
use serde_json::{Value, json};
use stateright::Expectation;
use std::io::Write as _;

/// While alive, the process's stdout (fd 1) is its stderr, so that everything the models
/// print — progress, traces, the table — reaches the terminal or log without mixing into the
/// JSON; [`StdoutToStderr::finish`] gives stdout back.
pub struct StdoutToStderr {
    saved: libc::c_int,
}

impl StdoutToStderr {
    /// Points fd 1 at stderr, keeping a copy of the real stdout.
    pub fn start() -> anyhow::Result<Self> {
        std::io::stdout().flush().context("flushing stdout")?;
        // SAFETY: dup and dup2 on the process's own standard descriptors; no memory is shared.
        let saved = unsafe { libc::dup(1) };
        anyhow::ensure!(saved >= 0, "cannot duplicate stdout for --json");
        // SAFETY: as above.
        let ok = unsafe { libc::dup2(2, 1) };
        anyhow::ensure!(ok >= 0, "cannot redirect stdout to stderr for --json");
        Ok(StdoutToStderr { saved })
    }

    /// Restores the real stdout (also done on drop, e.g. when a check returns an error).
    pub fn finish(self) -> anyhow::Result<()> {
        drop(self);
        Ok(())
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        // SAFETY: `saved` is the descriptor `start` duplicated; it is closed once, here.
        unsafe {
            libc::dup2(self.saved, 1);
            libc::close(self.saved);
        }
    }
}

/// The summary of every checked configuration; `failed` as the exit code says.
pub fn summary(outcomes: &[Outcome], failed: bool) -> Value {
    let configurations: Vec<Value> = outcomes.iter().map(configuration).collect();
    json!({
        "ok": !failed,
        "exit_code": u8::from(failed),
        "configurations": configurations,
    })
}

fn configuration(o: &Outcome) -> Value {
    let complete = o.complete();
    let properties: Vec<Value> = o
        .rows
        .iter()
        .map(|r| {
            let (verdict, ok) = r.verdict(complete);
            json!({
                "name": r.property,
                "kind": kind(&r.expectation),
                "verdict": verdict,
                "ok": ok,
                "steps": r.discovery,
            })
        })
        .collect();
    let failures: Vec<Value> = o
        .counterexamples
        .iter()
        .map(|c| {
            json!({
                "property": c.property,
                "trace_length": c.steps,
                "first_found_length": c.first_found_steps,
                "counterexample_file": c.file.display().to_string(),
                "explore_command": c.explore.as_ref().map(|e| &e.command),
                "explore_link": c.explore.as_ref().map(|e| &e.link),
                "explorer_path": c.explore.as_ref().map(|e| &e.path),
            })
        })
        .collect();
    let model = o.model.split('/').next().unwrap_or(&o.model);
    json!({
        "model": model,
        "configuration": o.config,
        "label": o.model,
        "bounds": o.bounds,
        "search": o.search,
        "states": o.total,
        "unique_states": o.unique,
        "max_depth": o.depth,
        "time_s": o.secs,
        "complete": complete,
        "properties": properties,
        "failures": failures,
    })
}

fn kind(e: &Expectation) -> &'static str {
    match e {
        Expectation::Always => "always",
        Expectation::Sometimes => "sometimes",
        Expectation::Eventually => "eventually",
    }
}
