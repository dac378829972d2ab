//! The model's bounds and switches, and the named configurations `aver check` runs.

use super::{Cmd, RaftModel, RaftServer, RaftState};
use aver_core::NodeId;
use aver_core::raft::{Bugs, Config, Message};
use stateright::actor::{ActorModel, LossyNetwork, Network};
use std::fmt;
use std::str::FromStr;

/// Which Stateright network the messages travel on (always unordered except `Ordered`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkKind {
    /// Every message is delivered at most once, in any order; none is lost.
    Reliable,
    /// Delivered at most once, in any order, or lost.
    Lossy,
    /// Delivered any number of times, in any order; none is lost.
    Duplicating,
    /// Delivered any number of times, in any order, or lost (the CI network).
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

    fn lossy(self) -> bool {
        matches!(self, NetworkKind::Lossy | NetworkKind::LossyDuplicating)
    }

    fn network(self) -> Network<Message<Cmd>> {
        match self {
            NetworkKind::Reliable | NetworkKind::Lossy => Network::new_unordered_nonduplicating([]),
            NetworkKind::Duplicating | NetworkKind::LossyDuplicating => {
                Network::new_unordered_duplicating([])
            }
            NetworkKind::Ordered => Network::new_ordered([]),
        }
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
    /// Remove messages the receiver will ignore forever from the duplicating network (a
    /// sound reduction, see [`RaftModel::next_state`]; on by default, off only to compare).
    pub collect_dead_messages: bool,
}

impl RaftModelCfg {
    /// The exhaustive CI configuration: 3 servers, duplicating network, snapshots, terms ≤ 1,
    /// logs ≤ 1 entry, no crashes (232,988 unique states with dead messages collected, a few
    /// seconds; 1,965,698 without). [`RaftModelCfg::ci_crash`] adds crashes; the deeper
    /// behaviours are covered by witnesses and random walks at [`RaftModelCfg::deep`].
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
        }
    }

    /// The second exhaustive CI configuration: [`RaftModelCfg::ci`] with one crash (and
    /// recovery from storage) instead of snapshots — terms ≤ 1, logs ≤ 1 entry, duplicating
    /// network (366,876 unique states; 3,429,804 without dead-message collection).
    pub fn ci_crash() -> RaftModelCfg {
        RaftModelCfg {
            max_crashes: 1,
            compaction: false,
            ..RaftModelCfg::ci()
        }
    }

    /// The deepest exhaustive CI configuration with logs: [`RaftModelCfg::ci`] with one crash
    /// *and* snapshots, so a server may restart from a snapshot — terms ≤ 1, logs ≤ 1 entry,
    /// duplicating network (3,304,512 unique states, ≈45 s on 2 threads; without dead-message
    /// collection it did not finish: > 20.6M after 300 s). Its paths include those of `ci`
    /// and `ci_crash`, which stay as fast first checks.
    pub fn ci_crash_snapshots() -> RaftModelCfg {
        RaftModelCfg {
            max_crashes: 1,
            ..RaftModelCfg::ci()
        }
    }

    /// The third exhaustive CI configuration: elections only — two terms, one crash, empty
    /// logs, duplicating network — deep enough for a leader to crash and another to be
    /// elected in the next term (237,032 unique states; without dead-message collection it
    /// did not finish: > 16.9M after 200 s).
    pub fn ci_reelect() -> RaftModelCfg {
        RaftModelCfg {
            max_term: 2,
            max_log: 0,
            max_crashes: 1,
            compaction: false,
            ..RaftModelCfg::ci()
        }
    }

    /// Every exhaustive CI configuration, by name: what `aver check` runs.
    pub fn ci_all() -> Vec<(&'static str, RaftModelCfg)> {
        vec![
            ("ci", RaftModelCfg::ci()),
            ("ci_crash", RaftModelCfg::ci_crash()),
            ("ci_reelect", RaftModelCfg::ci_reelect()),
            ("ci_crash_snapshots", RaftModelCfg::ci_crash_snapshots()),
        ]
    }

    /// The target bounds — 3 servers, duplicating network, one crash at a time with
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
    pub fn can_reach(&self, name: &str) -> bool {
        match name {
            "new leader after crash" => self.max_crashes >= 1 && self.max_term >= 2,
            "snapshot installed" => self.compaction && self.servers >= 3,
            "entry committed" => self.max_log >= 1,
            _ => true,
        }
    }

    /// The voters, `n0..n{servers-1}`; actor index `i` is `NodeId(i)`.
    pub fn voters(&self) -> Vec<NodeId> {
        (0..self.servers as u32).map(NodeId).collect()
    }

    /// Builds the Stateright model.
    pub fn into_model(self) -> RaftModel {
        assert!((1..=9).contains(&self.servers), "1..=9 servers");
        let voters = self.voters();
        let servers: Vec<RaftServer> = voters
            .iter()
            .map(|&id| {
                let mut config = Config::new(id, voters.clone());
                config.bugs = self.bugs;
                RaftServer {
                    config,
                    max_log: self.max_log,
                    compaction: self.compaction,
                }
            })
            .collect();
        let inner = ActorModel::new(self.clone(), ())
            .actors(servers)
            .init_network(self.network.network())
            .lossy_network(if self.network.lossy() {
                LossyNetwork::Yes
            } else {
                LossyNetwork::No
            })
            .max_crashes(self.max_crashes)
            .within_boundary(RaftModelCfg::within_boundary);
        RaftModel { cfg: self, inner }
    }

    /// The state bound: every server's term is at most `max_term`; on networks that hold
    /// copies (all but the duplicating ones, where a resent message is the same set element)
    /// at most [`IN_FLIGHT_MAX_PER_SERVER`] × servers messages are in flight, since every
    /// heartbeat adds a copy and the space would otherwise be infinite.
    pub fn within_boundary(&self, state: &RaftState) -> bool {
        let copies = !matches!(state.network, Network::UnorderedDuplicating(..));
        if copies && state.network.len() > IN_FLIGHT_MAX_PER_SERVER * self.servers {
            return false;
        }
        state
            .actor_states
            .iter()
            .all(|s| s.raft.term().0 <= self.max_term)
    }
}
