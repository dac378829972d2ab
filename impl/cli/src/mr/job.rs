//! Running a whole job from one command: the coordinator in this process, worker processes
//! (`aver mr worker`, this same binary) around it. Used by `aver mr run` and `aver bench mr`.

use super::{JobOpts, RunArgs, check_inputs};
use anyhow::Context as _;
use aver_core::mr::{Coordinator, Event, Phase};
use aver_runtime::mr::apps;
use aver_runtime::mr::coordinator::{Outcome, Server, serve};
use aver_runtime::mr::exec::{intermediate_name, output_name};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One job to run.
pub struct JobSpec {
    /// The application.
    pub app: String,
    /// Input files as the workers will see them (relative to `dir`, or absolute).
    pub files: Vec<String>,
    /// Reduce tasks, timeouts, backups.
    pub opts: JobOpts,
    /// Worker processes.
    pub workers: u32,
    /// Use the application's combiner.
    pub combiner: bool,
    /// The workers' working directory: where intermediate and output files go.
    pub dir: PathBuf,
    /// Worker 0 sleeps this long before each task (a slow machine), if set.
    pub slow: Option<Duration>,
}

/// What a finished job looked like.
pub struct JobReport {
    /// How it ended.
    pub outcome: Outcome,
    /// Wall time from the first worker start to the job's end.
    pub secs: f64,
    /// Task runs handed out (more than the number of tasks after faults or backups).
    pub runs: u32,
    /// Of which backup runs.
    pub backups: u32,
    /// Bytes of intermediate files (mr-X-Y) after the job.
    pub intermediate_bytes: u64,
}

/// The job could not finish: every worker exited first (how each ended, with its log tail).
#[derive(Debug)]
pub struct WorkersGone(pub String);

impl std::fmt::Display for WorkersGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "every worker exited before the job was done:{}", self.0)
    }
}

impl std::error::Error for WorkersGone {}

static JOBS: AtomicU32 = AtomicU32::new(0);

/// Runs `spec` to its end; `progress` sees every coordinator event.
pub fn run_job(
    spec: &JobSpec,
    mut progress: impl FnMut(&Coordinator, &Event),
) -> anyhow::Result<JobReport> {
    let n = JOBS.fetch_add(1, Ordering::SeqCst);
    let tag = format!("aver-mr-run-{}-{n}", std::process::id());
    let socket = std::env::temp_dir().join(format!("{tag}.sock"));
    let logs = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let server = Server::bind(&socket)?;
    let start = Instant::now();
    let children = Arc::new(Mutex::new(spawn_workers(spec, &socket, &logs)?));
    let abort = Arc::new(AtomicBool::new(false));
    let watcher = watch(children.clone(), abort.clone());
    let mut scfg = spec.opts.server();
    scfg.abort = Some(abort);
    let (mut runs, mut backups) = (0, 0);
    let config = spec.opts.config(spec.files.clone());
    let served = serve(server, config, scfg, |core, event| {
        if let Event::Assigned { backup, .. } = event {
            runs += 1;
            backups += u32::from(*backup);
        }
        progress(core, event);
    });
    let secs = start.elapsed().as_secs_f64();
    finish_workers(&children);
    let _ = watcher.join();
    let outcome = match served {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
            let how = exits(&children, &logs);
            return Err(WorkersGone(how).into());
        }
        Err(e) => return Err(e.into()),
    };
    let _ = std::fs::remove_dir_all(&logs);
    let intermediate_bytes =
        intermediate_bytes(&spec.dir, spec.files.len() as u32, spec.opts.n_reduce);
    Ok(JobReport {
        outcome,
        secs,
        runs,
        backups,
        intermediate_bytes,
    })
}

