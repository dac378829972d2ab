//! The properties: the catalogue's invariants as `always`, evaluated by the core's functions
//! and by the checker crate, and `sometimes` properties that show the interesting paths happen.

use super::actor::{KvState, SERVER};
use super::{KvsrvModel, KvsrvState};
use aver_core::kvsrv::{LockClient, invariants};
use stateright::Expectation;

/// One property: expectation, name, condition.
pub struct KvProperty {
    /// `Always` for safety, `Sometimes` for reachability.
    pub expectation: Expectation,
    /// The catalogue ID and name, or what the example shows.
    pub name: &'static str,
    /// The condition, evaluated on every reachable state.
    pub condition: fn(&KvsrvModel, &KvsrvState) -> bool,
}

fn locks(s: &KvsrvState) -> Vec<&LockClient> {
    s.actor_states.iter().filter_map(|a| a.lock()).collect()
}

fn version_step_holds(s: &KvsrvState) -> bool {
    s.actor_states[SERVER]
        .server()
        .is_none_or(|srv| srv.violation().is_none())
}

fn all_done(m: &KvsrvModel, s: &KvsrvState) -> bool {
    s.actor_states
        .iter()
        .zip(&m.scripts)
        .all(|(a, script)| match &**a {
            KvState::Server(_) => true,
            KvState::Clerk { clerk, issued, .. } => {
                clerk.is_idle() && usize::from(*issued) == script.len()
            }
            KvState::Lock { rounds_done, .. } => *rounds_done >= m.cfg.rounds(),
        })
}

/// A client holds the lock while another has finished a round: the lock went from one
/// client to another (mutual exclusion means the other held it earlier).
fn handed_over(s: &KvsrvState) -> bool {
    let holder = s
        .actor_states
        .iter()
        .position(|a| a.lock().is_some_and(|c| c.holds()));
    let Some(h) = holder else { return false };
    s.actor_states.iter().enumerate().any(|(i, a)| {
        i != h && matches!(&**a, KvState::Lock { rounds_done, .. } if *rounds_done >= 1)
    })
}

/// The properties of the versioned-KV model (scripted clerks).
pub const KV_PROPERTIES: &[KvProperty] = &[
    KvProperty {
        expectation: Expectation::Always,
        name: "KVSRV-2 Linearizable",
        condition: |_, s| s.history.linearizable,
    },
    KvProperty {
        expectation: Expectation::Always,
        name: "KVSRV-1 Version Step",
        condition: |_, s| version_step_holds(s),
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "retried put answered ErrMaybe",
        condition: |_, s| s.history.has_errmaybe(),
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "every operation returned",
        condition: all_done,
    },
];

/// The properties of the lock model.
pub const LOCK_PROPERTIES: &[KvProperty] = &[
    KvProperty {
        expectation: Expectation::Always,
        name: "LOCK-1 Mutual Exclusion",
        condition: |_, s| invariants::mutual_exclusion(&locks(s)).is_ok(),
    },
    KvProperty {
        expectation: Expectation::Always,
        name: "LOCK-2 Holder Stored",
        condition: |_, s| {
            let store = s.actor_states[SERVER].server().expect("server").store();
            invariants::holder_stored(&locks(s), store).is_ok()
        },
    },
    KvProperty {
        expectation: Expectation::Always,
        name: "KVSRV-1 Version Step",
        condition: |_, s| version_step_holds(s),
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "lock handed to another client",
        condition: |_, s| handed_over(s),
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "acquire answered ErrMaybe",
        condition: |_, s| s.history.maybe_on_acquire,
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "release answered ErrMaybe",
        condition: |_, s| s.history.maybe_on_release,
    },
    KvProperty {
        expectation: Expectation::Sometimes,
        name: "every round done",
        condition: all_done,
    },
];
