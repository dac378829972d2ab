//! Message-level scenarios as text transcripts, in the style of etcd-io/raft's interaction
//! tests: each file under `tests/transcripts/` (in the aver-tests crate, beside the suites) is a
//! list of commands; after each command the runner prints everything the cluster did —
//! persists, messages, applies, timers — and the test compares it with the text below the
//! command. Scenarios about message order read as
//! what they are, and a change in behaviour shows up as a diff in review.
//!
//! Regenerate after an intended change: `AVER_REWRITE=1 cargo test -p aver-tests --test
//! transcripts`, then review `git diff`.
//!
//! Commands (servers are numbered 0..n):
//! - `cluster N` — a new cluster of N servers
//! - `election I` / `heartbeat I` — fire that timer on server I
//! - `propose I VALUE` — the service proposes VALUE (a number) at server I
//! - `snapshot I INDEX` — server I's service snapshots through INDEX
//! - `deliver [I]` — deliver every pending message (to I only, if given) once; replies wait
//! - `stabilize` — deliver until no message is pending
//! - `drop [I]` — lose every pending message (to or from I, if given)
//! - `crash I` — restart server I from what it persisted; its pending messages are lost
//! - `status` — one line per server: term, vote, role, commit, applied, log

use aver_core::raft::{
    AppendResult, Apply, Config, Durable, LogIndex, Message, PersistOp, Raft, Timer,
};
use aver_core::{NodeId, TimerCmd};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

struct Cluster {
    nodes: Vec<Raft<u64>>,
    disks: Vec<Durable<u64>>,
    pending: Vec<(NodeId, NodeId, Message<u64>)>,
}

impl Cluster {
    fn new(n: u32, out: &mut String) -> Cluster {
        let voters: Vec<NodeId> = (0..n).map(NodeId).collect();
        let mut c = Cluster {
            nodes: Vec::new(),
            disks: vec![Durable::default(); n as usize],
            pending: Vec::new(),
        };
        for &id in &voters {
            c.nodes.push(Raft::new(
                Config::new(id, voters.clone()),
                Durable::default(),
            ));
        }
        for i in 0..n as usize {
            c.drain(i, out);
        }
        c
    }

    fn drain(&mut self, i: usize, out: &mut String) {
        let ready = self.nodes[i].take_ready();
        let me = self.nodes[i].id();
        for op in &ready.persist {
            self.disks[i].apply(op);
            let _ = writeln!(out, "{me} persist {}", persist_line(op));
        }
        for (to, m) in ready.messages {
            let _ = writeln!(out, "{me}->{to} {}", message_line(&m));
            self.pending.push((me, to, m));
        }
        for a in &ready.apply {
            let _ = match a {
                Apply::Entry {
                    index,
                    term,
                    command,
                } => writeln!(out, "{me} apply {index} {term} {command}"),
                Apply::Snapshot(s) => {
                    writeln!(out, "{me} apply snapshot {} {}", s.meta.index, s.meta.term)
                }
            };
        }
        for t in &ready.timers {
            let _ = match t {
                TimerCmd::Set(t) => writeln!(out, "{me} timer set {t:?}"),
                TimerCmd::Cancel(t) => writeln!(out, "{me} timer cancel {t:?}"),
            };
        }
    }

    fn deliver(&mut self, only: Option<usize>, out: &mut String) {
        let batch = std::mem::take(&mut self.pending);
        for (from, to, m) in batch {
            if only.is_some_and(|i| to.0 as usize != i) {
                self.pending.push((from, to, m));
                continue;
            }
            let i = to.0 as usize;
            self.nodes[i].on_message(from, m);
            self.drain(i, out);
        }
    }

    fn status(&self, out: &mut String) {
        for n in &self.nodes {
            let log: Vec<String> = n
                .log()
                .entries()
                .iter()
                .map(|e| format!("{}:{}", e.term.0, e.command))
                .collect();
            let base = n.log().base();
            let _ = writeln!(
                out,
                "{} {} vote={} {:?} commit={} applied={} base=({},{}) log=[{}]",
                n.id(),
                n.term(),
                n.voted_for().map_or("-".into(), |v| v.to_string()),
                n.role_kind(),
                n.commit_index(),
                n.applied_index(),
                base.index,
                base.term,
                log.join(" ")
            );
        }
    }

    fn run(&mut self, cmd: &str, args: &[u64], out: &mut String) -> Result<(), String> {
        let arg = |k: usize| {
            args.get(k)
                .copied()
                .ok_or_else(|| format!("`{cmd}` needs argument {}", k + 1))
        };
        match cmd {
            "election" | "heartbeat" => {
                let i = arg(0)? as usize;
                let timer = if cmd == "election" {
                    Timer::Election
                } else {
                    Timer::Heartbeat
                };
                self.nodes[i].on_timeout(timer);
                self.drain(i, out);
            }
            "propose" => {
                let i = arg(0)? as usize;
                match self.nodes[i].propose(arg(1)?) {
                    Ok((index, term)) => writeln!(out, "propose -> {index} {term}").unwrap(),
                    Err(e) => {
                        writeln!(out, "propose -> not leader, hint {:?}", e.leader_hint).unwrap()
                    }
                }
                self.drain(i, out);
            }
            "snapshot" => {
                let i = arg(0)? as usize;
                let taken = self.nodes[i].snapshot(LogIndex(arg(1)?), Arc::from(&b"state"[..]));
                writeln!(out, "snapshot -> {taken}").unwrap();
                self.drain(i, out);
            }
            "deliver" => self.deliver(args.first().map(|&i| i as usize), out),
            "stabilize" => {
                let mut rounds = 0;
                while !self.pending.is_empty() {
                    rounds += 1;
                    if rounds > 100 {
                        return Err("stabilize: still busy after 100 rounds".into());
                    }
                    self.deliver(None, out);
                }
            }
            "drop" => {
                let only = args.first().map(|&i| NodeId(i as u32));
                let before = self.pending.len();
                self.pending
                    .retain(|(f, t, _)| only.is_some_and(|n| *f != n && *t != n));
                writeln!(out, "dropped {}", before - self.pending.len()).unwrap();
            }
            "crash" => {
                let i = arg(0)? as usize;
                let id = NodeId(i as u32);
                self.pending.retain(|(f, t, _)| *f != id && *t != id);
                let config = self.nodes[i].config().clone();
                self.nodes[i] = Raft::new(config, self.disks[i].clone());
                self.drain(i, out);
            }
            "status" => self.status(out),
            other => return Err(format!("unknown command `{other}`")),
        }
        Ok(())
    }
}

