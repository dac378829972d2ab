//! Two kinds of nodes in one simulation: servers and clients (clerks).
//!
//! A [`crate::sim::Sim`] runs one [`NodeKind`]. [`Pair`] makes one out of a server kind and a
//! client kind whose cores exchange the same message type: nodes `0..servers` boot as
//! servers, the rest as clients. Its core is [`Member`], an enum over the two cores whose
//! persist operations, outputs and timers are tagged [`Member`]s too, so a harness tells a
//! server's apply from a client's reply by the variant.
//!
//! Protocols with more roles (a shard controller, shard groups and clerks) nest pairs or write
//! their own enum core the same way.

use crate::sim::{Micros, NodeKind, Persist, Timer};
use aver_core::contract::{Core, NodeId, Ready, TimerCmd, Violation};
use rand_chacha::ChaCha8Rng;

/// A node that is either a server or a client; also tags their writes, outputs and timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Member<S, C> {
    /// A server (or a server's write, output, timer).
    Server(S),
    /// A client (or a client's write, output, timer).
    Client(C),
}

impl<S, C> Member<S, C> {
    /// The server, if this is one.
    pub fn server(&self) -> Option<&S> {
        match self {
            Member::Server(s) => Some(s),
            Member::Client(_) => None,
        }
    }
    /// The server, mutably, if this is one.
    pub fn server_mut(&mut self) -> Option<&mut S> {
        match self {
            Member::Server(s) => Some(s),
            Member::Client(_) => None,
        }
    }
    /// The client, if this is one.
    pub fn client(&self) -> Option<&C> {
        match self {
            Member::Client(c) => Some(c),
            Member::Server(_) => None,
        }
    }
    /// The client, mutably, if this is one.
    pub fn client_mut(&mut self) -> Option<&mut C> {
        match self {
            Member::Client(c) => Some(c),
            Member::Server(_) => None,
        }
    }
}

/// Re-tags one core's `Ready`.
fn tag<P, A, T, P2, A2, T2, M>(
    ready: Ready<P, M, A, T>,
    p: fn(P) -> P2,
    a: fn(A) -> A2,
    t: fn(T) -> T2,
) -> Ready<P2, M, A2, T2> {
    let timer = |cmd| match cmd {
        TimerCmd::Set(x) => TimerCmd::Set(t(x)),
        TimerCmd::Cancel(x) => TimerCmd::Cancel(t(x)),
    };
    Ready {
        persist: ready.persist.into_iter().map(p).collect(),
        messages: ready.messages,
        apply: ready.apply.into_iter().map(a).collect(),
        timers: ready.timers.into_iter().map(timer).collect(),
    }
}

impl<S: Core, C: Core<Msg = S::Msg>> Core for Member<S, C> {
    type Persist = Member<S::Persist, C::Persist>;
    type Msg = S::Msg;
    type Apply = Member<S::Apply, C::Apply>;
    type Timer = Member<S::Timer, C::Timer>;

    fn on_message(&mut self, from: NodeId, msg: S::Msg) {
        match self {
            Member::Server(s) => s.on_message(from, msg),
            Member::Client(c) => c.on_message(from, msg),
        }
    }

    fn on_timeout(&mut self, timer: Self::Timer) {
        // A node only ever sets timers of its own role, so the other pairs cannot occur.
        match (self, timer) {
            (Member::Server(s), Member::Server(t)) => s.on_timeout(t),
            (Member::Client(c), Member::Client(t)) => c.on_timeout(t),
            _ => debug_assert!(false, "a timer of the other role"),
        }
    }

    fn take_ready(&mut self) -> Ready<Self::Persist, S::Msg, Self::Apply, Self::Timer> {
        match self {
            Member::Server(s) => tag(
                s.take_ready(),
                Member::Server,
                Member::Server,
                Member::Server,
            ),
            Member::Client(c) => tag(
                c.take_ready(),
                Member::Client,
                Member::Client,
                Member::Client,
            ),
        }
    }
}

/// Servers of kind `S` (nodes `0..servers`) and clients of kind `C` (the rest) in one
/// simulation. Each kind boots its nodes with their global index.
#[derive(Clone, Debug)]
pub struct Pair<S, C> {
    /// The servers' kind.
    pub server: S,
    /// The clients' kind.
    pub client: C,
    /// How many of the nodes are servers (they come first).
    pub servers: usize,
}

impl<S, C> NodeKind for Pair<S, C>
where
    S: NodeKind,
    C: NodeKind,
    C::Core: Core<Msg = <S::Core as Core>::Msg>,
{
    type Core = Member<S::Core, C::Core>;
    /// Each node uses the half of its role.
    type Disk = (S::Disk, C::Disk);

    fn boot(&self, node: usize, disk: &Self::Disk) -> Self::Core {
        if node < self.servers {
            Member::Server(self.server.boot(node, &disk.0))
        } else {
            Member::Client(self.client.boot(node, &disk.1))
        }
    }

    fn write(&self, disk: &mut Self::Disk, op: &Persist<Self>) {
        match op {
            Member::Server(op) => self.server.write(&mut disk.0, op),
            Member::Client(op) => self.client.write(&mut disk.1, op),
        }
    }

    fn timer_delay(&self, timer: Timer<Self>, rng: &mut ChaCha8Rng) -> Micros {
        match timer {
            Member::Server(t) => self.server.timer_delay(t, rng),
            Member::Client(t) => self.client.timer_delay(t, rng),
        }
    }

    fn timer_code(&self, timer: Timer<Self>) -> u64 {
        match timer {
            Member::Server(t) => self.server.timer_code(t) << 1,
            Member::Client(t) => (self.client.timer_code(t) << 1) | 1,
        }
    }

    fn violation<'a>(&self, core: &'a Self::Core) -> Option<&'a Violation> {
        match core {
            Member::Server(s) => self.server.violation(s),
            Member::Client(c) => self.client.violation(c),
        }
    }
}
