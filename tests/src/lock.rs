//! Lab 2 (2025) lock, ported from `src/kvsrv1/lock/lock_test.go` as described in
//! `labs-raft-kv.md` §2.2: clients loop acquire → check the guarded key `l0` is free → write
//! their id into it → 10 ms → clear it → release, for 2 s. Beside the lab's own check ("two
//! clients acquired lock": `l0` not free right after `Acquire`), LOCK-1 (at most one holder)
//! is checked after every event, and the history of every clerk operation — the lock's and
//! `l0`'s — is checked for linearizability (KVSRV-2) at the end.

use crate::kv_lab::{KvLab, LabEvent, LockKind, TEST_LIMIT, seeded_bugs};
use aver_core::kvsrv::{GetResult, Op, Output, PutOutcome, Version};
use aver_sim::sim::{MS, Micros};
use aver_sim::{Outcome, Report};

type Lab = KvLab<LockKind>;

/// How long clients run (`NSEC`).
const NSEC: Micros = 2_000 * MS;
/// The critical section's sleep.
const HOLD: Micros = 10 * MS;
/// The key the lock guards.
const GUARDED: &str = "l0";

/// Where one `oneClient` loop is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// `Put("l0", "", 0)` at start (its result ignored).
    Init,
    Acquiring,
    /// `Get("l0")` right after acquiring.
    CheckFree,
    /// `Put("l0", me, ver)`.
    WriteMe(u64),
    /// The 10 ms sleep.
    Hold(u64),
    /// `Put("l0", "", ver + 1)`.
    Clear,
    Releasing,
    Stopped,
}

fn put(key: &str, value: &str, version: u64) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
        version: Version(version),
    }
}

fn acquire(lab: &mut Lab, c: usize, steps: &mut [Step]) -> Outcome<()> {
    steps[c] = Step::Acquiring;
    lab.input(c, |l| l.acquire().is_ok())
}

fn ok_or_maybe(lab: &Lab, output: &Output) -> Outcome<()> {
    match output {
        Output::Put(PutOutcome::Ok | PutOutcome::Maybe) => Ok(()),
        other => lab.fail(format!("Put error {other}")),
    }
}

/// Client `c`'s reaction to one event; `done`: the 2 s are over (a client stops before its
/// next `Acquire`).
fn on_event(lab: &mut Lab, steps: &mut [Step], e: LabEvent, done: bool) -> Outcome<()> {
    let c = match &e {
        LabEvent::Returned { client, .. }
        | LabEvent::Acquired(client)
        | LabEvent::Released(client)
        | LabEvent::Wake(client) => *client,
    };
    match (steps[c], e) {
        (Step::Init, LabEvent::Returned { .. }) | (Step::Releasing, LabEvent::Released(_)) => {
            if done {
                steps[c] = Step::Stopped;
                return Ok(());
            }
            acquire(lab, c, steps)
        }
        (Step::Acquiring, LabEvent::Acquired(_)) => {
            steps[c] = Step::CheckFree;
            lab.start(
                c,
                Op::Get {
                    key: GUARDED.into(),
                },
            )
        }
        (Step::CheckFree, LabEvent::Returned { output, .. }) => match output {
            Output::Get(GetResult::Value { value, version }) if value.is_empty() => {
                steps[c] = Step::WriteMe(version.0);
                lab.start(c, put(GUARDED, &c.to_string(), version.0))
            }
            Output::Get(GetResult::Value { value, .. }) => lab.fail(format!(
                "two clients acquired lock: {GUARDED} holds {value:?}"
            )),
            other => lab.fail(format!("Get error {other}")),
        },
        (Step::WriteMe(ver), LabEvent::Returned { output, .. }) => {
            ok_or_maybe(lab, &output)?;
            steps[c] = Step::Hold(ver);
            lab.sleep_client(c, HOLD);
            Ok(())
        }
        (Step::Hold(ver), LabEvent::Wake(_)) => {
            steps[c] = Step::Clear;
            lab.start(c, put(GUARDED, "", ver + 1))
        }
        (Step::Clear, LabEvent::Returned { output, .. }) => {
            ok_or_maybe(lab, &output)?;
            steps[c] = Step::Releasing;
            lab.input(c, |l| l.release().is_ok())
        }
        // The lock's own reads and writes while acquiring or releasing.
        (Step::Acquiring | Step::Releasing, LabEvent::Returned { .. }) => Ok(()),
        (step, e) => lab.fail(format!("client {c}: unexpected {e:?} while {step:?}")),
    }
}

/// `runClients(nclnt, reliable)`: `nclnt` clients loop over the lock for 2 s, then stop
/// between two rounds.
fn run_clients(name: &'static str, seed: u64, nclnt: usize, reliable: bool) -> Outcome<Report> {
    let kind = LockKind {
        bugs: seeded_bugs(),
    };
    let mut lab = Lab::new(name, seed, nclnt, reliable, kind);
    lab.check_lock();
    let mut steps = vec![Step::Stopped; nclnt + 1];
    for (c, step) in steps.iter_mut().enumerate().skip(1) {
        *step = Step::Init;
        lab.start(c, put(GUARDED, "", 0))?;
    }
    while let Some(e) = lab.next(NSEC)? {
        on_event(&mut lab, &mut steps, e, false)?;
    }
    while steps.iter().any(|s| *s != Step::Stopped) {
        match lab.next(TEST_LIMIT + 1)? {
            Some(e) => on_event(&mut lab, &mut steps, e, true)?,
            None => return lab.fail("a client never stopped"),
        }
    }
    lab.finish()
}

/// `TestOneClientReliable`: one client, reliable network.
pub fn lock_one_client_reliable(seed: u64) -> Outcome<Report> {
    run_clients("lock_one_client_reliable", seed, 1, true)
}

/// `TestManyClientsReliable`: ten clients, reliable network.
pub fn lock_many_clients_reliable(seed: u64) -> Outcome<Report> {
    run_clients("lock_many_clients_reliable", seed, 10, true)
}

/// `TestOneClientUnreliable`: one client, unreliable network.
pub fn lock_one_client_unreliable(seed: u64) -> Outcome<Report> {
    run_clients("lock_one_client_unreliable", seed, 1, false)
}

/// `TestManyClientsUnreliable`: ten clients, unreliable network.
pub fn lock_many_clients_unreliable(seed: u64) -> Outcome<Report> {
    run_clients("lock_many_clients_unreliable", seed, 10, false)
}
