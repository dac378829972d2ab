//! MapReduce as real processes: the coordinator server and the worker process around the pure
//! cores of [`aver_core::mr`], their transport (length-prefixed frames on a Unix-domain
//! socket; self-contained here), the file-level execution of map and reduce tasks, and the
//! registry of applications by name.

pub mod apps;
pub mod coordinator;
pub mod exec;
pub mod transport;
pub mod worker;
