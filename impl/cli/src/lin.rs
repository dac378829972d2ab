//! `aver lin`: check a history file for linearizability, and `aver bench lin`.
//!
//! Exit codes (`aver lin`): 0 linearizable, 1 illegal, 2 unknown (timeout), 3 bad input.
//! The model defaults from the file: Jepsen etcd logs use the CAS register, Porcupine kv
//! logs the KV model, Jepsen history.edn files the multi-register (`txn`), the CAS register
//! (`cas`) or the register, and JSON Lines the model its operation names imply (`version` on
//! a put: the versioned KV; `get`/`put`/`append`: KV; `cas`: CAS register; `read`/`write`:
//! register).

use anyhow::Context;
use aver_checker::counterexample::{self, Counterexample};
use aver_checker::formats::{self, Decode, Format, Record};
use aver_checker::models::{
    CasRegister, Initial, Kv, MultiRegister, Register, ShardCtrl, VersionedKv,
};
use aver_checker::{
    Analysis, CheckOptions, CheckResult, Model, Operation, PowerSet, check_operations_with,
};
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
    /// The registers' value before any write (register, cas, multi-register; default nil),
    /// as in Knossos's `(cas-register 0)`.
    #[arg(long, allow_hyphen_values = true)]
    init: Option<i64>,
    /// Give up after this many seconds (verdict unknown, exit 2).
    #[arg(long)]
    timeout: Option<f64>,
    /// Also write a self-contained HTML visualisation here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Memory the memo of one partition may take (e.g. 512M, 4G); past it the verdict is
    /// unknown.
    #[arg(long, default_value = "4G", value_parser = parse_bytes)]
    max_memory: usize,
    /// Threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Print what the search did (steps, memo hits, reads placed eagerly, ...).
    #[arg(long)]
    stats: bool,
}

/// Parses a byte count with an optional K, M or G suffix (powers of 1024).
fn parse_bytes(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], t[i..].trim_end_matches(['B', 'b', 'i'])),
        None => (t, ""),
    };
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("{text:?}: expected a size such as 512M or 4G")),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a size such as 512M or 4G"))?;
    n.checked_mul(1 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{text:?}: out of range"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    Kv,
    Register,
    Cas,
    VersionedKv,
    MultiRegister,
    /// The shard controller (join, leave, move, query; 10 shards).
    Shardctrler,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Auto,
    Jsonl,
    PorcupineKv,
    Jepsen,
    JepsenEdn,
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
    let mut options = CheckOptions {
        timeout,
        memory_max: args.max_memory,
        ..CheckOptions::default()
    };
    if let Some(threads) = args.threads {
        options.threads = threads.max(1);
    }
    let run = Run {
        file: &file,
        records: &records,
        options,
        html: args.html.as_deref(),
        stats: args.stats,
    };
    let init = args.init;
    match (model, init) {
        (ModelArg::Kv | ModelArg::VersionedKv, Some(_)) => Ok(bad_input(
            "--init applies to the register, cas and multi-register models",
        )),
        (ModelArg::Shardctrler, Some(_)) => Ok(bad_input(
            "--init applies to the register, cas and multi-register models",
        )),
        (ModelArg::Shardctrler, None) => run.with(&ShardCtrl::default()),
        (ModelArg::Kv, None) => run.with(&Kv),
        (ModelArg::VersionedKv, None) => run.with(&PowerSet(VersionedKv)),
        (ModelArg::Register, None) => run.with(&Register),
        (ModelArg::Cas, None) => run.with(&CasRegister),
        (ModelArg::Register, value) => run.with(&Initial {
            model: Register,
            value,
        }),
        (ModelArg::Cas, value) => run.with(&Initial {
            model: CasRegister,
            value,
        }),
        (ModelArg::MultiRegister, init) => run.with(&MultiRegister { init }),
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
        FormatArg::JepsenEdn => Some(Format::JepsenEdn),
    };
    let records = formats::parse_records(&file, &text, format).map_err(|e| e.to_string())?;
    Ok((format.unwrap_or(Format::Jsonl), records))
}

