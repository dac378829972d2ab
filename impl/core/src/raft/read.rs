//! ReadIndex (thesis §6.4; etcd's `ReadOnlySafe`): linearizable reads without a log entry.
//!
//! A leader may answer a read from its state machine only if (1) it still leads — no newer
//! leader can have acknowledged writes it does not know — and (2) it has applied everything
//! that was committed when the read began. So a read:
//!
//! 1. takes the leader's commit index as its **read index**. The commit index is only known
//!    to be the cluster's latest once the leader has committed an entry of its own term
//!    (Leader Completeness says it holds every committed entry, but not which ones are
//!    committed): until then reads are *deferred* and get their index later;
//! 2. starts a **round**: `read_ctx` is incremented and carried by every AppendEntries the
//!    leader sends from now on; a follower echoes it in its reply. When a quorum (the leader
//!    included) has answered round `n` or later in this term, no other leader could have
//!    been elected before those answers (the repliers were still in this term), so every
//!    read of rounds ≤ `n` is confirmed;
//! 3. is **released** once confirmed and `applied ≥ read index`.
//!
//! Everything lives in the leader's role data: stepping down forgets pending reads (the
//! service notices the term change and gives up on them). A server never asked to read keeps
//! `read_ctx = 0` everywhere, so Raft without reads behaves exactly as before.

use super::types::{Command, LogIndex, ReadId, ReadState};
use super::{Bug, NotLeader, Raft, Role};

/// Most reads a leader holds at once; further requests are refused as if not leading, so a
/// leader cut off from its quorum cannot accumulate reads without bound.
pub const READS_PENDING_MAX: usize = 4096;

/// A leader's ReadIndex bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaderReads {
    /// The latest round started in this term (0: none yet).
    pub round: u64,
    /// Reads with a read index, waiting for their round to be confirmed and applied.
    pub pending: Vec<PendingRead>,
    /// Reads asked for before the leader committed an entry of its term: no index yet.
    pub deferred: Vec<ReadId>,
}

/// One read with its index and round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PendingRead {
    /// The service's name for it.
    pub id: ReadId,
    /// Its read index.
    pub index: LogIndex,
    /// The round that must be confirmed.
    pub round: u64,
}

impl<C: Command> Raft<C> {
    /// The leader committed an entry of its own term, so its commit index is the cluster's.
    pub(super) fn committed_in_term(&self) -> bool {
        self.durable.log.term_at(self.commit) == Some(self.term())
    }

    pub(super) fn start_read(&mut self, id: ReadId) -> Result<(), NotLeader> {
        let not_leader = NotLeader {
            leader_hint: self.leader,
            term: self.term(),
        };
        let ready = self.committed_in_term() || self.config.bugs.has(Bug::ReadBeforeTermCommit);
        let commit = self.commit;
        let Role::Leader { reads, .. } = &mut self.role else {
            return Err(not_leader);
        };
        if reads.pending.len() + reads.deferred.len() >= READS_PENDING_MAX {
            return Err(not_leader);
        }
        if !ready {
            reads.deferred.push(id);
            return Ok(());
        }
        reads.round += 1;
        let round = reads.round;
        reads.pending.push(PendingRead {
            id,
            index: commit,
            round,
        });
        self.broadcast_append();
        Ok(())
    }

    /// The round this leader is in (carried by every AppendEntries it sends).
    pub(super) fn read_round(&self) -> u64 {
        match &self.role {
            Role::Leader { reads, .. } => reads.round,
            _ => 0,
        }
    }

    /// A follower answered round `round`.
    pub(super) fn record_read_ack(&mut self, pos: usize, round: u64) {
        if let Role::Leader { progress, .. } = &mut self.role {
            let p = &mut progress[pos];
            p.read_ack = p.read_ack.max(round);
        }
    }

    /// Gives deferred reads their index once the leader has committed in its term, then
    /// releases every read whose round a quorum confirmed and whose index is applied. Runs at
    /// the end of every input.
    pub(super) fn release_reads(&mut self) {
        let in_term = self.committed_in_term() || self.config.bugs.has(Bug::ReadBeforeTermCommit);
        let (commit, applied, me) = (self.commit, self.applied, self.config.position(self.id()));
        let quorum = self.config.quorum();
        let without_quorum = self.config.bugs.has(Bug::ReadWithoutQuorum);
        let Role::Leader { progress, reads } = &mut self.role else {
            return;
        };
        let mut start_round = false;
        if in_term && !reads.deferred.is_empty() {
            reads.round += 1;
            let round = reads.round;
            let deferred = std::mem::take(&mut reads.deferred);
            reads
                .pending
                .extend(deferred.into_iter().map(|id| PendingRead {
                    id,
                    index: commit,
                    round,
                }));
            start_round = true;
        }
        if reads.pending.is_empty() {
            return;
        }
        // The highest round a quorum has answered; the leader answers its own rounds.
        let mut acks: Vec<u64> = progress.iter().map(|p| p.read_ack).collect();
        if let Some(me) = me {
            acks[me] = reads.round;
        }
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = if without_quorum {
            reads.round // seeded bug: trust our own leadership
        } else {
            acks[quorum - 1]
        };
        let mut released = Vec::new();
        reads.pending.retain(|r| {
            let ready = r.round <= confirmed && r.index <= applied;
            if ready {
                released.push(ReadState {
                    id: r.id,
                    index: r.index,
                });
            }
            !ready
        });
        self.read_states.extend(released);
        if start_round {
            self.broadcast_append();
        }
    }
}
