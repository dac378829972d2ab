//! Lab 3C (persistence) and 3D (snapshots), ported from `src/raft1/raft_test.go` (2025), test
//! by test, with the lab's thresholds (the 3D storage limit scaled to our encoding: see
//! [`MAX_LOG_SIZE`]). A crash is `ShutdownServer` (disconnect, lose unsynced writes, drop the
//! instance); `restart` is `StartServer` + `ConnectAll`.

use aver_sim::lab::{ELECTION_TIMEOUT, Lab, One, Outcome, Poll, Report, SNAPSHOT_INTERVAL, Task};
use aver_sim::raft::Cmd;
use aver_sim::sim::MS;
use std::cell::RefCell;
use std::rc::Rc;

/// `TestPersist13C`: state survives crashes of all, of the leader, and of a follower.
pub fn persist1_3c(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("persist1_3c", seed, 3, true, false);
    lab.one_int(11, 3, true)?;
    lab.shutdown_all();
    lab.start_servers();
    lab.one_int(12, 3, true)?;
    let leader1 = lab.check_one_leader()?;
    lab.shutdown_server(leader1);
    lab.restart(leader1);
    lab.one_int(13, 3, true)?;
    let leader2 = lab.check_one_leader()?;
    lab.shutdown_server(leader2);
    lab.one_int(14, 2, true)?;
    lab.restart(leader2);
    lab.wait(4, 3, None)?;
    let i3 = (lab.check_one_leader()? + 1) % 3;
    lab.shutdown_server(i3);
    lab.one_int(15, 2, true)?;
    lab.restart(i3);
    lab.one_int(16, 3, true)?;
    lab.finish()
}

/// `TestPersist23C`: five rounds of crashing and restarting majorities of 5 servers.
pub fn persist2_3c(seed: u64) -> Outcome<Report> {
    let n = 5;
    let mut lab = Lab::new("persist2_3c", seed, n, true, false);
    let mut index = 1;
    for _ in 0..5 {
        lab.one_int(10 + index, n, true)?;
        index += 1;
        let leader1 = lab.check_one_leader()?;
        lab.shutdown_server((leader1 + 1) % n);
        lab.shutdown_server((leader1 + 2) % n);
        lab.one_int(10 + index, n - 2, true)?;
        index += 1;
        for k in [0, 3, 4] {
            lab.shutdown_server((leader1 + k) % n);
        }
        lab.restart((leader1 + 1) % n);
        lab.restart((leader1 + 2) % n);
        lab.sleep(ELECTION_TIMEOUT)?;
        lab.restart((leader1 + 3) % n);
        lab.one_int(10 + index, n - 2, true)?;
        index += 1;
        lab.restart((leader1 + 4) % n);
        lab.restart(leader1);
    }
    lab.one_int(1000, n, true)?;
    lab.finish()
}

/// `TestPersist33C`: a partitioned leader plus a crash; the survivor must have persisted.
pub fn persist3_3c(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("persist3_3c", seed, 3, true, false);
    lab.one_int(101, 3, true)?;
    let leader = lab.check_one_leader()?;
    lab.disconnect_all((leader + 2) % 3);
    lab.one_int(102, 2, true)?;
    lab.shutdown_server(leader);
    lab.shutdown_server((leader + 1) % 3);
    lab.connect_one((leader + 2) % 3);
    lab.restart(leader);
    lab.one_int(103, 2, true)?;
    lab.restart((leader + 1) % 3);
    lab.one_int(104, 3, true)?;
    lab.finish()
}

/// The sleep of the Figure 8 tests: 10% of the time up to half an election timeout, else
/// 0–12 ms.
fn figure8_sleep(lab: &mut Lab) -> Outcome<()> {
    let ms = if lab.rand(1000) < 100 {
        lab.rand(ELECTION_TIMEOUT / MS / 2)
    } else {
        lab.rand(13)
    };
    lab.sleep(ms * MS)
}