fn implied_model(format: Format, records: &[Record]) -> ModelArg {
    let has = |f: &str| records.iter().any(|r| r.f == f);
    match format {
        Format::Jepsen => ModelArg::Cas,
        Format::JepsenEdn if has("txn") => ModelArg::MultiRegister,
        Format::JepsenEdn if has("cas") => ModelArg::Cas,
        Format::JepsenEdn => ModelArg::Register,
        Format::PorcupineKv => ModelArg::Kv,
        Format::Jsonl if records.iter().any(|r| r.args.contains_key("version")) => {
            ModelArg::VersionedKv
        }
        Format::Jsonl if has("join") || has("query") => ModelArg::Shardctrler,
        Format::Jsonl if has("get") || has("put") || has("append") => ModelArg::Kv,
        Format::Jsonl if has("cas") => ModelArg::Cas,
        Format::Jsonl => ModelArg::Register,
    }
}

struct Run<'a> {
    file: &'a str,
    records: &'a [Record],
    options: CheckOptions,
    html: Option<&'a Path>,
    stats: bool,
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
        let analysis = check_operations_with(model, &history, &self.options);
        let elapsed = started.elapsed();
        let counterexample = counterexample::find(model, &history, &analysis, SHRINK_BUDGET);
        print_verdict(
            self.file,
            &history,
            &analysis,
            elapsed,
            self.options.memory_max,
        );
        if self.stats {
            print_stats(&analysis);
        }
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

fn print_stats(analysis: &Analysis) {
    for p in &analysis.partitions {
        let s = &p.stats;
        println!(
            "partition {:?}: {} operations ({} left out), {} model steps, {} configurations, \
             {} memo hits, {} reads placed eagerly, {} hand-overs, memo {:.1} MiB",
            p.key,
            p.operations.len(),
            s.dropped,
            s.steps,
            s.configurations,
            s.seen,
            s.forced,
            s.donated,
            s.memo_bytes as f64 / (1 << 20) as f64
        );
    }
}

fn print_verdict<I, O>(
    file: &str,
    history: &[Operation<I, O>],
    analysis: &Analysis,
    took: Duration,
    memory_max: usize,
) {
    let full = analysis.partitions.iter().any(|p| p.out_of_memory);
    let verdict = match analysis.result {
        CheckResult::Ok => "linearizable",
        CheckResult::Illegal => "NOT linearizable",
        CheckResult::Unknown if full => "unknown (out of memory)",
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
        if full {
            println!(
                "the search's memo reached --max-memory ({} MiB) before a verdict; \
                 give it more memory to decide",
                memory_max >> 20
            );
        }
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
    /// Which histories: the hard generated set, Porcupine's corpus, or both.
    #[arg(long, value_enum, default_value_t = BenchSet::Porcupine)]
    set: BenchSet,
    /// Also run this `aver` binary (e.g. one built from an older commit) on every file, the
    /// same way, and compare.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Runs per file and binary; the median CPU time is reported.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Only files whose path contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Seconds each run may take before its verdict is unknown (passed to `aver lin
    /// --timeout`, wall clock); each child also gets at most this many CPU seconds plus the
    /// counterexample's budget.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Address space each child process may take (e.g. 8G): a baseline that would eat the
    /// machine's memory fails instead.
    #[arg(long, default_value = "8G", value_parser = parse_bytes)]
    child_memory: usize,
    /// Directory holding porcupine/ and hard/ (default: checker/testdata of this repository).
    #[arg(long)]
    testdata: Option<PathBuf>,
    /// Also check every single-partition file with `--threads 1` and with `--threads N`
    /// (this binary only) and print both search wall times and their ratio: the speed-up of
    /// the parallel search inside one partition.
    #[arg(long)]
    threads: Option<usize>,
}

/// The history sets of `aver bench lin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BenchSet {
    Hard,
    Porcupine,
    All,
}

