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
