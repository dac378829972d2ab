//! Raft servers as simulated nodes: the [`NodeKind`] and [`Wire`] glue for
//! `aver_core::raft`, used by the 6.5840 Raft tester ([`crate::lab`]).
//!
//! Timers: heartbeat 100 ms (the lab allows at most 10 per second); election timeouts uniform
//! in 300–600 ms, drawn from the run's RNG each time the timer is set. A server boots with
//! `Raft::new(config, synced)`; its disk is the core's own [`Durable`], folded with
//! [`Durable::apply`].

use crate::sim::{MS, Micros, NodeKind, Sim, TraceHash, Wire, postcard_size};
use aver_core::contract::{NodeId, Violation};
use aver_core::raft::{Bug, Bugs, Config, Durable, Message, PersistOp, Raft, Timer};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Heartbeat interval (at most 10 per second, as the lab requires).
pub const HEARTBEAT_MS: u64 = 100;
/// Smallest election timeout.
pub const ELECTION_MS_MIN: u64 = 300;
/// Largest election timeout.
pub const ELECTION_MS_MAX: u64 = 600;

/// The command type of every Raft test: the lab's `int`s and `Randstring(5000)` payloads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Cmd {
    /// An integer command (most tests).
    Int(u64),
    /// An opaque payload (TestRPCBytes3B's 5000-byte strings).
    Blob(Arc<[u8]>),
}

/// A Raft node as the simulator runs it.
pub type Node = Raft<Cmd>;

/// A cluster of Raft servers `0..n`, all voters.
#[derive(Clone, Debug)]
pub struct RaftKind {
    /// Cluster size.
    pub n: usize,
    /// Seeded bugs every server runs with (none for the correct protocol).
    pub bugs: Bugs,
}

impl RaftKind {
    /// `n` correct servers, or with the bugs [`seed_bugs`] set on this thread.
    pub fn new(n: usize) -> RaftKind {
        assert!((1..=64).contains(&n), "1..=64 servers");
        RaftKind {
            n,
            bugs: seeded_bugs(),
        }
    }

    /// Server `i`'s configuration.
    pub fn config(&self, i: usize) -> Config {
        let voters = (0..self.n as u32).map(NodeId).collect();
        let mut config = Config::new(NodeId(i as u32), voters);
        config.bugs = self.bugs;
        config
    }
}

impl NodeKind for RaftKind {
    type Core = Node;
    type Disk = Durable<Cmd>;

    fn boot(&self, node: usize, disk: &Durable<Cmd>) -> Node {
        Raft::new(self.config(node), disk.clone())
    }

    fn write(&self, disk: &mut Durable<Cmd>, op: &PersistOp<Cmd>) {
        disk.apply(op);
    }

    fn timer_delay(&self, timer: Timer, rng: &mut ChaCha8Rng) -> Micros {
        let ms = match timer {
            Timer::Heartbeat => HEARTBEAT_MS,
            Timer::Election => rng.random_range(ELECTION_MS_MIN..=ELECTION_MS_MAX),
        };
        ms * MS
    }

    fn timer_code(&self, timer: Timer) -> u64 {
        match timer {
            Timer::Election => 0,
            Timer::Heartbeat => 1,
        }
    }

    fn violation<'a>(&self, core: &'a Node) -> Option<&'a Violation> {
        core.violation()
    }
}

impl Wire for Message<Cmd> {
    fn is_request(&self) -> bool {
        Message::is_request(self)
    }

    fn size(&self) -> u64 {
        postcard_size(self)
    }

    fn fingerprint(&self, hash: &mut TraceHash) {
        let kind = match self {
            Message::RequestVote(_) => 1,
            Message::RequestVoteReply(_) => 2,
            Message::AppendEntries(_) => 3,
            Message::AppendEntriesReply(_) => 4,
            Message::InstallSnapshot(_) => 5,
            Message::InstallSnapshotReply(_) => 6,
        };
        hash.word(kind);
        hash.word(self.term().0);
    }

    fn label(&self) -> &'static str {
        self.kind()
    }

    fn describe(&self) -> String {
        match self {
            Message::AppendEntries(m) => format!(
                "AppendEntries {} prev={}/{} n={} commit={}",
                m.term,
                m.prev_log_index,
                m.prev_log_term,
                m.entries.len(),
                m.leader_commit
            ),
            Message::InstallSnapshot(m) => {
                format!("InstallSnapshot {} at {}", m.term, m.snapshot.meta.index)
            }
            other => format!("{other:?}"),
        }
    }
}

thread_local! {
    static BUGS: std::cell::Cell<Bugs> = const { std::cell::Cell::new(Bugs::NONE) };
}

/// Every [`RaftKind::new`] on this thread from now on runs servers with these seeded bugs
/// (`aver sim --bug NAME`: proof that the checkers catch them). `Bugs::NONE` to stop.
pub fn seed_bugs(bugs: Bugs) {
    BUGS.with(|b| b.set(bugs));
}

/// The seeded bugs [`seed_bugs`] set on this thread.
pub fn seeded_bugs() -> Bugs {
    BUGS.with(|b| b.get())
}

/// The `aver sim` flags that seed `bugs` (` --bug NAME` each), for replay commands.
pub fn bug_flags(bugs: Bugs) -> String {
    Bug::ALL
        .iter()
        .filter(|&&b| bugs.has(b))
        .map(|b| format!(" --bug {b}"))
        .collect()
}

/// Postcard size of a persisted Raft state (hard state + log, no snapshot data): the 3D
/// tests' `RaftStateSize`.
pub fn raft_state_size(durable: &Durable<Cmd>) -> usize {
    let state = (&durable.hard, durable.log.base(), durable.log.entries());
    postcard_size(&state) as usize
}

/// One line per server for traces: role, term, last index, commit index (or `down`).
pub fn describe(sim: &Sim<RaftKind>) -> Vec<String> {
    (0..sim.n())
        .map(|i| match sim.node(i) {
            None => format!("n{i} down"),
            Some(r) => format!(
                "n{i} {:?} {} last={} commit={}",
                r.role_kind(),
                r.term(),
                r.log().last_index(),
                r.commit_index()
            ),
        })
        .collect()
}
