//! Lab 3A (leader election) and 3B (log replication), ported from `src/raft1/raft_test.go`
//! (2025), test by test. Same scenarios, same thresholds, in virtual time.

use aver_sim::lab::{ELECTION_TIMEOUT, Lab, Outcome, Report};
use aver_sim::raft::Cmd;
use aver_sim::sim::MS;
use rand::RngCore;
use std::sync::Arc;

/// `TestInitialElection3A`: a leader within 5 s; terms agree and stay put without failures
/// (a term change only warns, as in the lab).
pub fn initial_election_3a(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("initial_election_3a", seed, 3, true, false);
    lab.check_one_leader()?;
    lab.sleep(50 * MS)?;
    let term1 = lab.check_terms()?;
    if term1 < 1 {
        return lab.fail(format!("term is {term1}, but should be at least 1"));
    }
    lab.sleep(2 * ELECTION_TIMEOUT)?;
    let _term2 = lab.check_terms()?; // a change is only a warning in the lab
    lab.check_one_leader()?;
    lab.finish()
}

/// `TestReElection3A`: a new leader after the old one is disconnected; none without a
/// majority; an old leader rejoining does not disturb the new one.
pub fn re_election_3a(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("re_election_3a", seed, 3, true, false);
    let leader1 = lab.check_one_leader()?;
    lab.disconnect_all(leader1);
    lab.check_one_leader()?;
    lab.connect_one(leader1);
    let leader2 = lab.check_one_leader()?;
    lab.disconnect_all(leader2);
    lab.disconnect_all((leader2 + 1) % 3);
    lab.sleep(2 * ELECTION_TIMEOUT)?;
    lab.check_no_leader()?;
    lab.connect_one((leader2 + 1) % 3);
    lab.check_one_leader()?;
    lab.connect_one(leader2);
    lab.check_one_leader()?;
    lab.finish()
}

/// `TestManyElections3A`: 7 servers; 9 rounds of disconnecting 3 random servers.
pub fn many_elections_3a(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("many_elections_3a", seed, 7, true, false);
    lab.check_one_leader()?;
    for _ in 1..10 {
        let picks = [lab.rand(7), lab.rand(7), lab.rand(7)].map(|x| x as usize);
        for &i in &picks {
            lab.disconnect_all(i);
        }
        lab.check_one_leader()?;
        for &i in &picks {
            lab.connect_one(i);
        }
    }
    lab.check_one_leader()?;
    lab.finish()
}

/// `TestBasicAgree3B`: three agreements at indices 1, 2, 3.
pub fn basic_agree_3b(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("basic_agree_3b", seed, 3, true, false);
    for index in 1..=3u64 {
        if lab.n_committed(index)?.0 > 0 {
            return lab.fail("some have committed before Start()");
        }
        let x = lab.one_int(index * 100, 3, false)?;
        if x != index {
            return lab.fail(format!("got index {x} but expected {index}"));
        }
    }
    lab.finish()
}

/// `TestRPCBytes3B`: ten 5000-byte commands cost at most 3 × payload + 50 000 bytes.
///
/// Bytes are postcard encodings of our messages rather than gob; postcard is at least as
/// compact (no type descriptors), so the threshold is kept unchanged.
pub fn rpc_bytes_3b(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("rpc_bytes_3b", seed, 3, true, false);
    lab.one_int(99, 3, false)?;
    let bytes0 = lab.sim.net().bytes;
    let mut sent = 0u64;
    for index in 2..12u64 {
        let mut payload = vec![0u8; 5000];
        lab.sim.rng().fill_bytes(&mut payload);
        let cmd = Cmd::Blob(Arc::from(payload));
        let x = lab.one(cmd, 3, false)?;
        if x != index {
            return lab.fail(format!("got index {x} but expected {index}"));
        }
        sent += 5000;
    }
    let got = lab.sim.net().bytes - bytes0;
    let expected = 3 * sent;
    if got > expected + 50_000 {
        return lab.fail(format!(
            "too many RPC bytes; got {got}, expected {expected}"
        ));
    }
    lab.finish()
}

/// `TestFollowerFailure3B`: progress with one follower gone; nothing commits with both gone.
pub fn follower_failure_3b(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("follower_failure_3b", seed, 3, true, false);
    lab.one_int(101, 3, false)?;
    let leader1 = lab.check_one_leader()?;
    lab.disconnect_all((leader1 + 1) % 3);
    lab.one_int(102, 2, false)?;
    lab.sleep(ELECTION_TIMEOUT)?;
    lab.one_int(103, 2, false)?;
    let leader2 = lab.check_one_leader()?;
    lab.disconnect_all((leader2 + 1) % 3);
    lab.disconnect_all((leader2 + 2) % 3);
    let Some((index, _)) = lab.start(leader2, Cmd::Int(104)) else {
        return lab.fail("leader rejected Start()");
    };
    if index != 4 {
        return lab.fail(format!("expected index 4, got {index}"));
    }
    lab.sleep(2 * ELECTION_TIMEOUT)?;
    let (n, _) = lab.n_committed(index)?;
    if n > 0 {
        return lab.fail(format!("{n} committed but no majority"));
    }
    lab.finish()
}

