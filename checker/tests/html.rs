//! The HTML page, loaded in headless Chromium: what it renders after its script ran.
//!
//! Needs `chromium` (Debian package). Without it the test fails when `CI` is set, and
//! otherwise skips with a loud message.

use aver_checker::counterexample;
use aver_checker::html::render;
use aver_checker::models::{Kv, KvInput, KvOutput};
use aver_checker::{CheckResult, Operation, check_operations_verbose};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn chromium() -> Option<PathBuf> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Key "a": put x, then put y completes, then a get still returns x (illegal).
/// Key "b": an append and a concurrent get that sees it (linearizable).
fn history() -> Vec<Operation<KvInput, KvOutput>> {
    let key = |k: &str| k.to_string();
    let op = |client, input, call, output, ret| Operation {
        client,
        input,
        call,
        output: Some(output),
        ret: Some(ret),
    };
    vec![
        op(
            0,
            KvInput::Put {
                key: key("a"),
                value: Arc::from("x"),
            },
            0,
            KvOutput::Done,
            10,
        ),
        op(
            1,
            KvInput::Put {
                key: key("a"),
                value: Arc::from("y"),
            },
            20,
            KvOutput::Done,
            30,
        ),
        op(
            2,
            KvInput::Get { key: key("a") },
            40,
            KvOutput::Value("x".into()),
            50,
        ),
        op(
            3,
            KvInput::Append {
                key: key("b"),
                value: Arc::from("z"),
            },
            5,
            KvOutput::Done,
            45,
        ),
        op(
            0,
            KvInput::Get { key: key("b") },
            15,
            KvOutput::Value("z".into()),
            25,
        ),
    ]
}

/// The values of every `class` attribute in the DOM.
fn classes(dom: &str) -> Vec<Vec<&str>> {
    dom.split("class=\"")
        .skip(1)
        .map(|rest| {
            rest.split('"')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect()
        })
        .collect()
}

fn dump_dom(browser: &PathBuf, page: &std::path::Path) -> String {
    let profile = std::env::temp_dir().join(format!("aver-chromium-{}", std::process::id()));
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 DOM")
}

#[test]
fn html_page_renders_every_operation_points_and_the_counterexample() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but chromium is not installed"
        );
        eprintln!(
            "\n!!! SKIPPED: chromium not found; install it (apt-get install -y chromium) !!!\n"
        );
        return;
    };
    let history = history();
    let analysis = check_operations_verbose(&Kv, &history, None);
    assert_eq!(analysis.result, CheckResult::Illegal);
    let cx =
        counterexample::find(&Kv, &history, &analysis, Duration::from_secs(5)).expect("illegal");
    assert_eq!(cx.partition, "a");
    assert_eq!(cx.minimal, vec![0, 1, 2], "both puts and the stale get");
    let page = std::env::temp_dir().join(format!("aver-lin-{}.html", std::process::id()));
    std::fs::write(&page, render(&Kv, &history, &analysis, Some(&cx))).expect("write page");
    let dom = dump_dom(&browser, &page);
    let _ = std::fs::remove_file(&page);

    let classes = classes(&dom);
    let count = |f: &dyn Fn(&Vec<&str>) -> bool| classes.iter().filter(|c| f(c)).count();
    assert_eq!(
        count(&|c| c.contains(&"partition")),
        2,
        "one section per partition"
    );
    assert_eq!(
        count(&|c| c.contains(&"op")),
        history.len(),
        "one bar per operation"
    );
    assert_eq!(
        count(&|c| c.contains(&"op") && c.contains(&"illegal")),
        cx.minimal.len()
    );
    assert_eq!(
        count(&|c| c.contains(&"cx-op")),
        cx.minimal.len(),
        "the counterexample list"
    );
    let linearized: usize = analysis
        .partitions
        .iter()
        .map(|p| p.linearization.len())
        .sum();
    assert_eq!(
        count(&|c| c.contains(&"point")),
        linearized,
        "one dot per linearized operation"
    );
    assert!(
        dom.contains("partition \"a\": Illegal"),
        "the illegal partition is named"
    );
    assert!(
        dom.contains("get(\"a\") -&gt; \"x\""),
        "operations are described"
    );
}
