//! Jepsen's own history files (`history.edn`): one EDN vector of operation maps, or one map
//! per line, such as `{:process 3, :type :invoke, :f :cas, :value [1 2], :time 1234}`,
//! possibly tagged (`#jepsen.history.Op{...}`). Operations pair by process, in order.
//!
//! Semantics are Knossos's (the checker such histories were written for), which differ
//! from the etcd logs' (`jepsen.rs`):
//! - `:ok` returns with the output; a read that returns `nil` saw an unknown value and
//!   matches anything (its output is unknown);
//! - `:fail` means the operation did not happen (a failed cas too): it is dropped;
//! - `:info` means unknown: the operation may take effect at any later time, or never;
//! - operations of a process that is not an integer (`:nemesis`) are not client operations
//!   and are skipped.
//!
//! `:f` is `:read`, `:write` or `:cas` (register and cas-register), or `:txn` with a value
//! such as `[[:read :x nil] [:write :y 3]]` (Knossos's multi-register; `:r`/`:w` too).
//! Event order gives the times.

use super::edn_value::{Edn, parse_ops};
use super::{LineError, Pairing, Record};
use serde_json::{Value, json};

pub(crate) fn parse(text: &str) -> Result<Vec<Record>, LineError> {
    let mut pairing = Pairing::new();
    let mut dropped: Vec<usize> = Vec::new();
    for (time, (line, op)) in parse_ops(text)?.into_iter().enumerate() {
        if !matches!(op, Edn::Map(_) | Edn::Tagged(..)) {
            let message = format!("expected an operation map, found {}", clip(&op.show()));
            return Err(LineError::new(line, "line", message));
        }
        let client = match op.get("process") {
            Some(Edn::Int(p)) if *p >= 0 => *p as u64,
            Some(Edn::Int(p)) => {
                return Err(LineError::new(
                    line,
                    ":process",
                    format!("negative process {p}"),
                ));
            }
            Some(_) => continue, // the nemesis, or another non-client process
            None => return Err(LineError::new(line, ":process", "missing")),
        };
        let f = match op.get("f") {
            Some(Edn::Keyword(f)) => f.clone(),
            Some(other) => {
                let message = format!("expected a keyword, found {}", clip(&other.show()));
                return Err(LineError::new(line, ":f", message));
            }
            None => return Err(LineError::new(line, ":f", "missing")),
        };
        let value = op.get("value").unwrap_or(&Edn::Nil);
        let time = time as u64;
        match op.get("type") {
            Some(Edn::Keyword(t)) if t == "invoke" => {
                pairing.call(invoke(line, client, time, &f, value)?)?;
            }
            Some(Edn::Keyword(t)) if t == "ok" => {
                let i = pairing.ret(client, line, time)?;
                let record = &mut pairing.records[i];
                same_f(record, &f, line)?;
                record.output = output(&f, value, line)?;
            }
            Some(Edn::Keyword(t)) if t == "fail" => {
                let i = pairing.ret(client, line, time)?;
                same_f(&pairing.records[i], &f, line)?;
                dropped.push(i);
            }
            Some(Edn::Keyword(t)) if t == "info" => pairing.abandon(client),
            Some(other) => {
                let message = format!("unknown type {}", clip(&other.show()));
                return Err(LineError::new(line, ":type", message));
            }
            None => return Err(LineError::new(line, ":type", "missing")),
        }
    }
    Ok(pairing.finish(&dropped))
}

fn clip(text: &str) -> String {
    const SHOWN_MAX: usize = 60;
    if text.chars().count() <= SHOWN_MAX {
        text.to_string()
    } else {
        text.chars().take(SHOWN_MAX).collect::<String>() + "…"
    }
}

fn same_f(record: &Record, f: &str, line: usize) -> Result<(), LineError> {
    if record.f == f {
        return Ok(());
    }
    let message = format!(
        "completes :{f} but the process's open call (line {}) is :{}",
        record.line, record.f
    );
    Err(LineError::new(line, ":f", message))
}

fn invoke(line: usize, client: u64, time: u64, f: &str, value: &Edn) -> Result<Record, LineError> {
    let value = match f {
        "txn" => txn(value, line)?,
        _ => to_json(value, line)?,
    };
    Ok(Record {
        line,
        return_line: None,
        client,
        call: time,
        ret: None,
        f: f.to_string(),
        key: None,
        value,
        args: Default::default(),
        output: None,
    })
}

/// The observed output of a completed operation (`None`: unknown).
fn output(f: &str, value: &Edn, line: usize) -> Result<Option<Value>, LineError> {
    Ok(match f {
        "read" if *value == Edn::Nil => None,
        "read" => Some(to_json(value, line)?),
        "write" => Some(json!("ok")),
        "cas" => Some(json!(true)),
        "txn" => Some(txn(value, line)?),
        _ => Some(to_json(value, line)?),
    })
}

/// A multi-register transaction: `[[f k v] ...]` as JSON `[["read"|"write", "k", v], ...]`.
fn txn(value: &Edn, line: usize) -> Result<Value, LineError> {
    let bad = |what: String| LineError::new(line, ":value", what);
    let Edn::Vector(mops) = value else {
        return Err(bad(format!(
            "expected [[:read k v] ...], found {}",
            clip(&value.show())
        )));
    };
    let mut out = Vec::with_capacity(mops.len());
    for mop in mops {
        let parts = match mop {
            Edn::Vector(p) if p.len() == 3 => p,
            _ => {
                return Err(bad(format!(
                    "expected [f k v], found {}",
                    clip(&mop.show())
                )));
            }
        };
        let f = match &parts[0] {
            Edn::Keyword(k) if k == "read" || k == "r" => "read",
            Edn::Keyword(k) if k == "write" || k == "w" => "write",
            other => return Err(bad(format!("unknown micro-op {}", clip(&other.show())))),
        };
        let key = match &parts[1] {
            Edn::Str(s) => s.clone(),
            other => other.show(),
        };
        out.push(json!([f, key, to_json(&parts[2], line)?]));
    }
    Ok(Value::Array(out))
}

/// Values as JSON: integers, nil, booleans, strings, keywords (as `:name`) and vectors.
fn to_json(value: &Edn, line: usize) -> Result<Value, LineError> {
    Ok(match value {
        Edn::Nil => Value::Null,
        Edn::Bool(b) => json!(b),
        Edn::Int(i) => json!(i),
        Edn::Str(s) => json!(s),
        Edn::Keyword(k) => json!(format!(":{k}")),
        Edn::Vector(items) | Edn::List(items) => Value::Array(
            items
                .iter()
                .map(|v| to_json(v, line))
                .collect::<Result<_, _>>()?,
        ),
        other => {
            let message = format!("cannot use the value {} here", clip(&other.show()));
            return Err(LineError::new(line, ":value", message));
        }
    })
}
