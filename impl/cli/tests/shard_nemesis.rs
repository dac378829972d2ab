//! The sharded deployment under a real-process nemesis: a 3-node `aver serve shardctrler`
//! group and three 3-node `aver serve shardkv` groups on loopback, clients in this process
//! running the sharded KV's clerk core and recording every operation, an administrator
//! that keeps joining, leaving and moving shards between groups, and a nemesis that — for
//! `AVER_SHARD_NEMESIS_SECS` seconds (default 15) — kills a random server with SIGKILL and
//! restarts it from its disk. Then (lab 5B's `TestConcurrent3`/`TestUnreliable3` with crashes,
//! and SHARD-2 of specs/invariants.md):
//!
//! * the history is **linearizable** (`aver-checker`, the `kv` model; `Unknown` fails);
//! * **no acknowledged write is lost**: every acknowledged append to the append-only key is
//!   in its final value exactly once, in real-time order — across every shard move.
//!
//! CI runs the short version; the long one (see the README):
//! `AVER_SHARD_NEMESIS_SECS=300 cargo test --release -p aver --test shard_nemesis -- --nocapture`.
//! The fault and administration schedule is seeded (`AVER_SHARD_NEMESIS_SEED`, default 1);
//! process timing is not, so a failing run is reproduced by its seed only up to scheduling.

#[path = "../../runtime/tests/common/history.rs"]
mod history;

use aver_checker::Operation;
use aver_checker::models::{KvInput, KvOutput as Out};
use aver_core::contract::NodeId;
use aver_core::kvraft::AppendOp as KvOp;
use aver_core::shardctrler::{CtrlOp, CtrlReply, Gid, ShardId};
use aver_core::shardkv::{Op, OpReply};
use aver_runtime::client::Outcome;
use aver_runtime::net::TokioNet;
use aver_runtime::shard_client::{ShardClient, ShardClientOptions};
use aver_runtime::wire::ClusterId;
use history::{LOG_KEY, to_checker};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLUSTER: ClusterId = ClusterId(0x5348_4e45);
const GROUPS: u32 = 3;
const PER_GROUP: u32 = 3;
const CLIENTS: u64 = 3;
/// Keys with different first bytes, so that they fall in different shards.
const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every server: `(group, id)` (group 0: the controller).
fn layout() -> Vec<(u32, u32)> {
    let mut ids: Vec<(u32, u32)> = (1..=3).map(|i| (0, i)).collect();
    for g in 1..=GROUPS {
        ids.extend((1..=PER_GROUP).map(|i| (g, g * 100 + i)));
    }
    ids
}

struct Servers {
    dir: PathBuf,
    layout: Vec<(u32, u32)>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    children: Vec<Option<Child>>,
}

fn list(m: impl Iterator<Item = (NodeId, SocketAddr)>) -> String {
    let v: Vec<String> = m.map(|(i, a)| format!("{}={a}", i.0)).collect();
    v.join(",")
}

impl Servers {
    fn new(dir: &Path) -> Servers {
        let layout = layout();
        let ls: Vec<_> = layout
            .iter()
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs = layout
            .iter()
            .zip(&ls)
            .map(|((_, id), l)| (NodeId(*id), l.local_addr().unwrap()))
            .collect();
        let children = layout.iter().map(|_| None).collect();
        Servers {
            dir: dir.to_path_buf(),
            layout,
            addrs,
            children,
        }
    }

    fn group(&self, g: u32) -> impl Iterator<Item = (NodeId, SocketAddr)> + '_ {
        let ids = self.layout.iter().filter(move |(h, _)| *h == g);
        ids.map(|(_, id)| (NodeId(*id), self.addrs[&NodeId(*id)]))
    }

    fn args(&self, k: usize) -> Vec<String> {
        let (g, id) = self.layout[k];
        let ctrl = list(self.group(0));
        let mut a: Vec<String> = if g == 0 {
            vec!["serve".into(), "shardctrler".into(), "--peers".into(), ctrl]
        } else {
            let others = (1..=GROUPS).filter(|h| *h != g).flat_map(|h| self.group(h));
            let others = list(others.collect::<Vec<_>>().into_iter());
            let mut a: Vec<String> = vec!["serve".into(), "shardkv".into()];
            a.extend([
                "--group".into(),
                g.to_string(),
                "--peers".into(),
                list(self.group(g)),
            ]);
            a.extend(["--ctrl".into(), ctrl, "--nodes".into(), others]);
            a
        };
        a.extend([
            "--id".into(),
            id.to_string(),
            "--seed".into(),
            id.to_string(),
        ]);
        a.extend(["--cluster-id".into(), CLUSTER.to_string()]);
        a.extend(["--snapshot-bytes".into(), "20000".into()]);
        a
    }

    fn spawn(&mut self, k: usize) {
        let data = self.dir.join(format!("n{}", self.layout[k].1));
        std::fs::create_dir_all(&data).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.join("node.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_aver"))
            .args(self.args(k))
            .arg("--data")
            .arg(&data)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start aver serve");
        self.children[k] = Some(child);
    }

    fn kill(&mut self, k: usize) {
        if let Some(mut c) = self.children[k].take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn client_options(&self, seed: u64) -> ShardClientOptions {
        let ctrl = self.group(0).map(|(id, _)| id).collect();
        let mut o = ShardClientOptions::new(CLUSTER, ctrl, self.addrs.clone());
        o.op_timeout = Duration::from_secs(4);
        o.seed = seed;
        o
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for k in 0..self.children.len() {
            self.kill(k);
        }
    }
}

