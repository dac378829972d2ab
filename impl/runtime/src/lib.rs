//! # aver-runtime
//!
//! The per-node driver — the one thin loop that feeds inputs to a core and carries out its
//! outputs in the contract's order — and the real environment it runs in: framed TCP between
//! nodes ([`frame`], [`net`]), durable storage with a segmented WAL and group commit
//! ([`storage`], [`commit`]), timers from the runtime's clock, and input traces that replay
//! into the core. The deterministic simulator (`impl/sim`) runs cores through the
//! same [`Driver`] with a different [`Environment`].
#![deny(missing_docs)]

pub mod driver;
pub mod frame;
pub mod storage;

pub use driver::{Driver, Environment};
