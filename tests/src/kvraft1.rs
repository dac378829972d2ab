//! The 22 kvraft1 tests of 6.5840 Lab 4 (`src/kvraft1/kvraft_test.go`, 4B and 4C), on the
//! tester in [`crate::kvraft_lab`], with the lab's thresholds: 3 iterations of 1 s of client
//! time, `CheckPutConcurrent` after each, `LogSize ≤ 8 × maxraftstate`, `SnapshotSize == 0`
//! without snapshots and `≤ 500` bytes in `TestSnapshotSize4C`, 1000 Puts within 33.3 s in
//! the speed tests, and every history checked for linearizability.
//!
//! One deliberate difference: `CheckPutConcurrent` requires the key's version to *equal* the
//! number of Puts that returned OK in every test, where the lab accepts `≤ OK + ErrMaybe` on
//! unreliable, crashing or partitioned runs. Our clerk never reports `ErrMaybe`: the servers'
//! dedup table answers a retried Put with its first execution's reply (specs/kv.md), so every
//! Put that executed returned OK to its client and every Put that returned ErrVersion did not
//! execute.

use crate::kvraft_lab::{ELECTION_TIMEOUT, KvRaftLab, get, put};
use aver_core::kvraft::VersionedReply;
use aver_sim::sim::MS;
use aver_sim::{Outcome, Report};

/// `GenericTest`'s shape.
#[derive(Clone, Copy)]
struct Generic {
    clients: usize,
    servers: usize,
    reliable: bool,
    crash: bool,
    partitions: bool,
    max_raft_state: Option<usize>,
    random_keys: bool,
}

/// The lab's `NITER`.
const ITERATIONS: usize = 3;
/// Client time per iteration (`NSEC`), ms.
const CLIENT_MS: u64 = 1_000;
/// `NKEYS` with `randomkeys`.
const KEYS: usize = 100;
/// Most time a client's last operation may take once told to stop (the lab has only its
/// 120 s limit), ms.
const STOP_MS: u64 = 30_000;

fn generic(test: &'static str, seed: u64, g: Generic) -> Outcome<Report> {
    let mut lab = KvRaftLab::new(
        test,
        seed,
        g.servers,
        g.reliable,
        g.max_raft_state,
        g.clients + 1,
    );
    let ck = g.clients;
    let keys = if g.random_keys {
        (0..KEYS).map(|i| format!("k{i}")).collect()
    } else {
        vec!["k".to_string()]
    };
    lab.set_keys(keys);
    let clients: Vec<usize> = (0..g.clients).collect();
    let mut acc = 0;
    for _ in 0..ITERATIONS {
        lab.spawn_clients(&clients)?;
        lab.sleep(CLIENT_MS)?;
        if g.partitions {
            lab.start_partitioner();
        }
        acc += lab.stop_clients(STOP_MS)?;
        if !g.random_keys {
            check_put_concurrent(&mut lab, ck, acc)?;
        }
        if g.partitions {
            lab.stop_partitioner();
            lab.connect_all();
            lab.run_until(lab.now() + ELECTION_TIMEOUT)?;
        }
        if g.crash {
            for i in 0..g.servers {
                lab.shutdown(i);
            }
            lab.sleep(1_000)?;
            for i in 0..g.servers {
                lab.restart(i);
            }
        }
        match g.max_raft_state {
            Some(m) => lab.check_log_size(8 * m)?,
            None if lab.snapshot_size() > 0 => {
                return lab.fail("snapshot used with maxraftstate -1");
            }
            None => {}
        }
    }
    lab.finish()
}

/// `CheckPutConcurrent`: the key's version counts exactly the Puts that returned OK.
fn check_put_concurrent(lab: &mut KvRaftLab, ck: usize, nok: u64) -> Outcome<()> {
    let version = match lab.call(ck, get("k"), 30_000)? {
        VersionedReply::Value { version, .. } => version,
        VersionedReply::NoKey => 0,
        other => return lab.fail(format!("Get(k) returned {other:?}")),
    };
    if version != nok {
        return lab.fail(format!(
            "wrong number of puts: version {version}, {nok} puts returned OK"
        ));
    }
    Ok(())
}

