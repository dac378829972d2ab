//! The Stateright model: Stateright's `ActorModel` of [`RaftServer`]s with the network
//! normalised after every step.

use super::{ModelTimer, PROPERTIES, RaftModelCfg, RaftServer, node_id};
use aver_core::raft::Message;
use stateright::actor::{ActorModel, ActorModelAction, ActorModelState, Network};
use stateright::{Expectation, Model};

/// The command type the model's log carries: the id of the server that proposed it.
pub type Cmd = u8;

/// The Stateright model of a Raft cluster: Stateright's `ActorModel` of [`RaftServer`]s with
/// one normalisation (see [`RaftModel::next_state`]).
#[derive(Clone)]
pub struct RaftModel {
    /// The bounds and switches.
    pub cfg: RaftModelCfg,
    /// The actor model that does the work.
    pub inner: ActorModel<RaftServer, RaftModelCfg, ()>,
}

impl Model for RaftModel {
    type State = RaftState;
    type Action = RaftAction;

    fn init_states(&self) -> Vec<RaftState> {
        self.inner.init_states()
    }

    fn actions(&self, state: &RaftState, actions: &mut Vec<RaftAction>) {
        self.inner.actions(state, actions)
    }

    /// Two normalisations of the duplicating network, after every step:
    ///
    /// * Stateright's duplicating network remembers the last delivered envelope so that a
    ///   re-delivery that changes nothing still makes a new fingerprint (stateright #74). That
    ///   field is not part of the system being modelled, and it multiplies the state count by
    ///   the number of distinct messages; a delivery that changes nothing is instead a
    ///   self-loop, which is harmless for safety. So it is cleared.
    /// * Dead messages are collected (when `cfg.collect_dead_messages`): an envelope is
    ///   removed if its destination's latest state (crashed or not) says, by the core's own
    ///   [`Raft::ignores_forever`], that delivering it is a no-op now and in every future
    ///   state of that server, a restart from its disk included. Such a delivery is already
    ///   pruned by Stateright as a no-op (its actor state and outputs are unchanged), so the
    ///   only difference between a state with the envelope and one without is an action that
    ///   can never be enabled to any effect: every path of either has a path of the other
    ///   through the same actor states, and every property (all are on actor states only)
    ///   has the same verdict. The envelope may be sent again later; it is then collected
    ///   again. The predicate assumes the disk is exactly `raft.durable()`, so servers whose
    ///   disk differs (a seeded bug that skips a write) are never collected for. The adapter
    ///   makes no protocol decision here: the core's predicate does.
    fn next_state(&self, last: &RaftState, action: RaftAction) -> Option<RaftState> {
        let mut next = self.inner.next_state(last, action)?;
        let RaftState {
            network,
            actor_states,
            ..
        } = &mut next;
        if let Network::UnorderedDuplicating(envelopes, last_msg) = network {
            *last_msg = None;
            if self.cfg.collect_dead_messages {
                envelopes.retain(|env| {
                    let dst = &actor_states[usize::from(env.dst)];
                    dst.disk.is_some() || !dst.raft.ignores_forever(node_id(env.src), &env.msg)
                });
            }
        }
        Some(next)
    }

    fn format_action(&self, action: &RaftAction) -> String {
        self.inner.format_action(action)
    }

    fn format_step(&self, last: &RaftState, action: RaftAction) -> Option<String> {
        self.inner.format_step(last, action)
    }

    fn as_svg(&self, path: stateright::Path<RaftState, RaftAction>) -> Option<String> {
        self.inner.as_svg(path)
    }

    fn properties(&self) -> Vec<stateright::Property<Self>> {
        PROPERTIES
            .iter()
            .map(|p| match p.expectation {
                Expectation::Always => stateright::Property::always(p.name, p.condition),
                Expectation::Sometimes => stateright::Property::sometimes(p.name, p.condition),
                Expectation::Eventually => stateright::Property::eventually(p.name, p.condition),
            })
            .collect()
    }

    fn within_boundary(&self, state: &RaftState) -> bool {
        self.cfg.within_boundary(state)
    }
}
/// One state of [`RaftModel`].
pub type RaftState = ActorModelState<RaftServer, ()>;
/// One action of [`RaftModel`].
pub type RaftAction = ActorModelAction<Message<Cmd>, ModelTimer, ()>;
