//! Counterexamples for people: each step as who acted, on what, what changed, what was sent,
//! and what the history recorded; and the history as JSON Lines for `aver lin`.

use super::actor::{KvState, SERVER};
use super::history::{HistEvent, operations};
use super::{KvsrvAction, KvsrvModel, KvsrvState};
use aver_core::kvsrv::{Message, Op, Output, Seq};
use stateright::Model;
use stateright::actor::{ActorModelAction, Envelope, Id};

/// One step of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceStep {
    /// 1-based step number.
    pub step: usize,
    /// Who acted (`server`, `c1`…, or `network` for a loss).
    pub actor: String,
    /// The action.
    pub action: String,
    /// What changed in the actor's state.
    pub changed: Vec<String>,
    /// Messages the step sent.
    pub sent: Vec<String>,
    /// History records the step added.
    pub recorded: Vec<String>,
}

fn name(id: Id) -> String {
    match usize::from(id) {
        SERVER => "server".into(),
        i => format!("c{i}"),
    }
}

/// Describes one actor's state briefly.
pub fn describe_state(s: &KvState) -> String {
    match s {
        KvState::Server(server) => {
            let keys: Vec<String> = server
                .store()
                .iter()
                .map(|(k, e)| format!("{k}=({:?}, {})", e.value, e.version))
                .collect();
            format!("store [{}]", keys.join(" "))
        }
        KvState::Clerk { clerk, issued, .. } => match clerk.pending() {
            Some(p) => format!(
                "op {issued} pending: {}{}",
                p.op,
                if p.retried { " (retransmitted)" } else { "" }
            ),
            None => format!("{issued} ops done, idle"),
        },
        KvState::Lock {
            client,
            rounds_done,
            ..
        } => {
            let pending = client
                .clerk()
                .pending()
                .map_or(String::new(), |p| format!(", pending {}", p.op));
            format!("{:?}, rounds done {rounds_done}{pending}", client.phase())
        }
    }
}

/// Describes one history record.
pub fn describe_event(e: &HistEvent) -> String {
    match e {
        HistEvent::Call { client, op } => format!("c{client} calls {op}"),
        HistEvent::Return { client, output } => format!("c{client} returns {output}"),
    }
}

fn describe_action(action: &KvsrvAction) -> (String, String) {
    match action {
        ActorModelAction::Deliver { src, dst, msg } => {
            (name(*dst), format!("receive {msg} from {}", name(*src)))
        }
        ActorModelAction::Drop(Envelope { src, dst, msg }) => (
            "network".into(),
            format!("lose {msg} {}→{}", name(*src), name(*dst)),
        ),
        ActorModelAction::Timeout(id, t) => (name(*id), format!("timeout {t:?}")),
        ActorModelAction::Crash(id) => (name(*id), "crash".into()),
        ActorModelAction::Recover(id) => (name(*id), "recover".into()),
        ActorModelAction::SelectRandom { actor, .. } => (name(*actor), "random choice".into()),
    }
}

fn acting(action: &KvsrvAction) -> Option<usize> {
    match action {
        ActorModelAction::Deliver { dst, .. } => Some(usize::from(*dst)),
        ActorModelAction::Timeout(id, _)
        | ActorModelAction::Crash(id)
        | ActorModelAction::Recover(id) => Some(usize::from(*id)),
        ActorModelAction::SelectRandom { actor, .. } => Some(usize::from(*actor)),
        ActorModelAction::Drop(_) => None,
    }
}

/// Messages in `after`'s network that were not in `before`'s. Operation numbers are ignored:
/// the model renumbers them after each step, which renames messages already in flight.
fn sent(before: &KvsrvState, after: &KvsrvState) -> Vec<String> {
    let key = |env: Envelope<&Message>| (env.src, env.dst, env.msg.clone().with_seq(Seq(0)));
    let mut old: Vec<_> = before.network.iter_all().map(key).collect();
    let mut out = Vec::new();
    for env in after.network.iter_all() {
        match old.iter().position(|k| *k == key(env)) {
            Some(i) => {
                old.swap_remove(i);
            }
            None => out.push(format!("{}→{} {}", name(env.src), name(env.dst), env.msg)),
        }
    }
    out
}