/// `TestFigure83C`: 1000 iterations of proposing everywhere and crashing the leader; the
/// appliers check Figure 8 safety throughout.
pub fn figure8_3c(seed: u64) -> Outcome<Report> {
    let n = 5;
    let mut lab = Lab::new("figure8_3c", seed, n, true, false);
    let c = lab.rand_cmd();
    lab.one(c, 1, true)?;
    let mut nup = n;
    for _ in 0..1000 {
        let mut leader = None;
        for i in 0..n {
            if lab.alive(i) {
                let c = lab.rand_cmd();
                if lab.start(i, c).is_some() {
                    leader = Some(i);
                }
            }
        }
        figure8_sleep(&mut lab)?;
        if let Some(l) = leader {
            lab.shutdown_server(l);
            nup -= 1;
        }
        if nup < 3 {
            let s = lab.rand(n as u64) as usize;
            if !lab.alive(s) {
                lab.restart(s);
                nup += 1;
            }
        }
    }
    for i in 0..n {
        if !lab.alive(i) {
            lab.restart(i);
        }
    }
    let c = lab.rand_cmd();
    lab.one(c, n, true)?;
    lab.finish()
}

/// `TestUnreliableAgree3C`: 49 rounds of 5 concurrent `one`s on an unreliable network.
pub fn unreliable_agree_3c(seed: u64) -> Outcome<Report> {
    let n = 5;
    let mut lab = Lab::new("unreliable_agree_3c", seed, n, false, false);
    let mut tasks = Vec::new();
    for iters in 1..50u64 {
        for j in 0..4 {
            let one = One::new(&lab, Cmd::Int(100 * iters + j), 1, true);
            tasks.push(lab.spawn(Box::new(aver_sim::lab::OneTask(one))));
        }
        lab.one_int(iters, 1, true)?;
    }
    lab.sim.net_mut().reliable = true;
    while tasks.iter().any(|&t| lab.task_running(t)) {
        lab.sleep(10 * MS)?;
    }
    lab.one_int(100, n, true)?;
    lab.finish()
}

/// `TestFigure8Unreliable3C`: 1000 iterations of disconnecting leaders on an unreliable
/// network with long reordering from iteration 200.
pub fn figure8_unreliable_3c(seed: u64) -> Outcome<Report> {
    let n = 5;
    let mut lab = Lab::new("figure8_unreliable_3c", seed, n, false, false);
    let v = lab.rand(10_000);
    lab.one_int(v, 1, true)?;
    let mut nup = n;
    for iters in 0..1000 {
        if iters == 200 {
            lab.sim.net_mut().long_reordering = true;
        }
        let mut leader = None;
        for i in 0..n {
            let v = lab.rand(10_000);
            if lab.start(i, Cmd::Int(v)).is_some() && lab.is_connected(i) {
                leader = Some(i);
            }
        }
        figure8_sleep(&mut lab)?;
        if let Some(l) = leader
            && lab.rand(1000) < (ELECTION_TIMEOUT / MS) / 2
        {
            lab.disconnect_all(l);
            nup -= 1;
        }
        if nup < 3 {
            let s = lab.rand(n as u64) as usize;
            if !lab.is_connected(s) {
                lab.connect_one(s);
                nup += 1;
            }
        }
    }
    for i in 0..n {
        if !lab.is_connected(i) {
            lab.connect_one(i);
        }
    }
    let v = lab.rand(10_000);
    lab.one_int(v, n, true)?;
    lab.finish()
}

/// A churn client (`cfn`): proposes everywhere, records values it saw committed.
struct ChurnClient {
    me: u64,
    stop: Rc<RefCell<bool>>,
    values: Rc<RefCell<Vec<u64>>>,
    /// `(index, x, next poll)` while polling a proposal.
    polling: Option<(u64, u64, usize)>,
}

const CHURN_POLLS_MS: [u64; 5] = [10, 20, 50, 100, 200];