/// `TestLeaderFailure3B`: a new leader after the old one goes; nothing commits without a
/// majority.
pub fn leader_failure_3b(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("leader_failure_3b", seed, 3, true, false);
    lab.one_int(101, 3, false)?;
    let leader1 = lab.check_one_leader()?;
    lab.disconnect_all(leader1);
    lab.one_int(102, 2, false)?;
    lab.sleep(ELECTION_TIMEOUT)?;
    lab.one_int(103, 2, false)?;
    let leader2 = lab.check_one_leader()?;
    lab.disconnect_all(leader2);
    for i in 0..3 {
        lab.start(i, Cmd::Int(104));
    }
    lab.sleep(2 * ELECTION_TIMEOUT)?;
    let (n, _) = lab.n_committed(4)?;
    if n > 0 {
        return lab.fail(format!("{n} committed but no majority"));
    }
    lab.finish()
}

/// `TestFailAgree3B`: a disconnected follower catches up after it rejoins.
pub fn fail_agree_3b(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("fail_agree_3b", seed, 3, true, false);
    lab.one_int(101, 3, false)?;
    let leader = lab.check_one_leader()?;
    lab.disconnect_all((leader + 1) % 3);
    lab.one_int(102, 2, false)?;
    lab.one_int(103, 2, false)?;
    lab.sleep(ELECTION_TIMEOUT)?;
    lab.one_int(104, 2, false)?;
    lab.one_int(105, 2, false)?;
    lab.connect_one((leader + 1) % 3);
    lab.one_int(106, 3, true)?;
    lab.sleep(ELECTION_TIMEOUT)?;
    lab.one_int(107, 3, true)?;
    lab.finish()
}

/// `TestFailNoAgree3B`: no commit without a majority; the uncommitted slot is reused.
pub fn fail_no_agree_3b(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("fail_no_agree_3b", seed, 5, true, false);
    lab.one_int(10, 5, false)?;
    let leader = lab.check_one_leader()?;
    for k in 1..=3 {
        lab.disconnect_all((leader + k) % 5);
    }
    let Some((index, _)) = lab.start(leader, Cmd::Int(20)) else {
        return lab.fail("leader rejected Start()");
    };
    if index != 2 {
        return lab.fail(format!("expected index 2, got {index}"));
    }
    lab.sleep(2 * ELECTION_TIMEOUT)?;
    let (n, _) = lab.n_committed(index)?;
    if n > 0 {
        return lab.fail(format!("{n} committed but no majority"));
    }
    for k in 1..=3 {
        lab.connect_one((leader + k) % 5);
    }
    let leader2 = lab.check_one_leader()?;
    let Some((index2, _)) = lab.start(leader2, Cmd::Int(30)) else {
        return lab.fail("leader2 rejected Start()");
    };
    if !(2..=3).contains(&index2) {
        return lab.fail(format!("unexpected index {index2}"));
    }
    lab.one_int(1000, 5, true)?;
    lab.finish()
}

/// `TestConcurrentStarts3B`: five concurrent `Start`s in one term all commit.
///
/// The five goroutines each call `Start` once without sleeping; in virtual time they run at
/// the same instant, so they are issued back to back.
pub fn concurrent_starts_3b(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("concurrent_starts_3b", seed, 3, true, false);
    for attempt in 0..5 {
        if attempt > 0 {
            lab.sleep(3_000 * MS)?;
        }
        if concurrent_starts_try(&mut lab)? {
            return lab.finish();
        }
    }
    lab.fail("term changed too often")
}

fn concurrent_starts_try(lab: &mut Lab) -> Outcome<bool> {
    let leader = lab.check_one_leader()?;
    let Some((_, term)) = lab.start(leader, Cmd::Int(1)) else {
        return Ok(false);
    };
    let mut indices = Vec::new();
    for i in 0..5 {
        if let Some((index, t)) = lab.start(leader, Cmd::Int(100 + i))
            && t == term
        {
            indices.push(index);
        }
    }
    if (0..3).any(|j| lab.state(j).is_some_and(|(t, _)| t != term)) {
        return Ok(false);
    }
    let mut cmds = Vec::new();
    for index in indices {
        match lab.wait(index, 3, Some(term))? {
            None => return Ok(false),
            Some(Cmd::Int(x)) => cmds.push(x),
            Some(other) => return lab.fail(format!("value {other:?} is not an int")),
        }
    }
    for x in 100..105 {
        if !cmds.contains(&x) {
            return lab.fail(format!("cmd {x} missing in {cmds:?}"));
        }
    }
    Ok(true)
}

