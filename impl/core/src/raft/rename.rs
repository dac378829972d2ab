//! Renaming servers: the same cluster state under another naming of its servers.
//!
//! Raft uses server ids as names only. No decision depends on which id a server has, only on
//! which ids are equal (a vote for *this* candidate, a reply from *that* follower); the order
//! of `Config::voters` only fixes positions in per-voter tables (a leader's progress, a
//! candidate's votes), and a renaming permutes those tables along. So renaming every id in a
//! cluster's state — servers, disks and messages — by one permutation gives a state that
//! behaves exactly the same up to that renaming. A model checker uses this to visit one state
//! per class of states that differ only in naming (symmetry reduction).
//!
//! The service's data may name servers too (the model's commands carry their proposer), so a
//! [`Renaming`] also says how it acts on commands and snapshot bytes.

use super::log::{Durable, Log};
use super::message::{AppendEntries, InstallSnapshot, Message};
use super::types::{Command, HardState, Snapshot};
use super::{Config, Raft, RaftReady, Role};
use crate::contract::NodeId;
use std::sync::Arc;

/// A permutation of the voters' ids, and how it acts on the service's data.
pub struct Renaming<'a, C> {
    /// The new id of each id. Must be a permutation of the cluster's voters.
    pub ids: &'a dyn Fn(NodeId) -> NodeId,
    /// A command under the renaming (the identity if commands name no server).
    pub command: &'a dyn Fn(&C) -> C,
    /// Snapshot bytes under the renaming (the identity if they name no server).
    pub snapshot_data: &'a dyn Fn(&[u8]) -> Arc<[u8]>,
}

impl<C: Command> Renaming<'_, C> {
    fn snapshot(&self, s: &Snapshot) -> Snapshot {
        Snapshot {
            meta: s.meta,
            data: (self.snapshot_data)(&s.data),
        }
    }

    fn log(&self, log: &Log<C>) -> Log<C> {
        log.map_commands(self.command)
    }

    /// A durable state under the renaming.
    pub fn durable(&self, d: &Durable<C>) -> Durable<C> {
        Durable {
            hard: HardState {
                term: d.hard.term,
                voted_for: d.hard.voted_for.map(self.ids),
            },
            log: self.log(&d.log),
            snapshot: d.snapshot.as_ref().map(|s| self.snapshot(s)),
        }
    }

    /// A message under the renaming (messages name no server; their commands and snapshots
    /// may).
    pub fn message(&self, m: &Message<C>) -> Message<C> {
        match m {
            Message::AppendEntries(a) => Message::AppendEntries(AppendEntries {
                entries: a
                    .entries
                    .iter()
                    .map(|e| super::Entry {
                        term: e.term,
                        command: (self.command)(&e.command),
                    })
                    .collect(),
                ..a.clone()
            }),
            Message::InstallSnapshot(s) => Message::InstallSnapshot(InstallSnapshot {
                term: s.term,
                snapshot: self.snapshot(&s.snapshot),
            }),
            other => other.clone(),
        }
    }
}

impl<C: Command> Raft<C> {
    /// This server's state under `renaming`, as the server named `config.id` (which must be
    /// the renamed id of this server, with the same voters and settings). Pure: `self` is
    /// unchanged. The server must have no undrained outputs.
    pub fn renamed(&self, config: Arc<Config>, renaming: &Renaming<'_, C>) -> Raft<C> {
        assert!(
            self.ready == RaftReady::default(),
            "rename a drained server"
        );
        let ids = renaming.ids;
        assert_eq!(
            config.id,
            ids(self.config.id),
            "config of the renamed server"
        );
        debug_assert!(
            config.same_cluster(&self.config),
            "a renaming keeps the voters and settings"
        );
        // Position p of the old voters table holds what position `moved(p)` holds after.
        let moved = |p: usize| {
            config
                .position(ids(self.config.voters[p]))
                .expect("a renaming permutes the voters")
        };
        let role = match &self.role {
            Role::Follower => Role::Follower,
            Role::Candidate { votes } => Role::Candidate {
                votes: (0..self.config.voters.len())
                    .filter(|&p| votes & (1 << p) != 0)
                    .fold(0, |acc, p| acc | 1 << moved(p)),
            },
            Role::Leader { progress, reads } => {
                let mut renamed = progress.clone();
                for (p, pr) in progress.iter().enumerate() {
                    renamed[moved(p)] = *pr;
                }
                // Reads are named by the service, not by server ids.
                Role::Leader {
                    progress: renamed,
                    reads: reads.clone(),
                }
            }
        };
        Raft {
            config,
            durable: renaming.durable(&self.durable),
            role,
            leader: self.leader.map(ids),
            commit: self.commit,
            applied: self.applied,
            violation: self.violation.clone(),
            read_states: self.read_states.clone(),
            ready: RaftReady::default(),
        }
    }
}

