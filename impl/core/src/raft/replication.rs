//! Log replication (§5.3) and the commit rule (§5.4.2): the leader's side (sending, replies,
//! counting) and the follower's side (consistency check, conflict truncation, hints).

use super::message::{AppendEntries, AppendEntriesReply, AppendResult, InstallSnapshot};
use super::types::{Command, Entry, LogIndex, Term};
use super::{Bug, Message, NodeId, NotLeader, PersistOp, Raft, Role, Timer};
use crate::contract::TimerCmd;

impl<C: Command> Raft<C> {
    // ---- leader side ----------------------------------------------------------------------

    pub(super) fn propose_entry(&mut self, command: C) -> Result<(LogIndex, Term), NotLeader> {
        if !self.is_leader() {
            return Err(NotLeader {
                leader_hint: self.leader,
                term: self.term(),
            });
        }
        let term = self.term();
        let index = self.durable.log.last_index().next();
        self.persist(PersistOp::Append {
            first: index,
            entries: vec![Entry { term, command }],
        });
        if !self.config.leader_counts_durable_only {
            let me = self.config.id;
            self.progress_mut(me)
                .expect("leader tracks itself")
                .match_index = index;
        }
        for peer in self.peers() {
            if self.progress(peer).is_some_and(|p| p.replicating) {
                self.send_append(peer);
            }
        }
        self.maybe_commit();
        Ok((index, term))
    }

    pub(super) fn on_heartbeat_timeout(&mut self) {
        if !self.is_leader() {
            return;
        }
        self.ready.timers.push(TimerCmd::Set(Timer::Heartbeat));
        self.broadcast_append();
    }

    /// One AppendEntries (or InstallSnapshot) to every follower, unpausing probes: heartbeats
    /// double as retries for lost messages.
    pub(super) fn broadcast_append(&mut self) {
        for peer in self.peers() {
            if let Some(p) = self.progress_mut(peer) {
                p.paused = false;
            }
            self.send_append(peer);
        }
    }

    /// Sends `peer` what it needs next: entries from its `next_index` (possibly none, i.e. a
    /// heartbeat), or the snapshot if those entries are compacted away.
    pub(super) fn send_append(&mut self, peer: NodeId) {
        let Some(&p) = self.progress(peer) else {
            return;
        };
        if p.paused {
            return;
        }
        let log = &self.durable.log;
        if p.next_index <= log.base().index {
            let snapshot = self
                .durable
                .snapshot
                .clone()
                .expect("compacted log has a snapshot");
            let msg = InstallSnapshot {
                term: self.term(),
                snapshot,
            };
            self.send(peer, Message::InstallSnapshot(msg));
            if let Some(p) = self.progress_mut(peer) {
                p.paused = true;
            }
            return;
        }
        let prev_log_index = p.next_index.prev();
        let prev_log_term = log
            .term_at(prev_log_index)
            .expect("prev is held or the base");
        let entries = log
            .entries_from(p.next_index, self.config.entries_per_message_max)
            .to_vec();
        let sent = entries.len() as u64;
        let msg = AppendEntries {
            term: self.term(),
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: self.commit,
            read_ctx: self.read_round(),
        };
        self.send(peer, Message::AppendEntries(msg));
        let p = self.progress_mut(peer).expect("checked above");
        if p.replicating {
            p.next_index = LogIndex(prev_log_index.0 + sent + 1);
        } else {
            p.paused = true;
        }
    }