fn spawn_workers(spec: &JobSpec, socket: &Path, logs: &Path) -> anyhow::Result<Vec<Child>> {
    let exe = std::env::current_exe().context("locating the aver binary")?;
    let mut children = Vec::new();
    for i in 0..spec.workers {
        let log = std::fs::File::create(logs.join(format!("worker-{i}.log")))?;
        let mut cmd = Command::new(&exe);
        cmd.args([
            "mr",
            "worker",
            "--quiet",
            "--connect-wait",
            "5",
            "--app",
            &spec.app,
        ])
        .arg("--socket")
        .arg(socket)
        .current_dir(&spec.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        if !spec.combiner {
            cmd.arg("--no-combiner");
        }
        if let (0, Some(d)) = (i, spec.slow) {
            cmd.arg("--task-delay").arg(format!("{}", d.as_secs_f64()));
        }
        children.push(cmd.spawn().context("starting a worker process")?);
    }
    Ok(children)
}

/// Sets `abort` once every worker has exited.
fn watch(children: Arc<Mutex<Vec<Child>>>, abort: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        loop {
            let all_gone = {
                let mut cs = children.lock().expect("children");
                cs.iter_mut().all(|c| matches!(c.try_wait(), Ok(Some(_))))
            };
            if all_gone {
                abort.store(true, Ordering::SeqCst);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// After the job: workers got `Exit` or saw the coordinator leave; a worker still busy with a
/// run that lost the race gets 2 s, then is killed.
fn finish_workers(children: &Mutex<Vec<Child>>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut cs = children.lock().expect("children");
    for c in cs.iter_mut() {
        while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(c.try_wait(), Ok(None)) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How each worker ended, with the last lines of its log.
fn exits(children: &Mutex<Vec<Child>>, logs: &Path) -> String {
    let mut s = String::new();
    let mut cs = children.lock().expect("children");
    for (i, c) in cs.iter_mut().enumerate() {
        let status = match c.try_wait() {
            Ok(Some(st)) => st.to_string(),
            _ => "still running".into(),
        };
        s.push_str(&format!("\n  worker {i}: {status}"));
        let log = logs.join(format!("worker-{i}.log"));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            s.push_str(&format!("\n    {line}"));
        }
    }
    s
}

fn intermediate_bytes(dir: &Path, n_map: u32, n_reduce: u32) -> u64 {
    let mut total = 0;
    for m in 0..n_map {
        for r in 0..n_reduce {
            total += std::fs::metadata(dir.join(intermediate_name(m, r))).map_or(0, |md| md.len());
        }
    }
    total
}

/// Removes the intermediate files of a finished job.
pub fn remove_intermediate(dir: &Path, n_map: u32, n_reduce: u32) {
    for m in 0..n_map {
        for r in 0..n_reduce {
            let _ = std::fs::remove_file(dir.join(intermediate_name(m, r)));
        }
    }
}

/// The progress display: a bar redrawn in place on a terminal, plain lines otherwise.
struct Progress {
    tty: bool,
    start: Instant,
}

impl Progress {
    fn update(&mut self, core: &Coordinator, event: &Event) {
        // On a terminal the bar is redrawn at every assignment too, so it shows from the start.
        let redraw = matches!(event, Event::TaskDone(_) | Event::JobDone)
            || (self.tty && matches!(event, Event::Assigned { .. }));
        if !redraw {
            return;
        }
        let (md, mt) = core.progress(Phase::Map);
        let (rd, rt) = core.progress(Phase::Reduce);
        let secs = self.start.elapsed().as_secs_f64();
        let mut out = std::io::stdout().lock();
        if self.tty {
            let line = format!(
                "map {} {md}/{mt}  reduce {} {rd}/{rt}  {secs:.1}s",
                bar(md, mt),
                bar(rd, rt)
            );
            let _ = write!(out, "\r{line}\x1b[K");
            if matches!(event, Event::JobDone) {
                let _ = writeln!(out);
            }
        } else if let Event::TaskDone(t) = event {
            let _ = writeln!(
                out,
                "{t} done: map {md}/{mt}, reduce {rd}/{rt} ({secs:.1}s)"
            );
        }
        let _ = out.flush();
    }
}

fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 20;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(WIDTH - filled))
}

/// Runs `aver mr run`.
pub fn run(a: RunArgs) -> anyhow::Result<u8> {
    apps::app(&a.app, 0).map_err(anyhow::Error::msg)?;
    check_inputs(&a.files)?;
    let dir = std::env::current_dir().context("the current directory")?;
    let spec = JobSpec {
        app: a.app.clone(),
        files: a.files.clone(),
        opts: a.job.clone(),
        workers: a.workers,
        combiner: !a.no_combiner,
        dir: dir.clone(),
        slow: None,
    };
    println!(
        "mr run: app {}, {} map tasks, {} reduce tasks, {} workers",
        a.app,
        a.files.len(),
        a.job.n_reduce,
        a.workers
    );
    let mut progress = Progress {
        tty: std::io::stdout().is_terminal(),
        start: Instant::now(),
    };
    let report = match run_job(&spec, |c, e| progress.update(c, e)) {
        Ok(r) => r,
        Err(e) if e.is::<WorkersGone>() => {
            println!();
            eprintln!("error: the job failed: {e}");
            return Ok(1);
        }
        Err(e) => return Err(e),
    };
    if let Outcome::Failed { task, reason } = &report.outcome {
        eprintln!("error: the job failed: {task} failed repeatedly: {reason}");
        return Ok(1);
    }
    if !a.keep_intermediate {
        remove_intermediate(&dir, a.files.len() as u32, a.job.n_reduce);
    }
    print_output(&dir, a.job.n_reduce, &report)?;
    Ok(0)
}

fn print_output(dir: &Path, n_reduce: u32, report: &JobReport) -> anyhow::Result<()> {
    let (mut lines, mut bytes) = (0usize, 0u64);
    for r in 0..n_reduce {
        let path = dir.join(output_name(r));
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        lines += text.iter().filter(|&&b| b == b'\n').count();
        bytes += text.len() as u64;
    }
    println!(
        "done in {:.1}s: {} task runs ({} backups), {lines} output lines, {bytes} bytes",
        report.secs, report.runs, report.backups
    );
    let last = output_name(n_reduce - 1);
    println!("output: {}/mr-out-0 … {last}", dir.display());
    println!("  one sorted listing: sort {}/mr-out-*", dir.display());
    Ok(())
}
