//! # aver-runtime
//!
//! The per-node driver: the one thin loop that feeds inputs to a core and carries out its
//! outputs in the contract's order. The deterministic simulator (`impl/sim`) and the real
//! environment (TCP, WAL, clocks; a later issue) both run a core through [`Driver`]; they
//! differ only in their [`Environment`].
//!
//! [`mr`] runs MapReduce's coordinator and workers as real processes.
#![deny(missing_docs)]

pub mod driver;
pub mod mr;

pub use driver::{Driver, Environment};
