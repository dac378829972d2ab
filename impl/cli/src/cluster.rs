//! `aver cluster up|down|status`: a local cluster of real `aver serve kv` processes.
//!
//! `up --groups G` starts a sharded deployment instead: a controller group (`aver serve
//! shardctrler`, node ids 1..) and G shard groups (`aver serve shardkv`, group g's nodes
//! numbered g·100 + 1, …), all sharing one cluster id, and joins every group to the
//! controller (unless `--no-join`); `aver kv` then routes each key through the controller's
//! configuration, and `aver shard join|leave|move|query` administers it.
//!
//! `up` starts N nodes on loopback with their data under `./data/n<id>` (logs in
//! `./data/n<id>/node.log`), writes `./data/cluster.json` (cluster id, addresses, process
//! ids) so that `aver kv`, `aver cluster status` and `aver bench kv` find the cluster with no
//! flags, prints where each node listens, and waits: Ctrl-C (or `aver cluster down` from
//! another terminal) stops every node cleanly. `--detach` returns at once instead. Running
//! `up` again on the same data directory restarts the same cluster (same id and addresses)
//! from its disks.

use crate::serve::{cluster_id, init_logging, parse_members};
use aver_core::contract::NodeId;
use aver_runtime::net::TokioNet;
use aver_runtime::shard_client::{ShardClient, ShardClientOptions};
use aver_runtime::wire::{ClusterId, NodeStatus};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Arguments of `aver cluster`.
#[derive(Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    what: ClusterCmd,
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Start a local cluster of real processes.
    Up(UpArgs),
    /// Stop the cluster started in this directory.
    Down(DataArg),
    /// Leader, term, commit and applied index, log size per node.
    Status(Target),
}

#[derive(Args)]
struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Data directory (one subdirectory per node).
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// First port (nodes listen on consecutive ports); 0: any free ports.
    #[arg(long, default_value_t = 0)]
    base_port: u16,
    /// Nodes write input traces (for `aver replay DATA`).
    #[arg(long)]
    trace: bool,
    /// Return once the nodes are up instead of waiting for Ctrl-C.
    #[arg(long)]
    detach: bool,
    /// A sharded deployment: this many shard groups, plus a controller group.
    #[arg(long, default_value_t = 0)]
    groups: u32,
    /// Nodes per shard group (sharded deployments).
    #[arg(long, default_value_t = 3)]
    group_size: u32,
    /// Nodes of the controller group (sharded deployments).
    #[arg(long, default_value_t = 3)]
    ctrl_size: u32,
    /// Number of shards (sharded deployments).
    #[arg(long, default_value_t = aver_core::shardctrler::SHARDS_DEFAULT)]
    shards: usize,
    /// Do not join the shard groups to the controller after starting them.
    #[arg(long)]
    no_join: bool,
    /// Extra arguments for every `aver serve` (e.g. `--snapshot-bytes 1000000`).
    #[arg(last = true)]
    serve_args: Vec<String>,
}

#[derive(Args)]
struct DataArg {
    /// Data directory of the cluster.
    #[arg(long, default_value = "data")]
    data: PathBuf,
}

/// Where a command finds the cluster: `--cluster ADDRS`, or `DATA/cluster.json`.
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// Members: `1=127.0.0.1:7401,2=...` (default: the cluster of `--data`).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Cluster id (hex) for `--cluster` (default: derived from the addresses).
    #[arg(long)]
    pub cluster_id: Option<String>,
    /// Data directory of a cluster started with `aver cluster up`.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
}

/// `DATA/cluster.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterFile {
    /// Cluster id, hex.
    pub cluster: String,
    /// The nodes.
    pub nodes: Vec<NodeEntry>,
    /// Process id of the `aver cluster up` that supervises them (if it waits).
    pub supervisor: Option<u32>,
    /// Number of shards, for a sharded deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<usize>,
}

/// One node of a [`ClusterFile`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Node id.
    pub id: u32,
    /// Address (peers and clients).
    pub addr: SocketAddr,
    /// Data directory.
    pub dir: PathBuf,
    /// Process id while running.
    pub pid: Option<u32>,
    /// In a sharded deployment: 0 for a controller server, else its shard group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
}