impl Task for ChurnClient {
    fn wake(&mut self, lab: &mut Lab) -> Outcome<Poll<()>> {
        if let Some((index, x, k)) = self.polling {
            let (nd, cmd) = lab.n_committed(index)?;
            if nd > 0 {
                match cmd {
                    Some(Cmd::Int(v)) if v == x => self.values.borrow_mut().push(x),
                    Some(Cmd::Int(_)) => {}
                    _ => return lab.fail("wrong command type"),
                }
                self.polling = None;
            } else if k < CHURN_POLLS_MS.len() {
                self.polling = Some((index, x, k + 1));
                return Ok(Poll::Sleep(CHURN_POLLS_MS[k] * MS));
            } else {
                self.polling = None;
            }
        }
        if *self.stop.borrow() {
            return Ok(Poll::Done(()));
        }
        let x = lab.rand(1 << 63);
        let mut index = None;
        for i in 0..lab.n() {
            if let Some((ix, _)) = lab.start(i, Cmd::Int(x)) {
                index = Some(ix);
            }
        }
        match index {
            Some(ix) => {
                self.polling = Some((ix, x, 0));
                Ok(Poll::Sleep(0))
            }
            None => Ok(Poll::Sleep((79 + self.me * 17) * MS)),
        }
    }
}

fn churn(name: &'static str, seed: u64, reliable: bool) -> Outcome<Report> {
    let n = 5;
    let mut lab = Lab::new(name, seed, n, reliable, false);
    let stop = Rc::new(RefCell::new(false));
    let values = Rc::new(RefCell::new(Vec::new()));
    let mut tasks = Vec::new();
    for me in 0..3 {
        let client = ChurnClient {
            me,
            stop: stop.clone(),
            values: values.clone(),
            polling: None,
        };
        tasks.push(lab.spawn(Box::new(client)));
    }
    for _ in 0..20 {
        churn_round(&mut lab)?;
        lab.sleep(ELECTION_TIMEOUT * 7 / 10)?;
    }
    lab.sleep(ELECTION_TIMEOUT)?;
    lab.sim.net_mut().reliable = true;
    for i in 0..n {
        if !lab.alive(i) {
            lab.restart(i);
        }
        lab.connect_one(i);
    }
    *stop.borrow_mut() = true;
    while tasks.iter().any(|&t| lab.task_running(t)) {
        lab.sleep(MS)?;
    }
    lab.sleep(ELECTION_TIMEOUT)?;
    let c = lab.rand_cmd();
    let last = lab.one(c, n, true)?;
    let mut really = Vec::new();
    for index in 1..=last {
        match lab.wait(index, n, None)? {
            Some(Cmd::Int(v)) => really.push(v),
            _ => return lab.fail("not an int"),
        }
    }
    really.sort_unstable();
    for v in values.borrow().iter() {
        if really.binary_search(v).is_err() {
            return lab.fail(format!("didn't find a value {v}"));
        }
    }
    lab.finish()
}

fn churn_round(lab: &mut Lab) -> Outcome<()> {
    let n = lab.n() as u64;
    if lab.rand(1000) < 200 {
        let i = lab.rand(n) as usize;
        lab.disconnect_all(i);
    }
    if lab.rand(1000) < 500 {
        let i = lab.rand(n) as usize;
        if !lab.alive(i) {
            lab.restart(i);
        }
        lab.connect_one(i);
    }
    if lab.rand(1000) < 200 {
        let i = lab.rand(n) as usize;
        if lab.alive(i) {
            lab.shutdown_server(i);
        }
    }
    Ok(())
}

/// `TestReliableChurn3C`: 20 rounds of disconnect/restart/crash under 3 proposing clients.
pub fn reliable_churn_3c(seed: u64) -> Outcome<Report> {
    churn("reliable_churn_3c", seed, true)
}

/// `TestUnreliableChurn3C`: the churn test on an unreliable network.
pub fn unreliable_churn_3c(seed: u64) -> Outcome<Report> {
    churn("unreliable_churn_3c", seed, false)
}

