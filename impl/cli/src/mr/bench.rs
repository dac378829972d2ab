//! `aver bench mr`: word count over the lab corpus concatenated to a few hundred MB, with 1 and
//! 2 workers, next to `tr -cs A-Za-z '\n' | sort | uniq -c` on the same input; and with
//! `--beyond`, the effect of backup tasks and of the combiner on a run with one slow worker.
//! Figures only: nothing here asserts a timing.

use super::job::{JobSpec, remove_intermediate, run_job};
use super::{JobOpts, parse_secs};
use anyhow::{Context as _, bail};
use aver_runtime::mr::coordinator::Outcome;
use aver_runtime::mr::exec::output_name;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `aver bench mr`.
#[derive(Args)]
pub struct BenchArgs {
    /// Total input size in MB (10^6 bytes): the corpus concatenated until it is this large.
    #[arg(long, default_value_t = 300)]
    size_mb: u64,
    /// Input files (map tasks) the input is split into.
    #[arg(long, default_value_t = 16)]
    files: u32,
    /// Directory of the corpus (the lab's pg-*.txt).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/gutenberg"))]
    corpus: PathBuf,
    /// Skip the `tr | sort | uniq -c` pipeline.
    #[arg(long)]
    no_pipeline: bool,
    /// Only the beyond-the-lab measurements (backups, combiner), not the throughput runs.
    #[arg(long)]
    beyond_only: bool,
    /// Also measure backups and the combiner on a run with one slow worker.
    #[arg(long)]
    beyond: bool,
    /// Seconds the slow worker sleeps before each task (with --beyond).
    #[arg(long, default_value = "2", value_parser = parse_secs)]
    slow_delay: Duration,
}

