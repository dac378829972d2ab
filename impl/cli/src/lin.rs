//! `aver lin`: check a history file for linearizability, and `aver bench lin`.
//!
//! Exit codes (`aver lin`): 0 linearizable, 1 illegal, 2 unknown (timeout), 3 bad input.
//! The model defaults from the file: Jepsen logs use the CAS register, Porcupine kv logs the
//! KV model, and JSON Lines the model its operation names imply (`version` on a put: the
//! versioned KV; `get`/`put`/`append`: KV; `cas`: CAS register; `read`/`write`: register).

use anyhow::Context;
use aver_checker::counterexample::{self, Counterexample};
use aver_checker::formats::{self, Decode, Format, Record};
use aver_checker::models::{CasRegister, Kv, Register, VersionedKv};
use aver_checker::{Analysis, CheckResult, Model, Operation, PowerSet, check_operations_verbose};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `aver lin`.
#[derive(Args)]
pub struct LinArgs {
    /// The history file.
    file: PathBuf,
    /// The sequential specification (default: implied by the file).
    #[arg(long, value_enum)]
    model: Option<ModelArg>,
    /// The file format.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    format: FormatArg,
    /// Give up after this many seconds (verdict unknown, exit 2).
    #[arg(long)]
    timeout: Option<f64>,
    /// Also write a self-contained HTML visualisation here.
    #[arg(long)]
    html: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    Kv,
    Register,
    Cas,
    VersionedKv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Auto,
    Jsonl,
    PorcupineKv,
    Jepsen,
}

/// Longest the shrinking of a counterexample may take.
const SHRINK_BUDGET: Duration = Duration::from_secs(10);
/// Operations of the prefix printed in the terminal (the HTML file has all of them).
const PREFIX_SHOWN_MAX: usize = 20;

/// Runs `aver lin`.
pub fn run(args: LinArgs) -> anyhow::Result<u8> {
    let file = args.file.display().to_string();
    let (format, records) = match read_records(&args.file, args.format) {
        Ok(read) => read,
        Err(message) => return Ok(bad_input(&message)),
    };
    let timeout = match args.timeout {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Ok(bad_input(&format!(
                "--timeout must be a positive number of seconds, not {s}"
            )));
        }
        s => s.map(Duration::from_secs_f64),
    };
    let model = args
        .model
        .unwrap_or_else(|| implied_model(format, &records));
    let run = Run {
        file: &file,
        records: &records,
        timeout,
        html: args.html.as_deref(),
    };
    match model {
        ModelArg::Kv => run.with(&Kv),
        ModelArg::Register => run.with(&Register),
        ModelArg::Cas => run.with(&CasRegister),
        ModelArg::VersionedKv => run.with(&PowerSet(VersionedKv)),
    }
}

fn bad_input(message: &str) -> u8 {
    eprintln!("error: {message}");
    3
}

fn read_records(path: &Path, format: FormatArg) -> Result<(Format, Vec<Record>), String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: {e}"))?;
    let format = match format {
        FormatArg::Auto => formats::detect(&text),
        FormatArg::Jsonl => Some(Format::Jsonl),
        FormatArg::PorcupineKv => Some(Format::PorcupineKv),
        FormatArg::Jepsen => Some(Format::Jepsen),
    };
    let records = formats::parse_records(&file, &text, format).map_err(|e| e.to_string())?;
    Ok((format.unwrap_or(Format::Jsonl), records))
}

fn implied_model(format: Format, records: &[Record]) -> ModelArg {
    let has = |f: &str| records.iter().any(|r| r.f == f);
    match format {
        Format::Jepsen => ModelArg::Cas,
        Format::PorcupineKv => ModelArg::Kv,
        Format::Jsonl if records.iter().any(|r| r.args.contains_key("version")) => {
            ModelArg::VersionedKv
        }
        Format::Jsonl if has("get") || has("put") || has("append") => ModelArg::Kv,
        Format::Jsonl if has("cas") => ModelArg::Cas,
        Format::Jsonl => ModelArg::Register,
    }
}