/// One measured run of a child process.
#[derive(Clone, Copy, Debug)]
struct Measured {
    /// 0 linearizable, 1 illegal, 2 unknown, 3 bad input; `None`: killed or crashed.
    code: Option<i32>,
    /// The signal that ended the process, if one did.
    signal: i32,
    cpu_ms: f64,
    max_rss_kib: i64,
    /// The search's own wall time, as the binary printed it ("checked in X ms").
    search_ms: f64,
    /// The whole process's wall time.
    wall_ms: f64,
    /// Partitions of the history, as the binary printed them (0: not printed).
    partitions: usize,
    /// Alternatives handed to another thread, summed over partitions, when run with
    /// `--stats` (0: none, or not printed).
    handovers: u64,
}

impl Measured {
    fn verdict(&self) -> &'static str {
        match self.code {
            Some(0) => "linearizable",
            Some(1) => "illegal",
            Some(2) => "unknown",
            Some(3) => "bad-input",
            _ if self.signal == SIGXCPU => "cpu-limit",
            _ if self.signal == SIGKILL => "killed",
            _ if self.signal == SIGABRT => "no-memory",
            _ => "crashed",
        }
    }

    fn decided(&self) -> bool {
        matches!(self.code, Some(0 | 1))
    }
}

/// Runs `aver bench lin`.
pub fn bench(args: BenchArgs) -> anyhow::Result<u8> {
    let dir = args.testdata.clone().unwrap_or_else(default_testdata);
    let current = std::env::current_exe().context("finding this binary")?;
    let mut files: Vec<(PathBuf, String, String)> = Vec::new();
    for set in match args.set {
        BenchSet::Hard => vec!["hard"],
        BenchSet::Porcupine => vec!["porcupine"],
        BenchSet::All => vec!["porcupine", "hard"],
    } {
        let table = dir.join(set).join("expected.tsv");
        let text = std::fs::read_to_string(&table)
            .with_context(|| format!("reading {} (pass --testdata)", table.display()))?;
        for row in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let mut cols = row.split('\t');
            let (Some(name), Some(expected)) = (cols.next(), cols.next()) else {
                anyhow::bail!("{}: expected path<TAB>verdict", table.display());
            };
            let shown = format!("{set}/{name}");
            if args
                .only
                .as_ref()
                .is_none_or(|o| shown.contains(o.as_str()))
            {
                files.push((dir.join(set).join(name), shown, expected.to_string()));
            }
        }
    }
    let mut totals = Totals::default();
    let mut single: Vec<(PathBuf, String)> = Vec::new();
    print_bench_header(args.baseline.is_some());
    for (path, name, expected) in &files {
        if name.starts_with("porcupine/") {
            let (least, median) = check_cpu_ms(path, name, args.repeat.max(3))?;
            totals.in_process += least;
            totals.in_process_median += median;
            totals.in_process_runs = args.repeat.max(3);
        }
        let (now, before, slower_runs) =
            measure_pairs(&current, args.baseline.as_deref(), path, &args)?;
        if args.threads.is_some() && now.partitions == 1 {
            single.push((path.clone(), name.clone()));
        }
        print_bench_row(name, expected, &now, before.as_ref());
        totals.add(name, expected, &now, before.as_ref(), slower_runs);
    }
    totals.print(args.timeout, args.baseline.is_some());
    if let Some(threads) = args.threads {
        compare_threads(&current, &single, threads, &args)?;
    }
    Ok(u8::from(totals.mismatches > 0))
}

#[derive(Default)]
struct Totals {
    /// CPU of the checks alone of Porcupine's corpus, in this process: the least of the
    /// runs of each file, summed.
    in_process: f64,
    /// The same with the median run of each file.
    in_process_median: f64,
    /// Runs of each file.
    in_process_runs: usize,
    files: usize,
    cpu_now: f64,
    cpu_before: f64,
    search_now: f64,
    search_before: f64,
    decided_now: usize,
    decided_before: usize,
    /// Runs of each binary per file.
    runs: usize,
    /// Files whose median run took more CPU than the baseline's, and did in every pair of
    /// runs.
    slower: Vec<String>,
    /// Files whose median run took more CPU than the baseline's, but not in every pair.
    higher_median: Vec<String>,
    mismatches: usize,
}

