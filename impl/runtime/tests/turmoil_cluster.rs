//! The real server code — event loop, group commit, WAL, framed TCP links with handshakes and
//! reconnects, client sessions, the client's leader discovery — under turmoil's simulated
//! network and clock: partitions, crashes that lose unsynced writes (the in-memory
//! [`FaultFs`]), restarts from disk. Every client operation is recorded and the history must
//! be linearizable (the `kv` model of `aver-checker`) with no acknowledged write lost, and
//! every node's input trace must replay into the core (`aver replay`'s checks). A run is a
//! function of its seed: the same seed gives the same history, twice.
//!
//! Replay one seed: `AVER_TURMOIL_SEED=7 cargo test --release -p aver-runtime --test
//! turmoil_cluster`.

mod common;

use aver_checker::Operation;
use aver_checker::models::{KvInput, KvOutput as Out};
use aver_core::contract::NodeId;
use aver_core::kvraft::{AppendOp as KvOp, AppendReply};
use aver_runtime::client::{Client, ClientOptions, Outcome};
use aver_runtime::net::Net;
use aver_runtime::node::{self, NodeOptions};
use aver_runtime::storage::fs::{Crash, FaultFs};
use aver_runtime::wire::ClusterId;
use common::history::{self, to_checker};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// turmoil's sockets behind the runtime's [`Net`].
#[derive(Clone, Copy, Debug)]
struct SimNet;

impl Net for SimNet {
    type Stream = turmoil::net::TcpStream;
    type Listener = turmoil::net::TcpListener;

    async fn bind(&self, addr: SocketAddr) -> std::io::Result<Self::Listener> {
        turmoil::net::TcpListener::bind(addr).await
    }
    async fn accept(
        &self,
        listener: &mut Self::Listener,
    ) -> std::io::Result<(Self::Stream, SocketAddr)> {
        listener.accept().await
    }
    async fn connect(&self, addr: SocketAddr) -> std::io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(addr).await
    }
    fn local_addr(&self, listener: &Self::Listener) -> std::io::Result<SocketAddr> {
        listener.local_addr()
    }
}

const NODES: u32 = 3;
/// Keys of the mixed put/get/append workload (plus the append-only `log`).
const KEYS: u64 = 6;
const PORT: u16 = 7000;

fn members() -> BTreeMap<NodeId, SocketAddr> {
    (1..=NODES)
        .map(|i| {
            let ip = turmoil::lookup(format!("n{i}"));
            (NodeId(i), SocketAddr::new(ip, PORT))
        })
        .collect()
}

type History = Arc<Mutex<Recorder>>;

/// The run's operations, with their call and return times: nanoseconds of simulated time,
/// strictly increasing in the order they were taken. Turmoil's clock moves in whole ticks, so
/// a client's answer and another client's next call often share an instant, and the checker
/// takes equal times as overlapping — a read that followed a write could be placed before it.
/// The hosts run on one thread, so the order the stamps are taken in is real-time order.
#[derive(Debug, Default)]
struct Recorder {
    ops: Vec<Operation<KvInput, Out>>,
    last_ns: u64,
}

impl Recorder {
    fn stamp(&mut self) -> u64 {
        let ns = (now_us() * 1000).max(self.last_ns + 1);
        self.last_ns = ns;
        ns
    }
}

/// A time stamp from `history`'s recorder.
fn stamp(history: &History) -> u64 {
    history.lock().unwrap().stamp()
}

fn now_us() -> u64 {
    turmoil::sim_elapsed()
        .expect("inside the simulation")
        .as_micros() as u64
}

/// Virtual seconds during which clients run and the nemesis strikes.
const RUN_SECS: u64 = 30;

/// One client, until `RUN_SECS` of virtual time: operations on `KEYS` keys and appends to the
/// append-only key, each recorded. An operation whose outcome is unknown stays open forever,
/// so the client continues under a new history id.
async fn client(c: u64, history: History, leader: Arc<AtomicU32>) {
    let mut opts = ClientOptions::new(ClusterId(1), members());
    opts.retry = Duration::from_secs(1);
    opts.seed = c;
    opts.op_timeout = Duration::from_secs(4);
    let mut client: Client<SimNet> = Client::new(SimNet, opts);
    let mut id = c * 1000;
    for n in 0.. {
        if now_us() > RUN_SECS * 1_000_000 {
            break;
        }
        // Think time: keeps the history small enough to check in seconds.
        tokio::time::sleep(Duration::from_millis(15)).await;
        let key = format!("k{}", (c + n) % KEYS);
        let op = match n % 4 {
            0 => KvOp::Append {
                key: key.into(),
                value: format!("[{c}.{n}]").into(),
            },
            1 => KvOp::Get { key: key.into() },
            2 => KvOp::Put {
                key: key.into(),
                value: format!("<{c}.{n}>").into(),
            },
            _ => KvOp::Append {
                key: history::LOG_KEY.into(),
                value: format!("[{c}.{n}]").into(),
            },
        };
        let call = stamp(&history);
        let outcome = client.call(op.clone()).await;
        let ret = stamp(&history);
        let (output, ret) = match outcome {
            Outcome::Ok(AppendReply::Value(v)) => (Some(Out::Value(v.to_string())), Some(ret)),
            Outcome::Ok(AppendReply::Ok) => (Some(Out::Done), Some(ret)),
            Outcome::Unknown(_) => (None, None),
        };
        leader.store(client.leader().0, Ordering::Relaxed);
        let input = to_checker(&op);
        history.lock().unwrap().ops.push(Operation {
            client: id,
            input,
            call,
            output,
            ret,
        });
        if ret.is_none() {
            id += 1;
        }
    }
}

