//! The actors: the server, scripted clerks, and lock clients. Each wraps one core and maps its
//! `Ready` to Stateright's `Out`; the only decisions here are the application's (which
//! operation a scripted clerk runs next, when a lock client leaves its critical section).

use aver_core::contract::{Core, NodeId, Ready, TimerCmd};
use aver_core::kvsrv::{
    Bugs, Clerk, ClerkEvent, ClerkTimer, LockClient, LockEvent, LockTimer, Message, Never, Op,
    Server,
};
use stateright::actor::{Actor, Id, Out, model_timeout};
use std::borrow::Cow;

/// The server's actor index: clerks and lock clients are `1..`.
pub const SERVER: usize = 0;

/// The key the lock lives under.
pub const LOCK_KEY: &str = "l";

/// One actor of the model.
#[derive(Clone, Debug)]
pub enum KvActor {
    /// The kvsrv server.
    Server,
    /// A clerk that runs `script`, one operation after another.
    Clerk {
        /// The operations, in order.
        script: Vec<Op>,
        /// Seeded bugs of its core.
        bugs: Bugs,
    },
    /// A lock client that acquires and releases the lock `rounds` times.
    Lock {
        /// Its id (unique among clients).
        id: String,
        /// Acquire/release cycles to run.
        rounds: u8,
        /// Seeded bugs of its core.
        bugs: Bugs,
    },
}

/// One actor's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvState {
    /// The server core.
    Server(Server),
    /// A scripted clerk.
    Clerk {
        /// The core.
        clerk: Clerk,
        /// Operations of the script started so far.
        issued: u8,
        /// The call/return records of the step just taken; the model moves them into its
        /// history and empties this after every step, so it never tells states apart.
        outbox: Vec<ClerkEvent>,
    },
    /// A lock client.
    Lock {
        /// The core.
        client: LockClient,
        /// Acquire/release cycles completed.
        rounds_done: u8,
        /// The lock events of the step just taken (moved out like a clerk's).
        outbox: Vec<LockEvent>,
    },
}

impl KvState {
    /// The server core, if this is the server.
    pub fn server(&self) -> Option<&Server> {
        match self {
            KvState::Server(s) => Some(s),
            _ => None,
        }
    }

    /// The lock client core, if this is one.
    pub fn lock(&self) -> Option<&LockClient> {
        match self {
            KvState::Lock { client, .. } => Some(client),
            _ => None,
        }
    }

    /// The clerk's number for `seq` after renumbering (see `Clerk::canonical_seq`); `None`
    /// for the server.
    pub fn canonical_seq(&self, seq: aver_core::kvsrv::Seq) -> Option<aver_core::kvsrv::Seq> {
        match self {
            KvState::Server(_) => None,
            KvState::Clerk { clerk, .. } => Some(clerk.canonical_seq(seq)),
            KvState::Lock { client, .. } => Some(client.canonical_seq(seq)),
        }
    }

    /// The same state with its clerk renumbered (see `Clerk::canonicalize`).
    pub fn canonical(&self) -> KvState {
        let mut next = self.clone();
        match &mut next {
            KvState::Server(_) => {}
            KvState::Clerk { clerk, .. } => clerk.canonicalize(),
            KvState::Lock { client, .. } => client.canonicalize(),
        }
        next
    }

    /// True if delivering `msg` here does nothing now and ever after (the core's predicate).
    pub fn ignores_forever(&self, msg: &Message) -> bool {
        match self {
            KvState::Server(_) => false,
            KvState::Clerk { clerk, .. } => clerk.ignores_forever(msg),
            KvState::Lock { client, .. } => client.ignores_forever(msg),
        }
    }
}

/// The actors' timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KvTimer {
    /// A clerk's timer.
    Clerk(ClerkTimer),
    /// A lock client's timer (its clerk's retry, or its poll).
    Lock(LockTimer),
    /// A lock holder leaves its critical section and releases.
    Leave,
}

impl KvTimer {
    /// True for a clerk's retransmission timer (plain or inside a lock client).
    pub fn is_retry(self) -> bool {
        matches!(
            self,
            KvTimer::Clerk(ClerkTimer::Retry) | KvTimer::Lock(LockTimer::Clerk(ClerkTimer::Retry))
        )
    }
}

fn node(id: Id) -> NodeId {
    NodeId(usize::from(id) as u32)
}

/// Carries out a core's messages and timers; returns its apply stream.
fn carry_out<A, T: Copy>(
    ready: Ready<Never, Message, A, T>,
    o: &mut Out<KvActor>,
    timer: fn(T) -> KvTimer,
) -> Vec<A> {
    for (to, msg) in ready.messages {
        o.send(Id::from(to.0 as usize), msg);
    }
    for t in ready.timers {
        match t {
            TimerCmd::Set(t) => o.set_timer(timer(t), model_timeout()),
            TimerCmd::Cancel(t) => o.cancel_timer(timer(t)),
        }
    }
    ready.apply
}

impl KvActor {
    /// Starts the script's next operation if the clerk is idle and one is left.
    fn next_op(script: &[Op], clerk: &mut Clerk, issued: &mut u8) {
        if clerk.is_idle() && usize::from(*issued) < script.len() {
            clerk
                .start(script[usize::from(*issued)].clone())
                .expect("idle");
            *issued += 1;
        }
    }

