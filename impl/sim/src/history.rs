//! Recording what clients saw, and checking it for linearizability.
//!
//! A harness calls [`History::call`] when it hands an operation to a clerk (at the virtual
//! time of the call) and [`History::ret`] when the clerk reports the answer. An operation that
//! never got an answer (its clerk crashed, or the run ended first) keeps no return: the
//! checker lets it take effect at any time after its call, or never.
//!
//! Times are written in nanoseconds of virtual time, made strictly increasing in the order
//! the harness records them. Many calls and returns happen at one virtual instant (a clerk's
//! answer and its next call are handled by one event), and the checker takes equal times as
//! overlapping: with the instant alone, a Get called right after a Put returned could be
//! placed before that Put, and a stale read would pass. Recording order is real-time order,
//! so the tie-break loses nothing and invents no order that did not happen.
//!
//! The history is written in the checker's JSON Lines operation format
//! (`specs/history-format.md`) and checked by *parsing that text back* with `aver-checker`,
//! exactly as `aver lin FILE` would: the file a failure leaves behind is the history that
//! was checked. [`History::failure`] writes it under `target/aver-sim/` (or `$AVER_SIM_OUT`)
//! and names the `aver lin FILE --html OUT` command that shows it.

use crate::run::Failure;
use crate::sim::Micros;
use aver_checker::CheckResult;
use aver_checker::formats::{self, Decode, Format};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What a client asked for, in the vocabulary of the checker's models (see
/// `specs/history-format.md`): `f`, an optional `key`, a `value` and further arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The operation (`get`, `put`, `append`, `read`, `write`, `cas`…).
    pub f: String,
    /// The key, for keyed models.
    pub key: Option<String>,
    /// The argument (`null` when none).
    pub value: Value,
    /// Further arguments by name (e.g. `version`).
    pub args: Map<String, Value>,
}