impl Totals {
    /// Counts one file; `slower_runs`: in how many of the paired runs this binary took more
    /// CPU than the baseline.
    fn add(
        &mut self,
        name: &str,
        expected: &str,
        now: &Measured,
        before: Option<&Measured>,
        (slower_runs, runs): (usize, usize),
    ) {
        self.runs = runs;
        self.files += 1;
        self.cpu_now += now.cpu_ms;
        self.search_now += now.search_ms.max(0.0);
        self.decided_now += now.decided() as usize;
        self.mismatches += (now.decided() && now.verdict() != expected) as usize;
        if let Some(b) = before {
            self.cpu_before += b.cpu_ms;
            self.search_before += b.search_ms.max(0.0);
            self.decided_before += b.decided() as usize;
            self.mismatches += (b.decided() && b.verdict() != expected) as usize;
            if now.cpu_ms > b.cpu_ms {
                let line = format!(
                    "{name} ({:.1} ms > {:.1} ms, more in {slower_runs} of {runs} pairs)",
                    now.cpu_ms, b.cpu_ms
                );
                if slower_runs == runs {
                    self.slower.push(line);
                } else {
                    self.higher_median.push(line);
                }
            }
        }
    }

    fn print(&self, timeout: f64, baseline: bool) {
        if self.in_process > 0.0 {
            println!(
                "Porcupine's corpus, checks alone in this process (no parsing, no process start, \
                 no counterexample): cpu {:.1} ms in total (the least of {} runs per file; \
                 with the median run per file {:.1} ms)",
                self.in_process, self.in_process_runs, self.in_process_median
            );
        }
        println!(
            "total: {} files, cpu {:.1} ms (search alone {:.1} ms wall), decided within \
             {timeout} s: {}",
            self.files, self.cpu_now, self.search_now, self.decided_now
        );
        if baseline {
            println!(
                "baseline: cpu {:.1} ms (search alone {:.1} ms wall), decided within {timeout} \
                 s: {}; ratio baseline/now: cpu {:.2}x, search {:.2}x",
                self.cpu_before,
                self.search_before,
                self.decided_before,
                self.cpu_before / self.cpu_now.max(1e-9),
                self.search_before / self.search_now.max(1e-9)
            );
            let list = |files: &[String]| {
                if files.is_empty() {
                    "none".to_string()
                } else {
                    files.join(", ")
                }
            };
            // A file whose cost did not change is slower in one pair or faster with even
            // odds, so it is listed here by chance with probability 2^-runs.
            println!(
                "slower than the baseline (a higher median, and more CPU in each of the {} \
                 paired runs; an unchanged file lands here by chance once in {}): {}",
                self.runs,
                1u64 << self.runs.min(63),
                list(&self.slower)
            );
            println!(
                "a higher median but not in every pair (within the runs' noise): {}",
                list(&self.higher_median)
            );
        }
        println!(
            "verdicts: {}",
            if self.mismatches == 0 {
                "every decided verdict matches expected.tsv".to_string()
            } else {
                format!("{} MISMATCHES", self.mismatches)
            }
        );
    }
}

fn print_bench_header(baseline: bool) {
    print!(
        "{:<34} {:<12} {:<12} {:>9} {:>9} {:>7}",
        "file", "expected", "verdict", "cpu ms", "search ms", "rss MiB"
    );
    if baseline {
        print!(
            "  {:<12} {:>9} {:>9} {:>7} {:>7}",
            "baseline", "cpu ms", "search ms", "rss MiB", "ratio"
        );
    }
    println!();
}

fn print_bench_row(name: &str, expected: &str, now: &Measured, before: Option<&Measured>) {
    let mib = |m: &Measured| m.max_rss_kib as f64 / 1024.0;
    print!(
        "{name:<34} {expected:<12} {:<12} {:>9.1} {:>9.1} {:>7.1}",
        now.verdict(),
        now.cpu_ms,
        now.search_ms,
        mib(now)
    );
    if let Some(b) = before {
        let ratio = b.cpu_ms / now.cpu_ms.max(1e-9);
        print!(
            "  {:<12} {:>9.1} {:>9.1} {:>7.1} {ratio:>6.2}x",
            b.verdict(),
            b.cpu_ms,
            b.search_ms,
            mib(b)
        );
    }
    println!();
}