/// Turns a path into readable steps.
pub fn trace(path: &[(KvsrvState, Option<KvsrvAction>)]) -> Vec<TraceStep> {
    let mut out = Vec::new();
    for (k, pair) in path.windows(2).enumerate() {
        let (before, Some(action)) = (&pair[0].0, &pair[0].1) else {
            continue;
        };
        let after = &pair[1].0;
        let (actor, what) = describe_action(action);
        let mut changed = Vec::new();
        if let Some(i) = acting(action) {
            let (b, a) = (
                describe_state(&before.actor_states[i]),
                describe_state(&after.actor_states[i]),
            );
            if b != a {
                changed.push(format!("{b}  ⇒  {a}"));
            }
        }
        let recorded = after.history.events[before.history.events.len()..]
            .iter()
            .map(describe_event)
            .collect();
        out.push(TraceStep {
            step: k + 1,
            actor,
            action: what,
            changed,
            sent: sent(before, after),
            recorded,
        });
    }
    out
}

/// The history of `state` in aver's JSON Lines format (specs/history-format.md), one
/// operation per line; times are positions in the sequence of calls and returns.
pub fn history_jsonl(state: &KvsrvState) -> String {
    let events = &state.history.events;
    let ops = operations(events);
    let inputs: Vec<&Op> = events
        .iter()
        .filter_map(|e| match e {
            HistEvent::Call { op, .. } => Some(op),
            HistEvent::Return { .. } => None,
        })
        .collect();
    let outputs: Vec<Option<&Output>> = ops
        .iter()
        .map(|o| {
            let ret = o.ret? as usize;
            match &events[ret] {
                HistEvent::Return { output, .. } => Some(output),
                HistEvent::Call { .. } => None,
            }
        })
        .collect();
    let mut text = String::new();
    for ((op, input), output) in ops.iter().zip(inputs).zip(outputs) {
        text.push_str(&json_line(op.client, op.call, op.ret, input, output));
        text.push('\n');
    }
    text
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One operation as a JSON Lines record.
pub fn json_line(
    client: u64,
    call: u64,
    ret: Option<u64>,
    op: &Op,
    output: Option<&Output>,
) -> String {
    let mut line = format!("{{\"client\": {client}, \"call\": {call}");
    if let Some(r) = ret {
        line.push_str(&format!(", \"return\": {r}"));
    }
    match op {
        Op::Get { key } => {
            line.push_str(&format!(", \"f\": \"get\", \"key\": {}", json_string(key)))
        }
        Op::Put {
            key,
            value,
            version,
        } => line.push_str(&format!(
            ", \"f\": \"put\", \"key\": {}, \"value\": {}, \"version\": {}",
            json_string(key),
            json_string(value),
            version.0
        )),
    }
    if let Some(out) = output {
        let out = match out {
            Output::Get(aver_core::kvsrv::GetResult::Value { value, version }) => format!(
                "{{\"value\": {}, \"version\": {}}}",
                json_string(value),
                version.0
            ),
            other => json_string(&other.to_string()),
        };
        line.push_str(&format!(", \"output\": {out}"));
    }
    line.push('}');
    line
}

/// Replays `actions` from the initial state; `None` unless each is enabled and changes
/// something. Returns the states.
pub fn replay(model: &KvsrvModel, actions: &[KvsrvAction]) -> Option<Vec<KvsrvState>> {
    let mut states = vec![model.init_states().pop()?];
    let mut enabled = Vec::new();
    for a in actions {
        let last = states.last()?;
        enabled.clear();
        model.actions(last, &mut enabled);
        if !enabled.contains(a) {
            return None;
        }
        let next = model.next_state(last, a.clone())?;
        states.push(next);
    }
    Some(states)
}