/// Runs one seeded simulation; returns the history (for determinism checks).
fn run(seed: u64) -> Vec<String> {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("AVER_TURMOIL_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    }
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(200))
        .min_message_latency(Duration::from_micros(200))
        .max_message_latency(Duration::from_millis(20))
        .build();
    let disks: Vec<FaultFs> = (0..=NODES).map(|_| FaultFs::new()).collect();
    let traces = std::env::temp_dir().join(format!("aver-turmoil-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&traces);
    for i in 1..=NODES {
        let (disk, trace_dir) = (disks[i as usize].clone(), traces.join(format!("n{i}")));
        sim.host(format!("n{i}"), move || {
            let (disk, trace_dir) = (disk.clone(), trace_dir.clone());
            async move {
                let mut o = NodeOptions::new(
                    NodeId(i),
                    ClusterId(1),
                    members(),
                    PathBuf::from(format!("/n{i}")),
                );
                o.listen = SocketAddr::from(([0, 0, 0, 0], PORT));
                o.fs = Arc::new(disk);
                o.inline_commit = true;
                o.lock_data_dir = false;
                o.seed = seed ^ (i as u64) << 20;
                o.snapshot_log_bytes = 3000;
                // Small runs of preallocated zeros: the in-memory disk copies them.
                o.storage.preallocate_bytes = 4096;
                o.trace = Some(trace_dir);
                let n = node::start(o, SimNet).await?;
                n.wait().await?;
                Ok(())
            }
        });
    }
    let history: History = Arc::default();
    let leader = Arc::new(AtomicU32::new(1));
    for c in 1..=3u64 {
        let (h, l) = (history.clone(), leader.clone());
        sim.client(format!("c{c}"), async move {
            client(c, h, l).await;
            Ok(())
        });
    }
    let faults = nemesis(&mut sim, seed, &disks, &leader);
    final_reads(&mut sim, &history);
    let history = Arc::try_unwrap(history).unwrap().into_inner().unwrap().ops;
    let verdict = check(seed, &history);
    let dirs: Vec<PathBuf> = (1..=NODES).map(|i| traces.join(format!("n{i}"))).collect();
    let report = aver_runtime::replay::replay_cluster(&dirs)
        .unwrap_or_else(|e| panic!("seed={seed}: traces do not replay: {e}"));
    assert!(report.elections >= 1);
    let acked = history.iter().filter(|o| o.ret.is_some()).count();
    println!(
        "seed={seed}: {} operations ({acked} acknowledged) in {RUN_SECS} virtual s; {faults:?}; \
         {verdict}; replayed {} inputs across {} incarnations",
        history.len(),
        report.nodes.iter().map(|n| n.inputs).sum::<u64>(),
        report.nodes.iter().map(|n| n.incarnations).sum::<usize>()
    );
    let _ = std::fs::remove_dir_all(&traces);
    history.iter().map(|o| format!("{o:?}")).collect()
}

/// Until the clients finish: every 1.5 s of simulated time, partition one node from the
/// others, heal, or crash one node (its disk loses what was not synced) and restart it. The
/// victim is the leader the clients last saw half of the time: cutting off a leader with
/// entries in flight is where acknowledgements go wrong.
/// Faults injected: (partitions, crashes).
#[derive(Debug, Default)]
struct Faults {
    partitions: u32,
    crashes: u32,
}

fn nemesis(sim: &mut turmoil::Sim<'_>, seed: u64, disks: &[FaultFs], leader: &AtomicU32) -> Faults {
    let mut faults = Faults::default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut next = Duration::from_secs(2);
    let mut crashed: Option<u32> = None;
    while !sim.step().unwrap_or_else(|e| panic!("seed={seed}: {e}")) {
        if sim.elapsed() < next {
            continue;
        }
        next += Duration::from_millis(1500);
        let heal = |sim: &mut turmoil::Sim<'_>| {
            for a in 1..=NODES {
                for b in a + 1..=NODES {
                    sim.repair(format!("n{a}"), format!("n{b}"));
                }
            }
        };
        if let Some(n) = crashed.take() {
            sim.bounce(format!("n{n}"));
        }
        let victim = match rng.random_bool(0.5) {
            true => leader.load(Ordering::Relaxed).clamp(1, NODES),
            false => rng.random_range(1..=NODES),
        };
        match rng.random_range(0..3) {
            0 => {
                heal(sim);
                for other in (1..=NODES).filter(|&o| o != victim) {
                    sim.partition(format!("n{victim}"), format!("n{other}"));
                }
                faults.partitions += 1;
            }
            1 => heal(sim),
            _ => {
                sim.crash(format!("n{victim}"));
                disks[victim as usize].crash(Crash::LoseUnsynced);
                crashed = Some(victim);
                faults.crashes += 1;
            }
        }
    }
    if let Some(n) = crashed {
        sim.bounce(format!("n{n}"));
    }
    for a in 1..=NODES {
        for b in a + 1..=NODES {
            sim.repair(format!("n{a}"), format!("n{b}"));
        }
    }
    faults
}

/// After healing: read every key (retrying until a leader answers), recorded like any read.
fn final_reads(sim: &mut turmoil::Sim<'_>, history: &History) {
    let h = history.clone();
    sim.client("final", async move {
        let mut opts = ClientOptions::new(ClusterId(1), members());
        opts.op_timeout = Duration::from_secs(30);
        opts.seed = 1 << 40;
        let mut client: Client<SimNet> = Client::new(SimNet, opts);
        let keys = (0..KEYS)
            .map(|k| format!("k{k}"))
            .chain(["log".to_string()]);
        for key in keys {
            let op = KvOp::Get {
                key: key.as_str().into(),
            };
            let call = stamp(&h);
            match client.call(op.clone()).await {
                Outcome::Ok(AppendReply::Value(v)) => {
                    let input = to_checker(&op);
                    let (output, ret) = (Some(Out::Value(v.to_string())), Some(stamp(&h)));
                    h.lock().unwrap().ops.push(Operation {
                        client: 999,
                        input,
                        call,
                        output,
                        ret,
                    });
                }
                other => eprintln!("final read of {key} at {call} ns: {other:?}"),
            }
        }
        Ok(())
    });
    sim.run().unwrap();
}

fn check(seed: u64, history: &[Operation<KvInput, Out>]) -> String {
    let finals: BTreeMap<String, String> = history
        .iter()
        .filter(|o| o.client == 999)
        .filter_map(|o| match (&o.input, &o.output) {
            (KvInput::Get { key }, Some(Out::Value(v))) => Some((key.clone(), v.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        finals.len(),
        KEYS as usize + 1,
        "seed={seed}: final reads failed"
    );
    let acks = history.iter().filter(|o| o.ret.is_some()).count();
    assert!(
        acks >= 300,
        "seed={seed}: only {acks} operations acknowledged"
    );
    let name = format!("aver-turmoil-seed{seed}");
    history::check(&name, history, &finals[history::LOG_KEY])
        .unwrap_or_else(|e| panic!("seed={seed}: {e}"))
}

/// Seeds 1–3 (or `AVER_TURMOIL_SEED`), then the first seed again in a fresh process of this
/// test binary: it must record exactly the same history. Turmoil is deterministic per thread,
/// but tokio keeps process-wide task ids whose order decides how a crashed host's sockets are
/// torn down, so a rerun inside the same process is not the same run; replaying a seed is
/// always a new process (the command printed on failure), and that is what is compared.
#[test]
fn partitions_crashes_and_restarts_stay_linearizable() {
    let seeds: Vec<u64> = match std::env::var("AVER_TURMOIL_SEED") {
        Ok(s) => vec![s.parse().expect("AVER_TURMOIL_SEED is a number")],
        Err(_) => vec![1, 2, 3],
    };
    let first = run(seeds[0]);
    if let Ok(out) = std::env::var("AVER_TURMOIL_HISTORY_OUT") {
        // The rerun's side: hand the history to the parent process and stop.
        std::fs::write(&out, first.join("\n")).expect("write the rerun's history");
        return;
    }
    for &seed in &seeds[1..] {
        run(seed);
    }
    let again = rerun_in_fresh_process(seeds[0]);
    if first != again {
        let k = first.iter().zip(&again).position(|(x, y)| x != y);
        let k = k.unwrap_or(first.len().min(again.len()));
        panic!(
            "seed={}: two runs differ from operation {k}:\n  {}\n  {}",
            seeds[0],
            first.get(k).map_or("(end)", String::as_str),
            again.get(k).map_or("(end)", String::as_str)
        );
    }
}

/// Runs `seed` alone in a new process of this test binary and returns its history.
fn rerun_in_fresh_process(seed: u64) -> Vec<String> {
    let out = std::env::temp_dir().join(format!(
        "aver-turmoil-rerun-{}-{seed}.txt",
        std::process::id()
    ));
    let exe = std::env::current_exe().expect("the test binary's path");
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "partitions_crashes_and_restarts_stay_linearizable",
            "--nocapture",
        ])
        .env("AVER_TURMOIL_SEED", seed.to_string())
        .env("AVER_TURMOIL_HISTORY_OUT", &out)
        .status()
        .expect("start the rerun");
    assert!(status.success(), "seed={seed}: the rerun failed ({status})");
    let text = std::fs::read_to_string(&out).expect("read the rerun's history");
    let _ = std::fs::remove_file(&out);
    text.lines().map(str::to_owned).collect()
}
