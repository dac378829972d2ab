//! Reading histories: every format, auto-detection, and errors that name file, line, field.

use aver_checker::formats::{Format, ParseError, decode, detect, parse_records};
use aver_checker::models::{
    CasRegister, Kv, KvInput, KvOutput, Register, RegisterInput, RegisterOutput, VersionedKv,
};
use aver_checker::{CheckResult, Operation, PowerSet, check_operations};

fn records_of(text: &str) -> Vec<aver_checker::formats::Record> {
    parse_records("h.jsonl", text, None).unwrap_or_else(|e| panic!("{e}"))
}

fn error_of(text: &str) -> ParseError {
    parse_records("h.jsonl", text, None).expect_err("should not parse")
}

fn kv(text: &str) -> Result<Vec<Operation<KvInput, KvOutput>>, ParseError> {
    parse_records("h.jsonl", text, None).and_then(|r| decode::<Kv>("h.jsonl", &r))
}

#[test]
fn jsonl_operations_decode_into_kv_operations() {
    let text = r#"{"client": 1, "call": 100, "return": 130, "f": "put", "key": "x", "value": "1", "output": "ok"}
{"client": 2, "call": 110, "return": 120, "f": "get", "key": "x", "output": ""}

{"client": 3, "call": 115, "f": "append", "key": "x", "value": "2"}
"#;
    let ops = kv(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ops.len(), 3);
    assert_eq!(ops[1].output, Some(KvOutput::Value(String::new())));
    assert_eq!(
        (ops[2].ret, ops[2].output.clone()),
        (None, None),
        "no return: unknown outcome"
    );
    assert_eq!(check_operations(&Kv, &ops, None), CheckResult::Ok);
}

/// A field name written with escapes is the same name, a repeated field means its last
/// value (as a JSON object read into a map), and fields beyond the reserved ones are kept as
/// the call's arguments.
#[test]
fn jsonl_field_names_with_escapes_repeated_fields_and_extra_arguments() {
    let text = r#"{"client": 1, "call": 1, "return": 2, "f": "put", "key": "x", "value": "a", "value": "b", "output": "ok"}
{"cl\u0069ent": 2, "call": 3, "return": 4, "f": "get", "key": "x", "output": "b", "version": 7, "version": 8}
"#;
    let records = records_of(text);
    assert_eq!(records[0].value, serde_json::json!("b"));
    assert_eq!(records[1].client, 2);
    assert_eq!(records[1].args.get("version"), Some(&serde_json::json!(8)));
    assert_eq!(records[1].args.len(), 1);
    let ops = kv(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check_operations(&Kv, &ops, None), CheckResult::Ok);
}

#[test]
fn jsonl_events_pair_by_id_in_line_order() {
    let text = r#"{"event": "call", "client": 1, "id": 7, "f": "write", "value": 5}
{"event": "call", "client": 2, "id": 8, "f": "read"}
{"event": "return", "client": 2, "id": 8, "output": 5}
{"event": "return", "client": 1, "id": 7, "output": "ok"}
{"event": "call", "client": 3, "id": 9, "f": "write", "value": 6}
"#;
    let records = records_of(text);
    let ops = decode::<Register>("h.jsonl", &records).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((ops[0].call, ops[0].ret), (0, Some(3)));
    assert_eq!(ops[1].output, Some(RegisterOutput::Read(Some(5))));
    assert_eq!(ops[2].ret, None);
    assert_eq!(check_operations(&Register, &ops, None), CheckResult::Ok);
}

