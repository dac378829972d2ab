//! A bounded message queue that drops the **oldest** message when full: the queue from a
//! node's event loop to the task that writes to one peer's connection.
//!
//! Raft tolerates loss, and when a peer is slow, paused or unreachable the newest messages
//! (the latest heartbeat, the latest entries) are the useful ones; dropping the oldest also
//! means a peer that reconnects is not first flooded with stale traffic. Every drop is
//! counted. The event loop never blocks on a peer.
//!
//! Shared between tasks, so it is model-checked with loom (`src/loom_tests.rs`).

use super::sync::Mutex;
use std::collections::VecDeque;

/// A bounded drop-oldest queue.
#[derive(Debug)]
pub struct Outbox<T> {
    state: Mutex<State<T>>,
    capacity: usize,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    dropped: u64,
}

impl<T> Outbox<T> {
    /// A queue holding at most `capacity` (≥ 1) items.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity >= 1, "an outbox holds at least one message");
        Outbox {
            state: Mutex::new(State {
                items: VecDeque::new(),
                dropped: 0,
            }),
            capacity,
        }
    }

    /// Queues `item`, dropping the oldest queued item if full. Returns true if one was dropped.
    pub fn push(&self, item: T) -> bool {
        let mut st = self.state.lock().expect("outbox lock");
        st.items.push_back(item);
        if st.items.len() > self.capacity {
            st.items.pop_front();
            st.dropped += 1;
            return true;
        }
        false
    }

    /// Takes every queued item, oldest first.
    pub fn drain(&self) -> Vec<T> {
        let mut st = self.state.lock().expect("outbox lock");
        st.items.drain(..).collect()
    }

    /// Items dropped so far.
    pub fn dropped(&self) -> u64 {
        self.state.lock().expect("outbox lock").dropped
    }
}