    pub(super) fn on_append_entries_reply(&mut self, from: NodeId, m: AppendEntriesReply) {
        if !self.is_leader() || m.term != self.term() {
            return;
        }
        if let Some(pos) = self.config.position(from) {
            self.record_read_ack(pos, m.read_ctx);
        }
        match m.result {
            AppendResult::Success { match_index } => self.on_follower_matched(from, match_index),
            // Answers a request of an earlier term of ours: nothing to learn at this one.
            AppendResult::StaleTerm => {}
            AppendResult::Conflict {
                rejected_index,
                conflict_term,
                conflict_index,
                last_log_index,
            } => {
                let Some(&p) = self.progress(from) else {
                    return;
                };
                // Stale: the follower's log matches ours through `match_index`, so a rejection
                // of a `prev_log_index` at or below it answers a request from before that
                // match (as etcd's `MaybeDecrTo` reads it); one at or past `next_index`
                // answers a request we have since moved past.
                if rejected_index <= p.match_index || rejected_index >= p.next_index {
                    return;
                }
                let log = &self.durable.log;
                let hinted = match conflict_term {
                    None => last_log_index.next(),
                    Some(t) => match log.last_index_of_term(t) {
                        Some(last_of_term) => last_of_term.next(),
                        None => conflict_index,
                    },
                };
                let next = hinted.min(rejected_index).max(p.match_index.next());
                let p = self.progress_mut(from).expect("checked above");
                p.next_index = next;
                p.replicating = false;
                p.paused = false;
                self.send_append(from);
            }
        }
    }

    /// The driver reports our own log durable through `(index, term)`: a leader that counts
    /// only durable copies counts its own now (if its log still holds that entry).
    pub(super) fn count_own_durable(&mut self, index: LogIndex, term: Term) {
        if !self.config.leader_counts_durable_only || self.durable.log.term_at(index) != Some(term)
        {
            return;
        }
        let me = self.config.id;
        let Some(p) = self.progress_mut(me) else {
            return;
        };
        if index > p.match_index {
            p.match_index = index;
            self.maybe_commit();
        }
    }

    /// `peer`'s log matches ours through `match_index`: record it, maybe commit, and keep the
    /// follower fed if it is still behind.
    pub(super) fn on_follower_matched(&mut self, peer: NodeId, match_index: LogIndex) {
        let last = self.durable.log.last_index();
        let Some(p) = self.progress_mut(peer) else {
            return;
        };
        if match_index > last {
            return; // cannot happen in a correct cluster; ignore rather than trust it
        }
        p.match_index = p.match_index.max(match_index);
        p.next_index = p.next_index.max(p.match_index.next());
        p.replicating = true;
        p.paused = false;
        let behind = p.next_index <= last;
        self.maybe_commit();
        if behind {
            self.send_append(peer);
        }
    }

    /// Advances the commit index to the highest index stored on a majority, but only if that
    /// entry is from the current term (§5.4.2: counting replicas is not enough for older
    /// entries — the Figure 8 scenario).
    pub(super) fn maybe_commit(&mut self) {
        let Role::Leader { progress, .. } = &self.role else {
            return;
        };
        let mut matched: Vec<LogIndex> = progress.iter().map(|p| p.match_index).collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let mut quorum = self.config.quorum();
        if self.config.bugs.has(Bug::CommitWithoutQuorum) && quorum > 1 {
            quorum -= 1;
        }
        let candidate = matched[quorum - 1];
        if candidate <= self.commit {
            return;
        }
        let current_term = self.durable.log.term_at(candidate) == Some(self.term());
        if current_term || self.config.bugs.has(Bug::Figure8Commit) {
            self.commit = candidate;
            self.apply_committed();
        }
    }

    pub(super) fn progress(&self, peer: NodeId) -> Option<&super::Progress> {
        let Role::Leader { progress, .. } = &self.role else {
            return None;
        };
        progress.get(self.config.position(peer)?)
    }

    pub(super) fn progress_mut(&mut self, peer: NodeId) -> Option<&mut super::Progress> {
        let pos = self.config.position(peer)?;
        let Role::Leader { progress, .. } = &mut self.role else {
            return None;
        };
        progress.get_mut(pos)
    }

    // ---- follower side --------------------------------------------------------------------

    /// Answers an AppendEntries from an older term so its sender learns ours and steps down.
    pub(super) fn reject_stale_append(&mut self, from: NodeId) {
        let reply = AppendEntriesReply {
            term: self.term(),
            result: AppendResult::StaleTerm,
            read_ctx: 0,
        };
        self.send(from, Message::AppendEntriesReply(reply));
    }

