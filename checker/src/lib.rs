//! Linearizability checker (filled in by the checker issue).
