//! `aver bench kv`: closed-loop put load on a running aver cluster (and, with `--against
//! etcd`, on a 3-member etcd started for the run), printing ops/s, latency percentiles, WAL
//! fsyncs per second and operations per fsync, side by side.
//!
//! Each client is one connection issuing one operation at a time (closed loop): a put of a
//! `--value-size`-byte value to one of `--keys` keys, chosen by a seeded RNG. One second of
//! warm-up is not measured. Every acknowledgement in both systems waits for an fsync on a
//! majority. Figures are printed, never asserted; the load average is printed with them,
//! because on a shared machine it moves them.

use super::etcd::{Etcd, Http, find_etcd};
use crate::cluster::{Target, statuses};
use aver_core::contract::NodeId;
use aver_core::kvraft::AppendOp;
use aver_runtime::client::{Client, ClientOptions, Outcome};
use aver_runtime::net::TokioNet;
use aver_runtime::wire::ClusterId;
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What to compare against.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Against {
    /// A 3-member etcd on loopback (Debian's `etcd-server`).
    Etcd,
}

/// Arguments of `aver bench kv`.
#[derive(Args)]
pub struct BenchArgs {
    /// Concurrent clients; a list (`1,16,64` or `1 16 64`) runs one measurement per entry.
    #[arg(long, value_delimiter = ',', num_args = 1.., default_values_t = vec![1, 16, 64])]
    clients: Vec<usize>,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Seconds measured per run (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Also start a 3-member etcd and run the same load on it.
    #[arg(long)]
    against: Option<Against>,
    #[command(flatten)]
    target: Target,
}

/// One measured run.
#[derive(Clone, Debug, Default)]
struct Run {
    ops: u64,
    errors: u64,
    secs: f64,
    latencies_us: Vec<u32>,
    fsyncs: Option<u64>,
}

impl Run {
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let k = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[k] as f64 / 1000.0
    }
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

const WARMUP: Duration = Duration::from_secs(1);

/// xorshift64*, seeded per client: the key sequence of a run is reproducible.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Runs `clients` closed loops of `op` for warm-up + `secs`; merges their latencies.
async fn closed_loop<W, F>(clients: usize, secs: u64, make: W) -> Run
where
    W: Fn(usize) -> F,
    F: std::future::Future<Output = (u64, u64, Vec<u32>)> + Send + 'static,
{
    let tasks: Vec<_> = (0..clients).map(|c| tokio::spawn(make(c))).collect();
    let mut run = Run {
        secs: secs as f64,
        ..Run::default()
    };
    for t in tasks {
        if let Ok((ops, errors, lat)) = t.await {
            run.ops += ops;
            run.errors += errors;
            run.latencies_us.extend(lat);
        }
    }
    run.latencies_us.sort_unstable();
    run
}

/// The window a worker measures: ops that start after `warm` and end before `end`.
#[derive(Clone, Copy)]
struct Window {
    warm: Instant,
    end: Instant,
}

impl Window {
    fn new(secs: u64) -> Window {
        let warm = Instant::now() + WARMUP;
        Window {
            warm,
            end: warm + Duration::from_secs(secs),
        }
    }
}

async fn aver_run(
    cluster: ClusterId,
    members: &BTreeMap<NodeId, SocketAddr>,
    a: &BenchArgs,
    clients: usize,
) -> Run {
    let value: std::sync::Arc<str> = "v".repeat(a.value_size).into();
    let keys = a.keys;
    let window = Window::new(a.duration);
    let counters = tokio::spawn({
        let members = members.clone();
        async move {
            tokio::time::sleep_until(window.warm.into()).await;
            let before = statuses(cluster, &members).await;
            tokio::time::sleep_until(window.end.into()).await;
            (before, statuses(cluster, &members).await)
        }
    });
    let opts = ClientOptions::new(cluster, members.clone());
    let sessions = super::session_seed();
    let mut run = closed_loop(clients, a.duration, |c| {
        let (mut opts, value) = (opts.clone(), value.clone());
        opts.seed = sessions ^ c as u64;
        async move {
            let mut client: Client<TokioNet> = Client::new(TokioNet, opts);
            let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1);
            let (mut ops, mut errors, mut lat) = (0, 0, Vec::new());
            loop {
                let start = Instant::now();
                if start >= window.end {
                    return (ops, errors, lat);
                }
                let key = format!("k{}", next(&mut rng) % keys);
                let op = AppendOp::Put {
                    key: key.into(),
                    value: value.clone(),
                };
                let ok = matches!(client.call(op).await, Outcome::Ok(_));
                let end = Instant::now();
                if start >= window.warm && end <= window.end {
                    if ok {
                        ops += 1;
                        lat.push((end - start).as_micros() as u32);
                    } else {
                        errors += 1;
                    }
                }
            }
        }
    })
    .await;
    let (before, after) = counters.await.unwrap_or_default();
    let leader_fsyncs = |all: &[Option<aver_runtime::wire::NodeStatus>]| {
        all.iter()
            .flatten()
            .filter(|s| s.role == "leader")
            .map(|s| s.fsyncs)
            .max()
    };
    run.fsyncs = leader_fsyncs(&after)
        .zip(leader_fsyncs(&before))
        .map(|(b, a)| b.saturating_sub(a));
    run
}

