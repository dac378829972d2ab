//! Every seeded kvsrv/lock bug that the model catches (`models/tests/kvsrv.rs`) is caught by
//! the simulator too, by what a user loses: a non-linearizable history (KVSRV-2) or two
//! clients holding the lock (LOCK-1), never by a check that restates the fix. Each failure
//! names its seed and replay command, and writes the history with the `aver lin` command that
//! shows it. The seeds are the first that catch each bug (`aver sim kv --bug NAME --test T
//! --seeds 10` shows how often; specs/bugs.md has the figures).

use aver_core::kvsrv::{Bug, Bugs};

/// Runs `test` on `seed` with `bug` seeded; asserts it fails, by `property`, and that the
/// failure replays with the bug and explains the history.
fn caught(bug: Bug, test: &str, seed: u64, property: &str) {
    aver_tests::kv_lab::seed_bugs(Bugs::only(bug));
    let outcome = aver_tests::run_one(aver_tests::find(test).unwrap(), seed);
    aver_tests::kv_lab::seed_bugs(Bugs::NONE);
    let failure = outcome.expect_err("the seeded bug went unnoticed");
    assert!(
        failure.message.contains(property),
        "{bug} caught by something else than {property}: {failure}"
    );
    let replay = failure.replay();
    assert!(
        replay.contains(&format!("--test {test} --seed {seed}")),
        "{replay}"
    );
    assert!(replay.contains(&format!("--bug {bug}")), "{replay}");
    assert!(failure.message.contains("--html"), "{}", failure.message);
}

const NOT_LINEARIZABLE: &str = "not linearizable";
const TWO_HOLDERS: &str = "LOCK-1 violated";

/// `errmaybe-as-ok`: a retried put answered `ErrVersion` reported as `OK` while another
/// client's put won: KVSRV-2.
#[test]
fn errmaybe_as_ok_is_not_linearizable() {
    caught(
        Bug::ErrMaybeAsOk,
        "kvsrv1_put_concurrent_unreliable",
        1,
        NOT_LINEARIZABLE,
    );
}

/// `errmaybe-as-ok` under the lock: a client believes its acquiring put won: LOCK-1.
#[test]
fn errmaybe_as_ok_lets_two_clients_in() {
    caught(
        Bug::ErrMaybeAsOk,
        "lock_many_clients_unreliable",
        1,
        TWO_HOLDERS,
    );
}

/// `no-errmaybe`: a retried put that took effect reported as `ErrVersion`: KVSRV-2.
#[test]
fn no_errmaybe_is_not_linearizable() {
    caught(
        Bug::NoErrMaybe,
        "kvsrv1_put_concurrent_unreliable",
        1,
        NOT_LINEARIZABLE,
    );
}

/// `acquire-maybe-as-held`: `ErrMaybe` on the acquiring put taken as acquired: LOCK-1.
#[test]
fn acquire_maybe_as_held_lets_two_clients_in() {
    caught(
        Bug::AcquireMaybeAsHeld,
        "lock_many_clients_unreliable",
        1,
        TWO_HOLDERS,
    );
}

/// `release-without-ownership`: a release frees another client's lock: LOCK-1.
#[test]
fn release_without_ownership_lets_two_clients_in() {
    caught(
        Bug::ReleaseWithoutOwnership,
        "lock_many_clients_unreliable",
        4,
        TWO_HOLDERS,
    );
}

/// `shared-lock-id`: every client writes the same marker: LOCK-1.
#[test]
fn shared_lock_id_lets_two_clients_in() {
    caught(
        Bug::SharedLockId,
        "lock_many_clients_unreliable",
        1,
        TWO_HOLDERS,
    );
}

// ---- kvraft (Lab 4) ------------------------------------------------------------------------

use aver_core::kvraft::{KvBug, KvBugs};

/// Runs kvraft scenario `test` on `seed` with `bug` seeded; asserts it fails by `property`
/// (a consequence: KV-1 or KV-2), with a replay command that seeds the bug and the history
/// written with its `aver lin --html` command.
fn kvraft_caught(bug: KvBug, test: &str, seed: u64, property: &str) {
    aver_tests::kvraft_lab::seed_bugs(KvBugs::only(bug));
    let outcome = aver_tests::run_one(aver_tests::find(test).unwrap(), seed);
    aver_tests::kvraft_lab::seed_bugs(KvBugs::NONE);
    let failure = outcome.expect_err("the seeded bug went unnoticed");
    assert!(
        failure.message.contains(property),
        "{bug} caught by something else than {property}: {failure}"
    );
    let replay = failure.replay();
    assert!(
        replay.contains(&format!("--test {test} --seed {seed}")),
        "{replay}"
    );
    assert!(replay.contains(&format!("--bug {bug}")), "{replay}");
    assert!(failure.message.contains("--html"), "{}", failure.message);
}

const KV1: &str = "not linearizable";

/// `reply-before-apply`: an answer before the entry commits (`TestConcurrent4B`): KV-1.
#[test]
fn kvraft_reply_before_apply_is_not_linearizable() {
    kvraft_caught(KvBug::ReplyBeforeApply, "kvraft_concurrent_4b", 1, KV1);
}

/// `accept-other-entry`: another term's entry at the index taken as ours
/// (`TestOnePartition4B`): KV-1.
#[test]
fn kvraft_accept_other_entry_is_not_linearizable() {
    kvraft_caught(KvBug::AcceptOtherEntry, "kvraft_one_partition_4b", 1, KV1);
}

/// `local-read`: a deposed leader's stale Get (`TestPersistPartitionUnreliable4B`): KV-1.
#[test]
fn kvraft_local_read_is_not_linearizable() {
    kvraft_caught(
        KvBug::LocalRead,
        "kvraft_persist_partition_unreliable_4b",
        1,
        KV1,
    );
}

/// `clerk-reuses-seq`: new Puts answered with the old reply (`TestBasic4B`): KV-1.
#[test]
fn kvraft_clerk_reuses_seq_is_not_linearizable() {
    kvraft_caught(KvBug::ClerkReusesSeq, "kvraft_basic_4b", 1, KV1);
}

/// `read-without-quorum`: a minority leader's ReadIndex (`TestManyPartitionsManyClients4B`):
/// KV-1.
#[test]
fn kvraft_read_without_quorum_is_not_linearizable() {
    kvraft_caught(
        KvBug::ReadWithoutQuorum,
        "kvraft_many_partitions_many_clients_4b",
        1,
        KV1,
    );
}

/// `dedup-not-in-snapshot`: a restored server re-executes a retried write (the chaos
/// scenario: snapshots, crashes and partitions while clients run): KV-2.
#[test]
fn kvraft_dedup_not_in_snapshot_executes_twice() {
    kvraft_caught(
        KvBug::DedupNotInSnapshot,
        "kvraft_many_clients_chaos",
        4,
        "KV-2 violated",
    );
}

/// `read-before-term-commit`: a new leader answers a ReadIndex Get before an entry of its
/// term commits, so its commit index may still lag a write an earlier leader acknowledged
/// (the chaos scenario, seed 33): KV-1, a Get after an acknowledged Put returns NoKey.
#[test]
fn kvraft_read_before_term_commit_is_not_linearizable() {
    kvraft_caught(
        KvBug::ReadBeforeTermCommit,
        "kvraft_many_clients_chaos",
        33,
        KV1,
    );
}
