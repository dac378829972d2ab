//! `aver replay TRACE...`: feeds recorded node inputs to the node's core (the kvraft server on
//! Raft) and checks that it does what the node did, with every invariant along the way (see
//! `aver_runtime::replay`).
//!
//! Each argument is a node's trace directory (`DATA/n1/trace`), a node's data directory
//! (`DATA/n1`), or a cluster's data directory (`DATA`, every `DATA/n*/trace`). Nodes given
//! together are also checked against each other (one leader per term, one entry per index,
//! leaders hold what was committed before them). Exit code 0 when everything replays, 1 on a
//! divergence or a violated invariant (the message names file, record and input), 2 on bad
//! arguments or unreadable traces.

use aver_runtime::replay::{ReplayError, replay_cluster};
use clap::Args;
use std::path::{Path, PathBuf};

/// Arguments of `aver replay`.
#[derive(Args)]
pub struct ReplayArgs {
    /// Trace directories, node data directories, or cluster data directories.
    #[arg(required = true)]
    traces: Vec<PathBuf>,
}

/// The trace directories under `path`.
pub fn trace_dirs(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.exists() {
        anyhow::bail!("{}: no such file or directory", path.display());
    }
    if has_traces(path) {
        return Ok(vec![path.to_path_buf()]);
    }
    if has_traces(&path.join("trace")) {
        return Ok(vec![path.join("trace")]);
    }
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let sub = entry?.path().join("trace");
        if has_traces(&sub) {
            dirs.push(sub);
        }
    }
    dirs.sort();
    if dirs.is_empty() {
        anyhow::bail!(
            "{}: no traces (start nodes with --trace, or `aver cluster up --trace`)",
            path.display()
        );
    }
    Ok(dirs)
}

fn has_traces(dir: &Path) -> bool {
    aver_runtime::trace::trace_files(dir).is_ok_and(|f| !f.is_empty())
}

/// Runs `aver replay`.
pub fn run(args: ReplayArgs) -> anyhow::Result<u8> {
    let mut dirs = Vec::new();
    for p in &args.traces {
        dirs.extend(trace_dirs(p)?);
    }
    match replay_cluster(&dirs) {
        Ok(report) => {
            for (dir, n) in dirs.iter().zip(&report.nodes) {
                println!(
                    "{}: node {} replayed: {} incarnations, {} inputs, {} restarts checked, \
                     term {}, commit {}{}",
                    dir.display(),
                    n.node.0,
                    n.incarnations,
                    n.inputs,
                    n.restarts_checked,
                    n.term,
                    n.commit,
                    if n.torn_bytes > 0 {
                        format!(", {} bytes of a torn last record ignored", n.torn_bytes)
                    } else {
                        String::new()
                    }
                );
            }
            println!(
                "ok: outputs match; RAFT-2/6/8/9/10/11 and RAFT-A1 hold on every node; across \
                 nodes RAFT-1 ({} terms led), RAFT-5 ({} indices compared), RAFT-4",
                report.elections, report.indices_compared
            );
            Ok(0)
        }
        Err(ReplayError::Trace(e)) => {
            eprintln!("error: {e}");
            Ok(2)
        }
        Err(e) => {
            eprintln!("FAILED: {e}");
            Ok(1)
        }
    }
}
