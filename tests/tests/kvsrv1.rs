//! Lab 2's kvsrv1 tests (`src/kvsrv1/kvsrv_test.go`, 2025) on the deterministic simulator, on
//! a fixed seed; every run's history is checked for linearizability (KVSRV-2), and KVSRV-1 is
//! the server's own step check. `aver sim kv --seeds N` runs them over many seeds.

/// The memory test measures the server's heap with this allocator.
#[global_allocator]
static ALLOC: aver_tests::alloc::CountingAlloc = aver_tests::alloc::CountingAlloc;

/// The fixed seed of `cargo test`.
const SEED: u64 = 1;

/// `TestReliablePut`: `OK`, version 1, `ErrVersion`, `ErrNoKey` for put and get; KVSRV-1/2.
#[test]
fn kvsrv1_reliable_put() {
    aver_tests::check("kvsrv1_reliable_put", SEED);
}

/// `TestPutConcurrentReliable`: 10 clients for 1 s; version == puts answered `OK`; KVSRV-2.
#[test]
fn kvsrv1_put_concurrent_reliable() {
    aver_tests::check("kvsrv1_put_concurrent_reliable", SEED);
}

/// `TestMemPutManyClientsReliable`: 100 000 clients; the server grows ≤ 200 (and ≤ 10) bytes
/// per client; KVSRV-2.
#[test]
fn kvsrv1_mem_put_many_clients_reliable() {
    aver_tests::check("kvsrv1_mem_put_many_clients_reliable", SEED);
}

/// `TestUnreliableNet`: 100 rounds of retried puts; a put takes effect once, `ErrMaybe` is
/// seen; KVSRV-2.
#[test]
fn kvsrv1_unreliable_net() {
    aver_tests::check("kvsrv1_unreliable_net", SEED);
}

/// `TestPutConcurrentReliable`'s clients on the unreliable network (not a lab test): version
/// ≤ puts answered `OK` or `ErrMaybe`; KVSRV-2.
#[test]
fn kvsrv1_put_concurrent_unreliable() {
    aver_tests::check("kvsrv1_put_concurrent_unreliable", SEED);
}