async fn etcd_run(leader: SocketAddr, a: &BenchArgs, clients: usize) -> Run {
    let value = vec![b'v'; a.value_size];
    let keys = a.keys;
    let window = Window::new(a.duration);
    let counters = tokio::spawn(async move {
        tokio::time::sleep_until(window.warm.into()).await;
        let before = Etcd::wal_fsyncs(leader).await.ok();
        tokio::time::sleep_until(window.end.into()).await;
        (before, Etcd::wal_fsyncs(leader).await.ok())
    });
    let mut run = closed_loop(clients, a.duration, |c| {
        let value = value.clone();
        async move {
            let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1);
            let (mut ops, mut errors, mut lat) = (0, 0, Vec::new());
            let mut conn = None;
            loop {
                let start = Instant::now();
                if start >= window.end {
                    return (ops, errors, lat);
                }
                if conn.is_none() {
                    conn = Http::connect(leader).await.ok();
                }
                let key = format!("k{}", next(&mut rng) % keys);
                let ok = match &mut conn {
                    Some(h) => h.put(key.as_bytes(), &value).await.is_ok(),
                    None => false,
                };
                if !ok {
                    conn = None;
                }
                let end = Instant::now();
                if start >= window.warm && end <= window.end {
                    if ok {
                        ops += 1;
                        lat.push((end - start).as_micros() as u32);
                    } else {
                        errors += 1;
                    }
                }
            }
        }
    })
    .await;
    let (before, after) = counters.await.unwrap_or_default();
    run.fsyncs = after.zip(before).map(|(b, a)| b.saturating_sub(a));
    run
}

fn row(system: &str, clients: usize, r: &Run) {
    let (fsyncs_s, per) = match r.fsyncs {
        Some(f) if f > 0 => (
            format!("{:.0}", f as f64 / r.secs),
            format!("{:.1}", r.ops as f64 / f as f64),
        ),
        _ => ("-".into(), "-".into()),
    };
    println!(
        "{system:<6} {clients:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {fsyncs_s:>9} {per:>9} {:>7}",
        r.rate(),
        r.percentile_ms(0.5),
        r.percentile_ms(0.99),
        r.percentile_ms(0.999),
        r.errors
    );
}

fn compare(clients: usize, aver: &Run, etcd: &Run) {
    let speed = aver.rate() / etcd.rate();
    let p99 = aver.percentile_ms(0.99) / etcd.percentile_ms(0.99);
    let target = match clients {
        1 => " (target: ops/s >= 1.5x)",
        64 => " (targets: ops/s >= 5x, p99 <= 0.5x)",
        _ => "",
    };
    println!("       aver/etcd at {clients} clients: ops/s {speed:.2}x, p99 {p99:.2}x{target}");
}

/// Runs `aver bench kv`.
pub fn run(a: BenchArgs) -> anyhow::Result<u8> {
    let (cluster, members) = a.target.resolve()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let etcd = match a.against {
        None => None,
        Some(Against::Etcd) => match find_etcd() {
            Some(bin) => {
                let dir =
                    std::env::temp_dir().join(format!("aver-bench-etcd-{}", std::process::id()));
                Some(Etcd::start(&bin, &dir)?)
            }
            None => {
                println!(
                    "etcd is not installed (Debian: `apt-get install etcd-server`); \
                     running the aver side only"
                );
                None
            }
        },
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "aver bench kv: puts of {}-byte values over {} keys, {} s per run after {} s warm-up; \
         load average {}",
        a.value_size,
        a.keys,
        a.duration,
        WARMUP.as_secs(),
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "{:<6} {:>7} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}",
        "system",
        "clients",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "fsyncs/s",
        "ops/fsync",
        "errors"
    );
    rt.block_on(async {
        let etcd_leader = match &etcd {
            Some(e) => Some(e.leader().await?),
            None => None,
        };
        for &c in &a.clients {
            let aver = aver_run(cluster, &members, &a, c).await;
            row("aver", c, &aver);
            if let Some(leader) = etcd_leader {
                let e = etcd_run(leader, &a, c).await;
                row("etcd", c, &e);
                compare(c, &aver, &e);
            }
        }
        anyhow::Ok(())
    })?;
    if etcd.is_some() {
        println!(
            "(etcd is driven through its v3 JSON gateway; fsyncs are the leader's WAL fsyncs)"
        );
    }
    println!("(aver fsyncs/s: the leader's fsyncs of files and directories)");
    Ok(0)
}
