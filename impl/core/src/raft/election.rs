//! Leader election (§5.2, §5.4.1): timeouts, RequestVote on both sides, becoming leader.

use super::types::{Command, LogIndex};
use super::{
    Bug, HardState, LeaderReads, Message, NodeId, PersistOp, Progress, Raft, RequestVote,
    RequestVoteReply, Role, Timer,
};
use crate::contract::TimerCmd;

impl<C: Command> Raft<C> {
    /// Followers and candidates start an election; a leader's election timer is cancelled, so
    /// a late firing is ignored.
    pub(super) fn on_election_timeout(&mut self) {
        if self.is_leader() {
            return;
        }
        self.become_candidate();
    }

    /// New term, vote for self (durably, before any RequestVote leaves), ask everyone.
    fn become_candidate(&mut self) {
        let term = super::Term(self.term().0 + 1);
        self.set_hard_state(HardState {
            term,
            voted_for: Some(self.config.id),
        });
        self.role = Role::Candidate { votes: 0 };
        self.leader = None;
        self.ready.timers.push(TimerCmd::Set(Timer::Election));
        self.record_vote(self.config.id);
        if !self.is_leader() {
            let request = RequestVote {
                term,
                last_log_index: self.durable.log.last_index(),
                last_log_term: self.durable.log.last_term(),
            };
            for peer in self.peers() {
                self.send(peer, Message::RequestVote(request.clone()));
            }
        }
    }

    /// Counts a granted vote; a majority makes this candidate the leader.
    fn record_vote(&mut self, voter: NodeId) {
        let Some(pos) = self.config.position(voter) else {
            return;
        };
        let Role::Candidate { votes } = &mut self.role else {
            return;
        };
        *votes |= 1 << pos;
        if votes.count_ones() as usize >= self.config.quorum() {
            self.become_leader();
        }
    }

    fn become_leader(&mut self) {
        let last = self.durable.log.last_index();
        let me = self.config.id;
        let progress = self
            .config
            .voters
            .iter()
            .map(|&v| Progress {
                match_index: if v == me { last } else { LogIndex(0) },
                next_index: last.next(),
                replicating: false,
                paused: false,
                read_ack: 0,
            })
            .collect();
        self.role = Role::Leader {
            progress,
            reads: LeaderReads::default(),
        };
        self.leader = Some(me);
        self.ready.timers.push(TimerCmd::Cancel(Timer::Election));
        self.ready.timers.push(TimerCmd::Set(Timer::Heartbeat));
        // Assert leadership at once, and find out where each follower's log stands.
        self.broadcast_append();
        // A single-server cluster commits on its own.
        self.maybe_commit();
    }

    /// Grants the vote iff the term is current, this server has not voted for someone else in
    /// it, and the candidate's log is at least as up to date as ours (§5.4.1). The vote is
    /// persisted before the reply leaves (the driver's persist-before-send duty).
    pub(super) fn on_request_vote(&mut self, from: NodeId, m: RequestVote) {
        let bugs = self.config.bugs;
        let current = m.term == self.term();
        let free = match self.voted_for() {
            None => true,
            Some(v) => v == from || bugs.has(Bug::VoteTwice) && !self.is_leader(),
        };
        let up_to_date = if bugs.has(Bug::UpToDateByLength) {
            m.last_log_index >= self.durable.log.last_index()
        } else {
            self.durable
                .log
                .is_up_to_date(m.last_log_index, m.last_log_term)
        };
        let granted = current && free && up_to_date;
        if granted {
            let hard = HardState {
                term: self.term(),
                voted_for: Some(from),
            };
            if bugs.has(Bug::VoteNotPersisted) {
                // Seeded bug: the vote lives only in memory; a crash forgets it.
                self.durable.apply(&PersistOp::HardState(hard));
            } else {
                self.set_hard_state(hard);
            }
            self.ready.timers.push(TimerCmd::Set(Timer::Election));
        }
        let reply = RequestVoteReply {
            term: self.term(),
            granted,
        };
        self.send(from, Message::RequestVoteReply(reply));
    }

    pub(super) fn on_request_vote_reply(&mut self, from: NodeId, m: RequestVoteReply) {
        if m.granted && m.term == self.term() {
            self.record_vote(from);
        }
    }
}