/// The 3D tester's `MAXLOGSIZE` (2000 B of gob) scaled to our encoding: persisted Raft state
/// must stay below 1053 B of postcard, the size of the same number of entries.
///
/// The lab measures the gob encoding of the state a student's Raft saves; we measure the
/// postcard encoding of (hard state, snapshot boundary, entries), snapshot data excluded as
/// `RaftStateSize` excludes it. The 3D tests log random 63-bit ints (`rand.Int()`).
///
/// * gob (measured with Go 1.19's `encoding/gob` on the common layout `currentTerm`,
///   `votedFor`, `[]LogEntry{Term int; Command interface{}}` with a dummy entry 0,
///   `lastIncludedIndex`, `lastIncludedTerm`): 83 B fixed (type descriptors and the ints),
///   then 20 B per entry (field tags 2, term 1, the interface's type name `"int"` 4, its
///   type id 1, byte count 1, singleton marker 1, the int 9, end of struct 1). So 2000 B
///   holds at most ⌊(2000 − 83 − 1) / 20⌋ = 95 entries (83 + 95·20 = 1983 B; 96 → 2003 B).
/// * postcard, terms below 128 (as in every 3D run): hard state ≤ 3 B (term 1, vote tag 1,
///   id 1), boundary ≤ 3 B (index ≤ 2, term 1), entry count 1 B, then ≤ 11 B per entry
///   (term 1, `Cmd` tag 1, varint of a 63-bit int ≤ 9). 95 entries take at most
///   7 + 95·11 = 1052 B.
///
/// Hence the limit 1053 (`size >= MAX_LOG_SIZE` fails, as `LogSize() >= 2000` does in Go):
/// 95 entries pass as in Go, and 96 entries of full-width ints (7 + 96·11 = 1063 B) fail.
pub const MAX_LOG_SIZE: usize = 1053;

/// `snapcommon(disconnect, reliable, crash)`: 30 iterations of victims and raw `Start`s.
fn snapcommon(
    name: &'static str,
    seed: u64,
    disconnect: bool,
    reliable: bool,
    crash: bool,
) -> Outcome<Report> {
    let n = 3;
    let mut lab = Lab::new(name, seed, n, reliable, true);
    let c = lab.rand_cmd();
    lab.one(c, n, true)?;
    let mut leader1 = lab.check_one_leader()?;
    for i in 0..30 {
        let (mut victim, mut sender) = ((leader1 + 1) % n, leader1);
        if i % 3 == 1 {
            (victim, sender) = (leader1, (leader1 + 1) % n);
        }
        if disconnect {
            lab.disconnect_all(victim);
            let c = lab.rand_cmd();
            lab.one(c, n - 1, true)?;
        }
        if crash {
            lab.shutdown_server(victim);
            let c = lab.rand_cmd();
            lab.one(c, n - 1, true)?;
        }
        let nn = SNAPSHOT_INTERVAL / 2 + lab.rand(SNAPSHOT_INTERVAL);
        for _ in 0..nn {
            let c = lab.rand_cmd();
            lab.start(sender, c);
        }
        let expected = if disconnect || crash { n - 1 } else { n };
        let c = lab.rand_cmd();
        lab.one(c, expected, true)?;
        let size = lab.log_size();
        if size >= MAX_LOG_SIZE {
            return lab.fail(format!("Log size too large: {size} B"));
        }
        if disconnect {
            lab.connect_one(victim);
        }
        if crash {
            lab.restart(victim);
        }
        if disconnect || crash {
            let c = lab.rand_cmd();
            lab.one(c, n, true)?;
            leader1 = lab.check_one_leader()?;
        }
    }
    lab.finish()
}

/// `TestSnapshotBasic3D`.
pub fn snapshot_basic_3d(seed: u64) -> Outcome<Report> {
    snapcommon("snapshot_basic_3d", seed, false, true, false)
}
/// `TestSnapshotInstall3D`.
pub fn snapshot_install_3d(seed: u64) -> Outcome<Report> {
    snapcommon("snapshot_install_3d", seed, true, true, false)
}
/// `TestSnapshotInstallUnreliable3D`.
pub fn snapshot_install_unreliable_3d(seed: u64) -> Outcome<Report> {
    snapcommon("snapshot_install_unreliable_3d", seed, true, false, false)
}
/// `TestSnapshotInstallCrash3D`.
pub fn snapshot_install_crash_3d(seed: u64) -> Outcome<Report> {
    snapcommon("snapshot_install_crash_3d", seed, false, true, true)
}
/// `TestSnapshotInstallUnCrash3D`.
pub fn snapshot_install_uncrash_3d(seed: u64) -> Outcome<Report> {
    snapcommon("snapshot_install_uncrash_3d", seed, false, false, true)
}

