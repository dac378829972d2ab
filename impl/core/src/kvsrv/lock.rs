//! A lock built only on the kvsrv clerk (6.5840 `kvsrv1/lock`): the lock is one key whose
//! value is the holder's id, or `""` when free.
//!
//! # Protocol
//!
//! * **Acquire**: `Get(l)`. Absent or `""` at version `v` → `Put(l, id, v)`. `OK` → held.
//!   The lock shows another id → wait (the `Poll` timer) and read again. It shows *our* id →
//!   held: an earlier put of ours was applied although we heard `ErrMaybe`.
//!   `ErrVersion`/`ErrNoKey` → someone else moved first: read again. `ErrMaybe` → we do not
//!   know whether we got it: read again, and the id decides.
//! * **Release**: `Put(l, "", v + 1)` with the version our acquiring put created. `OK` →
//!   released. `ErrMaybe`/`ErrVersion` → read: our id still there at `w` → `Put(l, "", w)`;
//!   anything else → our release was applied (and perhaps someone acquired since): released.
//!
//! Ids must be unique per client: the id read back after `ErrMaybe` is the only way to know
//! who holds the lock. The driver supplies it (6.5840 uses `RandValue(8)`).
//!
//! # Outputs
//!
//! The lock client's `Apply` stream carries its clerk's call/return records
//! ([`LockEvent::Kv`], for the history) and [`LockEvent::Acquired`] /
//! [`LockEvent::Released`] when `acquire` / `release` complete.

use super::bugs::{Bug, Bugs};
use super::clerk::{Clerk, ClerkEvent, ClerkTimer, Output, PutOutcome};
use super::message::Message;
use super::store::{GetResult, Op, Version};
use super::{LockReady, Never};
use crate::contract::{Core, NodeId, TimerCmd};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The marker every client writes under the seeded bug `shared-lock-id`.
pub const SHARED_ID: &str = "locked";

/// The lock client's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LockTimer {
    /// The clerk's retry timer.
    Clerk(ClerkTimer),
    /// Someone else holds the lock: read it again.
    Poll,
}

/// What the lock client reports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LockEvent {
    /// A call or return of the underlying clerk (for the history).
    Kv(ClerkEvent),
    /// `acquire` completed: this client holds the lock.
    Acquired,
    /// `release` completed: this client no longer holds the lock.
    Released,
}

/// Which request of a phase is outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// A `Get` of the lock key.
    Read,
    /// A `Put` of the lock key.
    Write,
    /// Waiting for `Poll` (the lock is held by another client).
    Wait,
}

/// Where the lock client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Neither holding nor trying.
    Idle,
    /// In `acquire`.
    Acquiring(Step),
    /// Holding the lock; our id is stored at this version.
    Held {
        /// The version our id was stored with.
        version: Version,
    },
    /// In `release`.
    Releasing(Step),
}

/// `acquire`, `release` or `start` called in a phase that does not allow it, or while the
/// clerk has an operation pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WrongPhase(pub Phase);

impl fmt::Display for WrongPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not allowed while the lock client is {:?} or its clerk is busy",
            self.0
        )
    }
}

impl std::error::Error for WrongPhase {}

/// A lock client: a clerk plus the lock's logic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LockClient {
    key: String,
    id: String,
    bugs: Bugs,
    clerk: Clerk,
    phase: Phase,
    ready: LockReady,
}

impl LockClient {
    /// A client of the lock stored under `key`, identified by `id` (unique per client, not
    /// empty), talking to `server`.
    pub fn new(server: NodeId, key: &str, id: &str, bugs: Bugs) -> LockClient {
        assert!(!id.is_empty(), "a lock id is not empty");
        let id = if bugs.has(Bug::SharedLockId) {
            SHARED_ID
        } else {
            id
        };
        LockClient {
            key: key.into(),
            id: id.into(),
            bugs,
            clerk: Clerk::new(server, bugs),
            phase: Phase::Idle,
            ready: LockReady::default(),
        }
    }

    /// Where the client is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// True while this client believes it holds the lock.
    pub fn holds(&self) -> bool {
        matches!(self.phase, Phase::Held { .. })
    }

    /// The id this client writes into the lock.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The underlying clerk.
    pub fn clerk(&self) -> &Clerk {
        &self.clerk
    }

    /// Starts acquiring the lock ([`LockEvent::Acquired`] when done).
    pub fn acquire(&mut self) -> Result<(), WrongPhase> {
        if self.phase != Phase::Idle || !self.clerk.is_idle() {
            return Err(WrongPhase(self.phase));
        }
        self.read(Phase::Acquiring(Step::Read));
        self.pump();
        Ok(())
    }

    /// Starts releasing the lock ([`LockEvent::Released`] when done).
    pub fn release(&mut self) -> Result<(), WrongPhase> {
        let Phase::Held { version } = self.phase else {
            return Err(WrongPhase(self.phase));
        };
        if !self.clerk.is_idle() {
            return Err(WrongPhase(self.phase));
        }
        self.write("", version, Phase::Releasing(Step::Write));
        self.pump();
        Ok(())
    }

