//! Three real nodes on loopback TCP with real files: elections, replication, a restart that
//! recovers from the WAL, and strangers refused at the handshake.

use aver_core::contract::NodeId;
use aver_core::kvraft::{AppendOp as KvOp, AppendReply};
use aver_runtime::client::{Client, ClientOptions, Outcome};
use aver_runtime::net::TokioNet;
use aver_runtime::node::{self, NodeOptions, RunningNode};
use aver_runtime::wire::ClusterId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

fn free_ports(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

fn options(id: u32, members: &BTreeMap<NodeId, SocketAddr>, dir: &Path) -> NodeOptions {
    let data = dir.join(format!("n{id}"));
    let mut o = NodeOptions::new(NodeId(id), ClusterId(0xabc), members.clone(), data.clone());
    o.trace = Some(data.join("trace"));
    o.snapshot_log_bytes = 4096;
    o
}

async fn start(id: u32, members: &BTreeMap<NodeId, SocketAddr>, dir: &Path) -> RunningNode {
    node::start(options(id, members, dir), TokioNet)
        .await
        .unwrap()
}

fn put(k: &str, v: &str) -> KvOp {
    KvOp::Put {
        key: k.into(),
        value: v.into(),
    }
}

fn get(k: &str) -> KvOp {
    KvOp::Get { key: k.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_and_recover_from_disk() {
    let tmp = tempdir();
    let addrs = free_ports(3);
    let members: BTreeMap<NodeId, SocketAddr> = (1..=3)
        .map(|i| (NodeId(i), addrs[i as usize - 1]))
        .collect();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(Some(start(id, &members, tmp.path()).await));
    }
    let opts = ClientOptions::new(ClusterId(0xabc), members.clone());
    let mut client: Client<TokioNet> = Client::new(TokioNet, opts);
    for i in 0..200 {
        let out = client
            .call(put(&format!("k{}", i % 7), &i.to_string()))
            .await;
        assert_eq!(out, Outcome::Ok(AppendReply::Ok), "put {i}");
    }
    assert_eq!(
        client.call(get("k3")).await,
        Outcome::Ok(AppendReply::Value("199".into()))
    );
    // Restart the leader: its successor still has every acknowledged write, and so does the
    // restarted node once it has caught up from its WAL and snapshots.
    let leader = client.leader();
    let idx = leader.0 as usize - 1;
    let old = nodes[idx].take().unwrap();
    old.stop();
    old.wait().await.unwrap();
    assert_eq!(
        client.call(get("k5")).await,
        Outcome::Ok(AppendReply::Value("194".into()))
    );
    nodes[idx] = Some(start(leader.0, &members, tmp.path()).await);
    for i in 200..260 {
        let out = client.call(put("k0", &i.to_string())).await;
        assert_eq!(out, Outcome::Ok(AppendReply::Ok), "put {i}");
    }
    let mut status = Vec::new();
    for id in 1..=3 {
        for _ in 0..100 {
            let s = client.status(NodeId(id)).await.unwrap();
            if s.applied >= 260 {
                status.push(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(status.len(), 3, "every node applies everything: {status:?}");
    assert!(
        status.iter().any(|s| s.snapshot_index > 0),
        "snapshots were taken"
    );
    for n in nodes.into_iter().flatten() {
        n.stop();
        n.wait().await.unwrap();
    }
    // Conformance: every node's trace replays into the core, restarts included.
    let dirs: Vec<_> = (1..=3)
        .map(|i| tmp.path().join(format!("n{i}")).join("trace"))
        .collect();
    let report = aver_runtime::replay::replay_cluster(&dirs).unwrap();
    let restarted = &report.nodes[idx];
    assert_eq!(restarted.incarnations, 2);
    assert_eq!(restarted.restarts_checked, 1);
    assert!(report.elections >= 2, "{report:?}");
    assert!(report.indices_compared >= 260, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_refused_and_malformed_frames_counted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tmp = tempdir();
    let addrs = free_ports(1);
    let members: BTreeMap<NodeId, SocketAddr> = [(NodeId(1), addrs[0])].into();
    let node = start(1, &members, tmp.path()).await;
    // A client of another cluster.
    let mut foreign = ClientOptions::new(ClusterId(0xdef), members.clone());
    foreign.op_timeout = Duration::from_millis(300);
    let mut c: Client<TokioNet> = Client::new(TokioNet, foreign);
    match c.call(get("x")).await {
        Outcome::Unknown(why) => assert!(why.contains("is not this node's cluster"), "{why}"),
        other => panic!("foreign client got {other:?}"),
    }
    // Garbage instead of a hello: the connection closes, the node keeps serving.
    let mut s = tokio::net::TcpStream::connect(addrs[0]).await.unwrap();
    s.write_all(&[0xff; 64]).await.unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink).await;
    let opts = ClientOptions::new(ClusterId(0xabc), members.clone());
    let mut c: Client<TokioNet> = Client::new(TokioNet, opts);
    assert_eq!(c.call(put("a", "1")).await, Outcome::Ok(AppendReply::Ok));
    let st = c.status(NodeId(1)).await.unwrap();
    assert!(st.refused_handshakes >= 1, "{st:?}");
    assert!(st.malformed_frames >= 1, "{st:?}");
    node.stop();
    node.wait().await.unwrap();
}

struct TempDir(std::path::PathBuf);
impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let p = std::env::temp_dir().join(format!(
        "aver-rt-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&p).unwrap();
    TempDir(p)
}
