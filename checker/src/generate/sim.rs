//! The simulated object and its clients: an event queue in virtual time.

use super::{Anomaly, GenModel, GenSpec, Rng};
use serde_json::{Map, Value, json};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Mean think time between a reply and the client's next call.
const THINK_MEAN: f64 = 3.0;
/// Mean delay from a call to its linearization point, and from the point to the reply.
const LATENCY_MEAN: f64 = 8.0;
/// Share of delays that are ten times longer (slow replicas, retransmissions).
const LATENCY_TAIL: f64 = 0.05;
/// How long a client waits before it gives up (the operation's outcome is then unknown).
const TIMEOUT: u64 = 200;
/// How long a crashed client takes to come back.
const RESTART: u64 = 50;

/// What a client asked for; keys are indices.
#[derive(Clone, Debug)]
pub(crate) enum Call {
    Read {
        key: usize,
    },
    Write {
        key: usize,
        value: i64,
    },
    Cas {
        key: usize,
        expected: i64,
        new: i64,
    },
    Get {
        key: usize,
    },
    Put {
        key: usize,
        value: String,
    },
    Append {
        key: usize,
        value: String,
    },
    VGet {
        key: usize,
    },
    VPut {
        key: usize,
        value: String,
        version: u64,
    },
}

impl Call {
    pub(crate) fn key(&self) -> usize {
        match self {
            Call::Read { key }
            | Call::Write { key, .. }
            | Call::Cas { key, .. }
            | Call::Get { key }
            | Call::Put { key, .. }
            | Call::Append { key, .. }
            | Call::VGet { key }
            | Call::VPut { key, .. } => *key,
        }
    }
}

/// What a client observed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Out {
    Read(Option<i64>),
    Write,
    Cas(bool),
    Value(String),
    Done,
    VValue(String, u64),
    NoKey,
    ErrVersion,
    ErrMaybe,
}

/// One key's state.
#[derive(Clone, Debug, PartialEq)]
enum State {
    Reg(Option<i64>),
    Str(String),
    Ver(String, u64),
}

/// One operation; `id` is its index in call order.
#[derive(Clone, Debug)]
pub(crate) struct Op {
    pub client: u64,
    pub call: u64,
    pub ret: Option<u64>,
    pub input: Call,
    pub output: Option<Out>,
}

/// A finished simulation.
pub(crate) struct Run {
    pub ops: Vec<Op>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The linearization point of an operation.
    Point(usize),
    /// A client slot calls its next operation.
    Call(usize),
}

struct Sim<'a> {
    spec: &'a GenSpec,
    rng: Rng,
    anomaly: Option<(Anomaly, usize)>,
    ops: Vec<Op>,
    /// Per key: the states it went through, each with the operation that left it.
    states: Vec<Vec<(State, Option<usize>)>>,
    /// Per client slot: its current client id.
    slot_client: Vec<u64>,
    next_client: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
}

/// Runs the simulation; `anomaly` names the operation (index in call order) that misbehaves.
pub(crate) fn simulate(spec: &GenSpec, anomaly: Option<(Anomaly, usize)>) -> Run {
    let init = match spec.model {
        GenModel::Register | GenModel::Cas => State::Reg(None),
        GenModel::Kv => State::Str(String::new()),
        GenModel::VersionedKv => State::Ver(String::new(), 0),
    };
    let mut sim = Sim {
        spec,
        rng: Rng::new(spec.seed),
        anomaly,
        ops: Vec::with_capacity(spec.ops),
        states: vec![vec![(init, None)]; spec.keys],
        slot_client: (0..spec.clients as u64).collect(),
        next_client: spec.clients as u64,
        queue: BinaryHeap::new(),
        seq: 0,
    };
    for slot in 0..spec.clients {
        let at = sim.rng.exp(THINK_MEAN);
        sim.push(at, Event::Call(slot));
    }
    while let Some(Reverse((time, _, event))) = sim.queue.pop() {
        match event {
            Event::Call(slot) if sim.ops.len() < spec.ops => sim.call(slot, time),
            Event::Call(_) => {}
            Event::Point(op) => sim.point(op),
        }
    }
    Run { ops: sim.ops }
}