    /// Runs a plain KV operation through the lock's clerk, allowed while idle or holding (the
    /// 6.5840 lock test shares one clerk between the lock and the key it guards). Its
    /// call/return records come out as [`LockEvent::Kv`] like the lock's own.
    pub fn start(&mut self, op: Op) -> Result<super::Seq, WrongPhase> {
        let allowed = matches!(self.phase, Phase::Idle | Phase::Held { .. });
        if !allowed || !self.clerk.is_idle() {
            return Err(WrongPhase(self.phase));
        }
        let seq = self.clerk.start(op).expect("the clerk is idle");
        self.pump();
        Ok(seq)
    }

    /// True if delivering `msg` does nothing now and in every later state (see
    /// [`Clerk::ignores_forever`]).
    pub fn ignores_forever(&self, msg: &Message) -> bool {
        self.clerk.ignores_forever(msg)
    }

    /// Renumbers the clerk's operations (see [`Clerk::canonicalize`]); messages are renamed
    /// with [`LockClient::canonical_seq`].
    pub fn canonicalize(&mut self) {
        self.clerk.canonicalize();
    }

    /// See [`Clerk::canonical_seq`].
    pub fn canonical_seq(&self, seq: super::Seq) -> super::Seq {
        self.clerk.canonical_seq(seq)
    }

    fn read(&mut self, phase: Phase) {
        self.phase = phase;
        let key = self.key.clone();
        self.clerk
            .get(&key)
            .expect("the clerk is idle between steps");
    }

    fn write(&mut self, value: &str, version: Version, phase: Phase) {
        self.phase = phase;
        let key = self.key.clone();
        self.clerk
            .put(&key, value, version)
            .expect("the clerk is idle between steps");
    }

    /// Moves the clerk's outputs into ours, reacting to every operation that returned (which
    /// may start the next one), until the clerk has nothing more to say.
    fn pump(&mut self) {
        loop {
            let ready = self.clerk.take_ready();
            self.ready.messages.extend(ready.messages);
            let timers = ready.timers.into_iter().map(|t| match t {
                TimerCmd::Set(t) => TimerCmd::Set(LockTimer::Clerk(t)),
                TimerCmd::Cancel(t) => TimerCmd::Cancel(LockTimer::Clerk(t)),
            });
            self.ready.timers.extend(timers);
            let mut returned = Vec::new();
            for event in ready.apply {
                if let ClerkEvent::Return { op, output, .. } = &event {
                    returned.push((op.clone(), output.clone()));
                }
                self.ready.apply.push(LockEvent::Kv(event));
            }
            if returned.is_empty() {
                return;
            }
            for (op, output) in returned {
                self.on_return(&op, output);
            }
        }
    }

    fn on_return(&mut self, op: &Op, output: Output) {
        match (self.phase, output) {
            (Phase::Acquiring(Step::Read), Output::Get(r)) => self.acquire_read(r),
            (Phase::Acquiring(Step::Write), Output::Put(p)) => self.acquire_wrote(op, p),
            (Phase::Releasing(Step::Read), Output::Get(r)) => self.release_read(r),
            (Phase::Releasing(Step::Write), Output::Put(p)) => self.release_wrote(p),
            // A plain operation of the client's own (`start`).
            (Phase::Idle | Phase::Held { .. }, _) => {}
            (phase, output) => unreachable!("{output} returned while {phase:?}"),
        }
    }

    fn acquire_read(&mut self, read: GetResult) {
        match read {
            GetResult::NoKey => {
                self.write(&self.id.clone(), Version(0), Phase::Acquiring(Step::Write))
            }
            GetResult::Value { value, version } if value.is_empty() => {
                self.write(&self.id.clone(), version, Phase::Acquiring(Step::Write))
            }
            GetResult::Value { value, version } if value == self.id => self.become_held(version),
            GetResult::Value { .. } => {
                self.phase = Phase::Acquiring(Step::Wait);
                self.ready.timers.push(TimerCmd::Set(LockTimer::Poll));
            }
        }
    }

    fn acquire_wrote(&mut self, op: &Op, outcome: PutOutcome) {
        let Op::Put { version, .. } = op else {
            unreachable!("a put returned a put outcome")
        };
        match outcome {
            PutOutcome::Ok => self.become_held(version.next()),
            PutOutcome::Maybe if self.bugs.has(Bug::AcquireMaybeAsHeld) => {
                self.become_held(version.next())
            }
            PutOutcome::Maybe | PutOutcome::Version | PutOutcome::NoKey => {
                self.read(Phase::Acquiring(Step::Read))
            }
        }
    }

    fn become_held(&mut self, version: Version) {
        self.phase = Phase::Held { version };
        self.ready.apply.push(LockEvent::Acquired);
    }

    fn release_read(&mut self, read: GetResult) {
        match read {
            GetResult::Value { value, version }
                if value == self.id || self.bugs.has(Bug::ReleaseWithoutOwnership) =>
            {
                self.write("", version, Phase::Releasing(Step::Write))
            }
            GetResult::Value { .. } | GetResult::NoKey => self.become_idle(),
        }
    }