struct Run<'a> {
    file: &'a str,
    records: &'a [Record],
    timeout: Option<Duration>,
    html: Option<&'a Path>,
}

impl Run<'_> {
    fn with<M: Decode>(&self, model: &M) -> anyhow::Result<u8>
    where
        M::Input: Clone,
        M::Output: Clone,
    {
        let history = match formats::decode::<M>(self.file, self.records) {
            Ok(history) => history,
            Err(e) => return Ok(bad_input(&e.to_string())),
        };
        let started = Instant::now();
        let analysis = check_operations_verbose(model, &history, self.timeout);
        let elapsed = started.elapsed();
        let counterexample = counterexample::find(model, &history, &analysis, SHRINK_BUDGET);
        print_verdict(self.file, &history, &analysis, elapsed);
        if let Some(cx) = &counterexample {
            print_counterexample(model, &history, cx);
        }
        if let Some(out) = self.html {
            let page =
                aver_checker::html::render(model, &history, &analysis, counterexample.as_ref());
            std::fs::write(out, page).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {}", out.display());
        }
        Ok(match analysis.result {
            CheckResult::Ok => 0,
            CheckResult::Illegal => 1,
            CheckResult::Unknown => 2,
        })
    }
}

fn print_verdict<I, O>(
    file: &str,
    history: &[Operation<I, O>],
    analysis: &Analysis,
    took: Duration,
) {
    let verdict = match analysis.result {
        CheckResult::Ok => "linearizable",
        CheckResult::Illegal => "NOT linearizable",
        CheckResult::Unknown => "unknown (timed out)",
    };
    println!(
        "{file}: {verdict} ({} operations, {} partitions, checked in {:.1} ms)",
        history.len(),
        analysis.partitions.len(),
        took.as_secs_f64() * 1e3
    );
    if analysis.result == CheckResult::Unknown {
        let open: Vec<&str> = analysis
            .partitions
            .iter()
            .filter(|p| p.result == CheckResult::Unknown)
            .map(|p| p.key.as_str())
            .collect();
        println!("partitions without a verdict: {}", quoted(&open));
    }
}

fn quoted(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_counterexample<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    cx: &Counterexample,
) {
    println!("\nillegal partition: {:?}", cx.partition);
    let states = counterexample::replay(model, history, &cx.prefix);
    println!(
        "longest linearizable prefix: {} operations, in linearization order{}",
        cx.prefix.len(),
        if cx.prefix.len() > PREFIX_SHOWN_MAX {
            format!(" (the last {PREFIX_SHOWN_MAX} shown; --html shows all)")
        } else {
            String::new()
        }
    );
    let skip = cx.prefix.len().saturating_sub(PREFIX_SHOWN_MAX);
    for (k, (&i, state)) in cx.prefix.iter().zip(&states).enumerate().skip(skip) {
        let op = &history[i];
        let what = model.describe_operation(&op.input, op.output.as_ref());
        println!(
            "  {:>4}. client {:<3} {what:<40} state: {}",
            k + 1,
            op.client,
            clip(&model.describe_state(state))
        );
    }
    if !cx.explained {
        println!(
            "\n(no operation could be found whose timing alone explains the violation, so the \
             sub-history below was shrunk for illegality only and may lack the operations \
             that explain its values)"
        );
    }
    let how = if cx.is_minimal {
        "minimal"
    } else {
        "shrunk (time budget ran out before minimal)"
    };
    println!(
        "\n{how} non-linearizable sub-history ({} operations):",
        cx.minimal.len()
    );
    print!("{}", counterexample::timeline(model, history, &cx.minimal));
    for &i in &cx.minimal {
        let op = &history[i];
        let ret = op
            .ret
            .map_or_else(|| "never".to_string(), |r| r.to_string());
        let what = model.describe_operation(&op.input, op.output.as_ref());
        println!(
            "  client {:<3} call {:<6} return {:<6} {what}",
            op.client, op.call, ret
        );
    }
}