/// Runs `aver bench mr`.
pub fn bench(a: BenchArgs) -> anyhow::Result<u8> {
    let corpus = read_corpus(&a.corpus)?;
    let dir = std::env::temp_dir().join(format!("aver-bench-mr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = (|| {
        if !a.beyond_only {
            throughput(&a, &corpus, &dir)?;
        }
        if a.beyond || a.beyond_only {
            beyond(&a, &corpus, &dir)?;
        }
        Ok(0)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn read_corpus(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("corpus directory {}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("no .txt files in corpus directory {}", dir.display());
    }
    let mut all = Vec::new();
    for n in names {
        all.extend(std::fs::read(&n).with_context(|| format!("reading {}", n.display()))?);
    }
    Ok(all)
}

/// Writes `files` inputs of the corpus concatenated to about `size_mb` MB in all.
fn generate(
    corpus: &[u8],
    dir: &Path,
    files: u32,
    size_mb: u64,
) -> anyhow::Result<(Vec<String>, u64)> {
    let per_file = (size_mb * 1_000_000).div_ceil(u64::from(files));
    let copies = per_file.div_ceil(corpus.len() as u64).max(1);
    let mut names = Vec::new();
    for i in 0..files {
        let path = dir.join(format!("input-{i:03}.txt"));
        let mut data = Vec::with_capacity(corpus.len() * copies as usize);
        for _ in 0..copies {
            data.extend_from_slice(corpus);
        }
        std::fs::write(&path, &data).with_context(|| format!("writing {}", path.display()))?;
        names.push(path.to_string_lossy().into_owned());
    }
    Ok((names, copies * corpus.len() as u64 * u64::from(files)))
}

fn opts() -> JobOpts {
    JobOpts {
        n_reduce: 10,
        task_timeout: Duration::from_secs(10),
        backups: false,
        backup_after: Duration::from_secs(1),
    }
}

fn spec(files: &[String], dir: &Path, workers: u32) -> JobSpec {
    JobSpec {
        app: "wc".into(),
        files: files.to_vec(),
        opts: opts(),
        workers,
        combiner: true,
        dir: dir.to_path_buf(),
        slow: None,
    }
}

/// CPU seconds (user + system) of this process's waited-for children, from /proc (Linux).
fn children_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let Some(close) = stat.rfind(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(13), ticks(14)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// Runs a job; returns (seconds, its sorted output as word → count, the report).
fn timed(spec: &JobSpec) -> anyhow::Result<(f64, BTreeMap<Vec<u8>, u64>, JobRun)> {
    let cpu0 = children_cpu();
    let report = run_job(spec, |_, _| {})?;
    let cpu = children_cpu() - cpu0;
    if let Outcome::Failed { task, reason } = &report.outcome {
        bail!("bench job failed: {task}: {reason}");
    }
    let counts = read_counts(&spec.dir, spec.opts.n_reduce)?;
    remove_intermediate(&spec.dir, spec.files.len() as u32, spec.opts.n_reduce);
    Ok((report.secs, counts, JobRun { report, cpu }))
}

/// A job's report and the CPU seconds its workers used.
struct JobRun {
    report: super::job::JobReport,
    cpu: f64,
}

fn read_counts(dir: &Path, n_reduce: u32) -> anyhow::Result<BTreeMap<Vec<u8>, u64>> {
    let mut counts = BTreeMap::new();
    for r in 0..n_reduce {
        let path = dir.join(output_name(r));
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let sp = line
                .iter()
                .rposition(|&b| b == b' ')
                .context("output line without value")?;
            let n: u64 = std::str::from_utf8(&line[sp + 1..])?.parse()?;
            counts.insert(line[..sp].to_vec(), n);
        }
        std::fs::remove_file(&path)?;
    }
    Ok(counts)
}

/// The 1-minute load average, to say how busy the machine was.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split(' ').next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn throughput(a: &BenchArgs, corpus: &[u8], dir: &Path) -> anyhow::Result<()> {
    let t = Instant::now();
    let (files, bytes) = generate(corpus, dir, a.files, a.size_mb)?;
    let mb = bytes as f64 / 1e6;
    println!(
        "bench mr: wc over {mb:.0} MB ({} files of the corpus concatenated; generated in \
         {:.1}s), 10 reduce tasks; load average {} on {} cores",
        files.len(),
        t.elapsed().as_secs_f64(),
        load(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let head = ("run", "wall s", "MB/s", "vs 1 wkr", "CPU s", "runs");
    println!(
        "{:<40} {:>8} {:>8} {:>9} {:>8} {:>5}",
        head.0, head.1, head.2, head.3, head.4, head.5
    );
    let row = |label: &str, secs: f64, base: f64, cpu: f64, runs: String| {
        let speedup = format!("{:.2}x", base / secs);
        println!(
            "{label:<40} {secs:>8.2} {:>8.1} {speedup:>9} {cpu:>8.2} {runs:>5}",
            mb / secs
        );
    };
    let (s1, c1, r1) = timed(&spec(&files, dir, 1))?;
    row(
        "aver mr, 1 worker",
        s1,
        s1,
        r1.cpu,
        r1.report.runs.to_string(),
    );
    let (s2, c2, r2) = timed(&spec(&files, dir, 2))?;
    row(
        "aver mr, 2 workers",
        s2,
        s1,
        r2.cpu,
        r2.report.runs.to_string(),
    );
    anyhow::ensure!(c1 == c2, "1-worker and 2-worker outputs differ");
    if !a.no_pipeline {
        let cpu0 = children_cpu();
        let (sp, cp) = pipeline(dir)?;
        let label = "tr -cs A-Za-z '\\n' | sort | uniq -c";
        row(label, sp, s1, children_cpu() - cpu0, "-".into());
        let agree = if cp == c1 { "yes" } else { "NO" };
        println!(
            "2 workers vs the pipeline: {:.2}x faster; outputs agree: {agree}",
            sp / s2
        );
    }
    let total: u64 = c1.values().sum();
    println!("distinct words: {}, total words: {total}", c1.len());
    for f in &files {
        let _ = std::fs::remove_file(f);
    }
    Ok(())
}

/// `cat inputs | tr -cs A-Za-z '\n' | sort | uniq -c` (C locale) on the same files.
fn pipeline(dir: &Path) -> anyhow::Result<(f64, BTreeMap<Vec<u8>, u64>)> {
    let out = dir.join("pipeline.out");
    let script = format!(
        "cat {}/input-*.txt | tr -cs A-Za-z '\\n' | sort | uniq -c > {}",
        dir.display(),
        out.display()
    );
    let t = Instant::now();
    let status = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("LC_ALL", "C")
        .status()
        .context("running sh")?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "the pipeline failed: {status}");
    let text = std::fs::read(&out)?;
    let _ = std::fs::remove_file(&out);
    let mut counts = BTreeMap::new();
    for line in text.split(|&b| b == b'\n') {
        let line = line.trim_ascii_start();
        let Some(sp) = line.iter().position(|&b| b == b' ') else {
            continue;
        };
        let word = &line[sp + 1..];
        if !word.is_empty() {
            counts.insert(word.to_vec(), std::str::from_utf8(&line[..sp])?.parse()?);
        }
    }
    Ok((secs, counts))
}

/// Backups and the combiner, each against the same baseline, with worker 0 slow.
fn beyond(a: &BenchArgs, corpus: &[u8], dir: &Path) -> anyhow::Result<()> {
    let (files, bytes) = generate(corpus, dir, a.files, (a.size_mb / 6).max(1))?;
    let slow = a.slow_delay;
    println!(
        "\nbeyond the lab: wc over {:.0} MB in {} files, 3 workers, one of which sleeps {:.1}s \
         before each task; load average {}",
        bytes as f64 / 1e6,
        files.len(),
        slow.as_secs_f64(),
        load()
    );
    let head = (
        "run",
        "wall s",
        "CPU s",
        "runs",
        "backups",
        "intermediate MB",
    );
    println!(
        "{:<34} {:>8} {:>8} {:>6} {:>8} {:>16}",
        head.0, head.1, head.2, head.3, head.4, head.5
    );
    let mut base = spec(&files, dir, 3);
    base.slow = Some(slow);
    let mut with_backups = spec(&files, dir, 3);
    with_backups.slow = Some(slow);
    with_backups.opts.backups = true;
    let mut no_combiner = spec(&files, dir, 3);
    no_combiner.slow = Some(slow);
    no_combiner.combiner = false;
    let mut reference = None;
    for (label, s) in [
        ("baseline (combiner, no backups)", &base),
        ("with backups (after 1 s)", &with_backups),
        ("without the combiner", &no_combiner),
    ] {
        let (secs, counts, run) = timed(s)?;
        let r = &run.report;
        let inter = r.intermediate_bytes as f64 / 1e6;
        println!(
            "{label:<34} {secs:>8.2} {:>8.2} {:>6} {:>8} {inter:>16.1}",
            run.cpu, r.runs, r.backups
        );
        match &reference {
            None => reference = Some(counts),
            Some(c) => anyhow::ensure!(*c == counts, "{label}: output differs from the baseline"),
        }
    }
    for f in &files {
        let _ = std::fs::remove_file(f);
    }
    Ok(())
}
