//! Counterexample traces for humans: who acted, on what, what it persisted, what changed and
//! what it sent.

use super::{Cmd, RaftAction, RaftState, ServerState, node_id};
use aver_core::raft::{Durable, Message};
use stateright::actor::{ActorModelAction, Envelope};

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
pub fn describe_server(s: &ServerState) -> String {
    let r = &s.raft;
    let log: Vec<String> = r
        .log()
        .entries()
        .iter()
        .map(|e| format!("{}:{}", e.term.0, e.command))
        .collect();
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
        log.join(" "),
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
            let es: Vec<String> = m
                .entries
                .iter()
                .map(|e| format!("{}:{}", e.term.0, e.command))
                .collect();
            format!(
                "AppendEntries(t{}, prev=({},{}), [{}], commit={})",
                m.term.0,
                m.prev_log_index.0,
                m.prev_log_term.0,
                es.join(" "),
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
        let log: Vec<String> = after
            .log
            .entries()
            .iter()
            .map(|e| format!("{}:{}", e.term.0, e.command))
            .collect();
        out.push(format!("log [{}]", log.join(" ")));
    }
    out
}

fn describe_action(action: &RaftAction) -> (String, String) {
    match action {
        ActorModelAction::Deliver { src, dst, msg } => (
            node_id(*dst).to_string(),
            format!("receive {} from {}", describe_msg(msg), node_id(*src)),
        ),
        ActorModelAction::Drop(Envelope { src, dst, msg }) => (
            "network".into(),
            format!(
                "drop {} {}→{}",
                describe_msg(msg),
                node_id(*src),
                node_id(*dst)
            ),
        ),
        ActorModelAction::Timeout(id, t) => (node_id(*id).to_string(), format!("timeout {t:?}")),
        ActorModelAction::Crash(id) => (node_id(*id).to_string(), "crash".into()),
        ActorModelAction::Recover(id) => (node_id(*id).to_string(), "recover from storage".into()),
        ActorModelAction::SelectRandom { actor, .. } => {
            (node_id(*actor).to_string(), "random choice".into())
        }
    }
}

fn acting_index(action: &RaftAction) -> Option<usize> {
    match action {
        ActorModelAction::Deliver { dst, .. } => Some(usize::from(*dst)),
        ActorModelAction::Timeout(id, _)
        | ActorModelAction::Crash(id)
        | ActorModelAction::Recover(id) => Some(usize::from(*id)),
        ActorModelAction::SelectRandom { actor, .. } => Some(usize::from(*actor)),
        ActorModelAction::Drop(_) => None,
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
        if let Some(i) = acting_index(action) {
            let empty = Durable::default();
            let disk_before = before.actor_storages[i].as_ref().unwrap_or(&empty);
            let disk_after = after.actor_storages[i].as_ref().unwrap_or(&empty);
            step.persisted = describe_persist(disk_before, disk_after);
            let (b, a) = (
                describe_server(&before.actor_states[i]),
                describe_server(&after.actor_states[i]),
            );
            if b != a {
                step.changed.push(format!("{b}  ⇒  {a}"));
            }
            if before.crashed[i] != after.crashed[i] {
                step.changed
                    .push(if after.crashed[i] { "down" } else { "up" }.into());
            }
        }
        let old: Vec<_> = before.network.iter_all().collect();
        for env in after.network.iter_all() {
            if !old.contains(&env) {
                step.sent.push(format!(
                    "{}→{} {}",
                    node_id(env.src),
                    node_id(env.dst),
                    describe_msg(env.msg)
                ));
            }
        }
        out.push(step);
    }
    out
}