#[test]
fn versioned_kv_reads_versions_and_err_maybe() {
    let text = r#"{"client": 1, "call": 0, "return": 10, "f": "put", "key": "k", "value": "a", "version": 0, "output": "ErrMaybe"}
{"client": 2, "call": 20, "return": 30, "f": "get", "key": "k", "output": {"value": "a", "version": 1}}
"#;
    let ops =
        decode::<PowerSet<VersionedKv>>("h", &records_of(text)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        check_operations(&PowerSet(VersionedKv), &ops, None),
        CheckResult::Ok,
        "applied"
    );
    let not_applied = text.replace(r#"{"value": "a", "version": 1}"#, r#""ErrNoKey""#);
    let ops = decode::<PowerSet<VersionedKv>>("h", &records_of(&not_applied)).expect("parses");
    assert_eq!(
        check_operations(&PowerSet(VersionedKv), &ops, None),
        CheckResult::Ok,
        "not applied"
    );
    let wrong_version = text.replace(r#""version": 1}"#, r#""version": 2}"#);
    let ops = decode::<PowerSet<VersionedKv>>("h", &records_of(&wrong_version)).expect("parses");
    assert_eq!(
        check_operations(&PowerSet(VersionedKv), &ops, None),
        CheckResult::Illegal
    );
}

#[test]
fn jepsen_log_semantics_match_porcupine() {
    // Tabs in the first lines, runs of spaces in the others (as in etcd_100..102).
    let text = "INFO  jepsen.util - 0\t:invoke\t:write\t1\n\
                INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]\n\
                INFO  jepsen.util - 0\t:ok\t:write\t1\n\
                INFO  jepsen.util - 1   :info   :cas    :timed-out\n\
                INFO  jepsen.util - 2   :invoke :read   nil\n\
                INFO  jepsen.util - 2   :fail   :read   :timed-out\n\
                INFO  jepsen.util - 3   :invoke :cas    [1 3]\n\
                INFO  jepsen.util - 3   :fail   :cas    [1 3]\n";
    assert_eq!(detect(text), Some(Format::Jepsen));
    let records = records_of(text);
    let ops = decode::<CasRegister>("etcd.log", &records).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ops.len(), 4);
    assert_eq!(
        (ops[1].ret, ops[1].output.clone()),
        (None, None),
        ":info never returns"
    );
    assert_eq!(
        (ops[2].ret, ops[2].output.clone()),
        (Some(5), None),
        ":fail :read is unknown"
    );
    assert_eq!(ops[3].output, Some(RegisterOutput::Cas(false)));
    assert_eq!(
        ops[3].input,
        RegisterInput::Cas {
            expected: 1,
            new: 3
        }
    );
    // cas(1,3) failed after write(1) completed: only if the timed-out cas(1,2) took effect.
    assert_eq!(check_operations(&CasRegister, &ops, None), CheckResult::Ok);
    let without_info: Vec<_> = ops.iter().filter(|o| o.client != 1).cloned().collect();
    assert_eq!(
        check_operations(&CasRegister, &without_info, None),
        CheckResult::Illegal
    );
}

#[test]
fn porcupine_kv_log_is_detected_and_read() {
    let text = "{:process 4, :type :invoke, :f :append, :key \"3\", :value \"x 4 3 y\"}\n\
                {:process 5, :type :invoke, :f :get, :key \"3\", :value nil}\n\
                {:process 4, :type :ok, :f :append, :key \"3\", :value \"x 4 3 y\"}\n\
                {:process 5, :type :ok, :f :get, :key \"3\", :value \"x 4 3 y\"}\n";
    assert_eq!(detect(text), Some(Format::PorcupineKv));
    let ops = kv(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ops[1].output, Some(KvOutput::Value("x 4 3 y".into())));
    assert_eq!(check_operations(&Kv, &ops, None), CheckResult::Ok);
}

#[test]
fn an_empty_file_is_an_empty_linearizable_history() {
    let ops = kv("").expect("empty is fine");
    assert!(ops.is_empty());
    assert_eq!(check_operations(&Kv, &ops, None), CheckResult::Ok);
}

#[test]
fn parse_errors_name_file_line_and_field() {
    let cases: [(&str, usize, &str, &str); 8] = [
        (
            "{\"client\": 1, \"call\": 0, \"f\": \"get\"\n",
            1,
            "line",
            "invalid JSON",
        ),
        (
            "{\"client\": 1, \"call\": 0, \"f\": \"get\"}\n{\"call\": 1, \"f\": \"get\"}\n",
            2,
            "client",
            "missing",
        ),
        (
            "{\"client\": -1, \"call\": 0, \"f\": \"get\"}\n",
            1,
            "client",
            "non-negative",
        ),
        (
            "{\"client\": 1, \"call\": 5, \"return\": 4, \"f\": \"get\"}\n",
            1,
            "return",
            "before call",
        ),
        (
            "{\"client\": 1, \"call\": 5, \"f\": \"get\", \"output\": \"\"}\n",
            1,
            "output",
            "without a return",
        ),
        (
            "{\"client\": 1, \"call\": 5, \"f\": 3}\n",
            1,
            "f",
            "expected a string",
        ),
        (
            "{\"client\": 1, \"call\": 0, \"f\": \"get\"}\n{\"event\": \"call\", \"client\": 1, \"id\": 1, \"f\": \"get\"}\n",
            2,
            "event",
            "mixes",
        ),
        ("hello\n", 1, "line", "cannot tell the format"),
    ];
    for (text, line, field, words) in cases {
        let e = error_of(text);
        assert_eq!(
            (e.file.as_str(), e.line, e.field.as_str()),
            ("h.jsonl", line, field),
            "{e}"
        );
        assert!(e.message.contains(words), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("h.jsonl:{line}: field `{field}`")),
            "{e}"
        );
    }
}