/// Longest state description printed in the terminal (the HTML page has them whole).
const STATE_SHOWN_CHARS_MAX: usize = 60;

/// Shortens long state descriptions to their end, where consecutive states differ.
fn clip(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= STATE_SHOWN_CHARS_MAX {
        return text.to_string();
    }
    let tail: String = text.chars().skip(chars - STATE_SHOWN_CHARS_MAX).collect();
    format!("…{tail}")
}

/// Arguments of `aver bench lin`.
#[derive(Args)]
pub struct BenchArgs {
    /// The corpus directory (with expected.tsv); default: the copy vendored in the repository
    /// (checker/testdata/porcupine).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Runs per file; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Only files whose path contains this text.
    #[arg(long)]
    only: Option<String>,
}

/// Porcupine's CPU time on the files the issue names (ms), for comparison.
const PORCUPINE_MS: [(&str, f64); 3] = [
    ("kv/c50-ok.txt", 380.0),
    ("jepsen/etcd_002.log", 320.0),
    ("jepsen/etcd_007.log", 190.0),
];

/// Runs `aver bench lin`.
pub fn bench(args: BenchArgs) -> anyhow::Result<u8> {
    let dir = args.corpus.unwrap_or_else(default_corpus);
    let table = std::fs::read_to_string(dir.join("expected.tsv"))
        .with_context(|| format!("reading {}/expected.tsv (pass --corpus)", dir.display()))?;
    let repeat = args.repeat.max(1);
    println!(
        "{:<24} {:>5} {:>9} {:>9}  {:<13} {:<13}",
        "file", "ops", "cpu ms", "wall ms", "verdict", "expected"
    );
    let (mut cpu_total, mut wall_total, mut mismatches) = (0.0, 0.0, 0);
    for row in table.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (name, expected) = row
            .split_once('\t')
            .context("expected.tsv: path<TAB>verdict")?;
        if args
            .only
            .as_ref()
            .is_some_and(|only| !name.contains(only.as_str()))
        {
            continue;
        }
        let (ops, verdict, cpu, wall) = bench_file(&dir.join(name), name, repeat)?;
        let verdict = if verdict == CheckResult::Ok {
            "linearizable"
        } else {
            "illegal"
        };
        let flag = if verdict == expected {
            ""
        } else {
            "  MISMATCH"
        };
        mismatches += usize::from(verdict != expected);
        println!("{name:<24} {ops:>5} {cpu:>9.3} {wall:>9.3}  {verdict:<13} {expected:<13}{flag}");
        cpu_total += cpu;
        wall_total += wall;
    }
    println!(
        "total: cpu {cpu_total:.1} ms, wall {wall_total:.1} ms (median of {repeat} runs per file)"
    );
    println!(
        "Porcupine: about 1200 ms of CPU in total; {}",
        porcupine_figures()
    );
    println!(
        "verdicts: {}",
        if mismatches == 0 {
            "all match expected.tsv".to_string()
        } else {
            format!("{mismatches} MISMATCHES")
        }
    );
    Ok(u8::from(mismatches > 0))
}

