use aver_models::kv_raft::*;
use stateright::{Checker, Model};
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut cfg = KvRaftCfg::ci();
    if let Some(t) = args.get(1) {
        cfg.max_term = t.parse().unwrap();
    }
    if let Some(r) = args.get(2) {
        cfg.max_log = r.parse().unwrap();
    }
    if let Some(r) = args.get(3) {
        cfg.reads = if r == "log" {
            aver_core::rsm::ReadMode::Log
        } else {
            aver_core::rsm::ReadMode::ReadIndex
        };
    }
    if let Ok(b) = std::env::var("BUG") {
        cfg.bugs = aver_core::kvraft::KvBugs::only(b.parse().unwrap());
        cfg.consequences_only = true;
    }
    if std::env::var("NODUP").is_ok() {
        cfg.duplicating = false;
    }
    if std::env::var("NOHB").is_ok() {
        cfg.heartbeats = false;
    }
    if std::env::var("ONE").is_ok() {
        cfg.scripts = vec![vec![aver_models::kv_common::put("k", "a", 0)]];
    }
    let model = cfg.into_model();
    let t = Instant::now();
    let c = model
        .clone()
        .checker()
        .threads(2)
        .finish_when(stateright::HasDiscoveries::AnyFailures)
        .spawn_dfs();
    let limit: u64 = std::env::var("LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    while !c.is_done() {
        std::thread::sleep(std::time::Duration::from_secs(5));
        eprintln!(
            "  unique={} depth={} t={:.0}",
            c.unique_state_count(),
            c.max_depth(),
            t.elapsed().as_secs_f64()
        );
        if t.elapsed().as_secs() > limit {
            println!("gave up");
            break;
        }
    }
    let c = if c.is_done() {
        c.join()
    } else {
        return;
    };
    println!(
        "unique={} total={} depth={} t={:.1}s",
        c.unique_state_count(),
        c.state_count(),
        c.max_depth(),
        t.elapsed().as_secs_f64()
    );
    for p in model.properties() {
        println!(
            "{:40} {}",
            p.name,
            c.discovery(p.name).map_or("-".to_string(), |d| format!(
                "found len {}",
                d.into_actions().len()
            ))
        );
        if std::env::var("TRACE").is_ok() && p.expectation == stateright::Expectation::Always {
            if let Some(d) = c.discovery(p.name) {
                for l in trace(&d.into_vec()) {
                    println!("{l}");
                }
            }
        }
    }
}
