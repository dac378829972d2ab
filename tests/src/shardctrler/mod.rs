//! The older 6.5840 shardctrler suite on a Raft-replicated controller (3 servers of the
//! controller core on the rsm on Raft), on the simulator: [`lab`] is the tester, [`scenarios`]
//! the ported tests (TestBasic, TestMinimalAgain, TestMulti) and one beyond the lab's (an
//! unreliable network with partitions, crashes and snapshots). `aver sim shardctrler` runs
//! them; `--bug rebalance-differs` seeds replicas that rebalance differently.

pub mod lab;
pub mod scenarios;

pub use scenarios::{ctrl_basic, ctrl_minimal_again, ctrl_multi, ctrl_unreliable_chaos};