impl Config {
    /// True if `other` describes a server of the same cluster with the same settings (all but
    /// the id equal).
    pub fn same_cluster(&self, other: &Config) -> bool {
        self.voters == other.voters
            && self.entries_per_message_max == other.entries_per_message_max
            && self.bugs == other.bugs
            && self.step_checks == other.step_checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{LogIndex, Timer};

    /// Commands name their proposer (`100 + id`), as the model's do; snapshot bytes are
    /// commands.
    fn rename_cmd(perm: &[u32], c: &u32) -> u32 {
        100 + perm[(*c - 100) as usize]
    }

    struct Named {
        perm: Vec<u32>,
        configs: Vec<Arc<Config>>,
    }

    impl Named {
        fn new(perm: Vec<u32>) -> Named {
            let voters: Vec<NodeId> = (0..perm.len() as u32).map(NodeId).collect();
            let configs = voters
                .iter()
                .map(|&id| Arc::new(Config::new(id, voters.clone())))
                .collect();
            Named { perm, configs }
        }

        fn apply<R>(&self, f: impl FnOnce(&Renaming<'_, u32>) -> R) -> R {
            let perm = &self.perm;
            let ids = |n: NodeId| NodeId(perm[n.0 as usize]);
            let command = |c: &u32| rename_cmd(perm, c);
            let data = |d: &[u8]| -> Arc<[u8]> {
                d.iter()
                    .map(|&b| rename_cmd(perm, &(b as u32)) as u8)
                    .collect()
            };
            f(&Renaming {
                ids: &ids,
                command: &command,
                snapshot_data: &data,
            })
        }

        fn server(&self, r: &Raft<u32>) -> Raft<u32> {
            let to = self.perm[r.id().0 as usize] as usize;
            self.apply(|rn| r.renamed(self.configs[to].clone(), rn))
        }
    }

    /// A tiny cluster run twice: as is, and renamed by `perm`. Every input goes to both (the
    /// renamed input to the renamed server); after each, the renamed run must equal the
    /// renaming of the plain run, outputs included.
    struct Twin {
        plain: Vec<Raft<u32>>,
        renamed: Vec<Raft<u32>>,
        pending: Vec<(NodeId, NodeId, Message<u32>)>,
        naming: Named,
    }

    impl Twin {
        fn new(perm: Vec<u32>) -> Twin {
            let naming = Named::new(perm);
            let plain: Vec<Raft<u32>> = naming
                .configs
                .iter()
                .map(|c| Raft::new((**c).clone(), Durable::default()))
                .collect();
            let mut renamed = plain.clone();
            for r in &plain {
                let to = naming.perm[r.id().0 as usize] as usize;
                renamed[to] = Raft::new((*naming.configs[to]).clone(), Durable::default());
            }
            let mut t = Twin {
                plain,
                renamed,
                pending: Vec::new(),
                naming,
            };
            for i in 0..t.plain.len() {
                t.drain_and_compare(i);
            }
            t
        }

        fn drain_and_compare(&mut self, i: usize) {
            let j = self.naming.perm[i] as usize;
            let a = self.plain[i].take_ready();
            let b = self.renamed[j].take_ready();
            // Messages go to peers in id order, which a renaming changes: compare as sets.
            let mut expected: Vec<_> = a
                .messages
                .iter()
                .map(|(to, m)| {
                    let to = NodeId(self.naming.perm[to.0 as usize]);
                    (to, self.naming.apply(|rn| rn.message(m)))
                })
                .collect();
            let mut got = b.messages.clone();
            expected.sort();
            got.sort();
            assert_eq!(got, expected, "messages of n{i} renamed");
            assert_eq!(b.timers, a.timers);
            assert_eq!(b.persist.len(), a.persist.len());
            assert_eq!(
                self.renamed[j],
                self.naming.server(&self.plain[i]),
                "n{i} renamed"
            );
            let me = self.plain[i].id();
            self.pending
                .extend(a.messages.into_iter().map(|(to, m)| (me, to, m)));
        }

        fn step(&mut self, choice: u64) {
            let n = self.plain.len();
            let i = (choice % n as u64) as usize;
            let j = self.naming.perm[i] as usize;
            match (choice / 7) % 6 {
                0 | 1 if !self.pending.is_empty() => {
                    let k = (choice / 43) as usize % self.pending.len();
                    let (from, to, m) = self.pending.swap_remove(k);
                    let (i, j) = (to.0 as usize, self.naming.perm[to.0 as usize] as usize);
                    let rm = self.naming.apply(|rn| rn.message(&m));
                    let rfrom = NodeId(self.naming.perm[from.0 as usize]);
                    self.plain[i].on_message(from, m);
                    self.renamed[j].on_message(rfrom, rm);
                    self.drain_and_compare(i);
                    return;
                }
                2 => {
                    self.plain[i].on_timeout(Timer::Election);
                    self.renamed[j].on_timeout(Timer::Election);
                }
                3 => {
                    self.plain[i].on_timeout(Timer::Heartbeat);
                    self.renamed[j].on_timeout(Timer::Heartbeat);
                }
                4 => {
                    let c = 100 + i as u32;
                    let a = self.plain[i].propose(c).is_ok();
                    let b = self.renamed[j]
                        .propose(rename_cmd(&self.naming.perm, &c))
                        .is_ok();
                    assert_eq!(a, b);
                }
                _ => {
                    let applied = self.plain[i].applied_index();
                    let data: Arc<[u8]> = (1..=applied.0).map(|k| 100 + (k % 3) as u8).collect();
                    let rdata = self.naming.apply(|rn| (rn.snapshot_data)(&data));
                    let a = self.plain[i].snapshot(applied, data);
                    let b = self.renamed[j].snapshot(applied, rdata);
                    assert_eq!(a, b);
                }
            }
            self.drain_and_compare(i);
        }
    }

    fn schedule(perm: &[u32], rng: &mut u64) -> Twin {
        let mut twin = Twin::new(perm.to_vec());
        for _ in 0..60 {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            twin.step(*rng);
        }
        twin
    }

    /// Renaming commutes with every input (the soundness condition of symmetry reduction: a
    /// model checker may visit one state per naming class), and renaming back by the inverse
    /// permutation gives the state back. The schedules reach commits and snapshots.
    #[test]
    fn renaming_commutes_with_every_input_and_round_trips() {
        let perms: [(&[u32], &[u32]); 3] = [
            (&[1, 2, 0], &[2, 0, 1]),
            (&[2, 1, 0], &[2, 1, 0]),
            (&[0, 2, 1], &[0, 2, 1]),
        ];
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let (mut commits, mut snapshots) = (0, 0);
        for (perm, inverse) in perms {
            for _ in 0..200 {
                let twin = schedule(perm, &mut rng);
                let back = Named::new(inverse.to_vec());
                for (j, r) in twin.renamed.iter().enumerate() {
                    assert_eq!(back.server(r), twin.plain[back.perm[j] as usize]);
                }
                commits += twin.plain.iter().any(|r| r.commit_index() > LogIndex(0)) as u32;
                snapshots += twin.plain.iter().any(|r| r.log().base().index.0 > 0) as u32;
            }
        }
        assert!(commits >= 20 && snapshots >= 10, "{commits} {snapshots}");
    }
}
