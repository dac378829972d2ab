//! The actor: one Raft server, a thin adapter around the core. It feeds one input to the
//! core through the runtime's [`Driver`] — the one loop every driver of aver uses to carry out
//! a `Ready` in the contract's order — with an [`Environment`] that writes into the model's
//! state: persist operations are folded into the server's disk with the core's own
//! [`Durable::apply`], messages go into the network, applies into the service and the ghost
//! record of what was applied, timers into the server's timer set. It makes no protocol
//! decision.

use super::Cmd;
use super::state::{Envelope, Events, Fault, Hashed, PANIC, RaftState, Server, Timers};
use aver_core::NodeId;
use aver_core::raft::{
    AppendResult, Apply, Config, Durable, LogIndex, Message, PersistOp, Raft, Timer,
};
use aver_runtime::{Driver, Environment};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// One input to one server.
#[derive(Clone, Debug)]
pub enum Input {
    /// A message from a peer.
    Message(NodeId, Message<Cmd>),
    /// A timer of the core fired.
    Timeout(Timer),
    /// A client asks this server (a leader) to propose a command.
    Propose(Cmd),
    /// The service snapshots what it has applied.
    Compact,
}

/// The model's side of one step of one server: what the driver writes while carrying out the
/// core's `Ready`.
struct ModelEnv<'a> {
    me: NodeId,
    /// The disk before the step.
    disk_before: &'a Durable<Cmd>,
    /// The disk after the persist operations of this step, once there are any.
    disk: Option<Durable<Cmd>>,
    sent: Vec<(NodeId, Message<Cmd>)>,
    timers: Timers,
    service: Vec<Cmd>,
    /// The ghost record of what was applied (see [`RaftState::applied`]).
    applied: &'a mut Vec<Cmd>,
    fault: &'a mut Option<Fault>,
    entries_applied: bool,
    truncated: bool,
    snapshot_applied: bool,
}

impl ModelEnv<'_> {
    fn fault(&mut self, id: &'static str, detail: String) {
        if self.fault.is_none() {
            *self.fault = Some(Fault { id, detail });
        }
    }

    /// RAFT-A1: the service applies index `len + 1` next.
    fn apply_entry(&mut self, index: LogIndex, command: Cmd) {
        let expected = self.service.len() as u64 + 1;
        if index.0 != expected {
            let detail = format!(
                "{} applied {index} when its service held {} entries",
                self.me,
                self.service.len()
            );
            self.fault("RAFT-A1", detail);
            return;
        }
        self.service.push(command);
        self.agree(index.0, &[command], "command");
        self.entries_applied = true;
    }

    /// RAFT-A1 and RAFT-A2 for a snapshot: it does not move the service back, and its
    /// contents (one command per index) agree with what was applied at those indices.
    fn apply_snapshot(&mut self, index: LogIndex, data: &[u8]) {
        if (index.0 as usize) < self.service.len() {
            let detail = format!(
                "{} installed a snapshot through {index} over a service that had applied {}",
                self.me,
                self.service.len()
            );
            self.fault("RAFT-A1", detail);
        }
        if data.len() as u64 != index.0 {
            let detail = format!(
                "{}'s snapshot through {index} holds {} commands",
                self.me,
                data.len()
            );
            self.fault("RAFT-A2", detail);
        }
        self.agree(1, data, "snapshot");
        self.service = data.to_vec();
        self.snapshot_applied = true;
    }

    /// RAFT-A2: `commands`, applied from index `first` on, agree with what was first applied
    /// at each index; indices applied for the first time are recorded.
    fn agree(&mut self, first: u64, commands: &[Cmd], what: &str) {
        for (k, &c) in commands.iter().enumerate() {
            let at = (first - 1) as usize + k;
            match self.applied.get(at) {
                Some(&earlier) if earlier != c => {
                    let detail = format!(
                        "{} applied {} at i{} by {what}, but {} was applied there first",
                        self.me,
                        show_cmd(c),
                        at + 1,
                        show_cmd(earlier)
                    );
                    self.fault("RAFT-A2", detail);
                    return;
                }
                Some(_) => {}
                None => self.applied.push(c),
            }
        }
    }
}

impl Environment<Raft<Cmd>> for ModelEnv<'_> {
    fn persist(&mut self, ops: &[PersistOp<Cmd>]) {
        let disk = self.disk.get_or_insert_with(|| self.disk_before.clone());
        disk.apply_all(ops);
        self.truncated |= ops.iter().any(|op| matches!(op, PersistOp::Truncate(_)));
    }
    fn sync(&mut self) {
        // A model step is atomic: what was persisted is on the disk.
    }
    fn send(&mut self, to: NodeId, msg: Message<Cmd>) {
        self.sent.push((to, msg));
    }
    fn apply(&mut self, output: Apply<Cmd>) {
        match output {
            Apply::Entry { index, command, .. } => self.apply_entry(index, command),
            Apply::Snapshot(s) => self.apply_snapshot(s.meta.index, &s.data),
        }
    }
    fn set_timer(&mut self, timer: Timer) {
        self.timers.set(timer);
    }
    fn cancel_timer(&mut self, timer: Timer) {
        self.timers.cancel(timer);
    }
}

/// A command as traces show it: `t{term}n{proposer}`.
pub fn show_cmd(c: Cmd) -> String {
    format!("t{}n{}", c >> 4, c & 0xF)
}