fn porcupine_figures() -> String {
    PORCUPINE_MS
        .iter()
        .map(|(f, ms)| format!("{f} {ms:.0} ms"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn default_corpus() -> PathBuf {
    let from_repo =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../checker/testdata/porcupine");
    if from_repo.is_dir() {
        from_repo
    } else {
        PathBuf::from("checker/testdata/porcupine")
    }
}

/// Median CPU and wall milliseconds of checking one file (parsing excluded).
fn bench_file(
    path: &Path,
    name: &str,
    repeat: usize,
) -> anyhow::Result<(usize, CheckResult, f64, f64)> {
    if name.starts_with("jepsen/") {
        let history = formats::read_history::<CasRegister>(path, None)?;
        Ok(time_checks(&CasRegister, &history, repeat))
    } else {
        let history = formats::read_history::<Kv>(path, None)?;
        Ok(time_checks(&Kv, &history, repeat))
    }
}

fn time_checks<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    repeat: usize,
) -> (usize, CheckResult, f64, f64) {
    let mut cpu = Vec::with_capacity(repeat);
    let mut wall = Vec::with_capacity(repeat);
    let mut verdict = CheckResult::Unknown;
    for _ in 0..repeat {
        let (cpu0, wall0) = (cpu_time(), Instant::now());
        verdict = aver_checker::check_operations(model, history, None);
        wall.push(wall0.elapsed().as_secs_f64() * 1e3);
        cpu.push((cpu_time() - cpu0).as_secs_f64() * 1e3);
    }
    (history.len(), verdict, median(&mut cpu), median(&mut wall))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// CPU time of the whole process (all threads).
fn cpu_time() -> Duration {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
    }
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut t = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer (Linux, 64-bit).
    let rc = unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(file: &str) -> PathBuf {
        let path = default_corpus().join(file);
        assert!(
            path.is_file(),
            "the Porcupine corpus is missing: {}",
            path.display()
        );
        path
    }

    fn args(file: PathBuf) -> LinArgs {
        LinArgs {
            file,
            model: None,
            format: FormatArg::Auto,
            timeout: None,
            html: None,
        }
    }

    fn temp(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("aver-lin-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("write temp file");
        path
    }

    #[test]
    fn exit_codes_are_0_linearizable_1_illegal_2_unknown() {
        assert_eq!(run(args(corpus("kv/c10-ok.txt"))).unwrap(), 0);
        assert_eq!(run(args(corpus("jepsen/etcd_057.log"))).unwrap(), 1);
        let slow = LinArgs {
            timeout: Some(1e-9),
            ..args(corpus("jepsen/etcd_002.log"))
        };
        assert_eq!(run(slow).unwrap(), 2);
    }

    #[test]
    fn bad_input_exits_3() {
        assert_eq!(
            run(args(PathBuf::from("/nonexistent/history.jsonl"))).unwrap(),
            3
        );
        assert_eq!(
            run(args(temp("bad.jsonl", "{\"client\": 1,\n"))).unwrap(),
            3
        );
        let no_timeout = LinArgs {
            timeout: Some(-1.0),
            ..args(corpus("kv/c01-ok.txt"))
        };
        assert_eq!(run(no_timeout).unwrap(), 3);
        let wrong_model = LinArgs {
            model: Some(ModelArg::Register),
            ..args(corpus("jepsen/etcd_057.log"))
        };
        assert_eq!(run(wrong_model).unwrap(), 3, "a plain register has no cas");
        let wrong_format = LinArgs {
            format: FormatArg::Jepsen,
            ..args(corpus("kv/c01-ok.txt"))
        };
        assert_eq!(run(wrong_format).unwrap(), 3);
    }

    #[test]
    fn the_model_is_implied_by_the_operations() {
        let versioned = "{\"client\": 1, \"call\": 0, \"return\": 1, \"f\": \"put\", \"key\": \"k\", \
                         \"value\": \"a\", \"version\": 0, \"output\": \"OK\"}\n";
        assert_eq!(run(args(temp("v.jsonl", versioned))).unwrap(), 0);
        let stale = "{\"client\": 1, \"call\": 0, \"return\": 1, \"f\": \"write\", \"value\": 1, \"output\": \"ok\"}\n\
                     {\"client\": 2, \"call\": 2, \"return\": 3, \"f\": \"read\", \"output\": null}\n";
        assert_eq!(run(args(temp("r.jsonl", stale))).unwrap(), 1);
    }

    #[test]
    fn html_is_written_when_asked() {
        let out = std::env::temp_dir().join(format!("aver-lin-{}.html", std::process::id()));
        let with_html = LinArgs {
            html: Some(out.clone()),
            ..args(corpus("kv/c01-bad.txt"))
        };
        assert_eq!(run(with_html).unwrap(), 1);
        let page = std::fs::read_to_string(&out).expect("page written");
        let _ = std::fs::remove_file(&out);
        assert!(page.contains("\"verdict\":\"Illegal\"") && page.contains("<script>"));
    }
}