fn default_testdata() -> PathBuf {
    let from_repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../checker/testdata");
    if from_repo.is_dir() {
        from_repo
    } else {
        PathBuf::from("checker/testdata")
    }
}

#[cfg(test)]
fn default_corpus() -> PathBuf {
    default_testdata().join("porcupine")
}

/// CPU milliseconds of checking one corpus file in this process (parsing excluded): the
/// least and the median of `repeat` runs. Each run does the same search (partitions that
/// run side by side may stop at other points on an illegal history), so what varies
/// between runs is mostly what the machine does beside it (other processes taking the cores
/// and the caches), which only adds time: the least run is the check's own cost, the median
/// what a run on this machine now costs.
fn check_cpu_ms(path: &Path, name: &str, repeat: usize) -> anyhow::Result<(f64, f64)> {
    fn timed<M: Model>(
        model: &M,
        history: &[Operation<M::Input, M::Output>],
        n: usize,
    ) -> (f64, f64) {
        let mut cpu: Vec<f64> = (0..n)
            .map(|_| {
                let before = cpu_time();
                aver_checker::check_operations(model, history, None);
                (cpu_time() - before).as_secs_f64() * 1e3
            })
            .collect();
        cpu.sort_by(f64::total_cmp);
        (cpu[0], cpu[cpu.len() / 2])
    }
    Ok(if name.contains("/jepsen/") {
        timed(
            &CasRegister,
            &formats::read_history::<CasRegister>(path, None)?,
            repeat,
        )
    } else {
        timed(&Kv, &formats::read_history::<Kv>(path, None)?, repeat)
    })
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

/// Runs `current lin FILE` and `baseline lin FILE` (if any) `repeat` times each, in pairs
/// (which of the two goes first alternates: the first run of a pair was measured to take
/// more CPU, 0.2 to 0.3 ms on a 2 ms file), so that a change in the machine's load falls on
/// both alike: the run of each with the median CPU time, and (the pairs in which `current`
/// took more CPU than the baseline, the pairs).
fn measure_pairs(
    current: &Path,
    baseline: Option<&Path>,
    file: &Path,
    args: &BenchArgs,
) -> anyhow::Result<(Measured, Option<Measured>, (usize, usize))> {
    let repeat = args.repeat.max(1);
    let (mut now, mut before) = (Vec::with_capacity(repeat), Vec::with_capacity(repeat));
    let mut slower = 0;
    for pair in 0..repeat {
        let (run, base) = match baseline {
            Some(b) if pair % 2 == 1 => {
                let base = measure(b, file, args, &[])?;
                (measure(current, file, args, &[])?, Some(base))
            }
            Some(b) => {
                let run = measure(current, file, args, &[])?;
                (run, Some(measure(b, file, args, &[])?))
            }
            None => (measure(current, file, args, &[])?, None),
        };
        if let Some(base) = base {
            slower += usize::from(run.cpu_ms > base.cpu_ms);
            before.push(base);
        }
        now.push(run);
    }
    let median = |mut runs: Vec<Measured>| {
        runs.sort_by(|a, b| a.cpu_ms.total_cmp(&b.cpu_ms));
        runs.get(runs.len() / 2).copied()
    };
    let now = median(now).context("at least one run")?;
    Ok((now, median(before), (slower, repeat)))
}

/// Runs `binary lin FILE --timeout T` as a child process; its CPU time (user + system) and
/// peak resident memory come from `wait4`, the same way for any binary.
fn measure(
    binary: &Path,
    file: &Path,
    args: &BenchArgs,
    extra: &[&str],
) -> anyhow::Result<Measured> {
    use std::os::unix::process::CommandExt;
    let out_path = std::env::temp_dir().join(format!("aver-bench-{}.out", std::process::id()));
    let out = std::fs::File::create(&out_path)
        .with_context(|| format!("creating {}", out_path.display()))?;
    let mut command = std::process::Command::new(binary);
    command
        .arg("lin")
        .arg(file)
        .arg("--timeout")
        .arg(args.timeout.to_string())
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(std::process::Stdio::null());
    let memory = args.child_memory as u64;
    // CPU seconds: the timeout plus the counterexample's budget, so that on a loaded machine
    // (where the wall-clock timeout comes first) and on a quiet one both binaries get the
    // same CPU at most.
    let cpu = args.timeout.ceil() as u64 + SHRINK_BUDGET.as_secs();
    // SAFETY: between fork and exec the closure calls only setrlimit, which is
    // async-signal-safe, on stack values.
    unsafe {
        command.pre_exec(move || {
            let (memory, cpu) = ([memory, memory], [cpu, cpu + 5]);
            if setrlimit(RLIMIT_AS, memory.as_ptr()) != 0
                || setrlimit(RLIMIT_CPU, cpu.as_ptr()) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("running {}", binary.display()))?;
    let pid = child.id() as i32;
    // Past the timeout plus the counterexample budget, a run is stuck: kill it.
    let limit = Duration::from_secs_f64(args.timeout) + SHRINK_BUDGET + Duration::from_secs(30);
    let started = Instant::now();
    let mut status = 0i32;
    let mut usage = [0i64; 18];
    loop {
        // SAFETY: wait4 writes an int and a struct rusage (18 longs on Linux x86-64 and
        // aarch64) through valid pointers.
        let rc = unsafe { wait4(pid, &mut status, WNOHANG, usage.as_mut_ptr()) };
        if rc == pid {
            break;
        }
        anyhow::ensure!(rc == 0, "wait4 failed: {}", std::io::Error::last_os_error());
        if started.elapsed() > limit {
            // SAFETY: pid is our child, not yet reaped.
            unsafe { kill(pid, SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let cpu = |sec: i64, usec: i64| sec as f64 * 1e3 + usec as f64 / 1e3;
    let exited = status & 0x7f == 0;
    let printed = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let search_ms = printed
        .split_once("checked in ")
        .and_then(|(_, rest)| rest.split_once(" ms"))
        .and_then(|(ms, _)| ms.parse().ok())
        .unwrap_or(f64::NAN);
    let partitions = printed
        .split_once(" operations, ")
        .and_then(|(_, rest)| rest.split_once(" partition"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0);
    let handovers = handovers(&printed);
    Ok(Measured {
        code: exited.then_some((status >> 8) & 0xff),
        signal: if exited { 0 } else { status & 0x7f },
        cpu_ms: cpu(usage[0], usage[1]) + cpu(usage[2], usage[3]),
        max_rss_kib: usage[4],
        search_ms,
        wall_ms,
        partitions,
        handovers,
    })
}

/// Checks each single-partition file with `--threads 1` and `--threads threads` (the median
/// run of `--repeat` by search wall time) and prints both wall times and their ratio, and
/// whether the search went parallel at all (a search decided within
/// `PARALLEL_AFTER_STEPS_DEFAULT` model steps never starts a second thread, so its ratio is
/// the machine's noise); totals for both kinds of file.
fn compare_threads(
    binary: &Path,
    files: &[(PathBuf, String)],
    threads: usize,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    let many = threads.max(1).to_string();
    println!(
        "\nthe parallel search inside one partition: search wall ms (process wall ms) with 1 and \
         {many} threads; \"parallel\": the search handed work to another thread"
    );
    println!(
        "{:<34} {:<12} {:>18} {:>18} {:>7} {:>9}",
        "file",
        "verdict",
        "1 thread",
        format!("{many} threads"),
        "ratio",
        "parallel"
    );
    // (files, one-thread ms, many-thread ms), for files that went parallel and the others.
    let mut totals = [(0usize, 0.0, 0.0); 2];
    for (path, name) in files {
        let by_wall = |mut runs: Vec<Measured>| {
            runs.sort_by(|a, b| a.search_ms.total_cmp(&b.search_ms));
            runs[runs.len() / 2]
        };
        let mut one = Vec::new();
        let mut more = Vec::new();
        for _ in 0..args.repeat.max(1) {
            one.push(measure(binary, path, args, &["--threads", "1"])?);
            more.push(measure(
                binary,
                path,
                args,
                &["--threads", &many, "--stats"],
            )?);
        }
        let parallel = more.iter().any(|m| m.handovers > 0);
        let (one, more) = (by_wall(one), by_wall(more));
        let total = &mut totals[usize::from(!parallel)];
        total.0 += 1;
        total.1 += one.search_ms;
        total.2 += more.search_ms;
        let shown = |m: &Measured| format!("{:.1} ({:.1})", m.search_ms, m.wall_ms);
        println!(
            "{name:<34} {:<12} {:>18} {:>18} {:>6.2}x {:>9}",
            more.verdict(),
            shown(&one),
            shown(&more),
            one.search_ms / more.search_ms.max(1e-9),
            if parallel { "yes" } else { "no" }
        );
    }
    let (one_total, many_total) = (totals[0].1 + totals[1].1, totals[0].2 + totals[1].2);
    println!(
        "single-partition files: {}, search wall {one_total:.1} ms on 1 thread, \
         {many_total:.1} ms on {many}: {:.2}x",
        files.len(),
        one_total / many_total.max(1e-9)
    );
    for ((count, one, more), kind) in totals.iter().zip(["went parallel", "stayed on one thread"]) {
        println!(
            "  {count} {kind}: {one:.1} ms on 1 thread, {more:.1} ms on {many}: {:.2}x",
            one / more.max(1e-9)
        );
    }
    Ok(())
}

/// The hand-overs `aver lin --stats` printed, summed over partitions ("..., 57 hand-overs,
/// ...": the number before each mention).
fn handovers(printed: &str) -> u64 {
    let mentions: Vec<&str> = printed.split(" hand-overs").collect();
    mentions[..mentions.len() - 1]
        .iter()
        .filter_map(|before| before.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

const WNOHANG: i32 = 1;
const SIGABRT: i32 = 6;
const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;
const RLIMIT_CPU: i32 = 0;
const RLIMIT_AS: i32 = 9;

unsafe extern "C" {
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut i64) -> i32;
    fn kill(pid: i32, signal: i32) -> i32;
    fn setrlimit(resource: i32, limit: *const u64) -> i32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_slower_only_when_every_paired_run_says_so() {
        let run = |cpu_ms| Measured {
            code: Some(0),
            signal: 0,
            cpu_ms,
            max_rss_kib: 0,
            search_ms: 0.0,
            wall_ms: 0.0,
            partitions: 1,
            handovers: 0,
        };
        let mut totals = Totals::default();
        let (now, base) = (run(2.0), run(1.8));
        totals.add("a", "linearizable", &now, Some(&base), (5, 5));
        totals.add("b", "linearizable", &now, Some(&base), (4, 5));
        totals.add("c", "linearizable", &base, Some(&now), (0, 5));
        assert_eq!(totals.slower.len(), 1);
        assert!(totals.slower[0].starts_with("a (2.0 ms > 1.8 ms, more in 5 of 5"));
        assert_eq!(totals.higher_median.len(), 1);
        assert!(totals.higher_median[0].starts_with("b "));
        assert!((totals.cpu_now - 5.8).abs() < 1e-9 && (totals.cpu_before - 5.6).abs() < 1e-9);
    }

    #[test]
    fn hand_overs_are_summed_over_the_partitions_stats() {
        let printed = "f: NOT linearizable (300 operations, 2 partitions, checked in 4.1 ms)\n\
            partition \"a\": 150 operations (0 left out), 9 model steps, 3 configurations, 0 memo \
            hits, 0 reads placed eagerly, 57 hand-overs, memo 0.1 MiB\n\
            partition \"b\": 150 operations (0 left out), 9 model steps, 3 configurations, 0 memo \
            hits, 0 reads placed eagerly, 0 hand-overs, memo 0.1 MiB\n";
        assert_eq!(handovers(printed), 57);
        assert_eq!(
            handovers("f: linearizable (3 operations, 1 partitions, checked in 1 ms)"),
            0
        );
    }

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
            max_memory: 4 << 30,
            init: None,
            threads: None,
            stats: false,
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