impl Sim<'_> {
    fn push(&mut self, time: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((time, self.seq, event)));
    }

    fn latency(&mut self) -> u64 {
        let d = self.rng.exp(LATENCY_MEAN);
        if self.rng.chance(LATENCY_TAIL) {
            d * 10
        } else {
            d
        }
    }

    fn current(&self, key: usize) -> &State {
        &self.states[key].last().expect("a key has a state").0
    }

    /// A client calls: choose the operation from what it could know, and its fate.
    fn call(&mut self, slot: usize, now: u64) {
        let id = self.ops.len();
        let input = self.choose(id);
        let client = self.slot_client[slot];
        let roll = self.rng.unit();
        let (ret, point, next_call) = if roll < self.spec.crash {
            let point = now + self.latency();
            let took_effect = self.rng.chance(0.5);
            self.renew(slot);
            (None, took_effect.then_some(point), point + RESTART)
        } else if roll < self.spec.crash + self.spec.unknown {
            let took_effect = self.rng.chance(0.5);
            // A request may linger in the network and take effect long after the timeout.
            let point = now + 1 + self.rng.below(3 * TIMEOUT);
            self.renew(slot);
            (None, took_effect.then_some(point), now + TIMEOUT)
        } else {
            let point = now + self.latency();
            let ret = point + self.latency();
            (Some(ret), Some(point), ret)
        };
        let think = self.rng.exp(THINK_MEAN);
        self.push(next_call + think, Event::Call(slot));
        // kvsrv clerks report a retried put whose fate they cannot know as ErrMaybe.
        let maybe = ret.is_none()
            && matches!(input, Call::VPut { .. })
            && self.rng.chance(0.5)
            && point.is_none_or(|p| p < now + TIMEOUT);
        let (ret, output) = if maybe {
            (Some(now + TIMEOUT), Some(Out::ErrMaybe))
        } else {
            (ret, None)
        };
        self.ops.push(Op {
            client,
            call: now,
            ret,
            input,
            output,
        });
        if let Some(p) = point {
            self.push(p, Event::Point(id));
        }
    }

    /// The slot's client gave up or crashed: it comes back under a new id.
    fn renew(&mut self, slot: usize) {
        self.slot_client[slot] = self.next_client;
        self.next_client += 1;
    }

    fn choose(&mut self, id: usize) -> Call {
        let key = self.rng.below(self.spec.keys as u64) as usize;
        let roll = self.rng.unit();
        let value = id as i64;
        match (self.spec.model, self.current(key).clone()) {
            (GenModel::Register, _) if roll < 0.5 => Call::Read { key },
            (GenModel::Register, _) => Call::Write { key, value },
            (GenModel::Cas, _) if roll < 0.4 => Call::Read { key },
            (GenModel::Cas, _) if roll < 0.6 => Call::Write { key, value },
            (GenModel::Cas, State::Reg(now)) => {
                let expected = match now {
                    Some(v) if self.rng.chance(0.7) => v,
                    _ => self.earlier_value(key),
                };
                Call::Cas {
                    key,
                    expected,
                    new: value,
                }
            }
            (GenModel::Kv, _) if roll < 0.3 => Call::Get { key },
            (GenModel::Kv, _) if roll < 0.35 => Call::Put {
                key,
                value: format!("<{id}>"),
            },
            (GenModel::Kv, _) => Call::Append {
                key,
                value: format!("<{id}>"),
            },
            (GenModel::VersionedKv, _) if roll < 0.5 => Call::VGet { key },
            (GenModel::VersionedKv, State::Ver(_, version)) => {
                let version = match self.rng.below(10) {
                    0 => version + 1,
                    1 => version.saturating_sub(1),
                    _ => version,
                };
                Call::VPut {
                    key,
                    value: format!("<{id}>"),
                    version,
                }
            }
            (model, state) => unreachable!("{model:?} never holds {state:?}"),
        }
    }

    /// A value the register held at some point (0 if none yet).
    fn earlier_value(&mut self, key: usize) -> i64 {
        let seen: Vec<i64> = self.states[key]
            .iter()
            .filter_map(|(s, _)| match s {
                State::Reg(v) => *v,
                _ => None,
            })
            .collect();
        if seen.is_empty() {
            0
        } else {
            seen[seen.len() - 1 - self.rng.below(seen.len().min(4) as u64) as usize]
        }
    }

    /// The operation takes effect: compute its output and the key's next state.
    fn point(&mut self, id: usize) {
        let key = self.ops[id].input.key();
        let state = self.current(key).clone();
        let anomaly = self
            .anomaly
            .filter(|&(_, victim)| victim == id)
            .map(|a| a.0);
        let (mut out, mut next) = apply(&state, &self.ops[id].input);
        match anomaly {
            Some(Anomaly::StaleRead) => out = self.stale(key, id).unwrap_or(out),
            Some(Anomaly::LostWrite) => next = state.clone(),
            Some(Anomaly::DuplicatedAppend) => next = apply(&next, &self.ops[id].input).1,
            Some(Anomaly::WrongCas) => (out, next) = forced(&state, &self.ops[id].input),
            None => {}
        }
        let op = &mut self.ops[id];
        if op.ret.is_some() && op.output.is_none() {
            op.output = Some(out);
        }
        if next != state {
            self.states[key].last_mut().expect("a state").1 = Some(id);
            self.states[key].push((next, None));
        }
    }

    /// What a stale read of `key` by operation `id` returns: the latest state that was
    /// overwritten by an operation that completed before `id` was called.
    fn stale(&self, key: usize, id: usize) -> Option<Out> {
        let called = self.ops[id].call;
        let states = &self.states[key];
        let old = states
            .iter()
            .rev()
            .find(|(_, by)| by.is_some_and(|w| self.ops[w].ret.is_some_and(|r| r < called)))?;
        Some(apply(&old.0, &self.ops[id].input).0)
    }
}

