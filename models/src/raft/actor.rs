//! The actor: one Raft server, a thin adapter that feeds one input to the core and carries out
//! its `Ready`.

use super::{Cmd, actor_id, node_id};
use aver_core::TimerCmd;
use aver_core::raft::{Config, Durable, Message, Raft, RaftReady, Timer};
use stateright::actor::{Actor, Id, Out, model_timeout};
use std::borrow::Cow;
use std::sync::Arc;

/// The actor: one Raft server. Holds only configuration.
#[derive(Clone, Debug)]
pub struct RaftServer {
    /// The core's configuration (id, voters, seeded bugs).
    pub config: Config,
    /// The `Propose` timer proposes only while the log is shorter than this.
    pub max_log: u64,
    /// Whether the `Compact` timer is armed.
    pub compaction: bool,
}

/// The actor's timers: the core's own, plus the two that stand for the world above Raft.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModelTimer {
    /// A timer of the core.
    Raft(Timer),
    /// A client asks this server to propose a command (only a leader with room does).
    Propose,
    /// The service asks this server to snapshot what it has applied.
    Compact,
}

/// One server's state in the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerState {
    /// The core.
    pub raft: Raft<Cmd>,
    /// What the disk holds, when it differs from `raft.durable()` (only under a seeded bug
    /// that skips a write; `None` for a correct server).
    pub disk: Option<Durable<Cmd>>,
    /// This server installed a snapshot sent by a leader since it last started.
    pub installed_snapshot: bool,
}

impl ServerState {
    /// What this server's disk holds.
    pub fn disk(&self) -> &Durable<Cmd> {
        self.disk.as_ref().unwrap_or(self.raft.durable())
    }
}

impl RaftServer {
    /// Carries out one `Ready` (persist → save, messages → send, timers), and returns the
    /// server's next state, or `None` if nothing changed (so Stateright can prune no-ops).
    fn drive(
        &self,
        before: &ServerState,
        raft: Raft<Cmd>,
        ready: RaftReady<Cmd>,
        from_leader: bool,
        o: &mut Out<Self>,
    ) -> Option<ServerState> {
        let disk_unchanged = ready.persist.is_empty() && raft.durable() == before.raft.durable();
        let disk = if disk_unchanged {
            before.disk.clone()
        } else {
            let mut disk = before.disk().clone();
            if !ready.persist.is_empty() {
                disk.apply_all(&ready.persist);
                o.save(disk.clone());
            }
            (&disk != raft.durable()).then_some(disk)
        };
        for (to, msg) in ready.messages {
            o.send(actor_id(to), msg);
        }
        for t in ready.timers {
            match t {
                TimerCmd::Set(t) => o.set_timer(ModelTimer::Raft(t), model_timeout()),
                TimerCmd::Cancel(t) => o.cancel_timer(ModelTimer::Raft(t)),
            }
        }
        let installed = from_leader
            && ready
                .apply
                .iter()
                .any(|a| matches!(a, aver_core::raft::Apply::Snapshot(_)));
        let next = ServerState {
            raft,
            disk,
            installed_snapshot: before.installed_snapshot || installed,
        };
        (next != *before).then_some(next)
    }

    /// Runs `input` on a copy of the core and drives its `Ready`; leaves `state` borrowed when
    /// nothing changed.
    fn step(
        &self,
        state: &mut Cow<ServerState>,
        from_leader: bool,
        o: &mut Out<Self>,
        input: impl FnOnce(&mut Raft<Cmd>),
    ) {
        let mut raft = state.raft.clone();
        input(&mut raft);
        let ready = raft.take_ready();
        if let Some(next) = self.drive(state, raft, ready, from_leader, o) {
            *state = Cow::Owned(next);
        }
    }

    /// The bytes a service would snapshot after applying everything up to `applied`: the
    /// previous snapshot's bytes followed by the applied commands.
    fn service_state(raft: &Raft<Cmd>) -> Arc<[u8]> {
        let log = raft.log();
        let mut data: Vec<u8> = raft
            .durable()
            .snapshot
            .as_ref()
            .map(|s| s.data.to_vec())
            .unwrap_or_default();
        let mut i = log.first_index();
        while i <= raft.applied_index() {
            data.push(log.entry(i).expect("applied entries are held").command);
            i = i.next();
        }
        Arc::from(data)
    }
}

impl Actor for RaftServer {
    type Msg = Message<Cmd>;
    type Timer = ModelTimer;
    type State = ServerState;
    type Storage = Durable<Cmd>;
    type Random = ();

    fn name(&self) -> String {
        self.config.id.to_string()
    }

    fn on_start(&self, _id: Id, storage: &Option<Durable<Cmd>>, o: &mut Out<Self>) -> ServerState {
        let durable = storage.clone().unwrap_or_default();
        let mut raft = Raft::new(self.config.clone(), durable);
        let ready = raft.take_ready();
        assert!(ready.persist.is_empty(), "a starting server writes nothing");
        let before = ServerState {
            raft: raft.clone(),
            disk: None,
            installed_snapshot: false,
        };
        let state = self.drive(&before, raft, ready, false, o).unwrap_or(before);
        o.set_timer(ModelTimer::Propose, model_timeout());
        if self.compaction {
            o.set_timer(ModelTimer::Compact, model_timeout());
        }
        state
    }

    fn on_msg(
        &self,
        _id: Id,
        state: &mut Cow<ServerState>,
        src: Id,
        msg: Message<Cmd>,
        o: &mut Out<Self>,
    ) {
        let from_leader = matches!(msg, Message::InstallSnapshot(_));
        self.step(state, from_leader, o, |raft| {
            raft.on_message(node_id(src), msg)
        });
    }

    fn on_timeout(
        &self,
        _id: Id,
        state: &mut Cow<ServerState>,
        timer: &ModelTimer,
        o: &mut Out<Self>,
    ) {
        match *timer {
            ModelTimer::Raft(t) => self.step(state, false, o, |raft| raft.on_timeout(t)),
            ModelTimer::Propose => {
                let raft = &state.raft;
                if raft.is_leader() && raft.log().last_index().0 < self.max_log {
                    let command = self.config.id.0 as Cmd;
                    self.step(state, false, o, |raft| {
                        raft.propose(command).expect("a leader accepts proposals");
                    });
                }
                o.set_timer(ModelTimer::Propose, model_timeout());
            }
            ModelTimer::Compact => {
                let raft = &state.raft;
                let applied = raft.applied_index();
                if applied > raft.log().base().index {
                    let data = Self::service_state(raft);
                    self.step(state, false, o, |raft| {
                        assert!(
                            raft.snapshot(applied, data),
                            "applied entries can be compacted"
                        );
                    });
                }
                o.set_timer(ModelTimer::Compact, model_timeout());
            }
        }
    }
}
