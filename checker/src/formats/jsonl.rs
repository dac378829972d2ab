//! Our JSON Lines format (specs/history-format.md): one JSON object per line, each either
//! an operation (`call`/`return` times) or an event (`"event": "call"|"return"`, in
//! real-time order). A file holds one kind or the other.

use super::{LineError, Pairing, Record};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Fields with a meaning of their own; any other field of a call is an extra argument.
const RESERVED: [&str; 9] = [
    "client", "call", "return", "f", "key", "value", "output", "event", "id",
];

pub(crate) fn parse(text: &str) -> Result<Vec<Record>, LineError> {
    let mut ops: Vec<Record> = Vec::new();
    let mut events = EventReader {
        pairing: Pairing::new(),
        ids: BTreeMap::new(),
    };
    let mut kind: Option<bool> = None; // Some(true): events
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let object = parse_object(raw, line)?;
        let is_event = object.contains_key("event");
        if *kind.get_or_insert(is_event) != is_event {
            let message = "mixes operations and events; a file holds one kind";
            return Err(LineError::new(line, "event", message));
        }
        if is_event {
            events.read(&object, line, index as u64)?;
        } else {
            ops.push(operation(&object, line)?);
        }
    }
    Ok(if kind == Some(true) {
        events.pairing.records
    } else {
        ops
    })
}

fn parse_object(raw: &str, line: usize) -> Result<Map<String, Value>, LineError> {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(LineError::new(line, "line", "expected a JSON object")),
        Err(e) => Err(LineError::new(line, "line", format!("invalid JSON: {e}"))),
    }
}

fn uint(object: &Map<String, Value>, field: &str, line: usize) -> Result<Option<u64>, LineError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            LineError::new(
                line,
                field,
                format!("expected a non-negative integer, found {v}"),
            )
        }),
    }
}

fn required(object: &Map<String, Value>, field: &str, line: usize) -> Result<u64, LineError> {
    uint(object, field, line)?.ok_or_else(|| LineError::new(line, field, "missing"))
}

/// The call part shared by operations and call events.
fn call_record(object: &Map<String, Value>, line: usize, call: u64) -> Result<Record, LineError> {
    let f = match object.get("f") {
        Some(Value::String(f)) => f.clone(),
        Some(v) => {
            return Err(LineError::new(
                line,
                "f",
                format!("expected a string, found {v}"),
            ));
        }
        None => return Err(LineError::new(line, "f", "missing")),
    };
    let key = match object.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(v) => {
            return Err(LineError::new(
                line,
                "key",
                format!("expected a string, found {v}"),
            ));
        }
    };
    let args = object
        .iter()
        .filter(|(name, _)| !RESERVED.contains(&name.as_str()))
        .map(|(name, v)| (name.clone(), v.clone()))
        .collect();
    Ok(Record {
        line,
        return_line: None,
        client: required(object, "client", line)?,
        call,
        ret: None,
        f,
        key,
        value: object.get("value").cloned().unwrap_or(Value::Null),
        args,
        output: None,
    })
}

fn operation(object: &Map<String, Value>, line: usize) -> Result<Record, LineError> {
    let call = required(object, "call", line)?;
    let mut record = call_record(object, line, call)?;
    record.ret = uint(object, "return", line)?;
    record.output = object.get("output").cloned();
    match record.ret {
        Some(ret) if ret < call => Err(LineError::new(
            line,
            "return",
            format!("return time {ret} is before call time {call}"),
        )),
        None if record.output.is_some() => Err(LineError::new(
            line,
            "output",
            "an operation without a return has no output",
        )),
        _ => {
            record.return_line = record.ret.map(|_| line);
            Ok(record)
        }
    }
}

struct EventReader {
    pairing: Pairing,
    /// Event id to client, for the operations still open.
    ids: BTreeMap<u64, u64>,
}

impl EventReader {
    fn read(
        &mut self,
        object: &Map<String, Value>,
        line: usize,
        time: u64,
    ) -> Result<(), LineError> {
        let id = required(object, "id", line)?;
        match object.get("event").and_then(Value::as_str) {
            Some("call") => {
                let record = call_record(object, line, time)?;
                if self.ids.insert(id, record.client).is_some() {
                    return Err(LineError::new(
                        line,
                        "id",
                        format!("id {id} is already open"),
                    ));
                }
                self.pairing.call(record)
            }
            Some("return") => {
                let Some(client) = self.ids.remove(&id) else {
                    return Err(LineError::new(
                        line,
                        "id",
                        format!("return of id {id}, which is not open"),
                    ));
                };
                let i = self.pairing.ret(client, line, time)?;
                self.pairing.records[i].output = object.get("output").cloned();
                Ok(())
            }
            _ => Err(LineError::new(
                line,
                "event",
                "expected \"call\" or \"return\"",
            )),
        }
    }
}