type History = Arc<Mutex<Vec<Operation<KvInput, Out>>>>;

struct Run {
    start: Instant,
    history: History,
    acked: AtomicU64,
    unknown: AtomicU64,
}

impl Run {
    fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn record(&self, client: u64, op: &KvOp, call: u64, outcome: Outcome<OpReply>) -> bool {
        let ret = self.now();
        let (output, ret) = match outcome {
            Outcome::Ok(OpReply::Value(v)) => (Some(Out::Value(v)), Some(ret)),
            Outcome::Ok(OpReply::NoKey) => (Some(Out::Value(String::new())), Some(ret)),
            Outcome::Ok(_) => (Some(Out::Done), Some(ret)),
            Outcome::Unknown(_) => (None, None),
        };
        let counter = if ret.is_some() {
            &self.acked
        } else {
            &self.unknown
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let input = to_checker(op);
        let o = Operation {
            client,
            input,
            call,
            output,
            ret,
        };
        self.history.lock().unwrap().push(o);
        ret.is_some()
    }
}

fn shard_op(op: &KvOp) -> Op {
    match op {
        KvOp::Get { key } => Op::Get(key.to_string()),
        KvOp::Put { key, value } => Op::Put(key.to_string(), value.to_string()),
        KvOp::Append { key, value } => Op::Append(key.to_string(), value.to_string()),
    }
}

async fn client(c: u64, run: Arc<Run>, opts: ShardClientOptions, until: Instant) {
    let mut client = ShardClient::new(TokioNet, opts);
    let mut rng = ChaCha8Rng::seed_from_u64(c);
    let mut id = c * 100_000;
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let key = KEYS[rng.random_range(0..KEYS.len())];
        let value = format!("[{c}.{n}]");
        let op = match rng.random_range(0..4) {
            0 => KvOp::Get { key: key.into() },
            1 => KvOp::Put {
                key: key.into(),
                value: value.into(),
            },
            2 => KvOp::Append {
                key: key.into(),
                value: value.into(),
            },
            _ => KvOp::Append {
                key: LOG_KEY.into(),
                value: value.into(),
            },
        };
        let call = run.now();
        let outcome = client.call(shard_op(&op)).await;
        if !run.record(id, &op, call, outcome) {
            id += 1; // that operation stays open forever: continue as a new history client
        }
    }
}

#[derive(Default, Debug)]
struct Faults {
    kills: u32,
    admin: u32,
    refused: u32,
}

/// The administrator's next change: join a group that is out, leave one (never the last),
/// or move a shard to a member.
fn next_change(rng: &mut ChaCha8Rng, members: &BTreeSet<u32>) -> CtrlOp {
    let out: Vec<u32> = (1..=GROUPS).filter(|g| !members.contains(g)).collect();
    let inside: Vec<u32> = members.iter().copied().collect();
    let pick = if inside.is_empty() {
        0
    } else {
        rng.random_range(0..3)
    };
    match pick {
        0 if !out.is_empty() => {
            let g = out[rng.random_range(0..out.len())];
            let servers = (1..=PER_GROUP).map(|i| NodeId(g * 100 + i)).collect();
            CtrlOp::Join(BTreeMap::from([(Gid(g), servers)]))
        }
        1 if inside.len() > 1 => {
            let g = inside[rng.random_range(0..inside.len())];
            CtrlOp::Leave(BTreeSet::from([Gid(g)]))
        }
        _ => CtrlOp::Move {
            shard: ShardId(rng.random_range(0..10)),
            gid: Gid(inside[rng.random_range(0..inside.len())]),
        },
    }
}

fn apply_change(members: &mut BTreeSet<u32>, op: &CtrlOp) {
    match op {
        CtrlOp::Join(g) => members.extend(g.keys().map(|g| g.0)),
        CtrlOp::Leave(g) => g.iter().for_each(|g| {
            members.remove(&g.0);
        }),
        _ => {}
    }
}

