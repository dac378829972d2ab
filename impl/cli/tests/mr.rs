//! The seven scenarios of the lab's `test-mr.sh` (6.5840 Lab 1, 2023–2025; the 2026
//! `mr_test.go` has the same checks), run with real `aver mr coordinator` and `aver mr worker`
//! processes. Each runs in a fresh directory `<lab>/mr-tmp` with the inputs given as
//! `../pg-*.txt`, like the script, so that the sorted outputs can be compared with the
//! reference hashes of `tests/data/gutenberg/README.md` (MR-3 on real runs: the output equals
//! `mrsequential`'s). Every process has the script's time limit (45 s; 120 s in the crash
//! test) and is killed when its test ends. The task timeout stays at its 10 s default.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const WC_SHA256: &str = "08d25f8329d8b7054a8330033736775249ffd98ca861f12e24e0cda079322c19";
const INDEXER_SHA256: &str = "f038ad1d663919a5a86dc537f704236792f101c19e03999479cd00fdac560eb5";
const NOCRASH_SHA256: &str = "c3a7a1747c70eb7a4de09289a2b6daf52855e23888ee54806f0dc1de9c9ba578";

const LIMIT: Duration = Duration::from_secs(45);
const CRASH_LIMIT: Duration = Duration::from_secs(120);

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/gutenberg")
}

/// One scenario's directory and processes.
struct Lab {
    root: PathBuf,
    tmp: PathBuf,
    sock: PathBuf,
    files: Vec<String>,
    limit: Duration,
    logs: usize,
}

/// A process of a scenario, killed if still running when dropped.
struct Proc {
    child: Child,
    what: String,
    started: Instant,
    limit: Duration,
}

