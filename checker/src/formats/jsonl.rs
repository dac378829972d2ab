//! Our JSON Lines format (specs/history-format.md): one JSON object per line, each either
//! an operation (`call`/`return` times) or an event (`"event": "call"|"return"`, in
//! real-time order). A file holds one kind or the other.

use super::{LineError, Pairing, Record};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

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
        let mut object = parse_object(raw, line)?;
        let is_event = object.contains_key("event");
        if *kind.get_or_insert(is_event) != is_event {
            let message = "mixes operations and events; a file holds one kind";
            return Err(LineError::new(line, "event", message));
        }
        if is_event {
            events.read(&mut object, line, index as u64)?;
        } else {
            ops.push(operation(&mut object, line)?);
        }
    }
    Ok(if kind == Some(true) {
        events.pairing.records
    } else {
        ops
    })
}

/// One line's fields in the order written. A key without escapes is borrowed from the line,
/// so reading a line allocates only its values (most of a small history's parse went to the
/// keys and the map nodes of a `serde_json::Map`). A repeated key means its last value, as in
/// a `serde_json::Map`.
struct Object<'a>(Vec<(Cow<'a, str>, Value)>);

impl Object<'_> {
    fn get(&self, field: &str) -> Option<&Value> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v)
    }

    fn contains_key(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    /// Takes the field's value out (every copy of a repeated key).
    fn remove(&mut self, field: &str) -> Option<Value> {
        let mut last = None;
        self.0.retain_mut(|(k, v)| {
            let hit = k == field;
            if hit {
                last = Some(std::mem::take(v));
            }
            !hit
        });
        last
    }
}

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Key<'a>(Cow<'a, str>);
        impl<'de> Deserialize<'de> for Key<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct KeyVisitor;
                impl<'de> Visitor<'de> for KeyVisitor {
                    type Value = Key<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a field name")
                    }
                    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                        Ok(Key(Cow::Borrowed(v)))
                    }
                    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                        Ok(Key(Cow::Owned(v.to_owned())))
                    }
                    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                        Ok(Key(Cow::Owned(v)))
                    }
                }
                d.deserialize_str(KeyVisitor)
            }
        }
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(key)) = map.next_key()? {
                    fields.push((key, map.next_value()?));
                }
                Ok(Object(fields))
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

fn parse_object(raw: &str, line: usize) -> Result<Object<'_>, LineError> {
    if raw.trim_start().starts_with('{') {
        return serde_json::from_str::<Object>(raw)
            .map_err(|e| LineError::new(line, "line", format!("invalid JSON: {e}")));
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(_) => Err(LineError::new(line, "line", "expected a JSON object")),
        Err(e) => Err(LineError::new(line, "line", format!("invalid JSON: {e}"))),
    }
}

fn uint(object: &Object, field: &str, line: usize) -> Result<Option<u64>, LineError> {
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

fn required(object: &Object, field: &str, line: usize) -> Result<u64, LineError> {
    uint(object, field, line)?.ok_or_else(|| LineError::new(line, field, "missing"))
}

/// The call part shared by operations and call events. It moves `f`, `key` and `value` out
/// of the object instead of copying them; the caller reads the other reserved fields.
fn call_record(object: &mut Object, line: usize, call: u64) -> Result<Record, LineError> {
    let f = match object.remove("f") {
        Some(Value::String(f)) => f,
        Some(v) => {
            return Err(LineError::new(
                line,
                "f",
                format!("expected a string, found {v}"),
            ));
        }
        None => return Err(LineError::new(line, "f", "missing")),
    };
    let key = match object.remove("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k),
        Some(v) => {
            return Err(LineError::new(
                line,
                "key",
                format!("expected a string, found {v}"),
            ));
        }
    };
    let args = object
        .0
        .iter()
        .filter(|(name, _)| !RESERVED.contains(&name.as_ref()))
        .map(|(name, v)| (name.to_string(), v.clone()))
        .collect();
    Ok(Record {
        line,
        return_line: None,
        client: required(object, "client", line)?,
        call,
        ret: None,
        f,
        key,
        value: object.remove("value").unwrap_or(Value::Null),
        args,
        output: None,
    })
}

fn operation(object: &mut Object, line: usize) -> Result<Record, LineError> {
    let call = required(object, "call", line)?;
    let mut record = call_record(object, line, call)?;
    record.ret = uint(object, "return", line)?;
    record.output = object.remove("output");
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
    fn read(&mut self, object: &mut Object, line: usize, time: u64) -> Result<(), LineError> {
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
                self.pairing.records[i].output = object.remove("output");
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