impl ClusterFile {
    fn path(data: &Path) -> PathBuf {
        data.join("cluster.json")
    }

    /// Reads `DATA/cluster.json`.
    pub fn load(data: &Path) -> anyhow::Result<ClusterFile> {
        let path = Self::path(data);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (start a cluster with `aver cluster up`, or pass --cluster ADDRS)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    fn save(&self, data: &Path) -> anyhow::Result<()> {
        let tmp = data.join("cluster.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)?;
        std::fs::rename(&tmp, Self::path(data))?;
        Ok(())
    }

    /// The members.
    pub fn members(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.nodes.iter().map(|n| (NodeId(n.id), n.addr)).collect()
    }

    /// The nodes of group `g` (0: the controller) of a sharded deployment.
    pub fn group(&self, g: u32) -> BTreeMap<NodeId, SocketAddr> {
        let of = self.nodes.iter().filter(|n| n.group == Some(g));
        of.map(|n| (NodeId(n.id), n.addr)).collect()
    }

    /// The shard groups of a sharded deployment, in order.
    pub fn groups(&self) -> Vec<u32> {
        let mut g: Vec<u32> = self
            .nodes
            .iter()
            .filter_map(|n| n.group)
            .filter(|g| *g > 0)
            .collect();
        g.dedup();
        g
    }

    /// How a sharded client reaches this deployment (`None` for a plain KV cluster).
    pub fn shard_client(&self) -> anyhow::Result<Option<ShardClientOptions>> {
        if self.shards.is_none() {
            return Ok(None);
        }
        let cluster = self
            .cluster
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?;
        let ctrl = self.group(0).into_keys().collect();
        Ok(Some(ShardClientOptions::new(cluster, ctrl, self.members())))
    }
}

impl Target {
    /// The cluster's id and members.
    pub fn resolve(&self) -> anyhow::Result<(ClusterId, BTreeMap<NodeId, SocketAddr>)> {
        match &self.cluster {
            Some(text) => {
                let members = parse_members(text)?;
                Ok((cluster_id(self.cluster_id.as_deref(), &members)?, members))
            }
            None => {
                let file = ClusterFile::load(&self.data)?;
                let id = file
                    .cluster
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!(e))?;
                Ok((id, file.members()))
            }
        }
    }
}

/// Runs `aver cluster`.
pub fn run(args: ClusterArgs) -> anyhow::Result<u8> {
    match args.what {
        ClusterCmd::Up(a) => up(a),
        ClusterCmd::Down(a) => down(&a.data),
        ClusterCmd::Status(t) => status(&t),
    }
}

fn free_addrs(n: u32, base: u16) -> anyhow::Result<Vec<SocketAddr>> {
    if base != 0 {
        return Ok((0..n)
            .map(|k| SocketAddr::from(([127, 0, 0, 1], base + k as u16)))
            .collect());
    }
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<_, _>>()?)
}

fn random_cluster_id() -> ClusterId {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let nanos = t.map_or(0, |d| d.as_nanos() as u64);
    ClusterId(nanos.rotate_left(17) ^ (std::process::id() as u64) << 32)
}

/// The plan for `up`: reuse an existing cluster file (restart) or make a new one.
fn plan(a: &UpArgs) -> anyhow::Result<ClusterFile> {
    if let Ok(file) = ClusterFile::load(&a.data) {
        if let Some(n) = file.nodes.iter().find(|n| n.pid.is_some_and(alive)) {
            anyhow::bail!(
                "node {} of the cluster in {} is still running (pid {}); `aver cluster down` first",
                n.id,
                a.data.display(),
                n.pid.unwrap_or(0)
            );
        }
        return Ok(file);
    }
    if a.groups > 0 {
        if a.trace {
            anyhow::bail!("--trace: traces and `aver replay` are for the KV service only");
        }
        return plan_sharded(a);
    }
    if a.nodes == 0 {
        anyhow::bail!("--nodes must be at least 1");
    }
    let addrs = free_addrs(a.nodes, a.base_port)?;
    let nodes = (1..=a.nodes)
        .zip(addrs)
        .map(|(id, addr)| NodeEntry {
            id,
            addr,
            dir: a.data.join(format!("n{id}")),
            pid: None,
            group: None,
        })
        .collect();
    Ok(ClusterFile {
        cluster: random_cluster_id().to_string(),
        nodes,
        supervisor: None,
        shards: None,
    })
}

