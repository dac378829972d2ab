//! The model's bounds and switches, and the named configurations `aver check` runs.

use super::{RaftModel, RaftState};
use aver_core::NodeId;
use aver_core::raft::Bugs;
use std::fmt;
use std::str::FromStr;

/// How the network treats messages (always unordered except `Ordered`). The semantics are
/// Stateright's networks'.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkKind {
    /// Every message is delivered at most once, in any order; none is lost.
    Reliable,
    /// Delivered at most once, in any order, or lost.
    Lossy,
    /// Delivered any number of times, in any order; none is lost.
    Duplicating,
    /// Delivered any number of times, in any order, or lost.
    LossyDuplicating,
    /// FIFO per (sender, receiver) pair; nothing lost.
    Ordered,
}

impl NetworkKind {
    /// Every kind, by its `--network` name.
    pub const ALL: [NetworkKind; 5] = [
        NetworkKind::Reliable,
        NetworkKind::Lossy,
        NetworkKind::Duplicating,
        NetworkKind::LossyDuplicating,
        NetworkKind::Ordered,
    ];

    /// The `--network` name.
    pub fn name(self) -> &'static str {
        match self {
            NetworkKind::Reliable => "reliable",
            NetworkKind::Lossy => "lossy",
            NetworkKind::Duplicating => "duplicating",
            NetworkKind::LossyDuplicating => "lossy-duplicating",
            NetworkKind::Ordered => "ordered",
        }
    }

    /// Messages may be lost (a `Drop` action per message in flight).
    pub fn lossy(self) -> bool {
        matches!(self, NetworkKind::Lossy | NetworkKind::LossyDuplicating)
    }

    /// A delivered message stays deliverable (the network is a set of messages ever sent).
    pub fn duplicating(self) -> bool {
        matches!(
            self,
            NetworkKind::Duplicating | NetworkKind::LossyDuplicating
        )
    }
}

impl fmt::Display for NetworkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NetworkKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NetworkKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = NetworkKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown network `{s}`; known: {}", names.join(", "))
            })
    }
}

/// Messages in flight per server allowed on networks that hold copies (see
/// [`RaftModelCfg::within_boundary`]).
pub const IN_FLIGHT_MAX_PER_SERVER: usize = 3;

/// The bounds and switches of one Raft model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RaftModelCfg {
    /// Number of servers (1..=9).
    pub servers: usize,
    /// States where a server's term exceeds this are outside the model.
    pub max_term: u64,
    /// A leader proposes only while its log is shorter than this.
    pub max_log: u64,
    /// Servers that may be crashed at the same time.
    pub max_crashes: usize,
    /// The network.
    pub network: NetworkKind,
    /// Whether servers take snapshots (the `Compact` timer).
    pub compaction: bool,
    /// Seeded bugs (none for the correct protocol).
    pub bugs: Bugs,
    /// Remove messages the receiver will ignore forever from the network (a sound
    /// reduction, see `RaftModel::collect_dead_messages`; on by default, off only to compare).
    pub collect_dead_messages: bool,
    /// Remove requests that can have no effect in any state within the term bound: a stale
    /// request whose sender is at `max_term` (the refusal it would bring back is no news
    /// there), and a RequestVote at `max_term` to a server that voted for another at
    /// `max_term` (a sound reduction of the bounded model, see
    /// `RaftState::dead_within_bound`; on by default, off only to compare).
    pub collect_stale_requests: bool,
    /// On networks that keep every message sent and with covering, count the messages of
    /// one class of deliveries that have the same effect forever, by the core's
    /// `Raft::delivery_class` (stale requests of one kind from one sender; replies that can
    /// only tell their receiver of a term it will never lead; successes a leader already
    /// has; AppendEntries of its term a follower already holds), as one: the search keys a
    /// state by its classes and the model delivers one member per class (a sound reduction,
    /// see `RaftState::delivery_classes`; on by default, off only to compare). Only for the
    /// correct protocol.
    pub merge_equivalent_messages: bool,
    /// Whether each server checks its own step and node invariants (RAFT-2, 6, 8, 9, 10)
    /// after every input, and the model checks them as properties. Off, only the cluster's
    /// properties can fail: RAFT-1, 3, 4, 5, 7 and the apply stream's RAFT-A1, A2.
    pub step_checks: bool,
    /// Visit one state per class of states equal up to a renaming of the servers (symmetry
    /// reduction, see [`super::symmetry`]; on by default, off only to compare).
    pub symmetry: bool,
    /// On networks that keep every message sent, skip states whose servers equal a visited
    /// state's and whose messages in flight are a subset of its (covering, see
    /// [`crate::search`]; on by default, off only to compare).
    pub covering: bool,
    /// A crash loses the server's memory at once: the down server's core becomes the one it
    /// will restart with (`Raft::new` from its disk), so states that differ only in what a
    /// down server held in memory are one state (see `RaftModel::crash`; on by default, off
    /// only to compare).
    pub forget_on_crash: bool,
    /// A crash and the recovery are one step, `Restart`: the server restarts from its disk
    /// at once, and the time it would stay down is time it takes no input. No state has a
    /// down server, and `max_crashes` only says whether servers crash (see
    /// `RaftModel::restart`; on by default, off only to compare, and off whenever
    /// `forget_on_crash` is, which is about down servers).
    pub restart_at_crash: bool,
    /// Servers forget the leader hint after every input (`Raft::forget_leader_hint`): it only
    /// answers a client that asks a server that does not lead, which the model's clients
    /// never do (`Propose` goes to leaders), and no protocol decision reads it, so states
    /// that differ only in it have the same futures and the same verdicts (on by default,
    /// off only to compare).
    pub forget_leader_hint: bool,
    /// Bounds on behaviour (none by default): each removes behaviours from the model, so a
    /// search with them is an under-approximation — a violation it finds is real, a pass
    /// says nothing about what they cut (see [`Limits`]).
    pub limits: Limits,
}