/// `TestSnapshotAllCrash3D`: crash every server 5 times; the log index never goes back.
pub fn snapshot_all_crash_3d(seed: u64) -> Outcome<Report> {
    let n = 3;
    let mut lab = Lab::new("snapshot_all_crash_3d", seed, n, false, true);
    let c = lab.rand_cmd();
    lab.one(c, n, true)?;
    for _ in 0..5 {
        let nn = SNAPSHOT_INTERVAL / 2 + lab.rand(SNAPSHOT_INTERVAL);
        for _ in 0..nn {
            let c = lab.rand_cmd();
            lab.one(c, n, true)?;
        }
        let c = lab.rand_cmd();
        let index1 = lab.one(c, n, true)?;
        lab.shutdown_all();
        lab.start_servers();
        let c = lab.rand_cmd();
        let index2 = lab.one(c, n, true)?;
        if index2 < index1 + 1 {
            return lab.fail(format!("index decreased from {index1} to {index2}"));
        }
    }
    lab.finish()
}

/// `TestSnapshotInit3D`: a restarted server initialises its snapshot from disk, so later
/// writes keep it.
pub fn snapshot_init_3d(seed: u64) -> Outcome<Report> {
    let n = 3;
    let mut lab = Lab::new("snapshot_init_3d", seed, n, false, true);
    let c = lab.rand_cmd();
    lab.one(c, n, true)?;
    for _ in 0..SNAPSHOT_INTERVAL + 1 {
        let c = lab.rand_cmd();
        lab.one(c, n, true)?;
    }
    for _ in 0..2 {
        lab.shutdown_all();
        lab.start_servers();
        let c = lab.rand_cmd();
        lab.one(c, n, true)?;
    }
    lab.finish()
}

/// Not a lab test: Figure 8 with *torn writes*. Besides the lab's leader crashes, each
/// iteration arms, with probability 1/5, a random server to crash inside its next write (a
/// vote, an append, a truncation and append, a term change): half the time after the write
/// and before the sync, so the whole write is lost; half the time in the middle of it, so a
/// prefix of its operations is durable. Either way none of that `Ready`'s messages leave.
/// This probes the driver contract's "durable before send", and the core's restart from any
/// prefix of a `Ready`'s writes, under the same appliers and invariant checkers.
pub fn figure8_torn_writes(seed: u64) -> Outcome<Report> {
    let n = 5;
    let mut lab = Lab::new("figure8_torn_writes", seed, n, true, false);
    let c = lab.rand_cmd();
    lab.one(c, 1, true)?;
    for _ in 0..1000 {
        if lab.rand(5) == 0 {
            let victim = lab.rand(n as u64) as usize;
            if lab.rand(2) == 0 {
                lab.sim.crash_at_next_write(victim);
            } else {
                lab.sim.tear_next_write(victim);
            }
        }
        let mut leader = None;
        for i in 0..n {
            let c = lab.rand_cmd();
            if lab.start(i, c).is_some() {
                leader = Some(i);
            }
        }
        figure8_sleep(&mut lab)?;
        if let Some(l) = leader {
            lab.shutdown_server(l);
        }
        if (0..n).filter(|&i| lab.alive(i)).count() < 3 {
            let s = lab.rand(n as u64) as usize;
            if !lab.alive(s) {
                lab.restart(s);
            }
        }
    }
    for i in 0..n {
        lab.sim.cancel_torn_write(i);
        if !lab.alive(i) {
            lab.restart(i);
        }
    }
    let c = lab.rand_cmd();
    lab.one(c, n, true)?;
    if lab.sim.torn_crashes() < 10 {
        let torn = lab.sim.torn_crashes();
        return lab.fail(format!("only {torn} torn writes: the fault barely fired"));
    }
    lab.finish()
}