impl Proc {
    /// Waits for the process, killing it at its time limit (which fails the test).
    fn wait(&mut self) -> ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if self.started.elapsed() > self.limit {
                let _ = self.child.kill();
                panic!("{} ran past its {:?} limit", self.what, self.limit);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Lab {
    fn new(name: &str, limit: Duration) -> Lab {
        let root = std::env::temp_dir().join(format!("aver-test-mr-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let tmp = root.join("mr-tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut files = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(corpus())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for src in entries {
            let name = src.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("pg") && name.ends_with(".txt") {
                std::fs::copy(&src, root.join(&name)).unwrap();
                files.push(format!("../{name}"));
            }
        }
        assert_eq!(files.len(), 8, "the corpus has 8 pg-*.txt files");
        let sock = root.join("coordinator.sock");
        Lab {
            root,
            tmp,
            sock,
            files,
            limit,
            logs: 0,
        }
    }

    fn spawn(&mut self, what: &str, args: &[&str], limit: Duration) -> Proc {
        self.logs += 1;
        let log =
            std::fs::File::create(self.root.join(format!("{}-{what}.log", self.logs))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_aver"))
            .args(args)
            .current_dir(&self.tmp)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Proc {
            child,
            what: what.into(),
            started: Instant::now(),
            limit,
        }
    }

    fn coordinator(&mut self) -> Proc {
        let sock = self.sock.to_string_lossy().into_owned();
        let mut args = vec!["mr", "coordinator", "--socket", &sock];
        let files = self.files.clone();
        args.extend(files.iter().map(String::as_str));
        let limit = self.limit;
        self.spawn("coordinator", &args, limit)
    }

    fn worker(&mut self, app: &str) -> Proc {
        let sock = self.sock.to_string_lossy().into_owned();
        let limit = self.limit;
        self.spawn(
            &format!("worker-{app}"),
            &[
                "mr",
                "worker",
                "--app",
                app,
                "--socket",
                &sock,
                "--connect-wait",
                "3",
            ],
            limit,
        )
    }

    /// `sort mr-out* | grep .`: every non-empty output line, sorted bytewise.
    fn sorted_output(&self) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for e in std::fs::read_dir(&self.tmp).unwrap() {
            let path = e.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("mr-out")
            {
                let text = std::fs::read(&path).unwrap();
                lines.extend(
                    text.split(|&b| b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(<[u8]>::to_vec),
                );
            }
        }
        lines.sort();
        lines
    }

    fn output_text(&self) -> String {
        self.sorted_output()
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned() + "\n")
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "scenario files and process logs kept in {}",
                self.root.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// sha256 of the sorted lines, each ending in a newline (as `sort mr-out* | sha256sum`).
fn sha256(lines: &[Vec<u8>]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils) is needed");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            stdin.write_all(l).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// test-mr.sh 1: wc with 3 workers; the output must be final when the coordinator exits.
#[test]
fn wc_test() {
    let mut lab = Lab::new("wc", LIMIT);
    let mut coord = lab.coordinator();
    let _workers: Vec<Proc> = (0..3).map(|_| lab.worker("wc")).collect();
    assert!(coord.wait().success());
    let out = lab.sorted_output();
    assert_eq!(out.len(), 22_107, "distinct words");
    assert_eq!(
        sha256(&out),
        WC_SHA256,
        "sorted wc output differs from mrsequential's"
    );
}

/// test-mr.sh 2: indexer with 2 workers; the output must be final when the second (foreground)
/// worker exits.
#[test]
fn indexer_test() {
    let mut lab = Lab::new("indexer", LIMIT);
    let mut coord = lab.coordinator();
    let _w1 = lab.worker("indexer");
    assert!(lab.worker("indexer").wait().success());
    assert_eq!(sha256(&lab.sorted_output()), INDEXER_SHA256);
    assert!(coord.wait().success());
}

/// test-mr.sh 3: map parallelism with mtiming — both workers ran maps, and some map saw both
/// map workers alive at once.
#[test]
fn map_parallelism_test() {
    let mut lab = Lab::new("mtiming", LIMIT);
    let mut coord = lab.coordinator();
    let _w1 = lab.worker("mtiming");
    assert!(lab.worker("mtiming").wait().success());
    let out = lab.output_text();
    let times = out.lines().filter(|l| l.starts_with("times-")).count();
    assert_eq!(times, 2, "workers that ran map tasks:\n{out}");
    let parallel = out
        .lines()
        .any(|l| l.starts_with("parallel") && l.split(' ').skip(1).any(|n| n == "2"));
    assert!(parallel, "map workers did not run in parallel:\n{out}");
    assert!(coord.wait().success());
}

/// test-mr.sh 4: reduce parallelism with rtiming — at least two reduces saw both reduce
/// workers alive.
#[test]
fn reduce_parallelism_test() {
    let mut lab = Lab::new("rtiming", LIMIT);
    let mut coord = lab.coordinator();
    let _w1 = lab.worker("rtiming");
    assert!(lab.worker("rtiming").wait().success());
    let out = lab.output_text();
    let two = out
        .lines()
        .filter(|l| {
            let b = l.as_bytes();
            b.len() >= 3 && b[0].is_ascii_lowercase() && b[1] == b' ' && b[2] == b'2'
        })
        .count();
    assert!(two >= 2, "too few parallel reduces:\n{out}");
    assert!(coord.wait().success());
}

/// test-mr.sh 5: job count — exactly 8 map runs (no task runs twice without a failure; MR-5),
/// and workers started after the job ends exit by themselves.
#[test]
fn job_count_test() {
    let mut lab = Lab::new("jobcount", LIMIT);
    let mut coord = lab.coordinator();
    let _w1 = lab.worker("jobcount");
    assert!(lab.worker("jobcount").wait().success());
    let _w3 = lab.worker("jobcount");
    lab.worker("jobcount").wait();
    let out = lab.output_text();
    let counts: Vec<&str> = out.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(counts, ["8"], "map runs counted by the reduce:\n{out}");
    coord.wait();
}

/// test-mr.sh 6: early exit — no process exits before every output is final: the output seen
/// at the first exit of any process equals the output after all have exited.
#[test]
fn early_exit_test() {
    let mut lab = Lab::new("early_exit", LIMIT);
    let mut procs = vec![lab.coordinator()];
    procs.extend((0..3).map(|_| lab.worker("early_exit")));
    let started = Instant::now();
    let first = loop {
        if let Some(i) = procs.iter_mut().position(Proc::exited) {
            break i;
        }
        assert!(
            started.elapsed() < LIMIT,
            "no process exited within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let at_first_exit = lab.sorted_output();
    for p in &mut procs {
        p.wait();
    }
    let at_end = lab.sorted_output();
    assert!(!at_end.is_empty());
    assert_eq!(
        at_first_exit, at_end,
        "process {first} exited before the output was final"
    );
}

/// test-mr.sh 7: crash — one worker plus three restart loops of `crash` workers (each exits
/// with probability 0.33 and sleeps up to 10 s with probability 0.33 before every task); the
/// sorted output must equal `nocrash`'s. A dead worker's connection closes, so its tasks go
/// back at once; slow ones go back after the default 10 s task timeout.
#[test]
fn crash_test() {
    let mut lab = Lab::new("crash", CRASH_LIMIT);
    let mut coord = lab.coordinator();
    let done = Arc::new(AtomicBool::new(false));
    let mut first = lab.worker("crash");
    let sock = lab.sock.clone();
    // The script's loops run while the socket exists: wait for the coordinator to bind it.
    let bound = Instant::now();
    while !sock.exists() {
        assert!(
            bound.elapsed() < LIMIT,
            "the coordinator never bound {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let tmp = lab.tmp.clone();
    let loops: Vec<_> = (0..3)
        .map(|_| {
            let (done, sock, tmp) = (done.clone(), sock.clone(), tmp.clone());
            std::thread::spawn(move || restart_loop(&done, &sock, &tmp))
        })
        .collect();
    let status = coord.wait();
    done.store(true, Ordering::SeqCst);
    let restarts: u32 = loops.into_iter().map(|h| h.join().unwrap()).sum();
    let _ = first.child.kill();
    assert!(status.success());
    eprintln!("crash_test: {restarts} crash workers started by the restart loops");
    assert_eq!(
        sha256(&lab.sorted_output()),
        NOCRASH_SHA256,
        "{}",
        lab.output_text()
    );
}

/// Starts a crash worker one second after the previous one exits, while the coordinator runs.
fn restart_loop(done: &AtomicBool, sock: &Path, tmp: &Path) -> u32 {
    let mut started = 0;
    while !done.load(Ordering::SeqCst) && sock.exists() {
        started += 1;
        let mut child = Command::new(env!("CARGO_BIN_EXE_aver"))
            .args([
                "mr",
                "worker",
                "--app",
                "crash",
                "--quiet",
                "--connect-wait",
                "0",
            ])
            .arg("--socket")
            .arg(sock)
            .current_dir(tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let limit = Instant::now() + CRASH_LIMIT;
        while matches!(child.try_wait(), Ok(None)) {
            if done.load(Ordering::SeqCst) || Instant::now() > limit {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
        std::thread::sleep(Duration::from_secs(1));
    }
    started
}

/// Beyond the lab: backup runs (`--backups`) with one slow worker, and workers that disagree
/// on using the combiner, still give exactly the wc reference output (MR-3, MR-4).
#[test]
fn backups_and_mixed_combiners_keep_the_wc_output() {
    let mut lab = Lab::new("backups", LIMIT);
    let sock = lab.sock.to_string_lossy().into_owned();
    let mut args = vec!["mr", "coordinator", "--backups", "--backup-after", "0.1"];
    args.extend(["--socket", &sock]);
    let files = lab.files.clone();
    args.extend(files.iter().map(String::as_str));
    let mut coord = lab.spawn("coordinator", &args, LIMIT);
    let slow = [
        "mr",
        "worker",
        "--app",
        "wc",
        "--task-delay",
        "0.5",
        "--socket",
        &sock,
    ];
    let _slow = lab.spawn("slow-worker", &slow, LIMIT);
    let plain = [
        "mr",
        "worker",
        "--app",
        "wc",
        "--no-combiner",
        "--socket",
        &sock,
    ];
    let _plain = lab.spawn("plain-worker", &plain, LIMIT);
    let _combining = lab.worker("wc");
    assert!(coord.wait().success());
    assert_eq!(sha256(&lab.sorted_output()), WC_SHA256);
}
