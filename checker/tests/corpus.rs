//! Every verdict of Porcupine's corpus (vendored in testdata/porcupine, with expected.tsv).

use aver_checker::formats::read_history;
use aver_checker::models::{CasRegister, Kv};
use aver_checker::{CheckResult, check_operations};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/porcupine");
    assert!(
        dir.join("expected.tsv").is_file(),
        "the vendored Porcupine corpus is missing: expected {}",
        dir.display()
    );
    dir
}

fn check_file(dir: &std::path::Path, file: &str) -> CheckResult {
    let path = dir.join(file);
    if file.starts_with("jepsen/") {
        let history = read_history::<CasRegister>(&path, None).unwrap_or_else(|e| panic!("{e}"));
        check_operations(&CasRegister, &history, None)
    } else {
        let history = read_history::<Kv>(&path, None).unwrap_or_else(|e| panic!("{e}"));
        check_operations(&Kv, &history, None)
    }
}

#[test]
fn every_corpus_verdict_matches_porcupine() {
    let dir = corpus_dir();
    let table = std::fs::read_to_string(dir.join("expected.tsv")).expect("expected.tsv");
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for row in table.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (file, expected) = row.split_once('\t').expect("path<TAB>verdict");
        let expected = match expected {
            "linearizable" => CheckResult::Ok,
            "illegal" => CheckResult::Illegal,
            other => panic!("{file}: unknown verdict {other}"),
        };
        let got = check_file(&dir, file);
        if got != expected {
            mismatches.push(format!("{file}: expected {expected:?}, got {got:?}"));
        }
        checked += 1;
    }
    assert_eq!(checked, 109, "expected.tsv should list 109 files");
    assert!(
        mismatches.is_empty(),
        "verdicts differ:\n{}",
        mismatches.join("\n")
    );
}