#[test]
fn model_errors_name_the_field_and_the_return_line_for_outputs() {
    let text = "{\"event\": \"call\", \"client\": 1, \"id\": 1, \"f\": \"get\", \"key\": \"k\"}\n\
                {\"event\": \"return\", \"client\": 1, \"id\": 1, \"output\": 3}\n";
    let e = kv(text).expect_err("a get returns a string");
    assert_eq!((e.line, e.field.as_str()), (2, "output"), "{e}");
    let e = kv("{\"client\": 1, \"call\": 0, \"f\": \"get\"}\n").expect_err("kv needs keys");
    assert_eq!((e.line, e.field.as_str()), (1, "key"), "{e}");
    let e =
        kv("{\"client\": 1, \"call\": 0, \"f\": \"incr\", \"key\": \"k\"}\n").expect_err("no incr");
    assert_eq!(e.field, "f", "{e}");
    let cas = "{\"client\": 1, \"call\": 0, \"f\": \"cas\", \"value\": [1, 2]}\n";
    let e = decode::<Register>("h", &records_of(cas)).expect_err("a plain register has no cas");
    assert!(e.message.contains("cas model"), "{e}");
    let jepsen = "INFO  jepsen.util - 0\t:invoke\t:write\tfoo\n";
    let e = parse_records("etcd.log", jepsen, None).expect_err("not a number");
    assert_eq!(
        (e.file.as_str(), e.line, e.field.as_str()),
        ("etcd.log", 1, "value"),
        "{e}"
    );
    let orphan = "INFO  jepsen.util - 0\t:ok\t:write\t1\n";
    let e = parse_records("etcd.log", orphan, None).expect_err("return without call");
    assert_eq!(e.field, "process", "{e}");
}

/// A Jepsen history.edn with Knossos's semantics: a nil read matches anything, `:fail` did
/// not happen (a failed cas too), `:info` may take effect later or never, nemesis operations
/// are not client operations.
#[test]
fn jepsen_history_edn_has_knossos_semantics() {
    use aver_checker::models::Initial;
    let text = r#"[{:process 0, :type :invoke, :f :write, :value 1, :time 10, :index 0}
 {:process 0, :type :ok, :f :write, :value 1, :time 20, :index 1}
 {:process :nemesis, :type :info, :f :start, :value nil}
 {:process 1, :type :invoke, :f :cas, :value [5 6]}
 {:process 1, :type :fail, :f :cas, :value [5 6]}
 {:process 2, :type :invoke, :f :read, :value nil}
 {:process 2, :type :ok, :f :read, :value nil}
 #jepsen.history.Op{:process 3, :type :invoke, :f :write, :value 7}
 {:process 3, :type :info, :f :write, :value 7, :error :timeout}
 {:process 4, :type :invoke, :f :read, :value nil}
 {:process 4, :type :ok, :f :read, :value 7}]
