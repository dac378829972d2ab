//! The kvsrv and lock invariants of the catalogue (`specs/invariants.md`), one plain function
//! per ID. Linearizability of the clerks' history (KVSRV-2) is decided by the checker crate
//! (`aver_checker`, model `versioned-kv`), which the drivers call on the history they record.

use super::lock::LockClient;
use super::store::{Entry, PutResult, Store, Version};
use crate::contract::Violation;

/// KVSRV-1 Version Step: a put changes its key exactly when it reports `OK`, and then stores
/// its value at the version it named + 1; a key's version never goes down.
pub const VERSION_STEP: &str = "KVSRV-1";
/// KVSRV-2 Linearizable: the clerks' recorded history is linearizable for the versioned KV
/// (an `ErrMaybe` put took effect or did not; an operation without a return may take effect
/// any time after its call, or never).
pub const LINEARIZABLE: &str = "KVSRV-2";
/// LOCK-1 Mutual Exclusion: at most one lock client holds the lock at a time.
pub const MUTUAL_EXCLUSION: &str = "LOCK-1";
/// LOCK-2 Holder Stored: while a client holds the lock, the lock key stores that client's id
/// at the version the client holds it with.
pub const HOLDER_STORED: &str = "LOCK-2";

/// KVSRV-1 across one put on `key`: `before`/`after` are the key's entry around it.
pub fn version_step(
    key: &str,
    before: Option<&Entry>,
    after: Option<&Entry>,
    value: &str,
    result: PutResult,
) -> Result<(), Violation> {
    let version = |e: Option<&Entry>| e.map_or(Version(0), |e| e.version);
    let (v0, v1) = (version(before), version(after));
    let ok = match result {
        PutResult::Ok => v1 == v0.next() && after.is_some_and(|e| e.value == value),
        PutResult::NoKey | PutResult::Version => before == after,
    };
    if ok {
        Ok(())
    } else {
        Err(Violation::new(
            VERSION_STEP,
            format!("put {key:?} answered {result}: {v0} -> {v1}, {before:?} -> {after:?}"),
        ))
    }
}

/// LOCK-1 over every lock client of one lock (crashed or not).
pub fn mutual_exclusion(clients: &[&LockClient]) -> Result<(), Violation> {
    let holders: Vec<&str> = clients
        .iter()
        .filter(|c| c.holds())
        .map(|c| c.id())
        .collect();
    if holders.len() > 1 {
        return Err(Violation::new(
            MUTUAL_EXCLUSION,
            format!("{} clients hold the lock: {holders:?}", holders.len()),
        ));
    }
    Ok(())
}

/// LOCK-2 over every lock client and the server's store.
pub fn holder_stored(clients: &[&LockClient], store: &Store) -> Result<(), Violation> {
    for c in clients {
        let super::lock::Phase::Held { version } = c.phase() else {
            continue;
        };
        let stored = store.entry(c.key());
        if stored.is_none_or(|e| e.value != c.id() || e.version != version) {
            return Err(Violation::new(
                HOLDER_STORED,
                format!(
                    "{:?} holds lock {:?} at {version}, but the store has {stored:?}",
                    c.id(),
                    c.key()
                ),
            ));
        }
    }
    Ok(())
}