/// Bounds on what the cluster *does*, beyond the bounds on its state: how many election
/// campaigns, heartbeat rounds and client proposals a run may contain, and whether two
/// campaigns may overlap. Unlike the state bounds (terms, log length, crashes), which every
/// exhaustive configuration of `aver check` uses and which keep every behaviour that stays
/// within them, these cut behaviours that stay within the state bounds: a search with them
/// explores a subset of the runs, so whatever it finds is a real run of the model (a real
/// counterexample), but a search that passes with them proves nothing about the runs they
/// exclude. They exist to reach bugs that need several elections but few messages, at a
/// depth where the unrestricted search is out of reach (`aver check raft --max-campaigns 4
/// --one-candidate ...`; specs/bugs.md lists where each is used). The budgets spent are part
/// of the state ([`super::state::Spent`]), counted only for the limits that are set, so a
/// model without limits has exactly the states it had before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Election timeouts (a follower or candidate starts a campaign) in a whole run, all
    /// servers together.
    pub campaigns: Option<u8>,
    /// Heartbeat timeouts (a leader resends AppendEntries) in a whole run, all servers together.
    /// A leader still sends AppendEntries when it is elected, when it appends and when a
    /// follower answers.
    pub heartbeats: Option<u8>,
    /// Client proposals in a whole run (besides `max_log`, which bounds each log).
    pub proposals: Option<u8>,
    /// A server's election timer fires only while no other server is a candidate: campaigns
    /// never overlap (no split votes).
    pub one_candidate: bool,
}

impl Limits {
    /// No limit: every behaviour within the state bounds.
    pub const NONE: Limits = Limits {
        campaigns: None,
        heartbeats: None,
        proposals: None,
        one_candidate: false,
    };

    /// True if any limit is set (the search is then an under-approximation).
    pub fn any(&self) -> bool {
        *self != Limits::NONE
    }

    /// The limits as `aver check` flags (each with a leading space), empty for none.
    pub fn flags(&self) -> String {
        let mut out = String::new();
        for (name, v) in [
            ("max-campaigns", self.campaigns),
            ("max-heartbeats", self.heartbeats),
            ("max-proposals", self.proposals),
        ] {
            if let Some(v) = v {
                out.push_str(&format!(" --{name} {v}"));
            }
        }
        if self.one_candidate {
            out.push_str(" --one-candidate");
        }
        out
    }
}

impl RaftModelCfg {
    /// The exhaustive CI configuration: 3 servers, duplicating network, snapshots, terms ≤ 1,
    /// logs ≤ 1 entry, no crashes (517 states kept by a one-thread DFS with every reduction,
    /// under a second; 1,163 before servers forgot the leader hint and passed over conflicts
    /// at the recorded match; 232,988 distinct states without symmetry and covering, 1,965,698 without
    /// dead-message collection too). [`RaftModelCfg::ci_crash`] adds crashes;
    /// [`RaftModelCfg::ci_terms2`] two terms with entries and a crash;
    /// [`RaftModelCfg::ci_terms2_snapshots`] snapshots too.
    pub fn ci() -> RaftModelCfg {
        RaftModelCfg {
            servers: 3,
            max_term: 1,
            max_log: 1,
            max_crashes: 0,
            network: NetworkKind::Duplicating,
            compaction: true,
            bugs: Bugs::NONE,
            collect_dead_messages: true,
            collect_stale_requests: true,
            merge_equivalent_messages: true,
            step_checks: true,
            symmetry: true,
            covering: true,
            forget_on_crash: true,
            restart_at_crash: true,
            forget_leader_hint: true,
            limits: Limits::NONE,
        }
    }