fn persist_line(op: &PersistOp<u64>) -> String {
    match op {
        PersistOp::HardState(h) => format!(
            "hard {} vote={}",
            h.term,
            h.voted_for.map_or("-".into(), |v| v.to_string())
        ),
        PersistOp::Truncate(i) => format!("truncate from {i}"),
        PersistOp::Append { first, entries } => {
            let e: Vec<String> = entries
                .iter()
                .map(|e| format!("{}:{}", e.term.0, e.command))
                .collect();
            format!("append at {first} [{}]", e.join(" "))
        }
        PersistOp::Snapshot(s) => format!("snapshot ({}, {})", s.meta.index, s.meta.term),
    }
}

fn message_line(m: &Message<u64>) -> String {
    match m {
        Message::RequestVote(r) => format!(
            "RequestVote {} last=({}, {})",
            r.term, r.last_log_index, r.last_log_term
        ),
        Message::RequestVoteReply(r) => {
            format!("RequestVoteReply {} granted={}", r.term, r.granted)
        }
        Message::AppendEntries(a) => {
            let e: Vec<String> = a
                .entries
                .iter()
                .map(|e| format!("{}:{}", e.term.0, e.command))
                .collect();
            format!(
                "AppendEntries {} prev=({}, {}) commit={} [{}]",
                a.term,
                a.prev_log_index,
                a.prev_log_term,
                a.leader_commit,
                e.join(" ")
            )
        }
        Message::AppendEntriesReply(r) => match &r.result {
            AppendResult::Success { match_index } => {
                format!("AppendEntriesReply {} ok match={match_index}", r.term)
            }
            AppendResult::StaleTerm => format!("AppendEntriesReply {} stale term", r.term),
            AppendResult::Conflict {
                rejected_index,
                conflict_term,
                conflict_index,
                last_log_index,
            } => format!(
                "AppendEntriesReply {} reject at {rejected_index} xterm={} xindex={conflict_index} xlen={last_log_index}",
                r.term,
                conflict_term.map_or("-".into(), |t| t.to_string())
            ),
        },
        Message::InstallSnapshot(s) => format!(
            "InstallSnapshot {} ({}, {})",
            s.term, s.snapshot.meta.index, s.snapshot.meta.term
        ),
        Message::InstallSnapshotReply(r) => {
            format!("InstallSnapshotReply {} match={}", r.term, r.match_index)
        }
    }
}

/// Runs one transcript; returns the regenerated text.
fn replay(path: &Path, text: &str) -> String {
    let mut regenerated = String::new();
    let mut cluster: Option<Cluster> = None;
    let mut lines = text.lines().peekable();
    let mut line_no = 0;
    while let Some(line) = lines.next() {
        line_no += 1;
        if line.trim().is_empty() || line.starts_with('#') {
            regenerated.push_str(line);
            regenerated.push('\n');
            continue;
        }
        // A command, then `----`, then the expected output up to a blank line.
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap();
        let args: Vec<u64> = words
            .map(|w| {
                w.parse()
                    .unwrap_or_else(|_| panic!("{}:{line_no}: bad argument `{w}`", path.display()))
            })
            .collect();
        while let Some(l) = lines.peek() {
            if l.trim().is_empty() {
                break;
            }
            lines.next();
            line_no += 1;
        }
        let mut out = String::new();
        if cmd == "cluster" {
            cluster = Some(Cluster::new(args[0] as u32, &mut out));
        } else {
            let c = cluster
                .as_mut()
                .unwrap_or_else(|| panic!("{}:{line_no}: no `cluster` yet", path.display()));
            if let Err(e) = c.run(cmd, &args, &mut out) {
                panic!("{}:{line_no}: {e}", path.display());
            }
        }
        if let Some(c) = &cluster {
            let refs: Vec<&Raft<u64>> = c.nodes.iter().collect();
            if let Err(v) = aver_core::raft::invariants::check_cluster(&refs) {
                let _ = writeln!(out, "VIOLATION {v}");
            }
        }
        regenerated.push_str(line);
        regenerated.push_str("\n----\n");
        regenerated.push_str(if out.is_empty() { "ok\n" } else { &out });
    }
    regenerated
}

#[test]
fn transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("transcripts");
    let rewrite = std::env::var_os("AVER_REWRITE").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no transcripts in {}", dir.display());
    let mut failed = Vec::new();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
    {
        let text = std::fs::read_to_string(path).unwrap();
        let regenerated = replay(path, &text);
        if rewrite {
            std::fs::write(path, &regenerated).unwrap();
        } else if regenerated != text {
            let diff_at = text
                .lines()
                .zip(regenerated.lines())
                .position(|(a, b)| a != b);
            eprintln!(
                "{}: differs at line {:?}; expected\n{regenerated}",
                path.display(),
                diff_at.map(|l| l + 1)
            );
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "transcripts differ (AVER_REWRITE=1 to regenerate, then review the diff): {failed:?}"
    );
}
