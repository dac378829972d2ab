//! The committer: makes a node's persist operations durable, off the event loop, one group at
//! a time (group commit).
//!
//! The event loop submits each batch of operations (everything the inputs of one loop turn
//! persisted) and keeps running; the committer takes every batch queued since its last fsync
//! and commits them as one group through [`Storage::commit`]: one WAL write and one
//! `fdatasync`. When it returns, the committer reports "durable up to ticket t", and only then
//! does the event loop release the messages and applies that depended on those writes.
//!
//! Two ways to run it: on its own thread (real nodes: fsync blocks), or inline on the caller
//! (turmoil, whose simulated hosts must not spawn threads; the result is reported through the
//! same channel, so the event loop cannot tell the difference).

use crate::group::GroupQueue;
use crate::storage::{Storage, StorageError, StorageStats};
use aver_core::raft::{Command, LogIndex, PersistOp, Term};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// What the committer reports.
#[derive(Debug)]
pub enum CommitEvent {
    /// Every batch up to and including `ticket` is durable.
    Durable {
        /// The last durable ticket.
        ticket: u64,
        /// Storage counters after the commit.
        stats: StorageStats,
        /// Bytes of the log's current generation (for snapshot decisions).
        log_bytes: u64,
        /// Index and term of the last durable log entry (for `Raft::on_persisted`).
        last: (LogIndex, Term),
    },
    /// Storage failed; nothing after the last `Durable` is durable. The node must stop.
    Failed(StorageError),
}

enum Mode<C> {
    Thread {
        queue: Arc<GroupQueue<Vec<PersistOp<C>>>>,
        handle: Option<std::thread::JoinHandle<()>>,
    },
    Inline {
        storage: Box<Storage<C>>,
        issued: u64,
        failed: bool,
    },
}

/// Group commit in front of a node's [`Storage`].
pub struct Committer<C> {
    mode: Mode<C>,
    events: UnboundedSender<CommitEvent>,
}

impl<C: Command + Serialize + DeserializeOwned + Send> Committer<C> {
    /// A committer on a thread of its own, reporting on `events`.
    pub fn spawn(storage: Storage<C>, events: UnboundedSender<CommitEvent>) -> Committer<C> {
        let queue = Arc::new(GroupQueue::new());
        let handle = {
            let (queue, events) = (queue.clone(), events.clone());
            std::thread::Builder::new()
                .name("aver-committer".into())
                .spawn(move || commit_loop(storage, &queue, &events))
                .expect("spawn the committer thread")
        };
        Committer {
            mode: Mode::Thread {
                queue,
                handle: Some(handle),
            },
            events,
        }
    }

    /// A committer that commits on the caller's thread, at each submit.
    pub fn inline(storage: Storage<C>, events: UnboundedSender<CommitEvent>) -> Committer<C> {
        Committer {
            mode: Mode::Inline {
                storage: Box::new(storage),
                issued: 0,
                failed: false,
            },
            events,
        }
    }

    /// Queues one batch; returns its ticket. A `Durable` event with a ticket at least this
    /// one says it is durable.
    pub fn submit(&mut self, ops: Vec<PersistOp<C>>) -> u64 {
        match &mut self.mode {
            Mode::Thread { queue, .. } => queue.submit(ops).unwrap_or(u64::MAX),
            Mode::Inline {
                storage,
                issued,
                failed,
            } => {
                *issued += 1;
                if !*failed {
                    let event = commit_group(storage, vec![ops], *issued);
                    *failed = matches!(event, CommitEvent::Failed(_));
                    let _ = self.events.send(event);
                }
                *issued
            }
        }
    }

    /// Stops accepting batches, lets the committer finish what is queued, and waits for it.
    pub fn shutdown(&mut self) {
        if let Mode::Thread { queue, handle } = &mut self.mode {
            queue.close();
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}

impl<C> Drop for Committer<C> {
    fn drop(&mut self) {
        if let Mode::Thread { queue, handle } = &mut self.mode {
            queue.close();
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}

fn commit_loop<C: Command + Serialize + DeserializeOwned>(
    mut storage: Storage<C>,
    queue: &GroupQueue<Vec<PersistOp<C>>>,
    events: &UnboundedSender<CommitEvent>,
) {
    while let Some((batches, ticket)) = queue.take() {
        let event = commit_group(&mut storage, batches, ticket);
        let failed = matches!(event, CommitEvent::Failed(_));
        if events.send(event).is_err() || failed {
            queue.close();
            return;
        }
    }
}

/// Commits `batches` (several `Ready`s' operations, in order) as one group.
fn commit_group<C: Command + Serialize + DeserializeOwned>(
    storage: &mut Storage<C>,
    mut batches: Vec<Vec<PersistOp<C>>>,
    ticket: u64,
) -> CommitEvent {
    let ops = if batches.len() == 1 {
        batches.pop().expect("one batch")
    } else {
        batches.into_iter().flatten().collect()
    };
    let result = storage.commit(&ops);
    match result {
        Ok(()) => CommitEvent::Durable {
            ticket,
            stats: storage.stats(),
            log_bytes: storage.log_bytes(),
            last: {
                let log = &storage.durable().log;
                (log.last_index(), log.last_term())
            },
        },
        Err(e) => CommitEvent::Failed(e),
    }
}
