//! `aver mr`: MapReduce as real processes, and `aver bench mr`.
//!
//! * `aver mr coordinator [--reduce 10] FILES...` serves one job on a Unix socket and exits
//!   when it is over (0 done, 1 failed).
//! * `aver mr worker --app wc` runs tasks until the coordinator says the job is over (or goes
//!   away). Run several, as separate processes, from the directory that holds the inputs.
//! * `aver mr run --workers N --app wc FILES...` does both: the coordinator in this process,
//!   N worker processes, a progress bar, and where the output is.
//! * `aver mr check` model-checks the coordinator core (also part of `aver check`).
//!
//! Exit codes: 0 the job is done, 1 the job failed (or a model property failed), 2 bad
//! arguments or input.

mod bench;
mod check;
mod job;

pub use bench::{BenchArgs, bench};
pub use check::{check, explore};

use anyhow::{Context as _, bail};
use aver_core::mr::CoordinatorConfig;
use aver_runtime::mr::apps;
use aver_runtime::mr::coordinator::{Outcome, Server, ServerConfig, serve};
use aver_runtime::mr::exec::Executor;
use aver_runtime::mr::worker::{self, WorkerConfig, WorkerEnd};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `aver mr`.
#[derive(Args)]
pub struct MrArgs {
    #[command(subcommand)]
    cmd: MrCmd,
}

#[derive(Subcommand)]
enum MrCmd {
    /// Serve one MapReduce job (one map task per input file) on a Unix socket.
    Coordinator(CoordinatorArgs),
    /// Run tasks for the coordinator until the job is over.
    Worker(WorkerArgs),
    /// Run a whole job: the coordinator here, N worker processes, a progress bar.
    Run(RunArgs),
    /// Model-check the coordinator core (Stateright) with crashing and slow workers.
    Check(check::CheckArgs),
}

/// Options of a job, shared by `coordinator` and `run`.
#[derive(Args, Clone, Debug)]
pub struct JobOpts {
    /// Number of reduce tasks (output files mr-out-0 … mr-out-(N-1)).
    #[arg(
        long = "reduce",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub n_reduce: u32,
    /// Seconds a task run may take before it is given to another worker.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub task_timeout: Duration,
    /// Start backup runs of stragglers near the end of each phase (MapReduce paper §3.6).
    #[arg(long)]
    pub backups: bool,
    /// Seconds a run must have taken before a backup copy of it may start (with --backups).
    #[arg(long, default_value = "1", value_parser = parse_secs)]
    pub backup_after: Duration,
}

impl JobOpts {
    fn config(&self, files: Vec<String>) -> CoordinatorConfig {
        let mut cfg = CoordinatorConfig::new(files, self.n_reduce);
        cfg.backups = self.backups;
        cfg
    }

    fn server(&self) -> ServerConfig {
        ServerConfig {
            task_timeout: self.task_timeout,
            backup_after: self.backup_after,
            ..ServerConfig::default()
        }
    }
}

/// Arguments of `aver mr coordinator`.
#[derive(Args)]
pub struct CoordinatorArgs {
    #[command(flatten)]
    job: JobOpts,
    /// The coordinator's socket (default: /tmp/aver-mr-<uid>.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Input files, one map task each (passed to workers exactly as written).
    #[arg(required = true)]
    files: Vec<String>,
}

/// Arguments of `aver mr worker`.
#[derive(Args)]
pub struct WorkerArgs {
    /// The application (wc, indexer, mtiming, rtiming, jobcount, early_exit, crash, nocrash).
    #[arg(long)]
    app: String,
    /// The coordinator's socket (default: /tmp/aver-mr-<uid>.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Seconds to keep trying to reach the coordinator.
    #[arg(long, default_value = "1", value_parser = parse_secs)]
    connect_wait: Duration,
    /// Seconds to sleep before each task (plays a slow machine).
    #[arg(long, default_value = "0", value_parser = parse_secs)]
    task_delay: Duration,
    /// Do not use the application's combiner.
    #[arg(long)]
    no_combiner: bool,
    /// Seed of the application's random choices (jobcount, crash); default: from the clock
    /// and the process id (printed).
    #[arg(long)]
    seed: Option<u64>,
    /// No per-task log lines on stderr.
    #[arg(long)]
    quiet: bool,
}

