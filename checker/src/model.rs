//! The sequential specification a history is checked against.
//!
//! A model is a set of pure functions, as in Porcupine: no interior state, no I/O. States are
//! compared by `Eq` and hashed by `Hash` because the search memoises (linearized set, state)
//! pairs; two states that are equal must behave identically from then on.

use crate::Operation;
use std::hash::Hash;

/// A deterministic sequential specification.
///
/// To plug in your own system: pick `Input`/`Output` types for its operations and a `State`
/// type (cheap to clone: the search clones states only when it finds a new one, but `step`
/// returns owned states). `step` returns the next state, or `None` when the output cannot
/// follow from `input` in `state`. If your operation may have several outcomes from one
/// state, implement [`NondeterministicModel`] instead and use [`PowerSet`].
pub trait Model: Sync {
    /// A state of the specified object (`Send` and `Sync`: the search may run on several
    /// threads, which read the states interned before they started without a lock).
    type State: Clone + Eq + Hash + Send + Sync;
    /// An operation's input (what was asked). Equal inputs must mean equal operations: the
    /// search treats never-returned operations with equal inputs as interchangeable.
    type Input: Sync + PartialEq;
    /// An operation's output (what was observed).
    type Output: Sync;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies one operation; `output == None` means the outcome is unknown and must be
    /// accepted whatever it was.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// The partition an operation belongs to (P-compositionality): operations in different
    /// partitions must be independent, e.g. operations on different keys. Default: one.
    fn partition(&self, _input: &Self::Input) -> String {
        String::new()
    }

    /// True when the operation never changes the state: from every state, `step` returns
    /// either `None` or a state equal to the one it was given (a read, a get, a
    /// compare-and-set that failed). Default: false.
    ///
    /// The search then linearizes such an operation as soon as it may and the model accepts
    /// it, without trying other orders at that point: if any linearization exists, one
    /// exists with the read moved to that point (it changes nothing, and everything that
    /// had to precede it already does). Answering `true` wrongly makes the checker unsound.
    fn is_read_only(&self, _input: &Self::Input, _output: Option<&Self::Output>) -> bool {
        false
    }

    /// For each operation of one partition (ordered by call), whether it is an operation
    /// that never returned which no linearization needs: whenever the partition is
    /// linearizable, it is linearizable without it (it never took effect). Typically a
    /// write whose value nobody observed. Such operations are left out of the search.
    /// Default: none. Answering `true` wrongly makes the checker unsound.
    fn unneeded(&self, ops: &[&Operation<Self::Input, Self::Output>]) -> Vec<bool> {
        vec![false; ops.len()]
    }

    /// Whether states recur: whether the search often reaches one state with different
    /// linearized sets (a register's few values), so that storing each distinct state once
    /// pays for looking every new one up. Default: true. A model whose states are nearly
    /// always new where they are reached (a KV value that appends extend) answers false:
    /// the memo then keeps a copy of each configuration's state, compared by `Eq`. Either
    /// answer gives the same verdicts; a wrong one costs only time or memory.
    fn states_recur(&self) -> bool {
        true
    }

    /// One-line description of an operation, for counterexamples.
    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String;

    /// One-line description of a state, for counterexamples.
    fn describe_state(&self, state: &Self::State) -> String;
}

/// A sequential specification in which one operation may lead to several states.
///
/// Checked through [`PowerSet`], which tracks the set of states the object could be in.
pub trait NondeterministicModel: Sync {
    /// A state; `Ord` gives sets of states one canonical order.
    type State: Clone + Eq + Hash + Ord + Send + Sync;
    /// An operation's input (see [`Model::Input`]).
    type Input: Sync + PartialEq;
    /// An operation's output.
    type Output: Sync;

    /// The possible initial states (at least one).
    fn init(&self) -> Vec<Self::State>;

    /// Every state that `input` with this `output` may lead to from `state` (empty: illegal).
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Vec<Self::State>;

    /// The partition of an operation; see [`Model::partition`].
    fn partition(&self, _input: &Self::Input) -> String {
        String::new()
    }

    /// One-line description of an operation.
    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String;

    /// One-line description of a state.
    fn describe_state(&self, state: &Self::State) -> String;
}

/// Turns a [`NondeterministicModel`] into a [`Model`] whose state is the sorted set of
/// possible states (the subset construction); an operation is legal when it is legal from at
/// least one of them.
#[derive(Clone, Copy, Debug, Default)]
pub struct PowerSet<M>(pub M);

impl<M: NondeterministicModel> Model for PowerSet<M> {
    type State = Vec<M::State>;
    type Input = M::Input;
    type Output = M::Output;

    fn init(&self) -> Self::State {
        canonical(self.0.init())
    }

    fn step(
        &self,
        states: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State> {
        let next: Vec<M::State> = states
            .iter()
            .flat_map(|s| self.0.step(s, input, output))
            .collect();
        (!next.is_empty()).then(|| canonical(next))
    }

    fn partition(&self, input: &Self::Input) -> String {
        self.0.partition(input)
    }

    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        self.0.describe_operation(input, output)
    }

    fn describe_state(&self, states: &Self::State) -> String {
        let parts: Vec<String> = states.iter().map(|s| self.0.describe_state(s)).collect();
        match parts.len() {
            1 => parts.into_iter().next().unwrap_or_default(),
            _ => format!("one of {{{}}}", parts.join(", ")),
        }
    }
}

fn canonical<S: Ord>(mut states: Vec<S>) -> Vec<S> {
    states.sort();
    states.dedup();
    states
}
