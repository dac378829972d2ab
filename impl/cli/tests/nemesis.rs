//! The real-process nemesis test: three `aver serve kv` processes on loopback, clients in this
//! process recording every operation, and a nemesis that — for `AVER_NEMESIS_SECS` seconds
//! (default 20) — kills a random node with SIGKILL and restarts it, pauses one with
//! SIGSTOP/SIGCONT, and cuts one node off from the others through fault-injecting TCP proxies
//! that this test starts itself (every link between two nodes goes through one). Then:
//!
//! * the history is **linearizable** (`aver-checker`, the `kv` model; `Unknown` fails);
//! * **no acknowledged write is lost**: every acknowledged append to an append-only key is
//!   in its final value exactly once;
//! * **every node's trace replays** into the Raft core with every invariant (`aver replay`).
//!
//! CI runs the short version; the long one (see the README):
//! `AVER_NEMESIS_SECS=600 cargo test --release -p aver --test nemesis -- --nocapture`.
//! The fault schedule is seeded (`AVER_NEMESIS_SEED`, default 1); process timing is not, so
//! a failing run is reproduced by its seed only up to scheduling.

#[path = "../../runtime/tests/common/history.rs"]
mod history;

use aver_checker::Operation;
use aver_checker::models::{KvInput, KvOutput as Out};
use aver_core::contract::NodeId;
use aver_core::kvraft::{AppendOp as KvOp, AppendReply};
use aver_runtime::client::{Client, ClientOptions, Outcome};
use aver_runtime::net::TokioNet;
use aver_runtime::wire::ClusterId;
use history::{LOG_KEY, to_checker};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const NODES: u32 = 3;
const CLUSTER: ClusterId = ClusterId(0x4e454d45);
const KEYS: u64 = 6;
const CLIENTS: u64 = 4;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let ls: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap()).collect()
}

// ---- the fault-injecting proxy -----------------------------------------------------------

/// One proxied link: connections to `listen` are piped to `target` unless the link is cut;
/// cutting it closes every open connection and refuses new ones until it is healed.
#[derive(Clone)]
struct Proxy {
    cut: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
}