/// Arguments of `aver mr run`.
#[derive(Args)]
pub struct RunArgs {
    /// Worker processes to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=256))]
    workers: u32,
    /// The application.
    #[arg(long)]
    app: String,
    #[command(flatten)]
    job: JobOpts,
    /// Do not use the application's combiner.
    #[arg(long)]
    no_combiner: bool,
    /// Keep the intermediate files mr-X-Y (removed after a successful run by default).
    #[arg(long)]
    keep_intermediate: bool,
    /// Input files, one map task each.
    #[arg(required = true)]
    files: Vec<String>,
}

/// Parses seconds: `10`, `0.5`, `10s` or `500ms`.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let (num, scale) = match s.strip_suffix("ms") {
        Some(n) => (n, 1e-3),
        None => (s.strip_suffix('s').unwrap_or(s), 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 10, 0.5, 10s, 500ms)"))?;
    if !(v.is_finite() && v >= 0.0 && v * scale <= 86_400.0) {
        return Err(format!("`{s}` is out of range (0 to 1 day)"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// The default socket: /tmp/aver-mr-<uid>.sock, one per user like the lab's.
fn default_socket() -> PathBuf {
    use std::os::unix::fs::MetadataExt as _;
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    std::env::temp_dir().join(format!("aver-mr-{uid}.sock"))
}

/// Runs `aver mr`.
pub fn run(args: MrArgs) -> anyhow::Result<u8> {
    match args.cmd {
        MrCmd::Coordinator(a) => coordinator(a),
        MrCmd::Worker(a) => worker(a),
        MrCmd::Run(a) => job::run(a),
        MrCmd::Check(a) => check::run(a),
    }
}

fn coordinator(a: CoordinatorArgs) -> anyhow::Result<u8> {
    let socket = a.socket.unwrap_or_else(default_socket);
    let server = Server::bind(&socket)?;
    let n_map = a.files.len();
    eprintln!(
        "coordinator: {n_map} map tasks, {} reduce tasks, serving on {}",
        a.job.n_reduce,
        socket.display()
    );
    let (mut runs, mut backups) = (0u32, 0u32);
    let outcome = serve(server, a.job.config(a.files), a.job.server(), |_, e| {
        if let aver_core::mr::Event::Assigned { backup, .. } = e {
            runs += 1;
            backups += u32::from(*backup);
        }
    })
    .context("coordinator")?;
    eprintln!("coordinator: {runs} task runs ({backups} backups)");
    Ok(report_outcome(&outcome))
}

/// Prints how the job ended; the exit code.
fn report_outcome(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Done => {
            eprintln!("coordinator: job done");
            0
        }
        Outcome::Failed { task, reason } => {
            eprintln!("error: the job failed: {task} failed repeatedly: {reason}");
            1
        }
    }
}

fn worker(a: WorkerArgs) -> anyhow::Result<u8> {
    let seed = a.seed.unwrap_or_else(clock_seed);
    let app = apps::app(&a.app, seed).map_err(anyhow::Error::msg)?;
    if a.seed.is_none() && matches!(a.app.as_str(), "crash" | "jobcount") && !a.quiet {
        eprintln!("worker {}: {} seed={seed}", std::process::id(), a.app);
    }
    let socket = a.socket.unwrap_or_else(default_socket);
    let conn = worker::connect(&socket, a.connect_wait)?;
    let exec = Executor::new(app, PathBuf::from("."), !a.no_combiner);
    let cfg = WorkerConfig {
        task_delay: a.task_delay,
        log: !a.quiet,
    };
    match worker::run(conn, &exec, &cfg)? {
        WorkerEnd::Told => {}
        WorkerEnd::CoordinatorGone if !a.quiet => {
            eprintln!(
                "worker {}: the coordinator went away; exiting",
                std::process::id()
            );
        }
        WorkerEnd::CoordinatorGone => {}
    }
    Ok(0)
}

/// A seed for a process that was given none: the clock and the process id.
fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Checks that every input file can be opened, naming the first that cannot.
fn check_inputs(files: &[String]) -> anyhow::Result<()> {
    for f in files {
        let meta = std::fs::metadata(f).with_context(|| format!("input file {f}"))?;
        if !meta.is_file() {
            bail!("input file {f}: not a regular file");
        }
        std::fs::File::open(f).with_context(|| format!("input file {f}"))?;
    }
    Ok(())
}
