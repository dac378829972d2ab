//! The deterministic simulator (filled in by the foundation issue).
