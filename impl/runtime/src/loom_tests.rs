//! loom model checks of the runtime's shared-state pieces: the group-commit queue (event loop
//! and committer thread) and the drop-oldest outbox (event loop and a peer's writer task).
//! The very source files the runtime uses are compiled here a second time against loom's
//! `Mutex`/`Condvar`, so every interleaving loom explores is one of the real code.

mod sync {
    pub use loom::sync::{Condvar, Mutex};
}

// Compiling the runtime's own files a second time is the point: see the module docs.
#[allow(clippy::duplicate_mod)]
#[path = "group.rs"]
mod group;
#[allow(clippy::duplicate_mod)]
#[path = "outbox.rs"]
mod outbox;

use loom::sync::Arc;
use loom::thread;

/// Three threads explored exhaustively take many minutes; interleavings with at most two
/// preemptions (loom's recommended bound, which finds the bugs found in practice) take
/// seconds.
fn bounded() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b
}

/// Group commit: every submitted batch reaches the committer exactly once, in submission
/// order; the ticket a take reports is the ticket of its last batch, so the durable ticket the
/// committer publishes only grows and, once both sides are done, equals the last ticket
/// issued. Two producers (event loop submissions racing each other) and the committer.
#[test]
fn group_commit_takes_every_batch_once_in_order() {
    bounded().check(|| {
        let q = Arc::new(group::GroupQueue::<(u8, u8)>::new());
        let producers: Vec<_> = (0..2u8)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    let t1 = q.submit((p, 0)).unwrap();
                    let t2 = q.submit((p, 1)).unwrap();
                    assert!(t1 < t2, "tickets follow submission order");
                })
            })
            .collect();
        let committer = {
            let q = q.clone();
            thread::spawn(move || {
                let mut seen = Vec::new();
                let mut durable = 0;
                while let Some((items, ticket)) = q.take() {
                    assert!(ticket > durable, "durable ticket only grows");
                    durable = ticket;
                    seen.extend(items);
                    assert_eq!(
                        seen.len() as u64,
                        durable,
                        "a take's ticket is its last batch's"
                    );
                }
                (seen, durable)
            })
        };
        for p in producers {
            p.join().unwrap();
        }
        q.close();
        let (seen, durable) = committer.join().unwrap();
        assert_eq!(durable, 4);
        assert_eq!(seen.len(), 4);
        for p in 0..2u8 {
            let mine: Vec<u8> = seen.iter().filter(|x| x.0 == p).map(|x| x.1).collect();
            assert_eq!(mine, vec![0, 1], "each producer's batches in order, once");
        }
        assert!(q.submit((9, 9)).is_err(), "closed queues refuse");
    });
}

/// Closing wakes a committer blocked on an empty queue (a node shutting down must not hang).
#[test]
fn closing_wakes_the_committer() {
    loom::model(|| {
        let q = Arc::new(group::GroupQueue::<u8>::new());
        let committer = {
            let q = q.clone();
            thread::spawn(move || q.take().map(|(items, _)| items))
        };
        q.close();
        assert_eq!(committer.join().unwrap(), None);
    });
}

/// The outbox never holds more than its capacity, drops only the oldest, and loses nothing
/// else: every message is either delivered (in order) or counted as dropped.
#[test]
fn outbox_drops_oldest_and_counts() {
    loom::model(|| {
        let out = Arc::new(outbox::Outbox::<u8>::new(2));
        let producer = {
            let out = out.clone();
            thread::spawn(move || {
                for m in 0..4u8 {
                    out.push(m);
                }
            })
        };
        let mut got = out.drain();
        assert!(got.len() <= 2);
        producer.join().unwrap();
        got.extend(out.drain());
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "delivered in order: {got:?}"
        );
        assert_eq!(
            got.len() as u64 + out.dropped(),
            4,
            "delivered + dropped = sent"
        );
        assert_eq!(got.last(), Some(&3), "the newest message is never dropped");
    });
}
