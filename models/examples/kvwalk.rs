use aver_models::kv_raft::*;
use stateright::Model;
fn main() {
    let mut cfg = KvRaftCfg::ci();
    cfg.max_term = 1;
    cfg.max_log = 2;
    cfg.scripts = vec![vec![aver_models::kv_common::put("k", "a", 0)]];
    let model = cfg.into_model();
    let mut st = model.init_states().remove(0);
    let mut rng: u64 = 12345;
    let mut seen = std::collections::HashSet::new();
    for step in 0..3000 {
        let mut acts = Vec::new();
        model.actions(&st, &mut acts);
        let mut chosen = None;
        while !acts.is_empty() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let a = acts.swap_remove((rng % acts.len() as u64) as usize);
            if let Some(n) = model.next_state(&st, a.clone()) {
                if model.within_boundary(&n) {
                    chosen = Some((a, n));
                    break;
                }
            }
        }
        let Some((a, n)) = chosen else {
            println!("stuck");
            break;
        };
        let h = format!("{:?}", n);
        let new = seen.insert(h);
        if new && step > 100 {
            println!("{step} new={new} {}", describe_action(&a));
        }
        st = n;
    }
    println!("{}", describe_state(&st));
    println!("net={}", st.network.len());
    for e in &st.network {
        println!("  {:?}", e);
    }
}
