//! The simulator's own semantics: labrpc-style network accounting, disconnection, the
//! unreliable network's drop rate, and torn writes on crash.

use aver_core::contract::{Core, NodeId, Ready, TimerCmd};
use aver_sim::lab::Lab;
use aver_sim::raft::{Cmd, RaftKind};
use aver_sim::sim::{MS, Micros, NodeKind, Sim, TraceHash, Wire};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

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
    let mut sim = Sim::new(RaftKind::new(3), 3, 4);
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

/// A core whose every input writes three records, sends a message and sets a timer: enough
/// to watch a torn write.
#[derive(Default)]
struct Writer {
    ready: Ready<u32, Ping, (), Tick>,
    next: u32,
}

#[derive(Clone, Debug)]
struct Ping;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tick;

impl Writer {
    fn write_three(&mut self) {
        for _ in 0..3 {
            self.next += 1;
            self.ready.persist.push(self.next);
        }
        self.ready.messages.push((NodeId(1), Ping));
        self.ready.timers.push(TimerCmd::Set(Tick));
    }
}

impl Core for Writer {
    type Persist = u32;
    type Msg = Ping;
    type Apply = ();
    type Timer = Tick;
    fn on_message(&mut self, _from: NodeId, _msg: Ping) {}
    fn on_timeout(&mut self, _timer: Tick) {}
    fn take_ready(&mut self) -> Ready<u32, Ping, (), Tick> {
        std::mem::take(&mut self.ready)
    }
}

impl Wire for Ping {
    fn is_request(&self) -> bool {
        true
    }
    fn size(&self) -> u64 {
        1
    }
    fn fingerprint(&self, _hash: &mut TraceHash) {}
    fn label(&self) -> &'static str {
        "Ping"
    }
}

struct WriterKind;

impl NodeKind for WriterKind {
    type Core = Writer;
    type Disk = Vec<u32>;
    fn boot(&self, _node: usize, disk: &Vec<u32>) -> Writer {
        let next = disk.last().copied().unwrap_or(0);
        Writer {
            next,
            ..Writer::default()
        }
    }
    fn write(&self, disk: &mut Vec<u32>, op: &u32) {
        disk.push(*op);
    }
    fn timer_delay(&self, _timer: Tick, _rng: &mut ChaCha8Rng) -> Micros {
        MS
    }
    fn timer_code(&self, _timer: Tick) -> u64 {
        0
    }
}

/// A torn write keeps a prefix of the `Ready`'s records — over seeds, every length from none
/// to all — and nothing else of that `Ready` happens: no message, no timer.
#[test]
fn torn_write_keeps_a_prefix_of_the_ready() {
    let mut kept = BTreeSet::new();
    for seed in 0..40 {
        let mut sim = Sim::new(WriterKind, 2, seed);
        sim.net_mut().enabled[0][1] = true;
        sim.input(0, Writer::write_three);
        assert_eq!(sim.disk(0).synced, vec![1, 2, 3]);
        sim.tear_next_write(0);
        sim.input(0, Writer::write_three);
        assert!(!sim.is_up(0), "the torn write crashed the node");
        let disk = &sim.disk(0).synced;
        assert_eq!(disk[..3], [1, 2, 3], "synced records survive");
        assert_eq!(disk[3..], [4, 5, 6][..disk.len() - 3], "a prefix survives");
        kept.insert(disk.len() - 3);
        assert_eq!(sim.net().total_count, 1, "the torn Ready sent nothing");
        let until = sim.now() + 10 * MS;
        while sim.step(until).is_some() {}
        assert_eq!(
            sim.net().links[0][1].delivered,
            1,
            "only the first Ready's message"
        );
        sim.start(0);
        assert_eq!(sim.node(0).unwrap().next as usize, sim.disk(0).synced.len());
    }
    assert_eq!(kept, BTreeSet::from([0, 1, 2, 3]), "prefix lengths seen");
}