/// `GenericTestSpeed`: after a first Get, 1000 sequential Puts, each OK, within 33.3 s.
fn speed(test: &'static str, seed: u64, max_raft_state: Option<usize>) -> Outcome<Report> {
    const PUTS: u64 = 1_000;
    let mut lab = KvRaftLab::new(test, seed, 3, true, max_raft_state, 1);
    lab.call(0, get("x"), 30_000)?;
    let start = lab.now();
    for i in 0..PUTS {
        match lab.call(0, put("k", &i.to_string(), i), 30_000)? {
            VersionedReply::Ok => {}
            other => return lab.fail(format!("Put {i} returned {other:?}")),
        }
    }
    let took = lab.now() - start;
    lab.check_get(0, "k", &(PUTS - 1).to_string(), PUTS)?;
    // 1000 × (100 ms / 3): better than one operation per heartbeat interval.
    let limit = PUTS * 100 * MS / 3;
    if took > limit {
        return lab.fail(format!(
            "operations completed too slowly: {} ms for {PUTS} puts (limit {} ms)",
            took / MS,
            limit / MS
        ));
    }
    if let Some(m) = max_raft_state {
        lab.check_log_size(8 * m)?;
    }
    lab.finish()
}

macro_rules! generic_tests {
    ($($(#[$doc:meta])* $name:ident: $clients:expr, $servers:expr, $reliable:expr, $crash:expr,
       $partitions:expr, $max:expr, $random:expr;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(seed: u64) -> Outcome<Report> {
                generic(stringify!($name), seed, Generic {
                    clients: $clients,
                    servers: $servers,
                    reliable: $reliable,
                    crash: $crash,
                    partitions: $partitions,
                    max_raft_state: $max,
                    random_keys: $random,
                })
            }
        )*
    };
}

generic_tests! {
    /// `TestBasic4B`: one client, 5 servers, reliable.
    kvraft_basic_4b: 1, 5, true, false, false, None, false;
    /// `TestConcurrent4B`: 5 clients.
    kvraft_concurrent_4b: 5, 5, true, false, false, None, false;
    /// `TestUnreliable4B`: 5 clients, unreliable network.
    kvraft_unreliable_4b: 5, 5, false, false, false, None, false;
    /// `TestManyPartitionsOneClient4B`.
    kvraft_many_partitions_one_client_4b: 1, 5, true, false, true, None, false;
    /// `TestManyPartitionsManyClients4B`.
    kvraft_many_partitions_many_clients_4b: 5, 5, true, false, true, None, false;
    /// `TestPersistOneClient4B`: every server restarts after each iteration.
    kvraft_persist_one_client_4b: 1, 5, true, true, false, None, false;
    /// `TestPersistConcurrent4B`.
    kvraft_persist_concurrent_4b: 5, 5, true, true, false, None, false;
    /// `TestPersistConcurrentUnreliable4B`.
    kvraft_persist_concurrent_unreliable_4b: 5, 5, false, true, false, None, false;
    /// `TestPersistPartition4B`.
    kvraft_persist_partition_4b: 5, 5, true, true, true, None, false;
    /// `TestPersistPartitionUnreliable4B`.
    kvraft_persist_partition_unreliable_4b: 5, 5, false, true, true, None, false;
    /// `TestPersistPartitionUnreliableLinearizable4B`: 15 clients, 7 servers, 100 keys.
    kvraft_persist_partition_unreliable_linearizable_4b: 15, 7, false, true, true, None, true;
    /// `TestSnapshotRecover4C`: maxraftstate 1000.
    kvraft_snapshot_recover_4c: 1, 5, true, true, false, Some(1000), false;
    /// `TestSnapshotRecoverManyClients4C`: 20 clients.
    kvraft_snapshot_recover_many_clients_4c: 20, 5, true, true, false, Some(1000), false;
    /// `TestSnapshotUnreliable4C`.
    kvraft_snapshot_unreliable_4c: 5, 5, false, false, false, Some(1000), false;
    /// `TestSnapshotUnreliableRecover4C`.
    kvraft_snapshot_unreliable_recover_4c: 5, 5, false, true, false, Some(1000), false;
    /// `TestSnapshotUnreliableRecoverConcurrentPartition4C`.
    kvraft_snapshot_unreliable_recover_concurrent_partition_4c:
        5, 5, false, true, true, Some(1000), false;
    /// `TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable4C`: 15 clients, 7
    /// servers, 100 keys.
    kvraft_snapshot_unreliable_recover_concurrent_partition_linearizable_4c:
        15, 7, false, true, true, Some(1000), true;
}

/// `TestSpeed4B`: 1000 Puts within 33.3 s, no snapshots.
pub fn kvraft_speed_4b(seed: u64) -> Outcome<Report> {
    speed("kvraft_speed_4b", seed, None)
}

/// `TestSpeed4C`: the same with maxraftstate 1000.
pub fn kvraft_speed_4c(seed: u64) -> Outcome<Report> {
    speed("kvraft_speed_4c", seed, Some(1000))
}

/// `TestOnePartition4B`: progress in the majority, none in the minority (within 1 s), and the
/// minority's Put completes within 3 s of healing.
pub fn kvraft_one_partition_4b(seed: u64) -> Outcome<Report> {
    let (ck, ckp1, ckp2a, ckp2b) = (0, 1, 2, 3);
    let mut lab = KvRaftLab::new("kvraft_one_partition_4b", seed, 5, false, None, 4);
    let ver0 = lab.put_at_least_once(ck, "1", "13", 0)?;
    let l = lab.leader().unwrap_or(0);
    let (p1, p2) = lab.make_partition(l);
    lab.partition(&p1, &p2);
    lab.restrict_clerk(ckp1, &p1);
    lab.restrict_clerk(ckp2a, &p2);
    lab.restrict_clerk(ckp2b, &p2);
    // Progress in the majority.
    let ver1 = lab.put_at_least_once(ckp1, "1", "14", ver0)?;
    lab.check_get(ckp1, "1", "14", ver1)?;
    // No progress in the minority.
    lab.start(ckp2a, put("1", "15", ver1))?;
    lab.start(ckp2b, get("1"))?;
    lab.sleep(1_000)?;
    if !lab.is_busy(ckp2a) {
        return lab.fail("Put in minority completed");
    }
    if !lab.is_busy(ckp2b) {
        return lab.fail("Get in minority completed");
    }
    lab.check_get(ckp1, "1", "14", ver1)?;
    let ver2 = lab.put_at_least_once(ckp1, "1", "16", ver1)?;
    lab.check_get(ckp1, "1", "16", ver2)?;
    // Completion after healing.
    lab.connect_all();
    lab.connect_clerk(ckp2a);
    lab.connect_clerk(ckp2b);
    lab.sleep(1_000)?;
    let deadline = lab.now() + 3_000 * MS;
    let mut ver = ver1;
    let ver15 = loop {
        if lab.now() >= deadline {
            return lab.fail("Put did not complete within 3 s of healing");
        }
        lab.run_until((lab.now() + 10 * MS).min(deadline))?;
        if lab.is_busy(ckp2a) {
            continue;
        }
        match lab.take_reply(ckp2a) {
            Some(VersionedReply::Ok) => break ver + 1,
            Some(VersionedReply::ErrVersion) => {
                ver += 1;
                lab.start(ckp2a, put("1", "15", ver))?;
            }
            other => return lab.fail(format!("minority Put returned {other:?}")),
        }
    };
    lab.check_get(ck, "1", "15", ver15)?;
    lab.finish()
}

/// `TestSnapshotRPC4C`: a server cut off while the others trim their logs catches up (by
/// InstallSnapshot) and serves every key.
pub fn kvraft_snapshot_rpc_4c(seed: u64) -> Outcome<Report> {
    let (ck, ck1, ck2) = (0, 1, 2);
    let mut lab = KvRaftLab::new("kvraft_snapshot_rpc_4c", seed, 3, true, Some(1000), 3);
    let ver_a = lab.put_at_least_once(ck, "a", "A", 0)?;
    lab.check_get(ck, "a", "A", ver_a)?;
    // A bunch of puts into the majority partition.
    lab.partition(&[0, 1], &[2]);
    lab.restrict_clerk(ck1, &[0, 1]);
    for i in 0..50 {
        let s = i.to_string();
        lab.put_at_least_once(ck1, &s, &s, 0)?;
    }
    lab.sleep(1_000)?;
    lab.put_at_least_once(ck1, "b", "B", 0)?;
    // Check that the majority partition has thrown away most of its log entries.
    lab.check_log_size(8 * 1000)?;
    // Now make the group that requires participation of the lagging server, so that it has
    // to catch up.
    lab.partition(&[0, 2], &[1]);
    lab.restrict_clerk(ck2, &[0, 2]);
    lab.put_at_least_once(ck2, "c", "C", 0)?;
    lab.put_at_least_once(ck2, "d", "D", 0)?;
    lab.check_get(ck2, "a", "A", ver_a)?;
    lab.check_get(ck2, "b", "B", 1)?;
    lab.check_get(ck2, "1", "1", 1)?;
    lab.check_get(ck2, "49", "49", 1)?;
    // Now everybody.
    lab.partition(&[0, 1, 2], &[]);
    lab.put_at_least_once(ck, "e", "E", 0)?;
    lab.check_get(ck, "c", "C", 1)?;
    lab.check_get(ck, "e", "E", 1)?;
    lab.check_get(ck, "1", "1", 1)?;
    lab.finish()
}

/// `TestSnapshotSize4C`: 800 operations on one key keep the persisted Raft state within
/// 8 × 1000 bytes and the snapshot within 500 bytes.
pub fn kvraft_snapshot_size_4c(seed: u64) -> Outcome<Report> {
    let mut lab = KvRaftLab::new("kvraft_snapshot_size_4c", seed, 3, true, Some(1000), 1);
    let mut ver = 0;
    for _ in 0..200 {
        ver = lab.put_at_least_once(0, "x", "0", ver)?;
        lab.check_get(0, "x", "0", ver)?;
        ver = lab.put_at_least_once(0, "x", "1", ver)?;
        lab.check_get(0, "x", "1", ver)?;
    }
    // Check that servers have thrown away most of their log entries.
    lab.check_log_size(8 * 1000)?;
    // Check that the snapshots are not unreasonably large.
    let size = lab.snapshot_size();
    if size > 500 {
        return lab.fail(format!("snapshot too large: {size} bytes > 500"));
    }
    lab.finish()
}

/// Beyond the lab: 20 clients on 100 keys, 7 servers with snapshots, an unreliable network
/// partitioned every 1–1.2 s, and servers crashing and restarting *while* clients run (the
/// lab crashes only between iterations): 5 s of client time, then everything heals and every
/// operation must return; KV-1 on the whole history, KV-2 and Raft's invariants throughout.
pub fn kvraft_many_clients_chaos(seed: u64) -> Outcome<Report> {
    const SERVERS: usize = 7;
    let mut lab = KvRaftLab::new(
        "kvraft_many_clients_chaos",
        seed,
        SERVERS,
        false,
        Some(1000),
        20,
    );
    lab.set_keys((0..KEYS).map(|i| format!("k{i}")).collect());
    let clients: Vec<usize> = (0..20).collect();
    lab.spawn_clients(&clients)?;
    lab.start_partitioner();
    for _ in 0..10 {
        lab.sleep(500)?;
        let i = lab.random_server();
        if lab.sim.is_up(i) {
            // At most 3 of 7 down at once, so a majority can exist.
            if (0..SERVERS).filter(|&s| !lab.sim.is_up(s)).count() < 3 {
                lab.shutdown(i);
            }
        } else {
            lab.sim.start(i);
            lab.connect_one(i);
        }
    }
    lab.stop_partitioner();
    for i in 0..SERVERS {
        lab.restart(i);
    }
    lab.stop_clients(STOP_MS)?;
    lab.check_log_size(8 * 1000)?;
    lab.finish()
}
