//! Porcupine's kv logs: one EDN map per line,
//! `{:process 4, :type :invoke, :f :get, :key "3", :value nil}`, in real-time order (line
//! numbers serve as times). Only `:invoke` and `:ok` occur upstream; `:info` is read as
//! "never returned" and `:fail` as "did not happen" (the operation is dropped).

use super::{LineError, Pairing, Record};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(crate) fn parse(text: &str) -> Result<Vec<Record>, LineError> {
    let mut pairing = Pairing::new();
    let mut dropped: Vec<usize> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let map = parse_map(raw.trim(), line)?;
        let get = |field: &str| {
            map.get(field)
                .ok_or_else(|| LineError::new(line, field, "missing"))
        };
        let client = get(":process")?
            .as_u64()
            .ok_or_else(|| LineError::new(line, ":process", "not a process number"))?;
        let f = keyword(get(":f")?, line, ":f")?;
        let value = map.get(":value").cloned().unwrap_or(Value::Null);
        let time = index as u64;
        match keyword(get(":type")?, line, ":type")? {
            "invoke" => {
                let key = match get(":key")? {
                    Value::String(k) => k.clone(),
                    _ => return Err(LineError::new(line, ":key", "not a string")),
                };
                pairing.call(invoke(line, client, time, f, key, value))?;
            }
            "ok" => {
                let i = pairing.ret(client, line, time)?;
                let record = &mut pairing.records[i];
                record.output = Some(if f == "get" { value } else { json!("ok") });
            }
            "fail" => dropped.push(pairing.ret(client, line, time)?),
            "info" => pairing.abandon(client),
            other => {
                return Err(LineError::new(
                    line,
                    ":type",
                    format!("unknown type :{other}"),
                ));
            }
        }
    }
    Ok(pairing.finish(&dropped))
}

fn invoke(line: usize, client: u64, time: u64, f: &str, key: String, value: Value) -> Record {
    Record {
        line,
        return_line: None,
        client,
        call: time,
        ret: None,
        f: f.to_string(),
        key: Some(key),
        value,
        args: Default::default(),
        output: None,
    }
}

fn keyword<'a>(value: &'a Value, line: usize, field: &str) -> Result<&'a str, LineError> {
    value
        .as_str()
        .and_then(|s| s.strip_prefix('\u{0}'))
        .ok_or_else(|| LineError::new(line, field, "expected a keyword such as :ok"))
}

/// Parses a flat EDN map whose keys are keywords and values are strings, integers, `nil` or
/// keywords (returned as strings prefixed with NUL so they differ from string values).
fn parse_map(text: &str, line: usize) -> Result<BTreeMap<String, Value>, LineError> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| LineError::new(line, "line", "expected an EDN map `{:key value, ...}`"))?;
    let mut chars = inner.chars().peekable();
    let mut map = BTreeMap::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(map);
        }
        let key = atom(&mut chars);
        if !key.starts_with(':') {
            return Err(LineError::new(
                line,
                "line",
                format!("expected a keyword, found {key:?}"),
            ));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let value = value(&mut chars, line, &key)?;
        map.insert(key, value);
    }
}

fn atom(chars: &mut std::iter::Peekable<std::str::Chars>) -> String {
    let mut out = String::new();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || c == ',' {
            break;
        }
        out.push(c);
        chars.next();
    }
    out
}

fn value(
    chars: &mut std::iter::Peekable<std::str::Chars>,
    line: usize,
    key: &str,
) -> Result<Value, LineError> {
    if chars.peek() == Some(&'"') {
        chars.next();
        let mut s = String::new();
        loop {
            match chars.next() {
                None => return Err(LineError::new(line, key, "unterminated string")),
                Some('"') => return Ok(Value::String(s)),
                Some('\\') => match chars.next() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some(c) => s.push(c),
                    None => return Err(LineError::new(line, key, "unterminated string")),
                },
                Some(c) => s.push(c),
            }
        }
    }
    let atom = atom(chars);
    match atom.as_str() {
        "nil" => Ok(Value::Null),
        "" => Err(LineError::new(line, key, "missing value")),
        _ if atom.starts_with(':') => Ok(Value::String(format!("\u{0}{}", &atom[1..]))),
        _ => atom
            .parse::<i64>()
            .map(|v| json!(v))
            .map_err(|_| LineError::new(line, key, format!("cannot read value {atom:?}"))),
    }
}
