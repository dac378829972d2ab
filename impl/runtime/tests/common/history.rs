//! Recording and checking the histories of KV clients, shared by the turmoil test and the
//! real-process nemesis test (`impl/cli/tests/nemesis.rs` includes this file).
//!
//! Two checks, each a property a user loses if it fails:
//! * the mixed put/get/append keys must be **linearizable** (`aver-checker`'s `kv` model);
//! * the append-only key `log`, read once at the end, must hold **every acknowledged append
//!   exactly once**, no append twice, nothing never issued, and its appends in an order that
//!   respects real time (an append that returned before another was called comes first).
//!   For an append-only key with unique values and one final read this is exactly
//!   linearizability, checked in linear time — the general search is exponential in the
//!   number of appends whose outcome is unknown, which a fault campaign produces plenty of.

use aver_checker::models::{KvInput, KvOutput as Out};
use aver_checker::{CheckResult, Operation};
use aver_core::kvraft::AppendOp as KvOp;
use std::collections::BTreeMap;
use std::time::Duration;

/// The append-only key.
pub const LOG_KEY: &str = "log";

/// One recorded operation.
pub type Op = Operation<KvInput, Out>;

/// The checker's input for a KV operation.
pub fn to_checker(op: &KvOp) -> KvInput {
    match op {
        KvOp::Get { key } => KvInput::Get {
            key: key.to_string(),
        },
        KvOp::Put { key, value } => KvInput::Put {
            key: key.to_string(),
            value: value.clone(),
        },
        KvOp::Append { key, value } => KvInput::Append {
            key: key.to_string(),
            value: value.clone(),
        },
    }
}

/// Writes `history` in aver's JSON Lines format (specs/history-format.md).
pub fn write_jsonl(path: &std::path::Path, history: &[Op]) {
    let mut text = String::new();
    for o in history {
        let (f, key, value) = match &o.input {
            KvInput::Get { key } => ("get", key, None),
            KvInput::Put { key, value } => ("put", key, Some(value)),
            KvInput::Append { key, value } => ("append", key, Some(value)),
        };
        let mut line = format!(
            "{{\"client\": {}, \"call\": {}, \"f\": \"{f}\", \"key\": {key:?}",
            o.client, o.call
        );
        if let Some(v) = value {
            line += &format!(", \"value\": {:?}", v.as_ref());
        }
        if let Some(r) = o.ret {
            line += &format!(", \"return\": {r}");
        }
        match &o.output {
            Some(Out::Value(v)) => line += &format!(", \"output\": {v:?}"),
            Some(Out::Done) => line += ", \"output\": \"ok\"",
            None => {}
        }
        text += &line;
        text += "}\n";
    }
    std::fs::write(path, text).unwrap();
}

fn is_log(o: &Op) -> bool {
    let key = match &o.input {
        KvInput::Get { key } | KvInput::Put { key, .. } | KvInput::Append { key, .. } => key,
    };
    key == LOG_KEY
}

/// Checks a whole history: linearizability of every key but the log, then the log's
/// properties against its final value. On failure writes the history next to `name` in the
/// temp directory and returns a message with the `aver lin` command that shows it.
pub fn check(name: &str, history: &[Op], final_log: &str) -> Result<String, String> {
    let (log, rest): (Vec<Op>, Vec<Op>) = history.iter().cloned().partition(is_log);
    let started = std::time::Instant::now();
    let result = aver_checker::check_operations(
        &aver_checker::models::Kv,
        &rest,
        Some(Duration::from_secs(60)),
    );
    if result != CheckResult::Ok {
        let path = std::env::temp_dir().join(format!("{name}.jsonl"));
        write_jsonl(&path, &rest);
        return Err(format!(
            "{name}: the history is {result:?} (not linearizable or undecided); see `aver lin {} --html out.html`",
            path.display()
        ));
    }
    let lin_time = started.elapsed();
    check_log(&log, final_log).map_err(|e| format!("{name}: key `{LOG_KEY}`: {e}"))?;
    Ok(format!(
        "{} operations linearizable (checked in {lin_time:.1?}); {} appends to `{LOG_KEY}`: \
         none lost, none doubled, in real-time order",
        rest.len(),
        log.len()
    ))
}

/// The append-only key's properties (see the module docs).
pub fn check_log(appends: &[Op], final_value: &str) -> Result<(), String> {
    let mut position: BTreeMap<&str, usize> = BTreeMap::new();
    for o in appends {
        let KvInput::Append { value, .. } = &o.input else {
            continue;
        };
        let token: &str = value;
        match final_value.match_indices(token).count() {
            0 if o.ret.is_some() => return Err(format!("acknowledged append {token} is lost")),
            0 => {}
            1 => {
                position.insert(token, final_value.find(token).expect("found once"));
            }
            n => return Err(format!("append {token} took effect {n} times")),
        }
    }
    let issued: usize = position.keys().map(|t| t.len()).sum();
    if issued != final_value.len() {
        return Err(format!(
            "the final value holds {} bytes nobody appended",
            final_value.len() - issued
        ));
    }
    // Real-time order: if a returned before b was called, a's token comes first.
    let mut done: Vec<(u64, usize, &str)> = Vec::new(); // (return, position, token) of effective, acknowledged appends
    for o in appends {
        let KvInput::Append { value, .. } = &o.input else {
            continue;
        };
        if let (Some(r), Some(&p)) = (o.ret, position.get(value.as_ref())) {
            done.push((r, p, value));
        }
    }
    done.sort();
    // prefix_max[k]: the append placed last among the first k to return.
    let mut prefix_max: Vec<(usize, &str)> = Vec::with_capacity(done.len() + 1);
    prefix_max.push((0, ""));
    for &(_, p, t) in &done {
        let last = *prefix_max.last().expect("non-empty");
        prefix_max.push(if p >= last.0 { (p, t) } else { last });
    }
    for o in appends {
        let KvInput::Append { value, .. } = &o.input else {
            continue;
        };
        let Some(&p) = position.get(value.as_ref()) else {
            continue;
        };
        // The latest position among appends that returned before this one was called.
        let before = done.partition_point(|d| d.0 < o.call);
        if before > 0 {
            let max = prefix_max[before];
            if max.0 > p {
                return Err(format!(
                    "append {} returned before {} was called, yet comes after it",
                    max.1, value
                ));
            }
        }
    }
    Ok(())
}