    fn release_wrote(&mut self, outcome: PutOutcome) {
        match outcome {
            PutOutcome::Ok | PutOutcome::NoKey => self.become_idle(),
            PutOutcome::Maybe | PutOutcome::Version => self.read(Phase::Releasing(Step::Read)),
        }
    }

    fn become_idle(&mut self) {
        self.phase = Phase::Idle;
        self.ready.apply.push(LockEvent::Released);
    }
}

impl Core for LockClient {
    type Persist = Never;
    type Msg = Message;
    type Apply = LockEvent;
    type Timer = LockTimer;

    fn on_message(&mut self, from: NodeId, msg: Message) {
        self.clerk.on_message(from, msg);
        self.pump();
    }

    fn on_timeout(&mut self, timer: LockTimer) {
        match timer {
            LockTimer::Clerk(t) => self.clerk.on_timeout(t),
            LockTimer::Poll => {
                if self.phase == Phase::Acquiring(Step::Wait) {
                    self.read(Phase::Acquiring(Step::Read));
                }
            }
        }
        self.pump();
    }

    fn take_ready(&mut self) -> LockReady {
        std::mem::take(&mut self.ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kvsrv::{Seq, Server};

    const SERVER: NodeId = NodeId(0);

    /// Runs `c` against the server until it sends nothing more; the replies to the first
    /// `lose` requests are dropped (the request executed, its reply lost). Returns the lock
    /// events.
    fn run(c: &mut LockClient, me: NodeId, server: &mut Server, lose: usize) -> Vec<LockEvent> {
        let mut events = Vec::new();
        let mut lose = lose;
        loop {
            let ready = c.take_ready();
            events.extend(ready.apply);
            if ready.messages.is_empty() {
                return events;
            }
            for (to, msg) in ready.messages {
                assert_eq!(to, SERVER);
                server.on_message(me, msg);
                for (_, reply) in server.take_ready().messages {
                    if lose > 0 {
                        lose -= 1;
                    } else {
                        c.on_message(SERVER, reply);
                    }
                }
            }
        }
    }

    fn done(events: &[LockEvent]) -> Vec<&LockEvent> {
        events
            .iter()
            .filter(|e| !matches!(e, LockEvent::Kv(_)))
            .collect()
    }

    /// The acquiring put is applied but its reply lost; the retransmission gets `ErrMaybe`;
    /// reading the lock back shows our id: held.
    #[test]
    fn errmaybe_on_acquire_reads_back_its_own_id() {
        let mut server = Server::new();
        let mut a = LockClient::new(SERVER, "l", "a", Bugs::NONE);
        a.acquire().unwrap();
        a.take_ready(); // the Get, answered here by hand
        // The Get is answered NoKey; the Put(l, a, v0) applies, its reply is lost.
        a.on_message(
            SERVER,
            Message::GetReply {
                seq: Seq(1),
                result: GetResult::NoKey,
            },
        );
        run(&mut a, NodeId(1), &mut server, 1);
        assert_eq!(a.phase(), Phase::Acquiring(Step::Write));
        a.on_timeout(LockTimer::Clerk(ClerkTimer::Retry));
        let events = run(&mut a, NodeId(1), &mut server, 0);
        assert_eq!(done(&events), vec![&LockEvent::Acquired]);
        assert_eq!(
            a.phase(),
            Phase::Held {
                version: Version(1)
            }
        );
        assert!(events.iter().any(|e| matches!(
            e,
            LockEvent::Kv(ClerkEvent::Return {
                output: Output::Put(PutOutcome::Maybe),
                ..
            })
        )));
    }

    /// A release applied with its reply lost comes back `ErrMaybe`; meanwhile `b` acquired.
    /// Reading the lock shows `b`'s id, so `a` is released and leaves `b`'s lock alone.
    #[test]
    fn release_after_errmaybe_leaves_the_next_holder_alone() {
        let mut server = Server::new();
        let mut a = LockClient::new(SERVER, "l", "a", Bugs::NONE);
        let mut b = LockClient::new(SERVER, "l", "b", Bugs::NONE);
        a.acquire().unwrap();
        run(&mut a, NodeId(1), &mut server, 0);
        assert!(a.holds());
        a.release().unwrap();
        run(&mut a, NodeId(1), &mut server, 1); // the release applies, its reply is lost
        b.acquire().unwrap();
        run(&mut b, NodeId(2), &mut server, 0);
        assert!(b.holds());
        a.on_timeout(LockTimer::Clerk(ClerkTimer::Retry));
        // ErrMaybe → Get → sees b's id: released.
        let events = run(&mut a, NodeId(1), &mut server, 0);
        assert_eq!(done(&events), vec![&LockEvent::Released]);
        let stored = server.store().entry("l").unwrap();
        assert_eq!(stored.value, "b");
        assert!(invariants_hold(&[&a, &b], &server));
    }

    fn invariants_hold(clients: &[&LockClient], server: &Server) -> bool {
        use crate::kvsrv::invariants;
        invariants::mutual_exclusion(clients).is_ok()
            && invariants::holder_stored(clients, server.store()).is_ok()
    }
}
