//! Every MapReduce application by name: the pure ones of `aver_core::mr::apps` and the lab's
//! test applications, whose side effects (marker files, process ids, sleeps, crashes) the lab's
//! tests observe. Their behaviour follows the lab's `mrapps/*.go` exactly; see
//! `specs/mapreduce.md`.

use aver_core::mr::apps::{App, Emit, Indexer, NoCrash, WordCount};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every application name `--app` takes.
pub const APPS: &[&str] = &[
    "wc",
    "indexer",
    "mtiming",
    "rtiming",
    "jobcount",
    "early_exit",
    "crash",
    "nocrash",
];

/// The application called `name`. `seed` drives the random choices of `jobcount` and
/// `crash` (each worker process should get its own).
pub fn app(name: &str, seed: u64) -> Result<Box<dyn App>, String> {
    Ok(match name {
        "wc" => Box::new(WordCount),
        "indexer" => Box::new(Indexer),
        "nocrash" => Box::new(NoCrash),
        "mtiming" => Box::new(MTiming),
        "rtiming" => Box::new(RTiming),
        "jobcount" => Box::new(JobCount {
            count: AtomicU32::new(0),
            rng: Mutex::new(SplitMix(seed)),
        }),
        "early_exit" => Box::new(EarlyExit),
        "crash" => Box::new(Crash {
            rng: Mutex::new(SplitMix(seed)),
        }),
        _ => {
            return Err(format!(
                "unknown application `{name}`; known: {}",
                APPS.join(", ")
            ));
        }
    })
}

/// splitmix64: a small seeded generator for the test applications' random choices.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

fn pid() -> u32 {
    std::process::id()
}

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The lab's `nparallel(phase)`: writes the marker `mr-worker-<phase>-<pid>` in the current
/// directory, counts markers whose process is alive, sleeps 1 s, removes its marker.
fn nparallel(phase: &str) -> Result<usize, String> {
    let mine = format!("mr-worker-{phase}-{}", pid());
    std::fs::write(&mine, b"x").map_err(|e| format!("writing {mine}: {e}"))?;
    let prefix = format!("mr-worker-{phase}-");
    let dir = std::fs::read_dir(".").map_err(|e| format!("listing the current directory: {e}"))?;
    let alive = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_prefix(&prefix)?.parse::<u32>().ok())
        .filter(|&p| process_alive(p))
        .count();
    std::thread::sleep(Duration::from_secs(1));
    std::fs::remove_file(&mine).map_err(|e| format!("removing {mine}: {e}"))?;
    Ok(alive)
}

fn sorted_join(values: &[&[u8]], out: &mut Vec<u8>) {
    NoCrash::reduce_values(values, out);
}

/// Map parallelism probe (`mtiming`): each map records its start time and how many map
/// workers were alive at once.
struct MTiming;

impl App for MTiming {
    fn name(&self) -> &'static str {
        "mtiming"
    }
    fn map(&self, _f: &str, _c: &[u8], out: &mut dyn Emit) -> Result<(), String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let n = nparallel("map")?;
        let p = pid();
        out.emit(
            format!("times-{p}").as_bytes(),
            format!("{:.1}", now.as_secs_f64()).as_bytes(),
        );
        out.emit(format!("parallel-{p}").as_bytes(), n.to_string().as_bytes());
        Ok(())
    }
    fn reduce(&self, _k: &[u8], values: &[&[u8]], out: &mut Vec<u8>) -> Result<(), String> {
        sorted_join(values, out);
        Ok(())
    }
}

/// Reduce parallelism probe (`rtiming`): keys `a`…`j`; each reduce returns how many reduce
/// workers were alive at once.
struct RTiming;

impl App for RTiming {
    fn name(&self) -> &'static str {
        "rtiming"
    }
    fn map(&self, _f: &str, _c: &[u8], out: &mut dyn Emit) -> Result<(), String> {
        for k in b'a'..=b'j' {
            out.emit(&[k], b"1");
        }
        Ok(())
    }
    fn reduce(&self, _k: &[u8], _v: &[&[u8]], out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(nparallel("reduce")?.to_string().as_bytes());
        Ok(())
    }
}

/// Job counter (`jobcount`): every map run leaves a marker file and sleeps 2–5 s; the reduce
/// counts the markers, so the output is the number of map runs.
struct JobCount {
    count: AtomicU32,
    rng: Mutex<SplitMix>,
}

impl App for JobCount {
    fn name(&self) -> &'static str {
        "jobcount"
    }
    fn map(&self, _f: &str, _c: &[u8], out: &mut dyn Emit) -> Result<(), String> {
        let n = self.count.fetch_add(1, Ordering::SeqCst);
        let marker = format!("mr-worker-jobcount-{}-{n}", pid());
        std::fs::write(&marker, b"x").map_err(|e| format!("writing {marker}: {e}"))?;
        let ms = 2000 + self.rng.lock().expect("rng").below(3000);
        std::thread::sleep(Duration::from_millis(ms));
        out.emit(b"a", b"x");
        Ok(())
    }
    fn reduce(&self, _k: &[u8], _v: &[&[u8]], out: &mut Vec<u8>) -> Result<(), String> {
        let dir =
            std::fs::read_dir(".").map_err(|e| format!("listing the current directory: {e}"))?;
        let runs = dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("mr-worker-jobcount"))
            .count();
        out.extend_from_slice(runs.to_string().as_bytes());
        Ok(())
    }
}

/// Early-exit probe (`early_exit`): keys are the file names; reduces of keys containing
/// `sherlock` or `tom` take 3 s, so a worker that exits when no task is available *right now*
/// is caught.
struct EarlyExit;

impl App for EarlyExit {
    fn name(&self) -> &'static str {
        "early_exit"
    }
    fn map(&self, filename: &str, _c: &[u8], out: &mut dyn Emit) -> Result<(), String> {
        out.emit(filename.as_bytes(), b"1");
        Ok(())
    }
    fn reduce(&self, key: &[u8], values: &[&[u8]], out: &mut Vec<u8>) -> Result<(), String> {
        let k = String::from_utf8_lossy(key);
        if k.contains("sherlock") || k.contains("tom") {
            std::thread::sleep(Duration::from_secs(3));
        }
        out.extend_from_slice(values.len().to_string().as_bytes());
        Ok(())
    }
}

/// Crashing worker (`crash`): before every map and reduce, with probability 0.33 the process
/// exits at once (status 1), with probability 0.33 it sleeps 0–10 s; otherwise `nocrash`.
struct Crash {
    rng: Mutex<SplitMix>,
}

impl Crash {
    fn maybe_crash(&self) {
        let (roll, ms) = {
            let mut rng = self.rng.lock().expect("rng");
            (rng.below(1000), rng.below(10_000))
        };
        if roll < 330 {
            std::process::exit(1);
        } else if roll < 660 {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
}

impl App for Crash {
    fn name(&self) -> &'static str {
        "crash"
    }
    fn map(&self, filename: &str, contents: &[u8], out: &mut dyn Emit) -> Result<(), String> {
        self.maybe_crash();
        NoCrash::map_pairs(filename, contents, out);
        Ok(())
    }
    fn reduce(&self, _k: &[u8], values: &[&[u8]], out: &mut Vec<u8>) -> Result<(), String> {
        self.maybe_crash();
        sorted_join(values, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_app_exists_and_unknown_names_are_refused() {
        for name in APPS {
            assert_eq!(app(name, 1).unwrap().name(), *name);
        }
        let err = app("wordcount", 1).err().unwrap();
        assert!(err.contains("unknown application `wordcount`") && err.contains("indexer"));
    }
}
