//! How a protocol plugs into the simulator, end to end, on the smallest protocol that needs
//! every part: one register server with a dedup table that survives crashes, and clerks that
//! retry on a timer. Both are pure cores; the simulator runs them over an unreliable network
//! with a server crash, records what each clerk saw, and checks the history against the
//! checker's `register` model.
//!
//! Two deliberately broken variants show the failure paths: a server that answers reads
//! from a stale value (the checker finds a non-linearizable history and the failure names
//! the file and the `aver lin` command), and a clerk that answers every reply with two more
//! requests (a message storm: the event budget stops a run that would otherwise not end).

use aver_checker::models::Register;
use aver_core::contract::{Core, NodeId, Ready, TimerCmd};
use aver_sim::history::{Call, History};
use aver_sim::pair::{Member, Pair};
use aver_sim::run::{Failure, Outcome};
use aver_sim::sim::{Halt, MS, Micros, NodeKind, Sim, TraceHash, Wire, postcard_size};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

// ---- the protocol: pure cores -----------------------------------------------------------

/// A register operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
enum Op {
    Read,
    Write(i64),
}

/// Its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
enum Out {
    Value(Option<i64>),
    Written,
}

/// The protocol's messages: clerk → server requests, server → clerk replies.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
enum Msg {
    Request { seq: u64, op: Op },
    Reply { seq: u64, out: Out },
}

/// The broken variants.
#[derive(Clone, Copy, Debug, Default)]
struct Bugs {
    /// The server answers reads with the value before the last write.
    stale_read: bool,
    /// The clerk answers every reply by sending its request twice, and never returns.
    ping_pong: bool,
}

/// What the server keeps on disk: the value, the one before it, and per client the last
/// sequence number executed and its answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct State {
    value: Option<i64>,
    previous: Option<i64>,
    sessions: BTreeMap<NodeId, (u64, Out)>,
}

/// A timer-less core (the server sets none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NoTimer {}

struct Server {
    state: State,
    bugs: Bugs,
    ready: Ready<State, Msg, (), NoTimer>,
}

impl Server {
    fn execute(&mut self, op: Op) -> Out {
        match op {
            Op::Read if self.bugs.stale_read => Out::Value(self.state.previous),
            Op::Read => Out::Value(self.state.value),
            Op::Write(v) => {
                self.state.previous = self.state.value.replace(v);
                Out::Written
            }
        }
    }
}

impl Core for Server {
    type Persist = State;
    type Msg = Msg;
    type Apply = ();
    type Timer = NoTimer;

    fn on_message(&mut self, from: NodeId, msg: Msg) {
        let Msg::Request { seq, op } = msg else {
            return;
        };
        let out = match self.state.sessions.get(&from) {
            Some(&(done, out)) if done == seq => out, // a retry: answer from the table
            Some(&(done, _)) if done > seq => return, // older than the last answer: stale
            _ => {
                let out = self.execute(op);
                self.state.sessions.insert(from, (seq, out));
                self.ready.persist.push(self.state.clone());
                out
            }
        };
        self.ready.messages.push((from, Msg::Reply { seq, out }));
    }

    fn on_timeout(&mut self, timer: NoTimer) {
        match timer {}
    }

