//! The hard generated set (testdata/hard: expected.tsv, generate.sh): every history there
//! regenerates byte for byte from the command recorded next to it, and the checker's
//! verdict matches the one known by construction. CI checks the files marked `ci=yes`
//! (each about a second or less for this checker); all of them:
//! `cargo test --release -p aver-checker --test hard -- --ignored`, or with timings
//! `aver bench lin --set hard`.

use aver_checker::formats::{decode, parse_records};
use aver_checker::generate::{Anomaly, GenModel, GenSpec, generate};
use aver_checker::models::{CasRegister, Kv, Register, VersionedKv};
use aver_checker::{CheckResult, PowerSet, check_operations};
use std::path::PathBuf;
use std::time::Duration;

struct Row {
    file: String,
    expected: CheckResult,
    ci: bool,
    spec: GenSpec,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/hard")
}

/// The rows of expected.tsv, each with the spec parsed from its command.
fn rows() -> Vec<Row> {
    let table = std::fs::read_to_string(dir().join("expected.tsv")).expect("expected.tsv");
    table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "path, expected, ci, command: {line}");
            Row {
                file: cols[0].to_string(),
                expected: match cols[1] {
                    "linearizable" => CheckResult::Ok,
                    "illegal" => CheckResult::Illegal,
                    other => panic!("{}: unknown verdict {other}", cols[0]),
                },
                ci: cols[2] == "yes",
                spec: spec_of(cols[3]),
            }
        })
        .collect()
}

/// Parses `aver gen history --model M --clients N ... --seed S`.
fn spec_of(command: &str) -> GenSpec {
    let words: Vec<&str> = command.split_whitespace().collect();
    let flag = |name: &str| {
        let at = words.iter().position(|w| *w == format!("--{name}"))?;
        words.get(at + 1).copied()
    };
    let number = |name: &str, default: f64| flag(name).map_or(default, |v| v.parse().unwrap());
    GenSpec {
        model: match flag("model").expect("--model") {
            "register" => GenModel::Register,
            "cas" => GenModel::Cas,
            "kv" => GenModel::Kv,
            "versioned-kv" => GenModel::VersionedKv,
            other => panic!("unknown model {other}"),
        },
        clients: number("clients", 5.0) as usize,
        ops: number("ops", 100.0) as usize,
        keys: number("keys", 1.0) as usize,
        unknown: number("unknown", 0.0),
        crash: number("crash", 0.0),
        anomaly: flag("anomaly").map(|a| {
            *Anomaly::ALL
                .iter()
                .find(|x| x.name() == a)
                .expect("known anomaly")
        }),
        seed: flag("seed").expect("--seed").parse().unwrap(),
    }
}

fn check(row: &Row, text: &str) -> CheckResult {
    let records = parse_records(&row.file, text, None).expect("parses");
    let timeout = Some(Duration::from_secs(60));
    let f = &row.file;
    match row.spec.model {
        GenModel::Register => check_operations(
            &Register,
            &decode::<Register>(f, &records).unwrap(),
            timeout,
        ),
        GenModel::Cas => {
            let ops = decode::<CasRegister>(f, &records).unwrap();
            check_operations(&CasRegister, &ops, timeout)
        }
        GenModel::Kv => check_operations(&Kv, &decode::<Kv>(f, &records).unwrap(), timeout),
        GenModel::VersionedKv => {
            let ops = decode::<PowerSet<VersionedKv>>(f, &records).unwrap();
            check_operations(&PowerSet(VersionedKv), &ops, timeout)
        }
    }
}

fn check_rows(all: bool) {
    let rows = rows();
    assert!(
        rows.len() >= 60,
        "the hard set has {} histories",
        rows.len()
    );
    let verdicts = |v: CheckResult| rows.iter().filter(|r| r.expected == v).count();
    assert!(verdicts(CheckResult::Ok) >= 20 && verdicts(CheckResult::Illegal) >= 20);
    let mut wrong = Vec::new();
    for row in rows.iter().filter(|r| all || r.ci) {
        let text = std::fs::read_to_string(dir().join(&row.file)).expect("history file");
        let generated = generate(&row.spec).expect("generates");
        assert!(
            generated.jsonl == text && generated.expected == row.expected,
            "{} does not regenerate from its command",
            row.file
        );
        let got = check(row, &text);
        if got != row.expected {
            wrong.push(format!(
                "{}: expected {:?}, got {got:?}",
                row.file, row.expected
            ));
        }
    }
    assert!(wrong.is_empty(), "verdicts differ:\n{}", wrong.join("\n"));
}

/// The quick part of the hard set, in CI.
#[test]
fn hard_set_quick_verdicts_match_construction() {
    check_rows(false);
}

/// The whole hard set (minutes; see the module documentation).
#[test]
#[ignore]
fn hard_set_all_verdicts_match_construction() {
    check_rows(true);
}