impl Call {
    /// An operation `f` without key or argument.
    pub fn new(f: &str) -> Call {
        Call {
            f: f.to_string(),
            key: None,
            value: Value::Null,
            args: Map::new(),
        }
    }
    /// With a key.
    pub fn key(mut self, key: &str) -> Call {
        self.key = Some(key.to_string());
        self
    }
    /// With an argument.
    pub fn value(mut self, value: impl Into<Value>) -> Call {
        self.value = value.into();
        self
    }
    /// With a further named argument.
    pub fn arg(mut self, name: &str, value: impl Into<Value>) -> Call {
        self.args.insert(name.to_string(), value.into());
        self
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Op {
    client: u64,
    /// Written times (ns; see [`History::tick`]).
    call_at: u64,
    ret_at: Option<u64>,
    call: Call,
    output: Option<Value>,
}

/// The operations of one run, in call order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    ops: Vec<Op>,
    /// Client → index of its open operation.
    open: BTreeMap<u64, usize>,
    /// The last time written (ns), so that every recorded call and return is later than the
    /// one before it.
    last_ns: u64,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// `client` calls `call` at virtual time `at`. A client has at most one open operation:
    /// an operation still open is abandoned (it keeps no return).
    pub fn call(&mut self, client: u64, at: Micros, call: Call) {
        let call_at = self.tick(at);
        self.open.insert(client, self.ops.len());
        self.ops.push(Op {
            client,
            call_at,
            ret_at: None,
            call,
            output: None,
        });
    }

    /// `client`'s open operation returned `output` at `at`; `false` (nothing recorded) if it
    /// has none open.
    pub fn ret(&mut self, client: u64, at: Micros, output: impl Into<Value>) -> bool {
        let Some(k) = self.open.remove(&client) else {
            return false;
        };
        let ret_at = self.tick(at);
        let op = &mut self.ops[k];
        debug_assert!(ret_at > op.call_at, "a return before its call");
        op.ret_at = Some(ret_at);
        op.output = Some(output.into());
        true
    }

    /// The written time of an event recorded at virtual time `at`: `at` in ns, or just after
    /// the previous event when that is later (same instant, recorded after it).
    fn tick(&mut self, at: Micros) -> u64 {
        let ns = (at * 1000).max(self.last_ns + 1);
        self.last_ns = ns;
        ns
    }

    /// `client`'s open operation will never return (its clerk crashed): it stays without one.
    pub fn abandon(&mut self, client: u64) {
        self.open.remove(&client);
    }

    /// True if `client` has an operation open.
    pub fn is_open(&self, client: u64) -> bool {
        self.open.contains_key(&client)
    }

    /// Operations recorded.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Operations that returned.
    pub fn returned(&self) -> usize {
        self.ops.iter().filter(|op| op.ret_at.is_some()).count()
    }

    /// The history in the checker's JSON Lines operation format, one operation per line.
    pub fn to_jsonl(&self) -> String {
        let mut text = String::new();
        for op in &self.ops {
            let mut line = op.call.args.clone();
            line.insert("client".into(), op.client.into());
            line.insert("call".into(), op.call_at.into());
            if let Some(at) = op.ret_at {
                line.insert("return".into(), at.into());
            }
            line.insert("f".into(), op.call.f.clone().into());
            if let Some(key) = &op.call.key {
                line.insert("key".into(), key.clone().into());
            }
            if !op.call.value.is_null() {
                line.insert("value".into(), op.call.value.clone());
            }
            if let Some(output) = &op.output {
                line.insert("output".into(), output.clone());
            }
            text.push_str(&Value::Object(line).to_string());
            text.push('\n');
        }
        text
    }

    /// Checks the history against `model`, reading back its own JSON Lines as `aver lin`
    /// does. `Err` when the recorded operations do not fit the model's vocabulary (a harness
    /// bug: the error names the line and field).
    pub fn check<M: Decode>(
        &self,
        model: &M,
        timeout: Option<Duration>,
    ) -> Result<CheckResult, formats::ParseError> {
        let text = self.to_jsonl();
        let records = formats::parse_records("history", &text, Some(Format::Jsonl))?;
        let history = formats::decode::<M>("history", &records)?;
        Ok(aver_checker::check_operations(model, &history, timeout))
    }

    /// Checks the history; on `Illegal`, `Unknown` or a decoding error writes it to a file
    /// and returns `failure` with a message naming the file and the `aver lin` command that
    /// explains it. `model` is the `aver lin --model` name of `checker`.
    pub fn check_or_fail<M: Decode>(
        &self,
        checker: &M,
        model: &str,
        timeout: Duration,
        failure: Failure,
    ) -> Result<(), Failure> {
        let verdict = match self.check(checker, Some(timeout)) {
            Ok(CheckResult::Ok) => return Ok(()),
            Ok(CheckResult::Illegal) => "not linearizable".to_string(),
            Ok(CheckResult::Unknown) => format!(
                "linearizability unknown after {} s (a failure: size the history so the \
                 check finishes)",
                timeout.as_secs_f64()
            ),
            Err(e) => format!("history does not fit the {model} model: {e}"),
        };
        Err(self.failure(&verdict, model, failure))
    }

    /// Writes the history for a failed run and returns `failure` with `verdict`, the file and
    /// the commands that show it.
    pub fn failure(&self, verdict: &str, model: &str, mut failure: Failure) -> Failure {
        let name = format!("{}-{}-seed{}", failure.suite, failure.test, failure.seed);
        let dir = out_dir();
        let file = dir.join(format!("{name}.jsonl"));
        let html = dir.join(format!("{name}.html"));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&file, self.to_jsonl()))
            .map(|()| file.display().to_string());
        failure.message = match written {
            Ok(file) => format!(
                "{verdict}: history of {} operations written to {file}\n  explain: \
                 cargo run --release -- lin {file} --model {model} --html {}",
                self.len(),
                html.display()
            ),
            Err(e) => format!(
                "{verdict}; writing the history to {} failed: {e}",
                file.display()
            ),
        };
        failure
    }
}

/// Where failed runs leave their histories: `$AVER_SIM_OUT`, else the workspace's
/// `target/aver-sim/`.
pub fn out_dir() -> PathBuf {
    match std::env::var_os("AVER_SIM_OUT") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/aver-sim"
        )),
    }
}
