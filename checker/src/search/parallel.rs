//! Several threads searching one partition, with one shared memo.
//!
//! Thread 0 goes on with the search that ran on one thread until it proved hard (its memo
//! becomes the shared one, so no work is lost); the others start idle. A busy thread looks,
//! every few thousand steps, whether some thread is idle, and if so hands over the untried
//! alternatives of its oldest choice that has any (the path to that configuration, its
//! state, and where the scan stopped); it will not try those itself. Work therefore splits
//! near the root, where subtrees are large.
//!
//! Why sharing the memo is sound even while configurations are still being searched: every
//! configuration recorded is eventually searched to the end by the thread that recorded it
//! (or by it and the threads it handed alternatives to), unless the search stops early. So
//! when every thread has run out of work, the recorded configurations are closed under the
//! search's moves and none of them has every returned operation linearized, which means
//! none of them extends to a linearization: the verdict is Illegal. A thread that finds a
//! linearization ends the search at once. The verdict thus never depends on timing; which
//! linearization (or longest prefix) is reported may.

use super::tables::{Budget, Local, Shared};
use super::{End, Limits, Problem, Ran, SearchStats, Task, Worker, within};
use crate::{CheckResult, Model};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Condvar, Mutex};

const RUNNING: u8 = 0;
const FOUND: u8 = 1;
const INTERRUPTED: u8 = 2;
const FULL: u8 = 3;

struct Pool<S> {
    tasks: Vec<Task<S>>,
    idle: usize,
    done: bool,
}

struct Control<S> {
    threads: usize,
    pool: Mutex<Pool<S>>,
    wake: Condvar,
    /// Some thread waits for work.
    want: AtomicBool,
    halt: AtomicU8,
    found: Mutex<Vec<u32>>,
    best: Mutex<Vec<u32>>,
    stats: Mutex<SearchStats>,
    /// The latest frontier of every thread (see `Worker::frontier`).
    frontier: AtomicU32,
}

impl<S> Control<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pool<S>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stop(&self, why: u8) {
        let _ = self
            .halt
            .compare_exchange(RUNNING, why, Ordering::SeqCst, Ordering::SeqCst);
        self.lock().done = true;
        self.wake.notify_all();
    }

    /// The next task, or `None` when the search is over.
    fn take(&self) -> Option<Task<S>> {
        let mut pool = self.lock();
        loop {
            if pool.done {
                return None;
            }
            if let Some(task) = pool.tasks.pop() {
                return Some(task);
            }
            pool.idle += 1;
            if pool.idle == self.threads {
                pool.done = true;
                self.wake.notify_all();
                return None;
            }
            self.want.store(true, Ordering::Relaxed);
            pool = self.wake.wait(pool).unwrap_or_else(|e| e.into_inner());
            pool.idle -= 1;
        }
    }

    fn give(&self, task: Task<S>) {
        let mut pool = self.lock();
        pool.tasks.push(task);
        self.want
            .store(pool.tasks.len() < pool.idle, Ordering::Relaxed);
        self.wake.notify_one();
    }

    fn offer_best(&self, best: &[u32]) {
        let mut kept = self.best.lock().unwrap_or_else(|e| e.into_inner());
        if best.len() > kept.len() {
            *kept = best.to_vec();
        }
    }
}

/// Goes on with `seed`, the search of `p` so far on one thread, on `limits.threads` threads.
/// Its tables become the read-only layer of the shared ones.
pub(super) fn run<'p, 'a, M: Model>(
    p: &'p Problem<'a, M>,
    limits: &Limits,
    seed: Worker<'p, 'a, M, Local<'_, M::State>>,
) -> Ran {
    let (seed, local) = seed.retable(());
    let Some(shared) = local.into_shared(Budget::new(limits.memory_max)) else {
        return (CheckResult::Unknown, true, seed.best, seed.stats, 0);
    };
    let mut seed = Some(seed);
    let ctl: Control<M::State> = Control {
        threads: limits.threads,
        pool: Mutex::new(Pool {
            tasks: Vec::new(),
            idle: 0,
            done: false,
        }),
        wake: Condvar::new(),
        want: AtomicBool::new(false),
        halt: AtomicU8::new(RUNNING),
        found: Mutex::new(Vec::new()),
        best: Mutex::new(Vec::new()),
        stats: Mutex::new(SearchStats::default()),
        frontier: AtomicU32::new(0),
    };
    std::thread::scope(|scope| {
        for _ in 0..limits.threads {
            let (shared, ctl, seed) = (&shared, &ctl, seed.take());
            scope.spawn(move || work(p, limits, shared, ctl, seed));
        }
    });
    let best = ctl.best.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut stats = ctl.stats.into_inner().unwrap_or_else(|e| e.into_inner());
    stats.memo_bytes = shared.budget.used() as u64;
    match ctl.halt.load(Ordering::SeqCst) {
        FOUND => {
            let found = ctl.found.into_inner().unwrap_or_else(|e| e.into_inner());
            (CheckResult::Ok, false, found, stats, 0)
        }
        FULL => (CheckResult::Unknown, true, best, stats, 0),
        INTERRUPTED => (CheckResult::Unknown, false, best, stats, 0),
        _ => {
            let frontier = ctl.frontier.load(Ordering::SeqCst);
            (CheckResult::Illegal, false, best, stats, frontier)
        }
    }
}

fn work<'p, 'a, M: Model>(
    p: &'p Problem<'a, M>,
    limits: &Limits,
    shared: &Shared<M::State>,
    ctl: &Control<M::State>,
    seed: Option<Worker<'p, 'a, M, ()>>,
) {
    let first = seed.is_some();
    let mut worker = match seed {
        Some(seed) => seed.retable(shared.handle()).0,
        None => Worker::new(p, shared.handle(), limits.track),
    };
    let mut poll = |w: &mut Worker<M, _>| {
        if ctl.halt.load(Ordering::Relaxed) != RUNNING {
            return false;
        }
        if !within(limits) {
            ctl.stop(INTERRUPTED);
            return false;
        }
        if ctl.want.load(Ordering::Relaxed)
            && let Some(task) = w.donate()
        {
            ctl.give(task);
        }
        true
    };
    let mut first = first;
    loop {
        let end = if first {
            first = false;
            let at = worker.paused.take().flatten();
            worker.search(at, &mut poll)
        } else {
            let Some(task) = ctl.take() else { break };
            let at = worker.start(task);
            worker.search(Some(at), &mut poll)
        };
        if limits.track {
            ctl.offer_best(&worker.best);
        }
        match end {
            End::Exhausted => {}
            End::Found => {
                *ctl.found.lock().unwrap_or_else(|e| e.into_inner()) = worker.linearization();
                ctl.stop(FOUND);
                break;
            }
            End::Interrupted => break,
            End::Full => {
                ctl.stop(FULL);
                break;
            }
        }
    }
    ctl.frontier.fetch_max(worker.frontier, Ordering::SeqCst);
    let mut stats = ctl.stats.lock().unwrap_or_else(|e| e.into_inner());
    stats.add(&worker.stats);
}
