//! Replaying action lists, seeded random walks, and shrinking their counterexamples.

use super::{PROPERTIES, RaftAction, RaftModel, RaftState};
use stateright::{Expectation, Model};

/// Replays `actions` from the initial state; `None` unless each one is enabled (offered by
/// `Model::actions`, changes something, stays within the bounds). Returns the states.
pub fn replay(model: &RaftModel, actions: &[RaftAction]) -> Option<Vec<RaftState>> {
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
        if !model.within_boundary(&next) {
            return None;
        }
        states.push(next);
    }
    Some(states)
}

// ---- random walks ----------------------------------------------------------------------------

/// A state path: each state with the action taken from it (`None` for the last).
pub type StatePath = Vec<(RaftState, Option<RaftAction>)>;

/// What [`random_walks`] found.
pub struct WalkReport {
    /// For each entry of [`PROPERTIES`], the first path that discovered it (a counterexample
    /// for `always`, an example for `sometimes`).
    pub discoveries: Vec<Option<StatePath>>,
    /// States visited over all walks.
    pub states: usize,
    /// Longest walk, in states.
    pub depth: usize,
    /// Walks run.
    pub runs: u64,
}

/// Up to `runs` seeded random walks from the initial state, each until no action is enabled
/// within the bounds or `steps_max` steps. Properties are checked at every state; the walks
/// stop at the first violated `always` property. Deterministic for a given seed. This is what
/// finds deep seeded bugs fast where exhaustive search cannot reach (`aver check --simulate`).
pub fn random_walks(model: &RaftModel, runs: u64, steps_max: usize, seed: u64) -> WalkReport {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut report = WalkReport {
        discoveries: vec![None; PROPERTIES.len()],
        states: 0,
        depth: 0,
        runs: 0,
    };
    let init = model.init_states().remove(0);
    let mut actions = Vec::new();
    while report.runs < runs {
        report.runs += 1;
        let mut path: StatePath = vec![(init.clone(), None)];
        for _ in 0..=steps_max {
            let state = &path.last().expect("non-empty").0;
            report.states += 1;
            report.depth = report.depth.max(path.len());
            for (k, p) in PROPERTIES.iter().enumerate() {
                if report.discoveries[k].is_some() {
                    continue;
                }
                let holds = (p.condition)(model, state);
                let always = matches!(p.expectation, Expectation::Always);
                if holds != always {
                    report.discoveries[k] = Some(if always {
                        shrink(model, &path, p.condition)
                    } else {
                        path.clone()
                    });
                    if always {
                        return report;
                    }
                }
            }
            actions.clear();
            model.actions(state, &mut actions);
            // Pick uniformly among the actions that are enabled within the bounds, evaluating
            // only the ones tried (most of a state's actions are never computed).
            let mut chosen = None;
            while !actions.is_empty() && chosen.is_none() {
                let a = actions.swap_remove((next() % actions.len() as u64) as usize);
                // A step that changes nothing (a redelivery whose reply is already in the
                // network) only lengthens the trace: skip it.
                chosen = model
                    .next_state(state, a.clone())
                    .filter(|s| s != state && model.within_boundary(s))
                    .map(|s| (a, s));
            }
            let Some((a, s)) = chosen else { break };
            if path.len() > steps_max {
                break;
            }
            path.last_mut().expect("non-empty").1 = Some(a);
            path.push((s, None));
        }
    }
    report
}

/// Shortens a counterexample: drops one step at a time while the rest still replays and
/// still ends in a state where `condition` fails. Random walks wander; this keeps the trace
/// readable.
fn shrink(
    model: &RaftModel,
    path: &StatePath,
    condition: fn(&RaftModel, &RaftState) -> bool,
) -> StatePath {
    let mut actions: Vec<RaftAction> = path.iter().filter_map(|(_, a)| a.clone()).collect();
    let mut i = 0;
    while i < actions.len() {
        let mut candidate = actions.clone();
        candidate.remove(i);
        let still_fails = replay(model, &candidate)
            .and_then(|states| states.last().map(|s| !condition(model, s)))
            .unwrap_or(false);
        if still_fails {
            actions = candidate;
        } else {
            i += 1;
        }
    }
    let states = replay(model, &actions).expect("the shrunk trace replays");
    let mut out: StatePath = states.into_iter().map(|s| (s, None)).collect();
    for (k, a) in actions.into_iter().enumerate() {
        out[k].1 = Some(a);
    }
    out
}
