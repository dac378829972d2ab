//! The simulator's own semantics: labrpc-style network accounting, disconnection, the
//! unreliable network's drop rate, and torn writes on crash.

use aver_sim::lab::Lab;
use aver_sim::sim::{Cmd, MS, Sim};

/// Per-link byte counts add up to the total; requests are counted when dispatched.
#[test]
fn links_account_for_every_byte() {
    let mut lab = Lab::new("net", 1, 3, true, false);
    lab.check_one_leader().unwrap();
    lab.one_int(5, 3, false).unwrap();
    let net = lab.sim.net();
    let link_bytes: u64 = net.links.iter().flatten().map(|l| l.bytes).sum();
    assert_eq!(link_bytes, net.bytes);
    assert!(lab.rpc_total() > 0 && lab.rpc_total() <= net.total_count);
}

/// A disconnected server receives nothing, and `Partition` cuts exactly across sides.
#[test]
fn disconnected_server_receives_nothing() {
    let mut lab = Lab::new("net", 2, 5, true, false);
    lab.check_one_leader().unwrap();
    lab.disconnect_all(4);
    let before = lab.sim.net().rpc_count[4];
    lab.sleep(2_000 * MS).unwrap();
    assert_eq!(lab.sim.net().rpc_count[4], before);
    lab.connect_one(4);
    lab.partition(&[0, 1, 2], &[3, 4]);
    let enabled = &lab.sim.net().enabled;
    assert!(enabled[0][1] && enabled[3][4] && !enabled[0][3] && !enabled[4][2]);
}

/// On the unreliable network about 10% of requests are dropped before the handler.
#[test]
fn unreliable_network_drops_about_ten_percent_of_requests() {
    let mut lab = Lab::new("net", 3, 3, false, false);
    lab.sleep(60_000 * MS).unwrap();
    let sent = lab.sim.net().total_count as f64;
    let dispatched = lab.rpc_total() as f64;
    assert!(sent > 1000.0, "only {sent} requests");
    let ratio = dispatched / sent;
    assert!((0.87..0.93).contains(&ratio), "dispatched/sent = {ratio}");
}

/// A crash between a write and its sync loses the write and every output of that Ready;
/// the restarted server comes back from what was synced.
#[test]
fn torn_write_is_lost_with_its_messages() {
    let mut sim = Sim::new(3, 4);
    for a in 0..3 {
        for b in 0..3 {
            sim.net_mut().enabled[a][b] = a != b;
        }
    }
    let leader = loop {
        sim.step(sim.now() + 10 * MS);
        if let Some(l) = (0..3).find(|&i| sim.node(i).is_some_and(|n| n.is_leader())) {
            break l;
        }
        assert!(sim.now() < 10_000 * MS, "no leader");
    };
    let last = sim.disk(leader).synced.log.last_index();
    sim.crash_at_next_write(leader);
    let accepted = sim.input(leader, |r| r.propose(Cmd::Int(42)));
    assert!(
        matches!(accepted, Some(Ok(_))),
        "the leader accepted before dying"
    );
    assert!(!sim.is_up(leader));
    assert_eq!(sim.disk(leader).synced.log.last_index(), last);
    let until = sim.now() + 50 * MS;
    while sim.step(until).is_some() {}
    for i in (0..3).filter(|&i| i != leader) {
        let log = sim.node(i).unwrap().log();
        assert_eq!(log.last_index(), last, "n{i} received the torn entry");
    }
    sim.start(leader);
    assert_eq!(sim.node(leader).unwrap().log().last_index(), last);
}
