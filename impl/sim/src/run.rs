//! What every simulated scenario returns: a report or a [`Failure`] that names its seed and
//! the one command that replays it.

use crate::sim::Micros;
use std::fmt;

/// A failed scenario: what went wrong, when, and how to replay it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The suite (`aver sim SUITE`: `raft`, …).
    pub suite: String,
    /// Scenario name (e.g. `figure8_unreliable_3c`).
    pub test: String,
    /// The seed that reproduces it.
    pub seed: u64,
    /// Virtual time of the failure.
    pub at: Micros,
    /// What went wrong (may span several lines, e.g. where a history was written).
    pub message: String,
    /// The one command that replays this run.
    pub replay: String,
}

impl Failure {
    /// A failure of scenario `test` of `aver sim SUITE` at virtual time `at`; `flags` are the
    /// further `aver sim` flags the run needs to replay (e.g. ` --bug figure8-commit`).
    pub fn sim(
        suite: &str,
        test: &str,
        seed: u64,
        at: Micros,
        message: String,
        flags: &str,
    ) -> Self {
        Failure {
            suite: suite.to_string(),
            test: test.to_string(),
            seed,
            at,
            message,
            replay: format!(
                "cargo run --release -- sim {suite} --test {test} --seed {seed}{flags}"
            ),
        }
    }

    /// The one command that replays this failure.
    pub fn replay(&self) -> &str {
        &self.replay
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} seed={} at {:.3}s: {}\n  replay: {}",
            self.test,
            self.seed,
            self.at as f64 / 1e6,
            self.message,
            self.replay()
        )
    }
}

/// The result of a scenario.
pub type Outcome<T> = Result<T, Failure>;