    /// The second exhaustive CI configuration: [`RaftModelCfg::ci`] with one crash (and
    /// recovery from storage) instead of snapshots — terms ≤ 1, logs ≤ 1 entry, duplicating
    /// network (233 states kept; 1,110 before the leader hint and the stale conflict, 2,462
    /// then with a down interval, `restart_at_crash` off, 6,976
    /// without `forget_on_crash` too; 366,876 distinct states without symmetry, covering,
    /// forgetting and restarting at the crash).
    pub fn ci_crash() -> RaftModelCfg {
        RaftModelCfg {
            max_crashes: 1,
            compaction: false,
            ..RaftModelCfg::ci()
        }
    }

    /// An exhaustive CI configuration with logs: [`RaftModelCfg::ci`] with one crash
    /// *and* snapshots, so a server may restart from a snapshot — terms ≤ 1, logs ≤ 1 entry,
    /// duplicating network (700 states kept; 4,935 before the leader hint and the stale
    /// conflict, 11,172 then without `restart_at_crash`, 38,177
    /// without `forget_on_crash` too; 3,304,512 distinct states without symmetry, covering,
    /// forgetting and restarting at the crash). Its paths include those of `ci` and
    /// `ci_crash`, which stay as fast first checks.
    pub fn ci_crash_snapshots() -> RaftModelCfg {
        RaftModelCfg {
            max_crashes: 1,
            ..RaftModelCfg::ci()
        }
    }

    /// The third exhaustive CI configuration: elections only — two terms, one crash, empty
    /// logs, duplicating network — deep enough for a leader to crash and another to be
    /// elected in the next term (618 states kept; 1,146 before the leader hint and the stale
    /// conflict, 2,919 then without `restart_at_crash`, 5,064
    /// without `collect_stale_requests` too, 5,635 without `forget_on_crash` as well; 237,032
    /// distinct states without symmetry, covering, forgetting and restarting at the crash).
    pub fn ci_reelect() -> RaftModelCfg {
        RaftModelCfg {
            max_term: 2,
            max_log: 0,
            max_crashes: 1,
            compaction: false,
            ..RaftModelCfg::ci()
        }
    }

    /// A leader change *with* log entries: terms ≤ 2, logs ≤ 1 entry, one crash with
    /// recovery, no snapshots, duplicating network — so conflicting entries are truncated,
    /// votes compare logs (§5.4.1) and a second leader replicates over a first one's entries
    /// (6,393 states kept by a one-thread DFS, about 0.4 s of CPU. Before servers forgot the
    /// leader hint and passed over conflicts at the recorded match: 19,191; and then, taking
    /// each reduction off in turn on top of the last, 45,043 without `restart_at_crash`,
    /// 74,462 without `merge_equivalent_messages`, 187,861 without `collect_stale_requests`,
    /// 325,441 without `forget_on_crash`; unfinished after 7.9M states before symmetry and
    /// covering).
    pub fn ci_terms2() -> RaftModelCfg {
        RaftModelCfg {
            max_term: 2,
            max_crashes: 1,
            compaction: false,
            ..RaftModelCfg::ci()
        }
    }

    /// A leader change with log entries *and* snapshots: [`RaftModelCfg::ci_terms2`] with
    /// compaction — terms ≤ 2, logs ≤ 1 entry, one crash with recovery, snapshots,
    /// duplicating network — so a second leader sends a snapshot to a follower that missed
    /// the entry, and a server restarts from a snapshot after a leader change (19,701 states
    /// kept by a one-thread DFS, about 1 s of CPU; 76,194 before servers forgot the leader
    /// hint and passed over conflicts at the recorded match, 172,387 without
    /// `restart_at_crash` too, 340,774 without `merge_equivalent_messages` as well). Its paths
    /// include those of `ci_terms2`, which stays as a fast first check.
    pub fn ci_terms2_snapshots() -> RaftModelCfg {
        RaftModelCfg {
            compaction: true,
            ..RaftModelCfg::ci_terms2()
        }
    }