    /// Runs `input` on a copy of a clerk state, then the script; replaces `state` if changed.
    fn step_clerk(
        script: &[Op],
        state: &mut Cow<KvState>,
        o: &mut Out<Self>,
        input: impl FnOnce(&mut Clerk),
    ) {
        let KvState::Clerk { clerk, issued, .. } = state.as_ref() else {
            unreachable!("a clerk actor has a clerk state")
        };
        let (mut clerk, mut issued) = (clerk.clone(), *issued);
        input(&mut clerk);
        let mut outbox = carry_out(clerk.take_ready(), o, KvTimer::Clerk);
        Self::next_op(script, &mut clerk, &mut issued);
        outbox.extend(carry_out(clerk.take_ready(), o, KvTimer::Clerk));
        let next = KvState::Clerk {
            clerk,
            issued,
            outbox,
        };
        if next != **state {
            *state = Cow::Owned(next);
        }
    }

    /// Runs `input` on a copy of a lock client state and reacts to its events: a client that
    /// acquired arms `Leave`; one that released starts its next round, if any.
    fn step_lock(
        rounds: u8,
        state: &mut Cow<KvState>,
        o: &mut Out<Self>,
        input: impl FnOnce(&mut LockClient),
    ) {
        let KvState::Lock {
            client,
            rounds_done,
            ..
        } = state.as_ref()
        else {
            unreachable!("a lock actor has a lock state")
        };
        let (mut client, mut rounds_done) = (client.clone(), *rounds_done);
        input(&mut client);
        let mut outbox = Vec::new();
        loop {
            let events = carry_out(client.take_ready(), o, KvTimer::Lock);
            if events.is_empty() {
                break;
            }
            for e in &events {
                match e {
                    LockEvent::Acquired => o.set_timer(KvTimer::Leave, model_timeout()),
                    LockEvent::Released => {
                        rounds_done += 1;
                        if rounds_done < rounds {
                            client.acquire().expect("idle after a release");
                        }
                    }
                    LockEvent::Kv(_) => {}
                }
            }
            outbox.extend(events);
        }
        let next = KvState::Lock {
            client,
            rounds_done,
            outbox,
        };
        if next != **state {
            *state = Cow::Owned(next);
        }
    }
}

impl Actor for KvActor {
    type Msg = Message;
    type Timer = KvTimer;
    type State = KvState;
    type Storage = ();
    type Random = ();

    fn name(&self) -> String {
        match self {
            KvActor::Server => "server".into(),
            KvActor::Clerk { .. } => "clerk".into(),
            KvActor::Lock { id, .. } => format!("lock {id}"),
        }
    }

    fn on_start(&self, _id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> KvState {
        let server = NodeId(SERVER as u32);
        let mut state = Cow::Owned(match self {
            KvActor::Server => return KvState::Server(Server::new()),
            KvActor::Clerk { bugs, .. } => KvState::Clerk {
                clerk: Clerk::new(server, *bugs),
                issued: 0,
                outbox: Vec::new(),
            },
            KvActor::Lock { id, bugs, .. } => KvState::Lock {
                client: LockClient::new(server, LOCK_KEY, id, *bugs),
                rounds_done: 0,
                outbox: Vec::new(),
            },
        });
        match self {
            KvActor::Server => unreachable!("returned above"),
            KvActor::Clerk { script, .. } => Self::step_clerk(script, &mut state, o, |_| {}),
            KvActor::Lock { rounds, .. } => Self::step_lock(*rounds, &mut state, o, |c| {
                if *rounds > 0 {
                    c.acquire().expect("a new client is idle");
                }
            }),
        }
        state.into_owned()
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<KvState>, src: Id, msg: Message, o: &mut Out<Self>) {
        let from = node(src);
        match self {
            KvActor::Server => {
                let KvState::Server(server) = state.as_ref() else {
                    unreachable!("the server actor has a server state")
                };
                let mut server = server.clone();
                server.on_message(from, msg);
                carry_out(server.take_ready(), o, |t| match t {});
                if server != *state.server().expect("server") {
                    *state = Cow::Owned(KvState::Server(server));
                }
            }
            KvActor::Clerk { script, .. } => {
                Self::step_clerk(script, state, o, |c| c.on_message(from, msg))
            }
            KvActor::Lock { rounds, .. } => {
                Self::step_lock(*rounds, state, o, |c| c.on_message(from, msg))
            }
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<KvState>, timer: &KvTimer, o: &mut Out<Self>) {
        match (self, *timer) {
            (KvActor::Clerk { script, .. }, KvTimer::Clerk(t)) => {
                Self::step_clerk(script, state, o, |c| c.on_timeout(t))
            }
            (KvActor::Lock { rounds, .. }, KvTimer::Lock(t)) => {
                Self::step_lock(*rounds, state, o, |c| c.on_timeout(t))
            }
            (KvActor::Lock { rounds, .. }, KvTimer::Leave) => {
                Self::step_lock(*rounds, state, o, |c| {
                    c.release().expect("Leave is armed only while holding")
                })
            }
            (actor, t) => unreachable!("{actor:?} has no timer {t:?}"),
        }
    }
}
