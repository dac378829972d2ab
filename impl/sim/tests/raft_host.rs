//! The cluster checker on a simulation that mixes Raft servers with clerks, as a replicated
//! service's harness does: `Pair<RaftKind, _>` is a `RaftHost`, the clerk is left out of the
//! Raft cluster, and RAFT-7 still reads the servers' disks.

use aver_core::contract::{Core, NodeId, Ready};
use aver_core::raft::Message;
use aver_sim::cluster::ClusterCheck;
use aver_sim::pair::{Member, Pair};
use aver_sim::raft::{Cmd, RaftKind};
use aver_sim::sim::{MS, Micros, NodeKind, Sim};
use rand_chacha::ChaCha8Rng;

/// A clerk that never speaks (enough to sit beside the servers).
struct Idle;

impl Core for Idle {
    type Persist = ();
    type Msg = Message<Cmd>;
    type Apply = ();
    type Timer = ();
    fn on_message(&mut self, _from: NodeId, _msg: Message<Cmd>) {}
    fn on_timeout(&mut self, _timer: ()) {}
    fn take_ready(&mut self) -> Ready<(), Message<Cmd>, (), ()> {
        Ready::default()
    }
}

struct IdleKind;

impl NodeKind for IdleKind {
    type Core = Idle;
    type Disk = ();
    fn boot(&self, _node: usize, _disk: &()) -> Idle {
        Idle
    }
    fn write(&self, _disk: &mut (), _op: &()) {}
    fn timer_delay(&self, _timer: (), _rng: &mut ChaCha8Rng) -> Micros {
        MS
    }
    fn timer_code(&self, _timer: ()) -> u64 {
        0
    }
}

type Mixed = Sim<Pair<RaftKind, IdleKind>>;

fn run(sim: &mut Mixed, check: &mut ClusterCheck<Pair<RaftKind, IdleKind>>, until: Micros) {
    while sim.step(until).is_some() {
        check.after_event(sim).unwrap_or_else(|v| panic!("{v}"));
    }
}

/// Three servers and a clerk: the checker follows the servers through an election and a
/// commit, and reports RAFT-7 when two servers' disks are lost.
#[test]
fn cluster_check_on_servers_beside_a_clerk() {
    let kind = Pair {
        server: RaftKind::new(3),
        client: IdleKind,
        servers: 3,
    };
    let mut sim = Sim::new(kind, 4, 1);
    for a in 0..3 {
        for b in 0..3 {
            sim.net_mut().enabled[a][b] = a != b;
        }
    }
    let mut check = ClusterCheck::new(&sim);
    run(&mut sim, &mut check, 2_000 * MS);
    let leader = (0..3)
        .find(|&i| {
            sim.node(i)
                .and_then(Member::server)
                .is_some_and(|r| r.is_leader())
        })
        .expect("a leader within 2 s");
    sim.input(leader, |m| {
        m.server_mut().unwrap().propose(Cmd::Int(7)).unwrap()
    });
    run(&mut sim, &mut check, 2_500 * MS);
    assert!(check.rechecks() > 0);
    for f in (0..3).filter(|&i| i != leader) {
        sim.crash(f);
        sim.wipe_disk(f);
    }
    let v = check
        .after_event(&sim)
        .expect_err("one disk of three holds a committed entry");
    assert_eq!(v.id, "RAFT-7", "{v}");
}
