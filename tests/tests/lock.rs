//! Lab 2's lock tests (`src/kvsrv1/lock/lock_test.go`, 2025) on the deterministic simulator,
//! on a fixed seed (two for the unreliable ones): LOCK-1 (Mutual Exclusion) after every event,
//! the lab's own check (the guarded key is free right after `Acquire`), and the history of
//! every clerk operation checked for linearizability (KVSRV-2). `aver sim kv --seeds N` runs
//! them over many seeds.

/// `TestOneClientReliable`: one client, reliable network; LOCK-1, KVSRV-2.
#[test]
fn lock_one_client_reliable() {
    aver_tests::check("lock_one_client_reliable", 1);
}

/// `TestManyClientsReliable`: ten clients, reliable network; LOCK-1, KVSRV-2.
#[test]
fn lock_many_clients_reliable() {
    aver_tests::check("lock_many_clients_reliable", 1);
}

/// `TestOneClientUnreliable`: one client, unreliable network; LOCK-1, KVSRV-2.
#[test]
fn lock_one_client_unreliable() {
    for seed in 1..=2 {
        aver_tests::check("lock_one_client_unreliable", seed);
    }
}

/// `TestManyClientsUnreliable`: ten clients, unreliable network; LOCK-1, KVSRV-2.
#[test]
fn lock_many_clients_unreliable() {
    for seed in 1..=2 {
        aver_tests::check("lock_many_clients_unreliable", seed);
    }
}