    /// The consistency check, conflict truncation and commit propagation (Figure 2, receiver
    /// implementation steps 1–5).
    pub(super) fn on_append_entries(&mut self, from: NodeId, m: AppendEntries<C>) {
        // The term is current (or, with a seeded bug, stale): this is our leader.
        if !self.is_leader() {
            self.become_follower(self.term(), Some(from));
            self.ready.timers.push(TimerCmd::Set(Timer::Election));
        }
        let read_ctx = m.read_ctx;
        let result = self.append_from_leader(m);
        let reply = AppendEntriesReply {
            term: self.term(),
            result,
            read_ctx,
        };
        self.send(from, Message::AppendEntriesReply(reply));
    }

    fn append_from_leader(&mut self, m: AppendEntries<C>) -> AppendResult {
        let AppendEntries {
            mut prev_log_index,
            mut prev_log_term,
            mut entries,
            leader_commit,
            ..
        } = m;
        let base = self.durable.log.base();
        if prev_log_index < base.index {
            // Part of the request is below our snapshot: those entries are committed, hence
            // identical to the leader's. Skip them and check the rest against the base.
            let skip = (base.index.0 - prev_log_index.0) as usize;
            if entries.len() <= skip {
                let match_index = LogIndex(prev_log_index.0 + entries.len() as u64);
                return AppendResult::Success { match_index };
            }
            entries.drain(..skip);
            prev_log_index = base.index;
            prev_log_term = base.term;
        }
        let log = &self.durable.log;
        if log.term_at(prev_log_index) != Some(prev_log_term) {
            return self.conflict_hint(prev_log_index);
        }
        let last_new = LogIndex(prev_log_index.0 + entries.len() as u64);
        self.store_entries(prev_log_index, entries);
        if leader_commit > self.commit {
            self.commit = leader_commit.min(last_new).max(self.commit);
            self.apply_committed();
        }
        AppendResult::Success {
            match_index: last_new,
        }
    }

    /// Stores `entries` after `prev` (which matches): skips those we already hold, truncates at
    /// the first conflict (never before: a stale, reordered request must not delete entries a
    /// newer one added), appends the rest.
    fn store_entries(&mut self, prev: LogIndex, entries: Vec<Entry<C>>) {
        let bugs = self.config.bugs;
        let log_last = self.durable.log.last_index();
        if bugs.has(Bug::TruncateOnMatch) && log_last > prev {
            self.persist(PersistOp::Truncate(prev.next()));
        }
        let mut first_new = entries.len();
        for (k, e) in entries.iter().enumerate() {
            let index = LogIndex(prev.0 + 1 + k as u64);
            match self.durable.log.term_at(index) {
                Some(t) if t == e.term => continue,
                Some(_) if bugs.has(Bug::KeepConflicting) => continue,
                Some(_) => {
                    self.persist(PersistOp::Truncate(index));
                    first_new = k;
                    break;
                }
                None => {
                    first_new = k;
                    break;
                }
            }
        }
        if first_new < entries.len() {
            let first = LogIndex(prev.0 + 1 + first_new as u64);
            let rest = entries[first_new..].to_vec();
            self.persist(PersistOp::Append {
                first,
                entries: rest,
            });
        }
    }

    /// The XTerm/XIndex/XLen hint for a failed consistency check at `prev`.
    fn conflict_hint(&self, prev: LogIndex) -> AppendResult {
        let log = &self.durable.log;
        let last_log_index = log.last_index();
        let conflict_term = if prev > last_log_index {
            None
        } else {
            log.term_at(prev)
        };
        let conflict_index = match conflict_term {
            Some(t) => log.first_index_of_term_run(prev, t),
            None => LogIndex(0),
        };
        AppendResult::Conflict {
            rejected_index: prev,
            conflict_term,
            conflict_index,
            last_log_index,
        }
    }
}