/// A controller group (ids 1..) and `--groups` shard groups (group g: ids g·100 + 1, …).
fn plan_sharded(a: &UpArgs) -> anyhow::Result<ClusterFile> {
    if a.group_size == 0 || a.ctrl_size == 0 || a.group_size > 99 || a.groups > 40 {
        anyhow::bail!("--group-size and --ctrl-size must be 1..=99, --groups at most 40");
    }
    let mut ids: Vec<(u32, u32)> = (1..=a.ctrl_size).map(|i| (0, i)).collect();
    for g in 1..=a.groups {
        ids.extend((1..=a.group_size).map(|i| (g, g * 100 + i)));
    }
    let addrs = free_addrs(ids.len() as u32, a.base_port)?;
    let nodes = ids
        .into_iter()
        .zip(addrs)
        .map(|((g, id), addr)| NodeEntry {
            id,
            addr,
            dir: a.data.join(if g == 0 {
                format!("c{id}")
            } else {
                format!("g{g}n{id}")
            }),
            pid: None,
            group: Some(g),
        })
        .collect();
    Ok(ClusterFile {
        cluster: random_cluster_id().to_string(),
        nodes,
        supervisor: None,
        shards: Some(a.shards),
    })
}

fn list(members: &BTreeMap<NodeId, SocketAddr>) -> String {
    let v: Vec<String> = members
        .iter()
        .map(|(i, a)| format!("{}={a}", i.0))
        .collect();
    v.join(",")
}

/// The `aver serve` arguments of `node`.
fn serve_args(file: &ClusterFile, node: &NodeEntry) -> Vec<String> {
    let id = node.id.to_string();
    let Some(g) = node.group else {
        let peers = list(&file.members());
        return ["serve", "kv", "--id", &id, "--peers", &peers]
            .map(String::from)
            .to_vec();
    };
    let shards = file
        .shards
        .unwrap_or(aver_core::shardctrler::SHARDS_DEFAULT)
        .to_string();
    let ctrl = list(&file.group(0));
    if g == 0 {
        let args = [
            "serve",
            "shardctrler",
            "--id",
            &id,
            "--peers",
            &ctrl,
            "--shards",
            &shards,
        ];
        return args.map(String::from).to_vec();
    }
    let others: BTreeMap<NodeId, SocketAddr> = file
        .nodes
        .iter()
        .filter(|n| n.group.is_some_and(|h| h > 0 && h != g))
        .map(|n| (NodeId(n.id), n.addr))
        .collect();
    let (group, peers, nodes) = (g.to_string(), list(&file.group(g)), list(&others));
    let mut args: Vec<String> = ["serve", "shardkv", "--group", &group, "--id", &id]
        .map(String::from)
        .to_vec();
    for (k, v) in [("--peers", peers), ("--ctrl", ctrl), ("--shards", shards)] {
        args.extend([k.to_string(), v]);
    }
    if !nodes.is_empty() {
        args.extend(["--nodes".to_string(), nodes]);
    }
    args
}

