//! Counterexamples (filled in below).
