//! Log compaction (§7): service-initiated snapshots, and InstallSnapshot for followers that
//! need entries the leader has discarded.

use super::message::{InstallSnapshot, InstallSnapshotReply};
use super::types::{Command, LogIndex, Snapshot, SnapshotMeta};
use super::{Apply, Bug, Message, NodeId, PersistOp, Raft, Timer};
use crate::contract::TimerCmd;
use std::sync::Arc;

impl<C: Command> Raft<C> {
    pub(super) fn take_snapshot(&mut self, index: LogIndex, data: Arc<[u8]>) -> bool {
        let log = &self.durable.log;
        if index <= log.base().index || index > self.applied {
            return false;
        }
        let term = log
            .term_at(index)
            .expect("applied entries above the base are held");
        let snapshot = Snapshot {
            meta: SnapshotMeta { index, term },
            data,
        };
        self.persist(PersistOp::Snapshot(snapshot));
        true
    }

    /// Installs the leader's snapshot unless it is no newer than what we know is committed
    /// (installing an older one would move the state machine backwards). Keeps the log suffix
    /// after the snapshot if it matches.
    pub(super) fn on_install_snapshot(&mut self, from: NodeId, m: InstallSnapshot) {
        if m.term < self.term() {
            let reply = InstallSnapshotReply {
                term: self.term(),
                match_index: LogIndex(0),
            };
            self.send(from, Message::InstallSnapshotReply(reply));
            return;
        }
        if !self.is_leader() {
            self.become_follower(self.term(), Some(from));
            self.ready.timers.push(TimerCmd::Set(Timer::Election));
        }
        let meta = m.snapshot.meta;
        let old = meta.index <= self.commit;
        if !old
            || self.config.bugs.has(Bug::InstallOldSnapshot)
                && meta.index > self.durable.log.base().index
        {
            self.persist(PersistOp::Snapshot(m.snapshot.clone()));
            self.commit = if old {
                meta.index
            } else {
                self.commit.max(meta.index)
            };
            self.applied = meta.index;
            self.ready.apply.push(Apply::Snapshot(m.snapshot));
        }
        let reply = InstallSnapshotReply {
            term: self.term(),
            match_index: meta.index,
        };
        self.send(from, Message::InstallSnapshotReply(reply));
    }

    pub(super) fn on_install_snapshot_reply(&mut self, from: NodeId, m: InstallSnapshotReply) {
        if !self.is_leader() || m.term != self.term() || m.match_index == LogIndex(0) {
            return;
        }
        self.on_follower_matched(from, m.match_index);
    }
}
