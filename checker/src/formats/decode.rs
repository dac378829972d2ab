//! Giving records the types of a model.

use super::{LineError, Record};
use crate::models::{
    CasRegister, Initial, Kv, KvInput, KvOutput, MicroOp, MultiRegister, Register, RegisterInput,
    RegisterOutput, Txn, TxnOutput, VersionedInput, VersionedKv, VersionedOutput,
};
use crate::{Model, PowerSet};
use serde_json::Value;
use std::sync::Arc;

/// A model whose operations can be read from [`Record`]s. Implement it for your own model
/// to check JSON Lines histories of your system with it.
pub trait Decode: Model + Sized {
    /// The record's input and output (`None`: unknown), or the field that is wrong and why.
    #[allow(clippy::type_complexity)]
    fn decode(record: &Record) -> Result<(Self::Input, Option<Self::Output>), (String, String)>;
}

/// Decodes with the record's lines in errors: the output's line is the return's.
pub(crate) fn decode_one<M: Decode>(
    record: &Record,
) -> Result<(M::Input, Option<M::Output>), LineError> {
    M::decode(record).map_err(|(field, message)| {
        let line = match field.as_str() {
            "output" => record.return_line.unwrap_or(record.line),
            _ => record.line,
        };
        LineError {
            line,
            field,
            message,
        }
    })
}

fn fail<T>(field: &str, message: impl Into<String>) -> Result<T, (String, String)> {
    Err((field.to_string(), message.into()))
}

fn int(value: &Value, field: &str) -> Result<i64, (String, String)> {
    value.as_i64().map_or_else(
        || fail(field, format!("expected an integer, found {value}")),
        Ok,
    )
}

fn string(value: &Value, field: &str) -> Result<String, (String, String)> {
    value.as_str().map_or_else(
        || fail(field, format!("expected a string, found {value}")),
        |s| Ok(s.to_string()),
    )
}

fn key(record: &Record) -> Result<String, (String, String)> {
    record
        .key
        .clone()
        .map_or_else(|| fail("key", "missing (this model is keyed)"), Ok)
}

/// Applies `decode` to a known output; an absent output stays unknown.
fn output<T>(
    record: &Record,
    decode: impl FnOnce(&Value) -> Result<T, (String, String)>,
) -> Result<Option<T>, (String, String)> {
    record.output.as_ref().map(decode).transpose()
}

fn done<T>(value: &Value, accepted: &str, out: T) -> Result<T, (String, String)> {
    if value.as_str() == Some(accepted) {
        Ok(out)
    } else {
        fail("output", format!("expected \"{accepted}\", found {value}"))
    }
}

fn decode_register(
    record: &Record,
    with_cas: bool,
) -> Result<(RegisterInput, Option<RegisterOutput>), (String, String)> {
    match record.f.as_str() {
        "read" => {
            let out = output(record, |v| match v {
                Value::Null => Ok(RegisterOutput::Read(None)),
                v => int(v, "output").map(|v| RegisterOutput::Read(Some(v))),
            })?;
            Ok((RegisterInput::Read, out))
        }
        "write" => {
            let input = RegisterInput::Write(int(&record.value, "value")?);
            Ok((
                input,
                output(record, |v| done(v, "ok", RegisterOutput::Write))?,
            ))
        }
        "cas" if with_cas => {
            let pair = record.value.as_array().filter(|a| a.len() == 2);
            let Some(pair) = pair else {
                return fail("value", "expected [expected, new]");
            };
            let input = RegisterInput::Cas {
                expected: int(&pair[0], "value")?,
                new: int(&pair[1], "value")?,
            };
            let out = output(record, |v| {
                v.as_bool()
                    .map(RegisterOutput::Cas)
                    .map_or_else(|| fail("output", "expected true or false"), Ok)
            })?;
            Ok((input, out))
        }
        "cas" => fail("f", "a plain register has no cas; use the cas model"),
        other => fail(
            "f",
            format!("unknown operation {other:?} (expected read, write or cas)"),
        ),
    }
}

impl Decode for Register {
    fn decode(
        record: &Record,
    ) -> Result<(RegisterInput, Option<RegisterOutput>), (String, String)> {
        decode_register(record, false)
    }
}

impl Decode for CasRegister {
    fn decode(
        record: &Record,
    ) -> Result<(RegisterInput, Option<RegisterOutput>), (String, String)> {
        decode_register(record, true)
    }
}

impl Decode for Kv {
    fn decode(record: &Record) -> Result<(KvInput, Option<KvOutput>), (String, String)> {
        let key = key(record)?;
        let value = || string(&record.value, "value").map(Arc::from);
        match record.f.as_str() {
            "get" => {
                let out = output(record, |v| string(v, "output").map(KvOutput::Value))?;
                Ok((KvInput::Get { key }, out))
            }
            "put" => Ok((
                KvInput::Put {
                    key,
                    value: value()?,
                },
                output(record, |v| done(v, "ok", KvOutput::Done))?,
            )),
            "append" => Ok((
                KvInput::Append {
                    key,
                    value: value()?,
                },
                output(record, |v| done(v, "ok", KvOutput::Done))?,
            )),
            other => fail(
                "f",
                format!("unknown operation {other:?} (expected get, put or append)"),
            ),
        }
    }
}

