//! Messages between Raft servers. Requests and replies are separate messages: the cores are
//! message-based and need no RPC framework. Every reply echoes enough of its request to be
//! matched (or recognised as stale) without per-request ids.

use super::types::{Entry, LogIndex, Snapshot, Term};
use serde::{Deserialize, Serialize};

/// A message between two Raft servers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Message<C> {
    /// Candidate asks for a vote (§5.2).
    RequestVote(RequestVote),
    /// Answer to [`Message::RequestVote`].
    RequestVoteReply(RequestVoteReply),
    /// Leader replicates entries / heartbeats (§5.3).
    AppendEntries(AppendEntries<C>),
    /// Answer to [`Message::AppendEntries`].
    AppendEntriesReply(AppendEntriesReply),
    /// Leader sends its snapshot to a follower whose next entry it has discarded (§7).
    InstallSnapshot(InstallSnapshot),
    /// Answer to [`Message::InstallSnapshot`].
    InstallSnapshotReply(InstallSnapshotReply),
}

/// RequestVote arguments.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestVote {
    /// Candidate's term.
    pub term: Term,
    /// Index of the candidate's last log entry.
    pub last_log_index: LogIndex,
    /// Term of the candidate's last log entry.
    pub last_log_term: Term,
}

/// RequestVote reply.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestVoteReply {
    /// The voter's current term, for the candidate to update itself.
    pub term: Term,
    /// True means the candidate received the vote.
    pub granted: bool,
}

/// AppendEntries arguments. An empty `entries` is a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AppendEntries<C> {
    /// Leader's term.
    pub term: Term,
    /// Index of the entry immediately preceding `entries`.
    pub prev_log_index: LogIndex,
    /// Term of that entry.
    pub prev_log_term: Term,
    /// Entries to store, starting at `prev_log_index + 1`.
    pub entries: Vec<Entry<C>>,
    /// Leader's commit index.
    pub leader_commit: LogIndex,
    /// The leader's latest ReadIndex round (0 until a read is asked for): a reply echoing it
    /// proves the follower still recognised this leader's term after the round began.
    pub read_ctx: u64,
}

/// AppendEntries reply.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AppendEntriesReply {
    /// The follower's current term.
    pub term: Term,
    /// Success or the follower's hint for fast backtracking.
    pub result: AppendResult,
    /// The `read_ctx` of the request answered (ReadIndex quorum confirmation).
    pub read_ctx: u64,
}

/// Outcome of an AppendEntries at the follower.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AppendResult {
    /// The follower's log now matches the leader's up to `match_index`
    /// (`prev_log_index + entries.len()` of the request).
    Success {
        /// Last index known to match the leader's log.
        match_index: LogIndex,
    },
    /// The follower lacks a matching entry at `prev_log_index`. The fields are the lab's
    /// XTerm/XIndex/XLen hints so the leader can skip a whole term per round trip.
    Conflict {
        /// The `prev_log_index` of the rejected request (to recognise stale replies).
        rejected_index: LogIndex,
        /// Term of the follower's conflicting entry at `rejected_index`, if it has one.
        conflict_term: Option<Term>,
        /// First index the follower stores with `conflict_term` (valid with `conflict_term`).
        conflict_index: LogIndex,
        /// The follower's last log index.
        last_log_index: LogIndex,
    },
    /// The request's term was below the follower's. The reply says only that (its `term` is
    /// the follower's), with no log position and no read round: it answers a leader of an
    /// earlier term, and if that server leads the reply's term by the time it arrives, nothing
    /// in it may pass for an answer to the new leader's requests (etcd's raft answers a stale
    /// append with its term alone, likewise).
    StaleTerm,
}

/// InstallSnapshot arguments: the whole snapshot in one message (the lab's simplification).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstallSnapshot {
    /// Leader's term.
    pub term: Term,
    /// The leader's snapshot.
    pub snapshot: Snapshot,
}

/// InstallSnapshot reply.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstallSnapshotReply {
    /// The follower's current term.
    pub term: Term,
    /// The snapshot index the request carried; the follower now holds at least that prefix.
    pub match_index: LogIndex,
}

impl<C> Message<C> {
    /// The sender's term.
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote(m) => m.term,
            Message::RequestVoteReply(m) => m.term,
            Message::AppendEntries(m) => m.term,
            Message::AppendEntriesReply(m) => m.term,
            Message::InstallSnapshot(m) => m.term,
            Message::InstallSnapshotReply(m) => m.term,
        }
    }

    /// True for requests (RPC calls), false for replies. Network models treat the two
    /// differently (labrpc drops requests before and replies after the handler ran).
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Message::RequestVote(_) | Message::AppendEntries(_) | Message::InstallSnapshot(_)
        )
    }

    /// Folds `later` into `self` when one message does exactly what delivering both, in
    /// order, would do; returns `later` back when it cannot. Both must go to the same server,
    /// with no message to it between them, and leave together (a driver sending a batch).
    ///
    /// * Two AppendEntries of one term, `later` starting where `self` ends, at most
    ///   `entries_max` entries together: one request carrying both runs of entries, the later
    ///   `leader_commit` and `read_ctx` (both only grow within a leader's term). The receiver
    ///   checks the same `prev` entry, stores the same entries and reaches the same commit
    ///   index (the leader's commit, capped by the last new entry, as the second request
    ///   would set it).
    /// * Two successful AppendEntries replies of one term: one reply with the larger
    ///   `match_index` and `read_ctx`. A leader takes the maximum of both anyway, in any
    ///   order (specs/raft.md §3).
    ///
    /// Anything else (votes, snapshots, conflict hints) is never merged.
    pub fn coalesce(&mut self, later: Message<C>, entries_max: usize) -> Option<Message<C>> {
        match (self, later) {
            (Message::AppendEntries(a), Message::AppendEntries(b))
                if a.term == b.term
                    && b.prev_log_index.0 == a.prev_log_index.0 + a.entries.len() as u64
                    && Some(b.prev_log_term)
                        == a.entries.last().map(|e| e.term).or(Some(a.prev_log_term))
                    && a.entries.len() + b.entries.len() <= entries_max =>
            {
                a.entries.extend(b.entries);
                a.leader_commit = a.leader_commit.max(b.leader_commit);
                a.read_ctx = a.read_ctx.max(b.read_ctx);
                None
            }
            (Message::AppendEntriesReply(a), Message::AppendEntriesReply(b))
                if a.term == b.term =>
            {
                match (&mut a.result, &b.result) {
                    (
                        AppendResult::Success { match_index: m },
                        AppendResult::Success { match_index: n },
                    ) => {
                        *m = (*m).max(*n);
                        a.read_ctx = a.read_ctx.max(b.read_ctx);
                        None
                    }
                    _ => Some(Message::AppendEntriesReply(b)),
                }
            }
            (_, later) => Some(later),
        }
    }

    /// Short name of the message kind, for traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::RequestVote(_) => "RequestVote",
            Message::RequestVoteReply(_) => "RequestVoteReply",
            Message::AppendEntries(_) => "AppendEntries",
            Message::AppendEntriesReply(_) => "AppendEntriesReply",
            Message::InstallSnapshot(_) => "InstallSnapshot",
            Message::InstallSnapshotReply(_) => "InstallSnapshotReply",
        }
    }
}