async fn nemesis(servers: &Mutex<Servers>, seed: u64, secs: u64) -> Faults {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut admin = ShardClient::new(TokioNet, {
        let mut o = servers.lock().unwrap().client_options(seed << 20);
        o.op_timeout = Duration::from_secs(6);
        o
    });
    let mut faults = Faults::default();
    let mut members = BTreeSet::from([1]);
    let end = Instant::now() + Duration::from_secs(secs);
    let n = servers.lock().unwrap().layout.len();
    while Instant::now() < end {
        if rng.random_bool(0.5) {
            let victim = rng.random_range(0..n);
            servers.lock().unwrap().kill(victim);
            faults.kills += 1;
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
            servers.lock().unwrap().spawn(victim);
        } else {
            let op = next_change(&mut rng, &members);
            match admin.admin(op.clone()).await {
                Outcome::Ok(CtrlReply::Done(_)) => {
                    apply_change(&mut members, &op);
                    faults.admin += 1;
                }
                Outcome::Ok(_) => faults.refused += 1,
                // It may or may not have taken effect: ask which groups are members now.
                Outcome::Unknown(_) => members = current_members(&mut admin, seed).await,
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..800))).await;
    }
    faults
}

/// The member groups of the latest configuration.
async fn current_members(admin: &mut ShardClient, seed: u64) -> BTreeSet<u32> {
    for _ in 0..20 {
        if let Some(c) = admin.query(None, Duration::from_secs(2)).await {
            return c.groups.keys().map(|g| g.0).collect();
        }
    }
    panic!("seed={seed}: no controller server answered a query for 40 s");
}

async fn final_reads(run: &Run, opts: ShardClientOptions) -> BTreeMap<String, String> {
    let mut client = ShardClient::new(TokioNet, opts);
    let mut finals = BTreeMap::new();
    for key in KEYS.iter().copied().chain([LOG_KEY]) {
        let op = KvOp::Get { key: key.into() };
        let call = run.now();
        let outcome = client.call(shard_op(&op)).await;
        let value = match &outcome {
            Outcome::Ok(OpReply::Value(v)) => v.clone(),
            Outcome::Ok(OpReply::NoKey) => String::new(),
            other => panic!("final read of {key} failed after the faults: {other:?}"),
        };
        run.record(1, &op, call, outcome);
        finals.insert(key.to_string(), value);
    }
    finals
}

/// Lab 5B's concurrent and unreliable tests with crashes, on real processes (see the module
/// docs); checks SHARD-2 and linearizability.
#[test]
fn shard_nemesis_kill_join_leave_move() {
    let secs = env_u64("AVER_SHARD_NEMESIS_SECS", 15);
    let seed = env_u64("AVER_SHARD_NEMESIS_SEED", 1);
    let dir = std::env::temp_dir().join(format!("aver-shard-nemesis-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut servers = Servers::new(&dir);
    for k in 0..servers.layout.len() {
        servers.spawn(k);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = Arc::new(Run {
        start: Instant::now(),
        history: Arc::default(),
        acked: AtomicU64::new(0),
        unknown: AtomicU64::new(0),
    });
    let (faults, finals) = rt.block_on(async {
        let mut admin = ShardClient::new(TokioNet, servers.client_options(7 << 40));
        let join = CtrlOp::Join(BTreeMap::from([(
            Gid(1),
            (1..=PER_GROUP).map(|i| NodeId(100 + i)).collect(),
        )]));
        // The first join, retried until the controller lists group 1 (a retry in a new
        // session may find it joined by the first attempt).
        for _ in 0..10 {
            let _ = admin.admin(join.clone()).await;
            if current_members(&mut admin, seed).await.contains(&1) {
                break;
            }
        }
        let servers = Mutex::new(servers);
        let until = Instant::now() + Duration::from_secs(secs + 1);
        let clients: Vec<_> = (1..=CLIENTS)
            .map(|c| {
                let opts = servers.lock().unwrap().client_options(c);
                tokio::spawn(client(c, run.clone(), opts, until))
            })
            .collect();
        let faults = nemesis(&servers, seed, secs).await;
        for c in clients {
            c.await.unwrap();
        }
        let mut opts = servers.lock().unwrap().client_options(9 << 40);
        opts.op_timeout = Duration::from_secs(30);
        let finals = final_reads(&run, opts).await;
        drop(servers);
        (faults, finals)
    });
    let history = run.history.lock().unwrap().clone();
    println!(
        "shard nemesis seed={seed} {secs}s: {} operations ({} acknowledged, {} unknown); \
         {} kills, {} configuration changes ({} refused)",
        history.len(),
        run.acked.load(Ordering::Relaxed),
        run.unknown.load(Ordering::Relaxed),
        faults.kills,
        faults.admin,
        faults.refused
    );
    assert!(
        run.acked.load(Ordering::Relaxed) > 20,
        "seed={seed}: too few operations completed to check anything (data in {})",
        dir.display()
    );
    let name = format!("aver-shard-nemesis-seed{seed}");
    let verdict = history::check(&name, &history, &finals[LOG_KEY])
        .unwrap_or_else(|e| panic!("seed={seed}: {e} (data in {})", dir.display()));
    println!("checker: {verdict}");
    let _ = std::fs::remove_dir_all(&dir);
}
