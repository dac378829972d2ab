use aver_models::{kv_dedup, kv_raft, walk};
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args[1].as_str();
    let bug: aver_core::kvraft::KvBug = args[2].parse().unwrap();
    let runs: u64 = args.get(3).map_or(100000, |s| s.parse().unwrap());
    let steps: usize = args.get(4).map_or(80, |s| s.parse().unwrap());
    let t = Instant::now();
    match which {
        "dedup" => {
            let mut cfg = kv_dedup::KvDedupCfg::ci();
            cfg.scripts = aver_models::kv_common::default_scripts();
            cfg.max_term = 3;
            cfg.max_log = 5;
            cfg.max_restarts = 2;
            cfg.bugs = aver_core::kvraft::KvBugs::only(bug);
            cfg.consequences_only = true;
            let m = cfg.into_model();
            let w = walk::random_walks(&m, runs, steps, 0x9E37_79B9_7F4A_7C15);
            println!(
                "runs={} states={} t={:.2}s",
                w.runs,
                w.states,
                t.elapsed().as_secs_f64()
            );
            if let Some((name, p)) = w.violation() {
                println!("{name} violated, {} steps", p.len() - 1);
                for l in kv_dedup::trace(p) {
                    println!("{l}");
                }
            }
        }
        _ => {
            let mut cfg = if which == "raft-ci" {
                let mut c = kv_raft::KvRaftCfg::ci();
                c.partitions = true;
                c.max_log = 4;
                c
            } else {
                kv_raft::KvRaftCfg::deep()
            };
            cfg.bugs = aver_core::kvraft::KvBugs::only(bug);
            cfg.consequences_only = true;
            let m = cfg.into_model();
            let w = walk::random_walks(&m, runs, steps, 0x9E37_79B9_7F4A_7C15);
            println!(
                "runs={} states={} t={:.2}s",
                w.runs,
                w.states,
                t.elapsed().as_secs_f64()
            );
            if let Some((name, p)) = w.violation() {
                println!("{name} violated, {} steps", p.len() - 1);
                for l in kv_raft::trace(p) {
                    println!("{l}");
                }
            }
        }
    }
}