impl Proxy {
    async fn start(listen: SocketAddr, target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        let (generation, _) = watch::channel(0);
        let proxy = Proxy {
            cut: Arc::default(),
            generation,
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                if p.cut.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let mut cut = p.generation.subscribe();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut a, mut b) = (inbound, outbound);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        if cut {
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

// ---- the processes -------------------------------------------------------------------------

struct Nodes {
    dir: PathBuf,
    addrs: Vec<SocketAddr>,
    /// `--peers` of each node (links to higher ids go through proxies).
    peers: Vec<String>,
    children: Vec<Option<Child>>,
}

impl Nodes {
    fn spawn(&mut self, k: usize) {
        let id = k as u32 + 1;
        let data = self.dir.join(format!("n{id}"));
        std::fs::create_dir_all(&data).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.join("node.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_aver"))
            .args([
                "serve",
                "kv",
                "--id",
                &id.to_string(),
                "--peers",
                &self.peers[k],
            ])
            .arg("--data")
            .arg(&data)
            .args(["--cluster-id", &CLUSTER.to_string(), "--trace"])
            .args(["--snapshot-bytes", "30000", "--seed", &id.to_string()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start aver serve");
        self.children[k] = Some(child);
    }

    fn signal(&self, k: usize, sig: i32) {
        if let Some(c) = &self.children[k] {
            // SAFETY: kill(2) on a child this test started and has not reaped.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    fn kill(&mut self, k: usize) {
        self.signal(k, libc::SIGKILL);
        if let Some(mut c) = self.children[k].take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM everyone (after SIGCONT) and wait: a clean stop flushes traces.
    fn stop_all(&mut self) {
        for k in 0..self.children.len() {
            self.signal(k, libc::SIGCONT);
            self.signal(k, libc::SIGTERM);
        }
        for c in self.children.iter_mut().flatten() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.iter_mut().for_each(|c| *c = None);
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for k in 0..self.children.len() {
            self.kill(k);
        }
    }
}

// ---- clients -------------------------------------------------------------------------------

type History = Arc<Mutex<Vec<Operation<KvInput, Out>>>>;

#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    unknown: AtomicU64,
}

struct Run {
    start: Instant,
    history: History,
    tally: Arc<Tally>,
}

fn client_options(addrs: &[SocketAddr]) -> ClientOptions {
    let nodes = addrs
        .iter()
        .enumerate()
        .map(|(k, a)| (NodeId(k as u32 + 1), *a))
        .collect();
    let mut o = ClientOptions::new(CLUSTER, nodes);
    o.retry = Duration::from_millis(500);
    o.op_timeout = Duration::from_secs(3);
    o
}

/// One client until `until`: puts, appends and gets on `KEYS` keys plus appends to `log`.
async fn client(c: u64, run: Arc<Run>, addrs: Vec<SocketAddr>, until: Instant) {
    let mut client: Client<TokioNet> = Client::new(TokioNet, {
        let mut o = client_options(&addrs);
        o.seed = c;
        o
    });
    let mut rng = ChaCha8Rng::seed_from_u64(c);
    let mut id = c * 100_000;
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let key = format!("k{}", rng.random_range(0..KEYS));
        let op = match rng.random_range(0..4) {
            0 => KvOp::Get { key: key.into() },
            1 => KvOp::Put {
                key: key.into(),
                value: format!("<{c}.{n}>").into(),
            },
            2 => KvOp::Append {
                key: key.into(),
                value: format!("[{c}.{n}]").into(),
            },
            _ => KvOp::Append {
                key: "log".into(),
                value: format!("[{c}.{n}]").into(),
            },
        };
        let call = run.start.elapsed().as_nanos() as u64;
        let outcome = client.call(op.clone()).await;
        let ret = run.start.elapsed().as_nanos() as u64;
        let (output, ret) = match outcome {
            Outcome::Ok(AppendReply::Value(v)) => (Some(Out::Value(v.to_string())), Some(ret)),
            Outcome::Ok(AppendReply::Ok) => (Some(Out::Done), Some(ret)),
            Outcome::Unknown(_) => (None, None),
        };
        let tally = if ret.is_some() {
            &run.tally.acked
        } else {
            &run.tally.unknown
        };
        tally.fetch_add(1, Ordering::Relaxed);
        let input = to_checker(&op);
        run.history.lock().unwrap().push(Operation {
            client: id,
            input,
            call,
            output,
            ret,
        });
        if ret.is_none() {
            id += 1; // that operation stays open forever: continue as a new history client
        }
    }
}

// ---- the nemesis ---------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Faults {
    kills: u32,
    pauses: u32,
    partitions: u32,
}

/// Links between nodes: `proxies[(i, j)]` carries i's connections to j (i < j dials).
type Links = BTreeMap<(usize, usize), Proxy>;

fn isolate(links: &Links, victim: Option<usize>) {
    for (&(a, b), p) in links {
        p.set_cut(victim.is_some_and(|v| v == a || v == b));
    }
}

async fn nemesis(nodes: &Mutex<Nodes>, links: &Links, seed: u64, secs: u64) -> Faults {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut faults = Faults::default();
    let end = Instant::now() + Duration::from_secs(secs);
    tokio::time::sleep(Duration::from_secs(1)).await;
    while Instant::now() < end {
        let victim = rng.random_range(0..NODES as usize);
        let hold = Duration::from_millis(rng.random_range(500..2500));
        match rng.random_range(0..3) {
            0 => {
                nodes.lock().unwrap().kill(victim);
                faults.kills += 1;
                tokio::time::sleep(hold).await;
                nodes.lock().unwrap().spawn(victim);
            }
            1 => {
                nodes.lock().unwrap().signal(victim, libc::SIGSTOP);
                faults.pauses += 1;
                tokio::time::sleep(hold).await;
                nodes.lock().unwrap().signal(victim, libc::SIGCONT);
            }
            _ => {
                isolate(links, Some(victim));
                faults.partitions += 1;
                tokio::time::sleep(hold).await;
                isolate(links, None);
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1200))).await;
    }
    faults
}

// ---- the test ------------------------------------------------------------------------------

/// The proxied links: `((a, b), where the proxy listens, node b's address)`.
type LinkPlan = Vec<((usize, usize), SocketAddr, SocketAddr)>;

fn setup(dir: &Path) -> (Nodes, LinkPlan) {
    let n = NODES as usize;
    let addrs = free_addrs(n + n * (n - 1) / 2);
    let (nodes, proxy_addrs) = addrs.split_at(n);
    let mut links = Vec::new();
    let mut peers = Vec::new();
    let mut p = proxy_addrs.iter();
    let mut via = BTreeMap::new();
    for a in 0..n {
        for (b, &target) in nodes.iter().enumerate().skip(a + 1) {
            let proxy = *p.next().unwrap();
            via.insert((a, b), proxy);
            links.push(((a, b), proxy, target));
        }
    }
    for me in 0..n {
        let list: Vec<String> = (0..n)
            .map(|j| {
                let addr = if j > me { via[&(me, j)] } else { nodes[j] };
                format!("{}={addr}", j + 1)
            })
            .collect();
        peers.push(list.join(","));
    }
    let set = Nodes {
        dir: dir.to_path_buf(),
        addrs: nodes.to_vec(),
        peers,
        children: (0..n).map(|_| None).collect(),
    };
    (set, links)
}

async fn final_reads(run: &Run, addrs: &[SocketAddr]) -> BTreeMap<String, String> {
    let mut opts = client_options(addrs);
    opts.op_timeout = Duration::from_secs(30);
    opts.seed = 1 << 40;
    let mut client: Client<TokioNet> = Client::new(TokioNet, opts);
    let mut finals = BTreeMap::new();
    let keys = (0..KEYS)
        .map(|k| format!("k{k}"))
        .chain(["log".to_string()]);
    for key in keys {
        let op = KvOp::Get {
            key: key.as_str().into(),
        };
        let call = run.start.elapsed().as_nanos() as u64;
        match client.call(op.clone()).await {
            Outcome::Ok(AppendReply::Value(v)) => {
                let ret = Some(run.start.elapsed().as_nanos() as u64);
                let input = to_checker(&op);
                let v = v.to_string();
                let output = Some(Out::Value(v.clone()));
                run.history.lock().unwrap().push(Operation {
                    client: 1,
                    input,
                    call,
                    output,
                    ret,
                });
                finals.insert(key, v);
            }
            other => panic!("final read of {key} failed after healing: {other:?}"),
        }
    }
    finals
}

#[test]
fn nemesis_kill_pause_partition() {
    let secs = env_u64("AVER_NEMESIS_SECS", 20);
    let seed = env_u64("AVER_NEMESIS_SEED", 1);
    let dir = std::env::temp_dir().join(format!("aver-nemesis-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut nodes, link_plan) = setup(&dir);
    let addrs = nodes.addrs.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = Arc::new(Run {
        start: Instant::now(),
        history: Arc::default(),
        tally: Arc::default(),
    });
    let (faults, finals) = rt.block_on(async {
        let mut links = Links::new();
        for (pair, listen, target) in link_plan {
            links.insert(pair, Proxy::start(listen, target).await);
        }
        for k in 0..NODES as usize {
            nodes.spawn(k);
        }
        let nodes = Mutex::new(nodes);
        let until = Instant::now() + Duration::from_secs(secs + 1);
        let clients: Vec<_> = (1..=CLIENTS)
            .map(|c| tokio::spawn(client(c, run.clone(), addrs.clone(), until)))
            .collect();
        let faults = nemesis(&nodes, &links, seed, secs).await;
        for c in clients {
            c.await.unwrap();
        }
        isolate(&links, None);
        let finals = final_reads(&run, &addrs).await;
        nodes.into_inner().unwrap().stop_all();
        (faults, finals)
    });
    let history = run.history.lock().unwrap().clone();
    let t = &run.tally;
    println!(
        "nemesis seed={seed} {secs}s: {} operations ({} acknowledged, {} unknown); faults: {} \
         kills, {} pauses, {} partitions",
        history.len(),
        t.acked.load(Ordering::Relaxed),
        t.unknown.load(Ordering::Relaxed),
        faults.kills,
        faults.pauses,
        faults.partitions
    );
    // The clerks' history in the checker's JSON Lines format, for `aver lin`.
    let recorded = std::env::temp_dir().join(format!("aver-nemesis-seed{seed}.jsonl"));
    history::write_jsonl(&recorded, &history);
    println!(
        "history: {} (check with `aver lin {}`)",
        recorded.display(),
        recorded.display()
    );
    let verdict = history::check(
        &format!("aver-nemesis-seed{seed}"),
        &history,
        &finals[LOG_KEY],
    )
    .unwrap_or_else(|e| panic!("seed={seed}: {e} (data in {})", dir.display()));
    println!("checker: {verdict}");
    let dirs: Vec<PathBuf> = (1..=NODES)
        .map(|i| dir.join(format!("n{i}")).join("trace"))
        .collect();
    let report = aver_runtime::replay::replay_cluster(&dirs).unwrap_or_else(|e| {
        panic!(
            "seed={seed}: traces do not replay: {e} (data in {})",
            dir.display()
        )
    });
    let incarnations: usize = report.nodes.iter().map(|n| n.incarnations).sum();
    let inputs: u64 = report.nodes.iter().map(|n| n.inputs).sum();
    println!(
        "replay: {incarnations} incarnations, {inputs} inputs, {} elections, {} indices compared: ok",
        report.elections, report.indices_compared
    );
    assert!(
        t.acked.load(Ordering::Relaxed) >= 100,
        "too few operations acknowledged"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
