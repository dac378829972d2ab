//! The group-commit queue between a node's event loop and its committer thread.
//!
//! The event loop [`submit`](GroupQueue::submit)s each batch of persist operations and gets a
//! ticket; the committer [`take`](GroupQueue::take)s *everything* queued at once and makes it
//! durable with one fsync. While that fsync runs, new batches queue up, and the next `take`
//! gets them all: one fsync covers every `Ready` that arrived meanwhile. Tickets are issued
//! in submission order, and a `take` returns the batches in that order with the ticket of the
//! last, so "durable up to ticket t" is well defined.
//!
//! Shared between an async task and a thread, so it is model-checked with loom
//! (`src/loom_tests.rs` compiles this very file against loom's primitives).

use super::sync::{Condvar, Mutex};

/// A multi-producer, single-consumer queue whose consumer takes everything at once.
#[derive(Debug)]
pub struct GroupQueue<T> {
    state: Mutex<State<T>>,
    nonempty: Condvar,
}

#[derive(Debug)]
struct State<T> {
    items: Vec<T>,
    /// Tickets issued so far (the last one issued).
    issued: u64,
    closed: bool,
}

/// The queue was closed: nothing more is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

impl<T> Default for GroupQueue<T> {
    fn default() -> Self {
        GroupQueue {
            state: Mutex::new(State {
                items: Vec::new(),
                issued: 0,
                closed: false,
            }),
            nonempty: Condvar::new(),
        }
    }
}

impl<T> GroupQueue<T> {
    /// An empty, open queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `item`; returns its ticket (1, 2, 3, … in submission order).
    pub fn submit(&self, item: T) -> Result<u64, Closed> {
        let mut st = self.state.lock().expect("group queue lock");
        if st.closed {
            return Err(Closed);
        }
        st.items.push(item);
        st.issued += 1;
        let ticket = st.issued;
        drop(st);
        self.nonempty.notify_one();
        Ok(ticket)
    }

    /// Blocks until something is queued, then takes everything: the items in submission
    /// order and the ticket of the last. `None` once the queue is closed and empty.
    pub fn take(&self) -> Option<(Vec<T>, u64)> {
        let mut st = self.state.lock().expect("group queue lock");
        loop {
            if !st.items.is_empty() {
                let items = std::mem::take(&mut st.items);
                return Some((items, st.issued));
            }
            if st.closed {
                return None;
            }
            st = self.nonempty.wait(st).expect("group queue lock");
        }
    }

    /// Refuses further submissions; the consumer still gets what is queued.
    pub fn close(&self) {
        self.state.lock().expect("group queue lock").closed = true;
        self.nonempty.notify_all();
    }
}
