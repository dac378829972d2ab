use aver_models::kvsrv::*;
use stateright::{Checker, Model};
use std::time::Instant;

fn run(name: &str, cfg: KvsrvModelCfg) {
    let model = cfg.into_model();
    let t = Instant::now();
    let c = model.checker().threads(1).spawn_dfs().join();
    println!("{name}: unique={} total={} depth={} {:.2}s", c.unique_state_count(), c.state_count(), c.max_depth(), t.elapsed().as_secs_f64());
    for (n, p) in c.discoveries() { println!("   {n}: {} steps", p.into_actions().len()); }
}

#[test]
fn explore() {
    let which = std::env::var("KVX").unwrap_or_default();
    let bug: Option<aver_core::kvsrv::Bug> = std::env::var("KVBUG").ok().map(|b| b.parse().unwrap());
    let ops: Option<u64> = std::env::var("KVOPS").ok().map(|b| b.parse().unwrap());
    for (n, mut c) in [("kv_ci", KvsrvModelCfg::kv_ci()), ("lock_ci", KvsrvModelCfg::lock_ci()), ("lock_three", KvsrvModelCfg::lock_three()), ("kv_three", KvsrvModelCfg::kv_three())] {
        if let Some(b) = bug { c.bugs = aver_core::kvsrv::Bugs::only(b); }
        if let (Some(o), Workload::Lock { ops_max, .. }) = (ops, &mut c.workload) { *ops_max = o; }
        if which.split(',').any(|w| w == n) { run(n, c); }
    }
}
