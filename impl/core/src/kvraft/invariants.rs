//! The KV invariant catalogue (`specs/invariants.md`, `KV-*`), one function per ID.
//!
//! KV-1 (linearizability) is a property of histories: the simulator checks it with
//! `aver-checker` and the models with Stateright's linearizability tester. KV-3 (snapshot
//! faithful) is the rsm's own check ([`crate::rsm::KV_SNAPSHOT_FAITHFUL`]).

use super::machine::KvMachine;
use super::store::Store;
use super::types::{ClientId, Seq};
use crate::contract::Violation;
use crate::raft::LogIndex;
use std::collections::BTreeMap;

/// KV-1 Linearizable: every history of clerk operations is linearizable.
pub const LINEARIZABLE: &str = "KV-1";
/// KV-2 At-Most-Once: a write `(client, seq)` executes at no more than one log index.
pub const AT_MOST_ONCE: &str = "KV-2";
/// KV-3 Snapshot Faithful (see [`crate::rsm::KV_SNAPSHOT_FAITHFUL`]).
pub const SNAPSHOT_FAITHFUL: &str = crate::rsm::KV_SNAPSHOT_FAITHFUL;
/// KV-4 Replica Agreement: servers that applied the same index hold equal state machines.
pub const REPLICA_AGREEMENT: &str = "KV-4";

/// The ghost record of KV-2: where each write executed. A server that replays its log after
/// a restart executes the same write again at the same index, which is not a second
/// execution (its state was rebuilt); executing it at another index is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ledger {
    executed: BTreeMap<(ClientId, Seq), LogIndex>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// Writes recorded.
    pub fn len(&self) -> usize {
        self.executed.len()
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.executed.is_empty()
    }

    /// Where `(client, seq)` executed, if it did.
    pub fn index_of(&self, client: ClientId, seq: Seq) -> Option<LogIndex> {
        self.executed.get(&(client, seq)).copied()
    }
}

/// KV-2: records that some server executed `(client, seq)` at `index`; fails if it executed
/// at another index before.
pub fn at_most_once(
    ledger: &mut Ledger,
    index: LogIndex,
    client: ClientId,
    seq: Seq,
) -> Result<(), Violation> {
    match ledger.executed.insert((client, seq), index) {
        Some(earlier) if earlier != index => Err(Violation::new(
            AT_MOST_ONCE,
            format!("write {client} {seq} executed at {earlier} and again at {index}"),
        )),
        _ => Ok(()),
    }
}

/// KV-4: every two servers that have applied the same index hold equal state machines
/// (store and dedup table). Takes `(server name, applied index, machine)`.
pub fn replica_agreement<St: Store>(
    servers: &[(String, LogIndex, &KvMachine<St>)],
) -> Result<(), Violation> {
    for (k, (a, ia, ma)) in servers.iter().enumerate() {
        for (b, ib, mb) in &servers[k + 1..] {
            if ia == ib && ma != mb {
                return Err(Violation::new(
                    REPLICA_AGREEMENT,
                    format!("{a} and {b} both applied {ia} but hold different state"),
                ));
            }
        }
    }
    Ok(())
}