/// The command a leader of `term` with id `me` proposes: unique per (term, proposer), so two
/// proposals that meet at one index always differ, and naming its proposer (see
/// [`super::symmetry`]).
pub fn command(term: u64, me: NodeId) -> Cmd {
    debug_assert!(term < 16 && me.0 < 16);
    ((term as u8) << 4) | me.0 as u8
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Runs `input` on server `i` of `state` and folds the outcome into `state`. A panic in the
/// core becomes a [`Fault`] (the server is left as it was), so a broken core ends in a
/// counterexample, never in a crashed checker.
pub fn step(state: &mut RaftState, i: usize, input: Input) {
    let before = Arc::clone(&state.servers[i]);
    let mut env = ModelEnv {
        me: before.raft.id(),
        disk_before: before.disk(),
        disk: None,
        sent: Vec::new(),
        timers: before.timers,
        service: before.service.clone(),
        applied: &mut state.applied,
        fault: &mut state.fault,
        entries_applied: false,
        truncated: false,
        snapshot_applied: false,
    };
    let from_leader = matches!(input, Input::Message(_, Message::InstallSnapshot(_)));
    let conflict = match &input {
        Input::Message(from, Message::AppendEntriesReply(r)) => match r.result {
            AppendResult::Conflict { rejected_index, .. } => Some((*from, rejected_index)),
            AppendResult::Success { .. } | AppendResult::StaleTerm => None,
        },
        _ => None,
    };
    let mut driver = Driver::new(before.raft.clone());
    let ran = catch_unwind(AssertUnwindSafe(|| match input {
        Input::Message(from, msg) => driver.on_message(&mut env, from, msg),
        Input::Timeout(t) => {
            env.timers.cancel(t);
            driver.on_timeout(&mut env, t);
        }
        Input::Propose(c) => {
            let _ = driver.input(&mut env, |raft| raft.propose(c));
        }
        Input::Compact => {
            let data: Arc<[u8]> = Arc::from(env.service.as_slice());
            let index = LogIndex(env.service.len() as u64);
            driver.input(&mut env, |raft| raft.snapshot(index, data));
        }
    }));
    if let Err(payload) = ran {
        let detail = format!("{} panicked: {}", before.raft.id(), panic_message(payload));
        env.fault(PANIC, detail);
        return;
    }
    let mut raft = driver.into_core();
    if state.shared.forget_leader_hint {
        raft.forget_leader_hint();
    }
    let mut events = 0;
    if env.entries_applied && !raft.is_leader() {
        events |= Events::FOLLOWER_APPLIED;
    }
    if env.truncated && !raft.is_leader() {
        events |= Events::TRUNCATED;
    }
    if env.snapshot_applied && from_leader && !raft.is_leader() {
        events |= Events::SNAPSHOT_INSTALLED;
    }
    if let Some((from, rejected)) = conflict {
        let backed_up = env.sent.iter().any(|(to, m)| {
            *to == from
                && matches!(m, Message::AppendEntries(a) if a.prev_log_index.0 + 1 < rejected.0)
        });
        if backed_up {
            events |= Events::HINT_BACKUP;
        }
    }
    if committed_older_term(&before.raft, &raft) {
        events |= Events::OLDER_TERM_COMMITTED;
    }
    state.events.0 |= events;
    let disk = match env.disk.take() {
        Some(d) => (&d != raft.durable()).then_some(d),
        None if raft.durable() == before.raft.durable() => before.disk.clone(),
        None => Some(before.disk().clone()),
    };
    let me = raft.id();
    let (timers, service, sent) = (env.timers, env.service, env.sent);
    let mut server = Server {
        raft,
        disk,
        timers,
        down: false,
        crashed_leading: before.crashed_leading,
        service,
    };
    if server != **before {
        // A restarted leader's mark lasts until a step of its own changes it (see
        // `RaftModel::restart`).
        server.crashed_leading = false;
        state.servers[i] = Arc::new(Hashed::new(server));
    }
    for (dst, msg) in sent {
        state.send(Envelope { src: me, dst, msg });
    }
}

/// A leader advanced its commit index over an entry of an earlier term (Figure 8: possible
/// only by committing an entry of its own term after it).
fn committed_older_term(before: &Raft<Cmd>, after: &Raft<Cmd>) -> bool {
    if !after.is_leader() || after.commit_index() <= before.commit_index() {
        return false;
    }
    let mut i = before.commit_index().next();
    while i <= after.commit_index() {
        if after.log().term_at(i).is_some_and(|t| t < after.term()) {
            return true;
        }
        i = i.next();
    }
    false
}

/// Starts (or restarts after a crash) server `i` from its disk, `config` being its
/// configuration: the core is rebuilt with `Raft::new`, and the outputs of starting (the
/// election timer, the snapshot handed to the service) are carried out. The service starts
/// empty; a snapshot on disk refills it. (`i` may be one past the last server: the initial
/// state is built server by server.)
pub fn start(state: &mut RaftState, i: usize, config: &Config, disk: Durable<Cmd>) {
    let raft = Raft::new(config.clone(), disk.clone());
    let mut env = ModelEnv {
        me: config.id,
        disk_before: &disk,
        disk: None,
        sent: Vec::new(),
        timers: Timers::default(),
        service: Vec::new(),
        applied: &mut state.applied,
        fault: &mut state.fault,
        entries_applied: false,
        truncated: false,
        snapshot_applied: false,
    };
    let mut driver = Driver::new(raft);
    driver.flush(&mut env);
    assert!(env.disk.is_none(), "a starting server writes nothing");
    let (timers, service) = (env.timers, env.service);
    let raft = driver.into_core();
    debug_assert!(raft.durable() == &disk);
    let server = Arc::new(Hashed::new(Server {
        raft,
        disk: None,
        timers,
        down: false,
        crashed_leading: false,
        service,
    }));
    if i < state.servers.len() {
        state.servers[i] = server;
    } else {
        state.servers.push(server);
    }
}