/// The sequential object: output and next state.
fn apply(state: &State, call: &Call) -> (Out, State) {
    let same = state.clone();
    match (state, call) {
        (State::Reg(v), Call::Read { .. }) => (Out::Read(*v), same),
        (State::Reg(_), Call::Write { value, .. }) => (Out::Write, State::Reg(Some(*value))),
        (State::Reg(v), Call::Cas { expected, new, .. }) if *v == Some(*expected) => {
            (Out::Cas(true), State::Reg(Some(*new)))
        }
        (State::Reg(_), Call::Cas { .. }) => (Out::Cas(false), same),
        (State::Str(s), Call::Get { .. }) => (Out::Value(s.clone()), same),
        (State::Str(_), Call::Put { value, .. }) => (Out::Done, State::Str(value.clone())),
        (State::Str(s), Call::Append { value, .. }) => (Out::Done, State::Str(s.clone() + value)),
        (State::Ver(_, 0), Call::VGet { .. }) => (Out::NoKey, same),
        (State::Ver(s, v), Call::VGet { .. }) => (Out::VValue(s.clone(), *v), same),
        (State::Ver(_, v), Call::VPut { value, version, .. }) if v == version => {
            (Out::Done, State::Ver(value.clone(), v + 1))
        }
        (State::Ver(_, 0), Call::VPut { .. }) => (Out::NoKey, same),
        (State::Ver(..), Call::VPut { .. }) => (Out::ErrVersion, same),
        (state, call) => unreachable!("{call:?} on {state:?}"),
    }
}

/// A compare-and-set that succeeds whatever the state.
fn forced(state: &State, call: &Call) -> (Out, State) {
    match (state, call) {
        (State::Reg(_), Call::Cas { new, .. }) => (Out::Cas(true), State::Reg(Some(*new))),
        (State::Ver(_, v), Call::VPut { value, .. }) => {
            (Out::Done, State::Ver(value.clone(), v + 1))
        }
        _ => apply(state, call),
    }
}

impl Run {
    /// Operations that may carry `anomaly`, starting from the middle of the history.
    pub(crate) fn candidates(&self, anomaly: Anomaly) -> Vec<usize> {
        let fits = |op: &Op| match (anomaly, &op.input, &op.output) {
            (_, _, None) => false,
            (Anomaly::StaleRead, Call::Read { .. } | Call::Get { .. } | Call::VGet { .. }, _) => {
                true
            }
            (
                Anomaly::LostWrite,
                Call::Write { .. } | Call::Put { .. } | Call::Append { .. },
                _,
            ) => true,
            (Anomaly::LostWrite, Call::VPut { .. }, Some(Out::Done)) => true,
            (Anomaly::DuplicatedAppend, Call::Append { .. }, _) => true,
            (Anomaly::WrongCas, Call::Cas { .. }, Some(Out::Cas(false))) => true,
            (Anomaly::WrongCas, Call::VPut { .. }, Some(Out::ErrVersion)) => true,
            _ => false,
        };
        let n = self.ops.len();
        (0..n)
            .map(|k| (k + n / 2) % n.max(1))
            .filter(|&i| self.ops[i].ret.is_some() && fits(&self.ops[i]))
            .collect()
    }
}

/// The operation as one line of aver's JSON Lines format.
pub(crate) fn json_line(model: GenModel, op: &Op) -> String {
    let mut m = Map::new();
    m.insert("client".into(), json!(op.client));
    m.insert("call".into(), json!(op.call));
    if let Some(r) = op.ret {
        m.insert("return".into(), json!(r));
    }
    let keyed = matches!(model, GenModel::Kv | GenModel::VersionedKv);
    let (f, value) = match &op.input {
        Call::Read { .. } => ("read", Value::Null),
        Call::Write { value, .. } => ("write", json!(value)),
        Call::Cas { expected, new, .. } => ("cas", json!([expected, new])),
        Call::Get { .. } | Call::VGet { .. } => ("get", Value::Null),
        Call::Put { value, .. } => ("put", json!(value)),
        Call::Append { value, .. } => ("append", json!(value)),
        Call::VPut { value, version, .. } => {
            m.insert("version".into(), json!(version));
            ("put", json!(value))
        }
    };
    m.insert("f".into(), json!(f));
    if keyed {
        m.insert("key".into(), json!(format!("k{}", op.input.key())));
    }
    if !value.is_null() {
        m.insert("value".into(), value);
    }
    if let Some(out) = &op.output {
        let out = match out {
            Out::Read(v) => json!(v),
            Out::Write => json!("ok"),
            Out::Cas(ok) => json!(ok),
            Out::Value(s) => json!(s),
            Out::Done if matches!(model, GenModel::VersionedKv) => json!("OK"),
            Out::Done => json!("ok"),
            Out::VValue(value, version) => json!({"value": value, "version": version}),
            Out::NoKey => json!("ErrNoKey"),
            Out::ErrVersion => json!("ErrVersion"),
            Out::ErrMaybe => json!("ErrMaybe"),
        };
        m.insert("output".into(), out);
    }
    Value::Object(m).to_string()
}