    fn take_ready(&mut self) -> Ready<State, Msg, (), NoTimer> {
        std::mem::take(&mut self.ready)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClerkTimer {
    Retry,
}

struct Clerk {
    server: NodeId,
    seq: u64,
    pending: Option<Op>,
    bugs: Bugs,
    ready: Ready<(), Msg, Out, ClerkTimer>,
}

impl Clerk {
    /// Starts an operation (the clerk's only non-network input).
    fn call(&mut self, op: Op) {
        self.seq += 1;
        self.pending = Some(op);
        self.send();
    }

    fn send(&mut self) {
        if let Some(op) = self.pending {
            let seq = self.seq;
            self.ready
                .messages
                .push((self.server, Msg::Request { seq, op }));
            self.ready.timers.push(TimerCmd::Set(ClerkTimer::Retry));
        }
    }
}

impl Core for Clerk {
    type Persist = ();
    type Msg = Msg;
    type Apply = Out;
    type Timer = ClerkTimer;

    fn on_message(&mut self, _from: NodeId, msg: Msg) {
        let Msg::Reply { seq, out } = msg else {
            return;
        };
        if seq != self.seq || self.pending.is_none() {
            return; // an answer to an earlier attempt
        }
        if self.bugs.ping_pong {
            self.send();
            return self.send();
        }
        self.pending = None;
        self.ready.apply.push(out);
        self.ready.timers.push(TimerCmd::Cancel(ClerkTimer::Retry));
    }

    fn on_timeout(&mut self, _timer: ClerkTimer) {
        self.send();
    }

    fn take_ready(&mut self) -> Ready<(), Msg, Out, ClerkTimer> {
        std::mem::take(&mut self.ready)
    }
}

// ---- plugging in: the two traits ----------------------------------------------------------

impl Wire for Msg {
    fn is_request(&self) -> bool {
        matches!(self, Msg::Request { .. })
    }
    fn size(&self) -> u64 {
        postcard_size(self)
    }
    fn fingerprint(&self, hash: &mut TraceHash) {
        match self {
            Msg::Request { seq, .. } => hash.word(*seq << 1),
            Msg::Reply { seq, .. } => hash.word((*seq << 1) | 1),
        }
    }
    fn label(&self) -> &'static str {
        match self {
            Msg::Request { .. } => "Request",
            Msg::Reply { .. } => "Reply",
        }
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

struct ServerKind(Bugs);

impl NodeKind for ServerKind {
    type Core = Server;
    type Disk = State;

    fn boot(&self, _node: usize, disk: &State) -> Server {
        let (state, bugs, ready) = (disk.clone(), self.0, Ready::default());
        Server { state, bugs, ready }
    }
    fn write(&self, disk: &mut State, op: &State) {
        *disk = op.clone();
    }
    fn timer_delay(&self, timer: NoTimer, _rng: &mut ChaCha8Rng) -> Micros {
        match timer {}
    }
    fn timer_code(&self, timer: NoTimer) -> u64 {
        match timer {}
    }
}

struct ClerkKind(Bugs);

impl NodeKind for ClerkKind {
    type Core = Clerk;
    type Disk = ();

    fn boot(&self, _node: usize, _disk: &()) -> Clerk {
        let (server, seq, pending, bugs) = (NodeId(0), 0, None, self.0);
        let ready = Ready::default();
        Clerk {
            server,
            seq,
            pending,
            bugs,
            ready,
        }
    }
    fn write(&self, _disk: &mut (), _op: &()) {}
    fn timer_delay(&self, _timer: ClerkTimer, rng: &mut ChaCha8Rng) -> Micros {
        rng.random_range(80..=120) * MS
    }
    fn timer_code(&self, _timer: ClerkTimer) -> u64 {
        0
    }
}

// ---- the harness: drive, record, check ----------------------------------------------------

type EchoSim = Sim<Pair<ServerKind, ClerkKind>>;

const CLIENTS: usize = 3;
const OPS_PER_CLIENT: u32 = 30;

/// The failure of this scenario at the current time.
fn failure(sim: &EchoSim, seed: u64, message: String) -> Failure {
    let mut f = Failure::sim("echo", "echo", seed, sim.now(), message, "");
    f.replay = format!("cargo test --release -p aver-sim --test echo  # seed {seed}");
    f
}

/// Clerk `c` (node `c`) starts a random operation; the call is recorded.
fn issue(sim: &mut EchoSim, history: &mut History, c: usize) {
    let op = if sim.rng().random_bool(0.5) {
        Op::Write(sim.rng().random_range(0..5))
    } else {
        Op::Read
    };
    let call = match op {
        Op::Read => Call::new("read"),
        Op::Write(v) => Call::new("write").value(v),
    };
    history.call(c as u64, sim.now(), call);
    sim.input(c, |m| m.client_mut().expect("a clerk").call(op));
}

/// Runs events until `until`: each clerk answer is recorded and the clerk starts its next
/// operation until it has done its share.
fn run_until(sim: &mut EchoSim, h: &mut History, done: &mut [u32], until: Micros) {
    while sim.step(until).is_some() {
        for a in sim.take_applied() {
            let Member::Client(out) = a.apply else {
                continue;
            };
            let output = match out {
                Out::Value(v) => serde_json::json!(v),
                Out::Written => serde_json::json!("ok"),
            };
            h.ret(a.node as u64, sim.now(), output);
            done[a.node] += 1;
            if done[a.node] < OPS_PER_CLIENT {
                issue(sim, h, a.node);
            }
        }
    }
}

/// Three clerks, 30 operations each, on an unreliable network; the server crashes at 1 s
/// and restarts from its disk at 1.5 s. Returns the history.
fn echo(seed: u64, bugs: Bugs) -> Outcome<History> {
    let kind = Pair {
        server: ServerKind(bugs),
        client: ClerkKind(bugs),
        servers: 1,
    };
    let mut sim = Sim::new(kind, 1 + CLIENTS, seed);
    sim.set_events_max(100_000);
    for c in 1..=CLIENTS {
        sim.net_mut().enabled[c][0] = true;
        sim.net_mut().enabled[0][c] = true;
    }
    sim.net_mut().reliable = false;
    let mut history = History::new();
    let mut done = vec![0; 1 + CLIENTS];
    for c in 1..=CLIENTS {
        issue(&mut sim, &mut history, c);
    }
    run_until(&mut sim, &mut history, &mut done, 1_000 * MS);
    sim.crash(0);
    run_until(&mut sim, &mut history, &mut done, 1_500 * MS);
    sim.start(0);
    run_until(&mut sim, &mut history, &mut done, 60_000 * MS);
    if let Some(halt) = sim.halt() {
        return Err(failure(&sim, seed, halt.to_string()));
    }
    let timeout = Duration::from_secs(10);
    let f = failure(&sim, seed, String::new());
    history.check_or_fail(&Register, "register", timeout, f)?;
    Ok(history)
}

/// The correct protocol: every operation returns, and every history is linearizable.
#[test]
fn echo_register_linearizable_through_crash_and_loss() {
    for seed in 1..=5 {
        let history = echo(seed, Bugs::default()).unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(history.len(), CLIENTS * OPS_PER_CLIENT as usize);
        assert_eq!(
            history.returned(),
            history.len(),
            "seed {seed}: an operation hung"
        );
    }
}

/// A server answering reads from a stale value is caught by the history, and the failure
/// leaves the history in a file with the command that explains it.
#[test]
fn echo_stale_read_caught_by_linearizability() {
    let bugs = Bugs {
        stale_read: true,
        ..Bugs::default()
    };
    let f = echo(1, bugs).expect_err("a stale read went unnoticed");
    assert!(f.message.starts_with("not linearizable"), "{f}");
    let file = aver_sim::history::out_dir().join("echo-echo-seed1.jsonl");
    assert!(
        f.message
            .contains(&format!("lin {} --model register --html", file.display()))
    );
    let text = std::fs::read_to_string(&file).expect("the history was written");
    assert_eq!(text.lines().count(), CLIENTS * OPS_PER_CLIENT as usize);
    std::fs::remove_file(&file).ok();
}

/// A clerk that never returns and keeps the network busy is stopped by the event budget.
#[test]
fn echo_ping_pong_stopped_by_event_budget() {
    let bugs = Bugs {
        ping_pong: true,
        ..Bugs::default()
    };
    let f = echo(1, bugs).expect_err("a message storm went unnoticed");
    let budget = Halt::Budget {
        events_max: 100_000,
    }
    .to_string();
    assert_eq!(f.message, budget);
    assert!(f.replay.contains("seed 1"));
}