"#;
    assert_eq!(detect(text), Some(Format::JepsenEdn));
    let records = parse_records("history.edn", text, None).unwrap_or_else(|e| panic!("{e}"));
    let fs: Vec<&str> = records.iter().map(|r| r.f.as_str()).collect();
    assert_eq!(
        fs,
        ["write", "read", "write", "read"],
        "cas failed, nemesis skipped"
    );
    assert_eq!(records[1].output, None, "a nil read is unknown");
    assert_eq!(records[2].ret, None, ":info never returned");
    let ops = decode::<CasRegister>("history.edn", &records).expect("decodes");
    assert_eq!(check_operations(&CasRegister, &ops, None), CheckResult::Ok);
    // The same reads in the other order: 7 then 1 again cannot be.
    let flipped = text.replace(":value 7}]", ":value 7}\n {:process 5, :type :invoke, :f :read, :value nil}\n {:process 5, :type :ok, :f :read, :value 1}]");
    let records = parse_records("history.edn", &flipped, None).expect("parses");
    let ops = decode::<CasRegister>("history.edn", &records).expect("decodes");
    assert_eq!(
        check_operations(&CasRegister, &ops, None),
        CheckResult::Illegal
    );
    // --init: a first read of 0 is legal from (cas-register 0), not from nil.
    let zero = "{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok, :f :read, :value 0}\n";
    let records = parse_records("h.edn", zero, None).expect("one map per line also reads");
    let ops = decode::<CasRegister>("h.edn", &records).expect("decodes");
    assert_eq!(
        check_operations(&CasRegister, &ops, None),
        CheckResult::Illegal
    );
    let from_zero = Initial {
        model: CasRegister,
        value: Some(0),
    };
    assert_eq!(check_operations(&from_zero, &ops, None), CheckResult::Ok);
}

/// Knossos's multi-register: transactions over several registers, nil reads unknown.
#[test]
fn jepsen_history_edn_multi_register_transactions() {
    use aver_checker::models::MultiRegister;
    let history = |last_read: &str| {
        format!(
            "[{{:process 0 :type :invoke :f :txn :value [[:w :x 1] [:w :y 2]]}}
 {{:process 0 :type :ok :f :txn :value [[:w :x 1] [:w :y 2]]}}
 {{:process 1 :type :invoke :f :txn :value [[:r :x nil] [:r :y nil]]}}
 {{:process 1 :type :ok :f :txn :value [[:r :x 1] [:r :y {last_read}]]}}]"
        )
    };
    let check = |text: &str| {
        let records = parse_records("h.edn", text, None).unwrap_or_else(|e| panic!("{e}"));
        let ops = decode::<MultiRegister>("h.edn", &records).unwrap_or_else(|e| panic!("{e}"));
        check_operations(&MultiRegister::default(), &ops, None)
    };
    assert_eq!(check(&history("2")), CheckResult::Ok);
    assert_eq!(
        check(&history("nil")),
        CheckResult::Ok,
        "nil matches anything"
    );
    assert_eq!(
        check(&history("3")),
        CheckResult::Illegal,
        "a torn transaction"
    );
}

/// Bad Jepsen histories: errors name the line and the field, never a panic.
#[test]
fn jepsen_history_edn_errors_name_line_and_field() {
    let error = |text: &str| parse_records("h.edn", text, None).expect_err("should not parse");
    let e = error(
        "[{:process 0 :type :invoke :f :read}\n{:process 0, :type :ok, :f :write, :value 1}]",
    );
    assert_eq!((e.line, e.field.as_str()), (2, ":f"), "{e}");
    let e = error("[{:process 0 :type :invoke :f :read}\n{:process 0 :type :maybe :f :read}]");
    assert_eq!((e.line, e.field.as_str()), (2, ":type"), "{e}");
    let e =
        error("[{:process 0 :type :invoke :f :read}\n\n{:process 0 :type :ok :f :read :value 1]");
    assert_eq!(e.line, 3, "{e}");
    let e = error("[{:type :invoke :f :read}]");
    assert_eq!(e.field, ":process", "{e}");
    let records = parse_records(
        "h.edn",
        "[{:process 0 :type :invoke :f :write :value \"x\"}]",
        None,
    )
    .expect("parses");
    let e = decode::<CasRegister>("h.edn", &records).expect_err("a string is no register value");
    assert_eq!((e.line, e.field.as_str()), (1, "value"), "{e}");
    assert!(e.to_string().starts_with("h.edn:1: field `value`"), "{e}");
}
