//! Reading histories: our JSON Lines format (specs/history-format.md), Porcupine's kv logs
//! and Jepsen's etcd logs, with auto-detection.
//!
//! Every format is first read into [`Record`]s (one per operation, model-neutral: a function
//! name, an optional key, JSON values), then each record is decoded by the chosen model
//! ([`Decode`]). Errors name the file, the line and the field, so a user can fix the input.
//! Formats that have no timestamps (Jepsen, Porcupine) use line numbers as times.

mod decode;
mod edn;
mod edn_value;
mod jepsen;
mod jepsen_edn;
mod jsonl;

pub use decode::Decode;

use crate::{History, Operation};
use serde_json::Value;
use std::fmt;
use std::path::Path;

/// A history file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Our JSON Lines format (operations or events).
    Jsonl,
    /// Porcupine's kv logs (`{:process 4, :type :invoke, :f :get, :key "3", :value nil}`).
    PorcupineKv,
    /// Jepsen's etcd logs (`INFO  jepsen.util - 4 :invoke :read nil`, tab or space separated).
    Jepsen,
    /// Jepsen's own history files (`history.edn`), with Knossos's semantics.
    JepsenEdn,
}

/// One operation as read from a file, before a model gives it a type.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Line of the call (1-based), for error messages.
    pub line: usize,
    /// Line of the return, if any.
    pub return_line: Option<usize>,
    /// The client.
    pub client: u64,
    /// Call time.
    pub call: u64,
    /// Return time (`None`: never returned).
    pub ret: Option<u64>,
    /// The operation's name (`get`, `put`, `append`, `read`, `write`, `cas`).
    pub f: String,
    /// The key, for keyed models.
    pub key: Option<String>,
    /// The call's argument (`null` when none).
    pub value: Value,
    /// Further call arguments by name (e.g. `version`).
    pub args: serde_json::Map<String, Value>,
    /// The observed output (`None`: unknown).
    pub output: Option<Value>,
}

/// A problem in an input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The file.
    pub file: String,
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// The offending field (or `line` for the whole line).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: field `{}`: {}",
            self.file, self.line, self.field, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// An error at a line, before the file name is known.
#[derive(Clone, Debug)]
pub(crate) struct LineError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl LineError {
    pub(crate) fn new(line: usize, field: &str, message: impl Into<String>) -> LineError {
        LineError {
            line,
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn in_file(self, file: &str) -> ParseError {
        ParseError {
            file: file.to_string(),
            line: self.line,
            field: self.field,
            message: self.message,
        }
    }
}

/// Guesses the format from the first non-blank line (an empty file is an empty history):
/// `INFO … jepsen` is a Jepsen etcd log; `[` or `#jepsen` a Jepsen history.edn, and so is
/// `{:` when the map has no `:key` (with one, it is a Porcupine kv log); `{` is JSON Lines.
pub fn detect(text: &str) -> Option<Format> {
    let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Some(Format::Jsonl);
    };
    if first.starts_with("INFO") && first.contains("jepsen") {
        Some(Format::Jepsen)
    } else if first.starts_with('[') || first.starts_with("#jepsen") {
        Some(Format::JepsenEdn)
    } else if first.starts_with("{:") && first.contains(":key ") {
        Some(Format::PorcupineKv)
    } else if first.starts_with("{:") {
        Some(Format::JepsenEdn)
    } else if first.starts_with('{') {
        Some(Format::Jsonl)
    } else {
        None
    }
}

/// Reads records from text; `format: None` auto-detects.
pub fn parse_records(
    file: &str,
    text: &str,
    format: Option<Format>,
) -> Result<Vec<Record>, ParseError> {
    let format = match format.or_else(|| detect(text)) {
        Some(f) => f,
        None => {
            let message = "cannot tell the format (expected JSON Lines, a Porcupine kv log, a \
                           Jepsen etcd log or a Jepsen history.edn); pass --format";
            return Err(LineError::new(1, "line", message).in_file(file));
        }
    };
    let records = match format {
        Format::Jsonl => jsonl::parse(text),
        Format::PorcupineKv => edn::parse(text),
        Format::Jepsen => jepsen::parse(text),
        Format::JepsenEdn => jepsen_edn::parse(text),
    };
    records.map_err(|e| e.in_file(file))
}

/// Decodes records into operations of model `M`.
pub fn decode<M: Decode>(file: &str, records: &[Record]) -> Result<History<M>, ParseError> {
    records
        .iter()
        .map(|r| {
            let (input, output) = decode::decode_one::<M>(r).map_err(|e| e.in_file(file))?;
            Ok(Operation {
                client: r.client,
                input,
                call: r.call,
                output,
                ret: r.ret,
            })
        })
        .collect()
}

/// Reads and decodes a history file.
pub fn read_history<M: Decode>(
    path: &Path,
    format: Option<Format>,
) -> Result<History<M>, ParseError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ParseError {
        file: file.clone(),
        line: 0,
        field: "file".to_string(),
        message: e.to_string(),
    })?;
    decode::<M>(&file, &parse_records(&file, &text, format)?)
}

/// Matches returns to calls for formats given as events, one open operation per client.
pub(crate) struct Pairing {
    open: std::collections::BTreeMap<u64, usize>,
    /// The records so far, in call order.
    pub records: Vec<Record>,
}

impl Pairing {
    pub(crate) fn new() -> Pairing {
        Pairing {
            open: Default::default(),
            records: Vec::new(),
        }
    }

    /// Opens an operation; an already open one on the same client is an error.
    pub(crate) fn call(&mut self, record: Record) -> Result<(), LineError> {
        if self
            .open
            .insert(record.client, self.records.len())
            .is_some()
        {
            let message = format!(
                "client {} calls while its previous operation is open",
                record.client
            );
            return Err(LineError::new(record.line, "process", message));
        }
        self.records.push(record);
        Ok(())
    }

    /// The records in call order, without those at the indices in `dropped` (operations that
    /// definitely did not happen, e.g. Jepsen's `:fail`).
    pub(crate) fn finish(self, dropped: &[usize]) -> Vec<Record> {
        let mut keep = vec![true; self.records.len()];
        for &i in dropped {
            keep[i] = false;
        }
        self.records
            .into_iter()
            .zip(keep)
            .filter_map(|(r, k)| k.then_some(r))
            .collect()
    }

    /// Forgets the open operation of `client`: it never returns (Jepsen's `:info`).
    pub(crate) fn abandon(&mut self, client: u64) {
        self.open.remove(&client);
    }

    /// Closes the open operation of `client`; returns its index in `records`.
    pub(crate) fn ret(&mut self, client: u64, line: usize, time: u64) -> Result<usize, LineError> {
        let Some(i) = self.open.remove(&client) else {
            let message = format!("return for client {client}, which has no open operation");
            return Err(LineError::new(line, "process", message));
        };
        let record = &mut self.records[i];
        record.ret = Some(time);
        record.return_line = Some(line);
        Ok(i)
    }
}