    /// The deepest configuration `aver check` runs: two terms of elections with two-entry
    /// logs, snapshots and one crash with recovery — 3 servers, terms ≤ 2, logs ≤ 2 entries,
    /// duplicating network (`aver check raft --max-term 2 --max-log 2 --crashes 1`; 1,603,774
    /// states kept by a two-thread DFS with every reduction, about 90 s on 2 cores; see
    /// specs/bugs.md for how it came within reach). Every kind of progress is reachable: a
    /// second leader replicates over a first one's entries, a follower truncates them, a
    /// leader backs up by the conflict hint, an entry of term 1 commits in term 2, a follower
    /// installs a snapshot.
    pub fn terms2_logs2() -> RaftModelCfg {
        RaftModelCfg {
            max_term: 2,
            max_log: 2,
            max_crashes: 1,
            ..RaftModelCfg::ci()
        }
    }

    /// The nightly configuration: [`RaftModelCfg::terms2_logs2`] with a third term (terms ≤ 3,
    /// logs ≤ 2, snapshots, one crash): a leader of term 3 over two earlier leaders' entries
    /// (`aver check raft --max-term 3 --max-log 2 --crashes 1`).
    pub fn nightly() -> RaftModelCfg {
        RaftModelCfg {
            max_term: 3,
            ..RaftModelCfg::terms2_logs2()
        }
    }

    /// Every exhaustive CI configuration, by name: what `aver check` runs.
    pub fn ci_all() -> Vec<(&'static str, RaftModelCfg)> {
        vec![
            ("ci", RaftModelCfg::ci()),
            ("ci_crash", RaftModelCfg::ci_crash()),
            ("ci_reelect", RaftModelCfg::ci_reelect()),
            ("ci_crash_snapshots", RaftModelCfg::ci_crash_snapshots()),
            ("ci_terms2", RaftModelCfg::ci_terms2()),
            ("ci_terms2_snapshots", RaftModelCfg::ci_terms2_snapshots()),
            ("terms2_logs2", RaftModelCfg::terms2_logs2()),
        ]
    }

    /// The deep bounds — 3 servers, duplicating network, one crash at a time with
    /// recovery, snapshots, terms ≤ 3, logs ≤ 2 entries — used for witness paths, random walks
    /// (`--simulate`) and the seeded-bug tests. Too large to exhaust.
    pub fn deep() -> RaftModelCfg {
        RaftModelCfg {
            max_term: 3,
            max_log: 2,
            max_crashes: 1,
            ..RaftModelCfg::ci()
        }
    }

    /// False if the bounds make the `sometimes` property `name` unreachable by construction
    /// (no crashes, no second term, no snapshots), so that a missing example is expected.
    /// With [`Limits`], any of them may be cut, so none is expected.
    pub fn can_reach(&self, name: &str) -> bool {
        if self.limits.any() {
            return false;
        }
        let (terms, entries) = (self.max_term, self.max_log);
        match name {
            "new leader after crash" => self.max_crashes >= 1 && terms >= 2,
            "follower installs a snapshot" => self.compaction && self.servers >= 3 && entries >= 1,
            "entry committed" | "follower applies an entry" => entries >= 1,
            "follower truncates a conflicting entry" => {
                self.servers >= 3 && terms >= 2 && entries >= 1
            }
            "leader backs up by the conflict hint" => self.servers >= 2 && entries >= 2,
            "entry of an earlier term committed" => self.servers >= 2 && terms >= 2 && entries >= 2,
            _ => true,
        }
    }

    /// The voters, `n0..n{servers-1}`; actor index `i` is `NodeId(i)`.
    pub fn voters(&self) -> Vec<NodeId> {
        (0..self.servers as u32).map(NodeId).collect()
    }

    /// Builds the model.
    pub fn into_model(self) -> RaftModel {
        RaftModel::new(self)
    }

    /// The state bound: every server's term is at most `max_term`; on networks that hold
    /// copies (all but the duplicating ones, where a resent message is the same set element)
    /// at most [`IN_FLIGHT_MAX_PER_SERVER`] × servers messages are in flight, since every
    /// heartbeat adds a copy and the space would otherwise be infinite.
    pub fn within_boundary(&self, state: &RaftState) -> bool {
        let copies = !self.network.duplicating();
        if copies && state.network.len() > IN_FLIGHT_MAX_PER_SERVER * self.servers {
            return false;
        }
        state
            .servers
            .iter()
            .all(|s| s.raft.term().0 <= self.max_term)
    }
}
