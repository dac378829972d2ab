//! Raft servers as simulated nodes: the [`NodeKind`] and [`Wire`] glue for
//! `aver_core::raft`, used by the 6.5840 Raft tester ([`crate::lab`]).
//!
//! Timers: heartbeat 100 ms (the lab allows at most 10 per second); election timeouts uniform
//! in 300–600 ms, drawn from the run's RNG each time the timer is set. A server boots with
//! `Raft::new(config, synced)`; its disk ([`RaftDisk`]) is the core's own [`Durable`], folded
//! with [`Durable::apply`], plus a digest of the log that lets the cluster checker compare
//! two logs in O(log n) ([`crate::cluster`]).

use crate::sim::{MS, Micros, NodeKind, Sim, TraceHash, Wire, postcard_size};
use aver_core::contract::{NodeId, Violation};
use aver_core::raft::{
    Bug, Bugs, Command, Config, Durable, Entry, LogIndex, Message, PersistOp, Raft, Term, Timer,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Deref;
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

/// A Raft server's disk: what it synced, plus two digests of its log kept as writes fold in.
///
/// * `prefix[k]` is the wrapping sum of [`entry_digest`] over the entries `base+1 ..= base+k`,
///   so the digest of any range of held entries is one subtraction, and two logs with
///   different snapshot bases still compare over their common range.
/// * `descents` counts entries whose term is below the previous one (RAFT-9 wants none).
///
/// Appends cost O(entries appended); a truncation or a snapshot recomputes the descents and,
/// for a snapshot, the prefix sums (O(log)).
///
/// A service that wraps Raft keeps one inside its own disk type and folds Raft's persist
/// operations into it with [`RaftDisk::write`], so [`crate::cluster`] can check its servers.
#[derive(Clone, Debug)]
pub struct RaftDisk<C = Cmd> {
    durable: Durable<C>,
    prefix: Vec<u64>,
    descents: u64,
}

impl<C> Default for RaftDisk<C> {
    fn default() -> Self {
        RaftDisk {
            durable: Durable::default(),
            prefix: vec![0],
            descents: 0,
        }
    }
}

impl<C> Deref for RaftDisk<C> {
    type Target = Durable<C>;
    fn deref(&self) -> &Durable<C> {
        &self.durable
    }
}

/// A digest of the entry at `index`: equal entries at equal indices have equal digests.
pub fn entry_digest<C: Command>(index: LogIndex, entry: &Entry<C>) -> u64 {
    let mut h = DefaultHasher::new();
    (index, entry).hash(&mut h);
    h.finish()
}

impl<C: Command> RaftDisk<C> {
    /// Folds one synced write in.
    pub fn write(&mut self, op: &PersistOp<C>) {
        self.durable.apply(op);
        let log = &self.durable.log;
        match op {
            PersistOp::HardState(_) => {}
            PersistOp::Append { first, entries } => {
                let mut prev = log.term_at(first.prev()).unwrap_or(Term(0));
                for (k, e) in entries.iter().enumerate() {
                    let index = LogIndex(first.0 + k as u64);
                    let sum = self.prefix.last().expect("prefix starts at 0");
                    self.prefix.push(sum.wrapping_add(entry_digest(index, e)));
                    self.descents += u64::from(e.term < prev);
                    prev = e.term;
                }
            }
            PersistOp::Truncate(_) => {
                self.prefix.truncate(log.entries().len() + 1);
                self.descents = descents(&self.durable);
            }
            PersistOp::Snapshot(_) => {
                self.prefix = vec![0];
                let base = log.base().index.0;
                for (k, e) in log.entries().iter().enumerate() {
                    let sum =
                        self.prefix[k].wrapping_add(entry_digest(LogIndex(base + 1 + k as u64), e));
                    self.prefix.push(sum);
                }
                self.descents = descents(&self.durable);
            }
        }
        debug_assert_eq!(self.prefix.len(), self.durable.log.entries().len() + 1);
    }

    /// The durable state.
    pub fn durable(&self) -> &Durable<C> {
        &self.durable
    }

    /// Digest of the held entries `(lo, hi]`; `base ≤ lo ≤ hi ≤ last index`.
    pub fn range_digest(&self, lo: LogIndex, hi: LogIndex) -> u64 {
        let base = self.durable.log.base().index.0;
        let (lo, hi) = ((lo.0 - base) as usize, (hi.0 - base) as usize);
        self.prefix[hi].wrapping_sub(self.prefix[lo])
    }

    /// Entries whose term is below their predecessor's (the snapshot's term for the first).
    pub fn descents(&self) -> u64 {
        self.descents
    }
}

fn descents<C: Command>(durable: &Durable<C>) -> u64 {
    let log = &durable.log;
    let mut prev = log.base().term;
    let mut count = 0;
    for e in log.entries() {
        count += u64::from(e.term < prev);
        prev = e.term;
    }
    count
}

impl NodeKind for RaftKind {
    type Core = Node;
    type Disk = RaftDisk;

    fn boot(&self, node: usize, disk: &RaftDisk) -> Node {
        Raft::new(self.config(node), disk.durable.clone())
    }

    fn write(&self, disk: &mut RaftDisk, op: &PersistOp<Cmd>) {
        disk.write(op);
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
