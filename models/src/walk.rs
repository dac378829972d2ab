//! Seeded random walks over any Stateright model, with counterexample shrinking: how the KV
//! models hunt seeded bugs at bounds too deep to exhaust (the Raft model has its own, with
//! Raft-specific trace printing; this one is generic).
//!
//! A walk starts at the initial state and repeatedly takes a uniformly chosen action that
//! changes the state and stays within the bounds, checking every property at every state.
//! The first violated `always` property stops the search; its path is then shrunk by dropping
//! one action at a time while the rest still replays (each action enabled) and still ends in
//! a violating state. Deterministic for a given seed.

use stateright::{Expectation, Model};

/// Random walks a seeded-bug hunt runs at most (`aver check --bug` and the seeded-bug tests).
pub const HUNT_RUNS: u64 = 200_000;
/// Steps per walk of a seeded-bug hunt.
pub const HUNT_STEPS: usize = 120;
/// The seed of a seeded-bug hunt (fixed: a hunt is reproducible).
pub const HUNT_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// A path: each state with the action taken from it (`None` for the last).
pub type Path<M> = Vec<(<M as Model>::State, Option<<M as Model>::Action>)>;

/// What [`random_walks`] found.
pub struct Walks<M: Model> {
    /// For each property (in `model.properties()` order), the first path that discovered it.
    pub discoveries: Vec<(&'static str, Expectation, Option<Path<M>>)>,
    /// States visited over all walks.
    pub states: usize,
    /// Walks run.
    pub runs: u64,
}

impl<M: Model> Walks<M> {
    /// The counterexample of the first violated `always` property, if any.
    pub fn violation(&self) -> Option<(&'static str, &Path<M>)> {
        self.discoveries
            .iter()
            .find_map(|(name, e, p)| match (e, p) {
                (Expectation::Always, Some(p)) => Some((*name, p)),
                _ => None,
            })
    }
}

/// Up to `runs` walks of at most `steps_max` steps from seed `seed`.
pub fn random_walks<M>(model: &M, runs: u64, steps_max: usize, seed: u64) -> Walks<M>
where
    M: Model,
    M::State: Clone + PartialEq,
    M::Action: Clone + PartialEq,
{
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let properties = model.properties();
    let mut walks = Walks {
        discoveries: properties
            .iter()
            .map(|p| (p.name, p.expectation.clone(), None))
            .collect(),
        states: 0,
        runs: 0,
    };
    let init = model.init_states().remove(0);
    let mut actions = Vec::new();
    while walks.runs < runs {
        walks.runs += 1;
        let mut path: Path<M> = vec![(init.clone(), None)];
        loop {
            let state = &path.last().expect("non-empty").0;
            walks.states += 1;
            for (k, p) in properties.iter().enumerate() {
                if walks.discoveries[k].2.is_some() {
                    continue;
                }
                let always = matches!(p.expectation, Expectation::Always);
                if (p.condition)(model, state) != always {
                    let found = if always {
                        shrink(model, &path, p.condition)
                    } else {
                        path.clone()
                    };
                    walks.discoveries[k].2 = Some(found);
                    if always {
                        return walks;
                    }
                }
            }
            if path.len() > steps_max {
                break;
            }
            actions.clear();
            model.actions(state, &mut actions);
            let mut chosen = None;
            while !actions.is_empty() && chosen.is_none() {
                let a = actions.swap_remove((next() % actions.len() as u64) as usize);
                chosen = model
                    .next_state(state, a.clone())
                    .filter(|s| s != state && model.within_boundary(s))
                    .map(|s| (a, s));
            }
            let Some((a, s)) = chosen else { break };
            path.last_mut().expect("non-empty").1 = Some(a);
            path.push((s, None));
        }
    }
    walks
}

/// Replays `actions` from the initial state; `None` unless each is enabled, changes the
/// state and stays within the bounds.
pub fn replay<M>(model: &M, actions: &[M::Action]) -> Option<Vec<M::State>>
where
    M: Model,
    M::State: Clone + PartialEq,
    M::Action: Clone + PartialEq,
{
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

/// Drops single actions from a counterexample while it still replays and still ends in a
/// state where `condition` fails.
pub fn shrink<M>(model: &M, path: &Path<M>, condition: fn(&M, &M::State) -> bool) -> Path<M>
where
    M: Model,
    M::State: Clone + PartialEq,
    M::Action: Clone + PartialEq,
{
    let mut actions: Vec<M::Action> = path.iter().filter_map(|(_, a)| a.clone()).collect();
    let mut i = 0;
    while i < actions.len() {
        let mut candidate = actions.clone();
        candidate.remove(i);
        let fails = replay(model, &candidate)
            .and_then(|s| s.last().map(|s| !condition(model, s)))
            .unwrap_or(false);
        if fails {
            actions = candidate;
        } else {
            i += 1;
        }
    }
    let states = replay(model, &actions).expect("the shrunk path replays");
    let mut out: Path<M> = states.into_iter().map(|s| (s, None)).collect();
    for (k, a) in actions.into_iter().enumerate() {
        out[k].1 = Some(a);
    }
    out
}
