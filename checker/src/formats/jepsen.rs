//! Jepsen etcd logs: `INFO  jepsen.util - <process> <type> <f> <value>`, whitespace separated,
//! one event per line in real-time order (line numbers serve as times).
//!
//! Semantics follow Porcupine's `parseJepsenLog`: `:ok` returns with the output, `:fail :cas`
//! returns "cas did not swap", `:fail :read` returns with an unknown output, `:info` leaves
//! the operation without a return (it may take effect later or never). A failed write
//! definitely did not happen and is dropped.

use super::{LineError, Pairing, Record};
use serde_json::{Value, json};

pub(crate) fn parse(text: &str) -> Result<Vec<Record>, LineError> {
    let mut pairing = Pairing::new();
    let mut dropped: Vec<usize> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let tokens: Vec<&str> = raw.split_whitespace().collect();
        if tokens.len() < 7 || tokens[0] != "INFO" || tokens[1] != "jepsen.util" || tokens[2] != "-"
        {
            let message = "expected `INFO jepsen.util - <process> <type> <f> <value>`";
            return Err(LineError::new(line, "line", message));
        }
        let client: u64 = tokens[3].parse().map_err(|_| {
            LineError::new(
                line,
                "process",
                format!("not a process number: {:?}", tokens[3]),
            )
        })?;
        let f = match tokens[5] {
            ":read" => "read",
            ":write" => "write",
            ":cas" => "cas",
            other => {
                return Err(LineError::new(
                    line,
                    "f",
                    format!("unknown operation {other:?}"),
                ));
            }
        };
        let value = parse_value(&tokens[6..].join(" "), line)?;
        let time = index as u64;
        match tokens[4] {
            ":invoke" => pairing.call(invoke(line, client, time, f, value))?,
            ":ok" => {
                let i = pairing.ret(client, line, time)?;
                let record = &mut pairing.records[i];
                check_same_f(record, f, line)?;
                record.output = Some(match f {
                    "read" => value,
                    "write" => json!("ok"),
                    _ => json!(true),
                });
            }
            ":fail" => {
                let i = pairing.ret(client, line, time)?;
                let record = &mut pairing.records[i];
                check_same_f(record, f, line)?;
                match f {
                    "cas" => record.output = Some(json!(false)),
                    "read" => record.output = None,
                    _ => dropped.push(i),
                }
            }
            ":info" => pairing.abandon(client),
            other => {
                return Err(LineError::new(
                    line,
                    "type",
                    format!("unknown type {other:?}"),
                ));
            }
        }
    }
    Ok(pairing.finish(&dropped))
}

fn invoke(line: usize, client: u64, time: u64, f: &str, value: Value) -> Record {
    Record {
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
    }
}

fn check_same_f(record: &Record, f: &str, line: usize) -> Result<(), LineError> {
    if record.f == f {
        return Ok(());
    }
    let message = format!(
        "returns :{f} but the open call (line {}) is :{}",
        record.line, record.f
    );
    Err(LineError::new(line, "f", message))
}

fn parse_value(text: &str, line: usize) -> Result<Value, LineError> {
    let bad = || LineError::new(line, "value", format!("cannot read value {text:?}"));
    match text {
        "nil" => Ok(Value::Null),
        ":timed-out" => Ok(json!(":timed-out")),
        _ if text.starts_with('[') && text.ends_with(']') => {
            let items: Result<Vec<i64>, _> = text[1..text.len() - 1]
                .split_whitespace()
                .map(str::parse)
                .collect();
            Ok(json!(items.map_err(|_| bad())?))
        }
        _ => text.parse::<i64>().map(|v| json!(v)).map_err(|_| bad()),
    }
}