fn spawn_node(file: &ClusterFile, node: &NodeEntry, a: &UpArgs) -> anyhow::Result<Child> {
    std::fs::create_dir_all(&node.dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(node.dir.join("node.log"))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(serve_args(file, node))
        .arg("--data")
        .arg(&node.dir)
        .args(["--cluster-id", &file.cluster]);
    if a.trace {
        cmd.arg("--trace");
    }
    cmd.args(&a.serve_args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if a.detach {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    Ok(cmd.spawn()?)
}

fn up(a: UpArgs) -> anyhow::Result<u8> {
    init_logging();
    std::fs::create_dir_all(&a.data)?;
    let mut file = plan(&a)?;
    let mut children = Vec::new();
    for k in 0..file.nodes.len() {
        let child = spawn_node(&file, &file.nodes[k], &a)?;
        file.nodes[k].pid = Some(child.id());
        children.push(child);
    }
    file.supervisor = (!a.detach).then(std::process::id);
    file.save(&a.data)?;
    println!(
        "cluster {} ({} nodes, data in {})",
        file.cluster,
        file.nodes.len(),
        a.data.display()
    );
    for n in &file.nodes {
        let log = n.dir.join("node.log");
        println!(
            "  node {} listens on {}  pid {}  log {}",
            n.id,
            n.addr,
            n.pid.unwrap_or(0),
            log.display()
        );
    }
    let (cluster, members) = Target {
        cluster: None,
        cluster_id: None,
        data: a.data.clone(),
    }
    .resolve()?;
    if file.shards.is_some() {
        start_sharded(&file, a.no_join)?;
    } else {
        match wait_for_leader(cluster, &members) {
            Some(l) => println!("leader: node {}", l.0),
            None => println!("no leader yet (see the node logs)"),
        }
    }
    println!("try:   aver kv put greeting hello && aver kv get greeting");
    if a.detach {
        println!("stop:  aver cluster down");
        return Ok(0);
    }
    println!("stop:  Ctrl-C here, or `aver cluster down` from another terminal");
    supervise(children, &mut file, &a.data)
}

/// Waits for a leader in every group of a sharded deployment, then joins the shard groups
/// the controller does not know yet.
fn start_sharded(file: &ClusterFile, no_join: bool) -> anyhow::Result<()> {
    let cluster: ClusterId = file
        .cluster
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    for g in std::iter::once(0).chain(file.groups()) {
        let name = if g == 0 {
            "controller".to_string()
        } else {
            format!("group {g}")
        };
        match wait_for_leader(cluster, &file.group(g)) {
            Some(l) => println!("{name}: leader node {}", l.0),
            None => println!("{name}: no leader yet (see the node logs)"),
        }
    }
    if no_join {
        println!("groups not joined (--no-join): aver shard join G");
        return Ok(());
    }
    let opts = file.shard_client()?.expect("a sharded deployment");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut client = ShardClient::new(TokioNet, opts);
        let latest = client.query(None, Duration::from_secs(2)).await;
        let known = latest.map(|c| c.groups).unwrap_or_default();
        let mut join = BTreeMap::new();
        for g in file.groups() {
            let gid = aver_core::shardctrler::Gid(g);
            if !known.contains_key(&gid) {
                join.insert(gid, file.group(g).into_keys().collect());
            }
        }
        if join.is_empty() {
            return;
        }
        let joined: Vec<u32> = join.keys().map(|g| g.0).collect();
        let op = aver_core::shardctrler::CtrlOp::Join(join);
        match client.admin(op).await {
            aver_runtime::client::Outcome::Ok(r) => println!("joined groups {joined:?}: {r:?}"),
            aver_runtime::client::Outcome::Unknown(e) => println!("join: outcome unknown: {e}"),
        }
    });
    Ok(())
}

fn wait_for_leader(cluster: ClusterId, members: &BTreeMap<NodeId, SocketAddr>) -> Option<NodeId> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            for s in statuses(cluster, members).await.into_iter().flatten() {
                if s.role == "leader" {
                    return Some(s.id);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    })
}

/// Waits for Ctrl-C/SIGTERM (then stops every node) or for the nodes to exit.
fn supervise(mut children: Vec<Child>, file: &mut ClusterFile, data: &Path) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut code = 0;
    rt.block_on(async {
        let signal = crate::serve::wait_for_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                _ = &mut signal => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let mut running = 0;
            for (k, c) in children.iter_mut().enumerate() {
                match c.try_wait() {
                    Ok(None) => running += 1,
                    Ok(Some(status)) if file.nodes[k].pid.is_some() => {
                        println!("node {} exited: {status} (see its log)", file.nodes[k].id);
                        file.nodes[k].pid = None;
                        code = 1;
                    }
                    _ => {}
                }
            }
            if running == 0 {
                return;
            }
        }
    });
    println!("stopping {} nodes", children.len());
    stop_children(&mut children);
    for n in &mut file.nodes {
        n.pid = None;
    }
    file.supervisor = None;
    file.save(data)?;
    println!("stopped");
    Ok(code)
}