fn versioned_output(value: &Value) -> Result<VersionedOutput, (String, String)> {
    match value {
        Value::String(s) => match s.as_str() {
            "OK" => Ok(VersionedOutput::Done),
            "ErrNoKey" => Ok(VersionedOutput::NoKey),
            "ErrVersion" => Ok(VersionedOutput::ErrVersion),
            "ErrMaybe" => Ok(VersionedOutput::ErrMaybe),
            _ => fail(
                "output",
                format!("unknown error {s:?} (OK, ErrNoKey, ErrVersion, ErrMaybe)"),
            ),
        },
        Value::Object(map) => {
            let value = string(map.get("value").unwrap_or(&Value::Null), "output")?;
            let version = map.get("version").and_then(Value::as_u64);
            let Some(version) = version else {
                return fail("output", "expected {\"value\", \"version\"}");
            };
            Ok(VersionedOutput::Value { value, version })
        }
        v => fail(
            "output",
            format!("expected {{\"value\", \"version\"}} or an error, found {v}"),
        ),
    }
}

impl Decode for PowerSet<VersionedKv> {
    fn decode(
        record: &Record,
    ) -> Result<(VersionedInput, Option<VersionedOutput>), (String, String)> {
        let key = key(record)?;
        let out = output(record, versioned_output)?;
        match record.f.as_str() {
            "get" => Ok((VersionedInput::Get { key }, out)),
            "put" => {
                let value = Arc::from(string(&record.value, "value")?);
                let version = record.args.get("version").and_then(Value::as_u64);
                let Some(version) = version else {
                    return fail("version", "missing or not a non-negative integer");
                };
                Ok((
                    VersionedInput::Put {
                        key,
                        value,
                        version,
                    },
                    out,
                ))
            }
            other => fail(
                "f",
                format!("unknown operation {other:?} (expected get or put)"),
            ),
        }
    }
}

impl<M: Decode<Input = RegisterInput, Output = RegisterOutput, State = Option<i64>>> Decode
    for Initial<M>
{
    fn decode(
        record: &Record,
    ) -> Result<(RegisterInput, Option<RegisterOutput>), (String, String)> {
        M::decode(record)
    }
}

impl Decode for MultiRegister {
    /// `f` is `txn`; `value` is `[["read"|"write", key, value], ...]`; the output is the same
    /// list with the values read (`null`: unknown).
    fn decode(record: &Record) -> Result<(Txn, Option<TxnOutput>), (String, String)> {
        if record.f != "txn" {
            return fail("f", format!("expected txn, found {:?}", record.f));
        }
        let mops = micro_ops(&record.value, "value")?;
        let input: Txn = mops
            .iter()
            .map(|(f, k, v)| match *f {
                "read" => Ok(MicroOp::Read(k.clone())),
                _ => int(v, "value").map(|v| MicroOp::Write(k.clone(), v)),
            })
            .collect::<Result<_, _>>()?;
        let out = output(record, |v| {
            let done = micro_ops(v, "output")?;
            if done.len() != mops.len() {
                return fail("output", "the completed transaction has other micro-ops");
            }
            done.iter()
                .map(|(f, _, v)| match (*f, v) {
                    ("read", Value::Null) | ("write", _) => Ok(None),
                    (_, v) => int(v, "output").map(Some),
                })
                .collect::<Result<TxnOutput, _>>()
        })?;
        Ok((input, out))
    }
}

/// One micro-operation as read: `("read"|"write", key, value)`.
type RawMicroOp<'a> = (&'static str, String, &'a Value);

/// `[["read"|"write", key, value], ...]`.
fn micro_ops<'a>(value: &'a Value, field: &str) -> Result<Vec<RawMicroOp<'a>>, (String, String)> {
    let Some(items) = value.as_array() else {
        return fail(field, "expected [[f, key, value], ...]");
    };
    items
        .iter()
        .map(|m| {
            let parts = m.as_array().filter(|p| p.len() == 3);
            let Some(p) = parts else {
                return fail(field, format!("expected [f, key, value], found {m}"));
            };
            let f = match p[0].as_str() {
                Some("read" | "r" | ":read" | ":r") => "read",
                Some("write" | "w" | ":write" | ":w") => "write",
                _ => return fail(field, format!("unknown micro-op {}", p[0])),
            };
            let key = p[1]
                .as_str()
                .map_or_else(|| p[1].to_string(), str::to_string);
            Ok((f, key, &p[2]))
        })
        .collect()
}
