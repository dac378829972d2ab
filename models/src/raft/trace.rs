//! Counterexample traces for humans: who acted, on what, what it persisted, what changed and
//! what it sent.

use super::actor::show_cmd;
use super::state::Server;
use super::{Cmd, RaftAction, RaftState};
use aver_core::raft::{Durable, Entry, Message};

/// One step of a trace, for humans and for JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceStep {
    /// 1-based step number.
    pub step: usize,
    /// The actor that acted (`n0`…), or the network for a drop.
    pub actor: String,
    /// The action: a delivery, timeout, crash, recover or drop.
    pub action: String,
    /// Storage operations the step made durable (a diff of the disk).
    pub persisted: Vec<String>,
    /// What changed in the actor's state.
    pub changed: Vec<String>,
    /// Messages the step sent.
    pub sent: Vec<String>,
}

/// Describes a server briefly: role, term, vote, commit, applied, log.
pub fn describe_server(s: &Server) -> String {
    let r = &s.raft;
    let log = show_entries(r.log().entries());
    let base = r.log().base();
    format!(
        "{:?} term={} vote={} commit={} applied={} snap=({},{}) log=[{}]{}",
        r.role_kind(),
        r.term().0,
        r.voted_for().map_or("-".into(), |v| v.to_string()),
        r.commit_index().0,
        r.applied_index().0,
        base.index.0,
        base.term.0,
        log,
        r.violation()
            .map_or(String::new(), |v| format!(" VIOLATION {v}"))
    )
}

/// Describes a message briefly.
pub fn describe_msg(msg: &Message<Cmd>) -> String {
    match msg {
        Message::RequestVote(m) => format!(
            "RequestVote(t{}, last=({},{}))",
            m.term.0, m.last_log_index.0, m.last_log_term.0
        ),
        Message::RequestVoteReply(m) => {
            format!("RequestVoteReply(t{}, granted={})", m.term.0, m.granted)
        }
        Message::AppendEntries(m) => {
            format!(
                "AppendEntries(t{}, prev=({},{}), [{}], commit={})",
                m.term.0,
                m.prev_log_index.0,
                m.prev_log_term.0,
                show_entries(&m.entries),
                m.leader_commit.0
            )
        }
        Message::AppendEntriesReply(m) => {
            format!("AppendEntriesReply(t{}, {:?})", m.term.0, m.result)
        }
        Message::InstallSnapshot(m) => format!(
            "InstallSnapshot(t{}, snap=({},{}))",
            m.term.0, m.snapshot.meta.index.0, m.snapshot.meta.term.0
        ),
        Message::InstallSnapshotReply(m) => {
            format!(
                "InstallSnapshotReply(t{}, match={})",
                m.term.0, m.match_index.0
            )
        }
    }
}

fn describe_persist(before: &Durable<Cmd>, after: &Durable<Cmd>) -> Vec<String> {
    let mut out = Vec::new();
    if before.hard != after.hard {
        out.push(format!(
            "hard state term={} vote={}",
            after.hard.term.0,
            after.hard.voted_for.map_or("-".into(), |v| v.to_string())
        ));
    }
    if let Some(s) = after
        .snapshot
        .as_ref()
        .filter(|_| before.snapshot != after.snapshot)
    {
        out.push(format!("snapshot ({},{})", s.meta.index.0, s.meta.term.0));
    }
    if before.log != after.log {
        out.push(format!("log [{}]", show_entries(after.log.entries())));
    }
    out
}

/// Entries as `term:command`, e.g. `2:t2n1`.
fn show_entries(entries: &[Entry<Cmd>]) -> String {
    let shown: Vec<String> = entries
        .iter()
        .map(|e| format!("{}:{}", e.term.0, show_cmd(e.command)))
        .collect();
    shown.join(" ")
}

fn describe_action(action: &RaftAction) -> (String, String) {
    match action {
        RaftAction::Deliver(e) => (
            e.dst.to_string(),
            format!("receive {} from {}", describe_msg(&e.msg), e.src),
        ),
        RaftAction::Drop(e) => (
            "network".into(),
            format!("drop {} {}→{}", describe_msg(&e.msg), e.src, e.dst),
        ),
        RaftAction::Timeout(n, t) => (n.to_string(), format!("timeout {t:?}")),
        RaftAction::Propose(n) => (n.to_string(), "a client proposes a command".into()),
        RaftAction::Compact(n) => (n.to_string(), "the service snapshots".into()),
        RaftAction::Crash(n) => (n.to_string(), "crash".into()),
        RaftAction::Recover(n) => (n.to_string(), "recover from its disk".into()),
        RaftAction::Restart(n) => (n.to_string(), "crash, restart from its disk".into()),
    }
}

/// Turns a path of the model into readable steps: who acted, on what, what it persisted,
/// what changed and what it sent.
pub fn trace(steps: &[(RaftState, Option<RaftAction>)]) -> Vec<TraceStep> {
    let mut out = Vec::new();
    for (k, pair) in steps.windows(2).enumerate() {
        let (before, Some(action)) = (&pair[0].0, &pair[0].1) else {
            continue;
        };
        let after = &pair[1].0;
        let (actor, what) = describe_action(action);
        let mut step = TraceStep {
            step: k + 1,
            actor,
            action: what,
            persisted: Vec::new(),
            changed: Vec::new(),
            sent: Vec::new(),
        };
        if let Some(n) = action.actor() {
            let (b, a) = (&before.servers[n.0 as usize], &after.servers[n.0 as usize]);
            step.persisted = describe_persist(b.disk(), a.disk());
            let (db, da) = (describe_server(b), describe_server(a));
            if db != da {
                step.changed.push(format!("{db}  ⇒  {da}"));
            }
            if b.down != a.down {
                step.changed.push(if a.down { "down" } else { "up" }.into());
            }
        }
        if let Some(f) = after.fault.as_ref().filter(|_| before.fault.is_none()) {
            step.changed
                .push(format!("{} violated: {}", f.id, f.detail));
        }
        for env in after.network.iter() {
            if !before.network.contains(env) {
                step.sent.push(format!(
                    "{}→{} {}",
                    env.src,
                    env.dst,
                    describe_msg(&env.msg)
                ));
            }
        }
        out.push(step);
    }
    out
}