/// `TestRejoin3B`: a partitioned leader's uncommitted entries are overwritten.
pub fn rejoin_3b(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("rejoin_3b", seed, 3, true, false);
    lab.one_int(101, 3, true)?;
    let leader1 = lab.check_one_leader()?;
    lab.disconnect_all(leader1);
    for x in [102, 103, 104] {
        lab.start(leader1, Cmd::Int(x));
    }
    lab.one_int(103, 2, true)?;
    let leader2 = lab.check_one_leader()?;
    lab.disconnect_all(leader2);
    lab.connect_one(leader1);
    lab.one_int(104, 2, true)?;
    lab.connect_one(leader2);
    lab.one_int(105, 3, true)?;
    lab.finish()
}

/// `TestBackup3B`: leaders back up quickly over incorrect follower logs (4 × 50 commands).
pub fn backup_3b(seed: u64) -> Outcome<Report> {
    let n = 5;
    let mut lab = Lab::new("backup_3b", seed, n, true, false);
    let c = lab.rand_cmd();
    lab.one(c, n, true)?;
    let leader1 = lab.check_one_leader()?;
    for k in 2..=4 {
        lab.disconnect_all((leader1 + k) % n);
    }
    for _ in 0..50 {
        let c = lab.rand_cmd();
        lab.start(leader1, c);
    }
    lab.sleep(ELECTION_TIMEOUT / 2)?;
    lab.disconnect_all(leader1);
    lab.disconnect_all((leader1 + 1) % n);
    for k in 2..=4 {
        lab.connect_one((leader1 + k) % n);
    }
    for _ in 0..50 {
        let c = lab.rand_cmd();
        lab.one(c, 3, true)?;
    }
    let leader2 = lab.check_one_leader()?;
    let mut other = (leader1 + 2) % n;
    if leader2 == other {
        other = (leader2 + 1) % n;
    }
    lab.disconnect_all(other);
    for _ in 0..50 {
        let c = lab.rand_cmd();
        lab.start(leader2, c);
    }
    lab.sleep(ELECTION_TIMEOUT / 2)?;
    for i in 0..n {
        lab.disconnect_all(i);
    }
    lab.connect_one(leader1);
    lab.connect_one((leader1 + 1) % n);
    lab.connect_one(other);
    for _ in 0..50 {
        let c = lab.rand_cmd();
        lab.one(c, 3, true)?;
    }
    for i in 0..n {
        lab.connect_one(i);
    }
    let c = lab.rand_cmd();
    lab.one(c, n, true)?;
    lab.finish()
}

/// `TestCount3B`: RPC budgets — election 1..=30, ten agreements ≤ 42, one idle second ≤ 60.
/// RPCs are requests dispatched to a server, as labrpc's `GetCount`.
pub fn count_3b(seed: u64) -> Outcome<Report> {
    let mut lab = Lab::new("count_3b", seed, 3, true, false);
    lab.check_one_leader()?;
    let total1 = lab.rpc_total();
    if !(1..=30).contains(&total1) {
        return lab.fail(format!(
            "too many or few RPCs ({total1}) to elect initial leader"
        ));
    }
    let mut total2 = None;
    for attempt in 0..5 {
        if attempt > 0 {
            lab.sleep(3_000 * MS)?;
        }
        total2 = count_try(&mut lab)?;
        if total2.is_some() {
            break;
        }
    }
    let Some(total2) = total2 else {
        return lab.fail("term changed too often");
    };
    lab.sleep(ELECTION_TIMEOUT)?;
    let total3 = lab.rpc_total();
    if total3 - total2 > 3 * 20 {
        return lab.fail(format!(
            "too many RPCs ({}) for 1 second of idleness",
            total3 - total2
        ));
    }
    lab.finish()
}

/// One try of TestCount3B's agreement phase: `Some(total2)` on success.
fn count_try(lab: &mut Lab) -> Outcome<Option<u64>> {
    let iters = 10u64;
    let leader = lab.check_one_leader()?;
    let total1 = lab.rpc_total();
    let Some((starti, term)) = lab.start(leader, Cmd::Int(1)) else {
        return Ok(None);
    };
    let mut cmds = Vec::new();
    for i in 1..iters + 2 {
        let x = lab.rand(1 << 31);
        cmds.push(x);
        let Some((index1, term1)) = lab.start(leader, Cmd::Int(x)) else {
            return Ok(None);
        };
        if term1 != term {
            return Ok(None);
        }
        if starti + i != index1 {
            return lab.fail("Start() failed");
        }
    }
    for i in 1..iters + 1 {
        match lab.wait(starti + i, 3, Some(term))? {
            None => return Ok(None),
            Some(Cmd::Int(x)) if x == cmds[i as usize - 1] => {}
            Some(v) => {
                return lab.fail(format!(
                    "wrong value {v:?} committed for index {}; expected {}",
                    starti + i,
                    cmds[i as usize - 1]
                ));
            }
        }
    }
    if (0..3).any(|j| lab.state(j).is_some_and(|(t, _)| t != term)) {
        return Ok(None);
    }
    let total2 = lab.rpc_total();
    if total2 - total1 > (iters + 1 + 3) * 3 {
        return lab.fail(format!(
            "too many RPCs ({}) for {iters} entries",
            total2 - total1
        ));
    }
    Ok(Some(total2))
}