fn stop_children(children: &mut [Child]) {
    for c in children.iter() {
        signal(c.id(), libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in children.iter_mut() {
        while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(c.try_wait(), Ok(None)) {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

/// True if `pid` is a live `aver` process (checked by its command line, so a recycled pid is
/// never signalled).
pub fn alive(pid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => {
            let text = String::from_utf8_lossy(&cmd);
            text.contains("aver")
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.split(' ').nth(2) == Some("Z"))
        }
        Err(_) => false,
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we started (or checked with `alive`); no memory is passed.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

fn down(data: &Path) -> anyhow::Result<u8> {
    let mut file = ClusterFile::load(data)?;
    let mut targets: Vec<u32> = Vec::new();
    if let Some(s) = file.supervisor.filter(|&p| alive(p)) {
        targets.push(s);
    } else {
        targets.extend(
            file.nodes
                .iter()
                .filter_map(|n| n.pid)
                .filter(|&p| alive(p)),
        );
    }
    if targets.is_empty() {
        println!("no node of the cluster in {} is running", data.display());
        return Ok(0);
    }
    for &pid in &targets {
        signal(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let pids: Vec<u32> = file
        .nodes
        .iter()
        .filter_map(|n| n.pid)
        .chain(targets)
        .collect();
    while Instant::now() < deadline && pids.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stuck: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    if !stuck.is_empty() {
        anyhow::bail!("processes {stuck:?} did not stop within 15 s");
    }
    if let Ok(f) = ClusterFile::load(data) {
        file = f;
    }
    for n in &mut file.nodes {
        n.pid = None;
    }
    file.supervisor = None;
    file.save(data)?;
    println!("cluster in {} stopped", data.display());
    Ok(0)
}

/// Every member's status (`None` when it does not answer).
pub async fn statuses(
    cluster: ClusterId,
    members: &BTreeMap<NodeId, SocketAddr>,
) -> Vec<Option<NodeStatus>> {
    let mut opts = aver_runtime::client::ClientOptions::new(cluster, members.clone());
    opts.op_timeout = Duration::from_millis(500);
    let mut out = Vec::new();
    for &id in members.keys() {
        out.push(
            aver_runtime::client::status(&TokioNet, &opts, id)
                .await
                .ok(),
        );
    }
    out
}

fn status(t: &Target) -> anyhow::Result<u8> {
    let (cluster, members) = t.resolve()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let all = rt.block_on(statuses(cluster, &members));
    println!("cluster {cluster}");
    println!(
        "{:>4}  {:<21}  {:<9}  {:>6}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}  {:>10}  {:>8}",
        "node",
        "address",
        "role",
        "term",
        "leader",
        "commit",
        "applied",
        "snapshot",
        "last",
        "log bytes",
        "fsyncs"
    );
    let mut down = 0;
    for ((id, addr), s) in members.iter().zip(&all) {
        match s {
            Some(s) => println!(
                "{:>4}  {:<21}  {:<9}  {:>6}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}  {:>10}  {:>8}",
                id.0,
                addr.to_string(),
                s.role,
                s.term,
                s.leader.map_or("-".to_string(), |l| l.0.to_string()),
                s.commit,
                s.applied,
                s.snapshot_index,
                s.last_index,
                s.log_bytes,
                s.fsyncs
            ),
            None => {
                down += 1;
                println!("{:>4}  {:<21}  down", id.0, addr.to_string());
            }
        }
    }
    let details: Vec<_> = members
        .keys()
        .zip(&all)
        .filter_map(|(id, s)| {
            s.as_ref()
                .filter(|s| !s.detail.is_empty())
                .map(|s| (id, &s.detail))
        })
        .collect();
    for (id, detail) in details {
        println!("{:>4}  {detail}", id.0);
    }
    Ok(if down == members.len() { 1 } else { 0 })
}
