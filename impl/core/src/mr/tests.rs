//! Message-level tests of the coordinator and the worker loop: one per rule of
//! `specs/mapreduce.md`, with the invariants checked after every input.

use super::invariants::{check_coordinator, no_task_lost};
use super::*;
use crate::contract::{NodeId, TimerCmd};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A coordinator plus the driver-side facts the invariants need.
struct H {
    c: Coordinator,
    armed: BTreeSet<Timer>,
    sent: Vec<(NodeId, ToWorker)>,
    events: Vec<Event>,
}

const W1: NodeId = NodeId(1);
const W2: NodeId = NodeId(2);
const W3: NodeId = NodeId(3);

fn assign(task: TaskId, attempt: u32) -> (TaskId, Attempt) {
    (task, Attempt(attempt))
}

impl H {
    fn new(files: usize, n_reduce: u32, tweak: impl FnOnce(&mut CoordinatorConfig)) -> H {
        let files = (0..files).map(|i| format!("f{i}")).collect();
        let mut cfg = CoordinatorConfig::new(files, n_reduce);
        tweak(&mut cfg);
        H {
            c: Coordinator::new(Arc::new(cfg)),
            armed: BTreeSet::new(),
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        let ready = self.c.take_ready();
        for (to, m) in ready.messages {
            match m {
                Message::ToWorker(m) => self.sent.push((to, m)),
                Message::ToCoordinator(m) => panic!("coordinator sent {m:?}"),
            }
        }
        for t in ready.timers {
            match t {
                TimerCmd::Set(t) => self.armed.insert(t),
                TimerCmd::Cancel(t) => self.armed.remove(&t),
            };
        }
        self.events.extend(ready.apply);
        check_coordinator(&self.c).unwrap();
        no_task_lost(&self.c, &self.armed).unwrap();
    }

    fn msg(&mut self, from: NodeId, m: ToCoordinator) -> Vec<(NodeId, ToWorker)> {
        self.c.on_message(from, m);
        self.drain();
        std::mem::take(&mut self.sent)
    }

    fn request(&mut self, w: NodeId) -> Option<(TaskId, Attempt)> {
        let out = self.msg(w, ToCoordinator::Request);
        match out.as_slice() {
            [] => None,
            [(to, ToWorker::Assign(a))] if *to == w => Some((a.task, a.attempt)),
            other => panic!("unexpected reply to a request: {other:?}"),
        }
    }

    /// Runs `(task, attempt)` on `w` to done: Finished → Commit → Committed.
    fn complete(&mut self, w: NodeId, (task, attempt): (TaskId, Attempt)) -> Vec<ToWorker> {
        let out = self.msg(w, ToCoordinator::Finished { task, attempt });
        assert_eq!(out, vec![(w, ToWorker::Commit { task, attempt })]);
        let out = self.msg(w, ToCoordinator::Committed { task, attempt });
        out.into_iter().map(|(_, m)| m).collect()
    }

    fn fire(&mut self, t: Timer) -> Vec<(NodeId, ToWorker)> {
        assert!(self.armed.remove(&t), "{t:?} not armed");
        self.c.on_timeout(t);
        self.drain();
        std::mem::take(&mut self.sent)
    }
}

#[test]
fn one_worker_runs_the_whole_job_then_exits() {
    let mut h = H::new(2, 2, |_| {});
    let mut done = 0;
    while let Some(run) = h.request(W1) {
        assert!(run.0.phase() == Phase::Map || h.c.progress(Phase::Map) == (2, 2));
        h.complete(W1, run);
        done += 1;
        if h.c.is_done() {
            break;
        }
    }
    assert_eq!(done, 4);
    assert!(h.c.is_done());
    assert!(h.events.contains(&Event::JobDone));
    // Later requests (a worker started after the job) are told to exit.
    assert_eq!(
        h.msg(W2, ToCoordinator::Request),
        vec![(W2, ToWorker::Exit)]
    );
}

#[test]
fn reduces_wait_for_every_map_and_waiting_workers_get_them() {
    let mut h = H::new(2, 1, |_| {});
    let m0 = h.request(W1).unwrap();
    let m1 = h.request(W2).unwrap();
    assert_eq!(
        h.request(W3),
        None,
        "nothing idle: W3 waits, no reduce before the maps"
    );
    h.complete(W1, m0);
    let out = h.complete(W2, m1);
    // The last map's commit hands the reduce to the waiting W3 at once.
    assert!(matches!(&out[..], [ToWorker::Assign(a)] if a.task == TaskId::Reduce(0)));
    let assigned: Vec<_> = h
        .events
        .iter()
        .filter(|e| matches!(e, Event::Assigned { .. }))
        .collect();
    assert_eq!(assigned.len(), 3);
    assert_eq!(
        h.c.task(TaskId::Reduce(0))
            .unwrap()
            .running
            .get(&Attempt(1)),
        Some(&W3)
    );
}

#[test]
fn no_reassignment_without_a_timeout() {
    let mut h = H::new(1, 1, |_| {});
    let m0 = h.request(W1).unwrap();
    assert_eq!(m0, assign(TaskId::Map(0), 1));
    assert_eq!(h.request(W2), None);
    assert_eq!(h.c.task(TaskId::Map(0)).unwrap().started, 1);
}

#[test]
fn timeout_reassigns_and_the_first_finisher_commits() {
    let mut h = H::new(1, 1, |_| {});
    let slow = h.request(W1).unwrap();
    assert_eq!(h.request(W2), None);
    let out = h.fire(Timer::TaskTimeout(slow.0, slow.1));
    let Some((_, ToWorker::Assign(a))) = out.first() else {
        panic!("{out:?}")
    };
    assert_eq!((a.task, a.attempt), assign(TaskId::Map(0), 2));
    assert_eq!(a.input.as_deref(), Some("f0"));
    // The slow run finishes first: it is granted the commit (its output is complete)...
    h.complete(W1, slow);
    // ...and the newer run, finishing later, must discard its output.
    let out = h.msg(
        W2,
        ToCoordinator::Finished {
            task: a.task,
            attempt: a.attempt,
        },
    );
    assert_eq!(
        out,
        vec![(
            W2,
            ToWorker::Discard {
                task: a.task,
                attempt: a.attempt
            }
        )]
    );
}

#[test]
fn a_granted_commit_survives_its_timeout_and_blocks_other_commits() {
    let mut h = H::new(1, 1, |_| {});
    let r1 = h.request(W1).unwrap();
    let out = h.msg(
        W1,
        ToCoordinator::Finished {
            task: r1.0,
            attempt: r1.1,
        },
    );
    assert_eq!(
        out,
        vec![(
            W1,
            ToWorker::Commit {
                task: r1.0,
                attempt: r1.1
            }
        )]
    );
    // The run's timeout was cancelled with the grant: nothing to fire, nothing reassigned.
    assert!(!h.armed.contains(&Timer::TaskTimeout(r1.0, r1.1)));
    assert_eq!(h.request(W2), None);
}

#[test]
fn lost_worker_gives_its_runs_and_its_commit_back_at_once() {
    let mut h = H::new(2, 1, |_| {});
    let r1 = h.request(W1).unwrap();
    let r2 = h.request(W2).unwrap();
    h.msg(
        W2,
        ToCoordinator::Finished {
            task: r2.0,
            attempt: r2.1,
        },
    );
    assert_eq!(h.request(W3), None);
    h.c.on_worker_lost(W1);
    h.drain();
    // W3 was waiting: it gets W1's task without any timeout.
    let out = std::mem::take(&mut h.sent);
    assert!(matches!(&out[..], [(W3, ToWorker::Assign(a))] if a.task == r1.0 && a.attempt.0 == 2));
    h.c.on_worker_lost(W2);
    h.drain();
    assert!(
        h.c.task(r2.0).unwrap().is_idle(),
        "the revoked commit makes the task idle"
    );
    // Messages of a lost worker are ignored.
    assert!(
        h.msg(
            W2,
            ToCoordinator::Committed {
                task: r2.0,
                attempt: r2.1
            }
        )
        .is_empty()
    );
    assert_eq!(h.c.task(r2.0).unwrap().done, None);
}

#[test]
fn backups_copy_a_straggler_near_the_end_of_the_phase() {
    let mut h = H::new(2, 1, |c| c.backups = true);
    let r1 = h.request(W1).unwrap();
    let r2 = h.request(W2).unwrap();
    h.complete(W2, r2);
    assert_eq!(h.request(W3), None);
    let out = h.fire(Timer::Backup(r1.0, r1.1));
    assert!(matches!(&out[..], [(W3, ToWorker::Assign(a))] if a.task == r1.0 && a.attempt.0 == 2));
    assert!(h.events.contains(&Event::Assigned {
        task: r1.0,
        attempt: Attempt(2),
        backup: true
    }));
    // The backup wins; the original is discarded.
    h.complete(W3, (r1.0, Attempt(2)));
    let out = h.msg(
        W1,
        ToCoordinator::Finished {
            task: r1.0,
            attempt: r1.1,
        },
    );
    assert_eq!(
        out,
        vec![(
            W1,
            ToWorker::Discard {
                task: r1.0,
                attempt: r1.1
            }
        )]
    );
}

#[test]
fn repeated_reported_failures_abandon_the_job() {
    let mut h = H::new(1, 1, |_| {});
    for attempt in 1..=3 {
        let r = h.request(W1).unwrap();
        assert_eq!(r.1, Attempt(attempt));
        let reason = "cannot read f0: No such file or directory".to_string();
        h.msg(
            W1,
            ToCoordinator::Failed {
                task: r.0,
                attempt: r.1,
                reason,
            },
        );
    }
    assert!(h.c.is_over() && !h.c.is_done());
    assert_eq!(h.c.failed().unwrap().0, TaskId::Map(0));
    assert_eq!(
        h.msg(W1, ToCoordinator::Request),
        vec![(W1, ToWorker::Exit)]
    );
}

#[test]
fn seeded_bugs_change_what_they_say() {
    let mut h = H::new(1, 1, |c| {
        c.bugs = MrBugs::NONE.with(MrBug::ReassignWithoutTimeout)
    });
    h.request(W1).unwrap();
    assert_eq!(h.request(W2), Some(assign(TaskId::Map(0), 2)));

    let mut h = H::new(1, 1, |c| {
        c.bugs = MrBugs::NONE.with(MrBug::DoneOnStaleReport)
    });
    let r1 = h.request(W1).unwrap();
    h.fire(Timer::TaskTimeout(r1.0, r1.1));
    h.request(W2).unwrap();
    h.msg(
        W1,
        ToCoordinator::Finished {
            task: r1.0,
            attempt: r1.1,
        },
    );
    assert_eq!(
        h.c.task(r1.0).unwrap().done,
        Some(r1.1),
        "done before any rename"
    );
}

#[test]
fn worker_loop_requests_runs_commits_and_exits() {
    let coord = NodeId(0);
    let mut w = Worker::new(coord);
    let first = w.take_ready();
    assert_eq!(
        first.messages,
        vec![(coord, Message::ToCoordinator(ToCoordinator::Request))]
    );
    let a = Assignment {
        task: TaskId::Map(0),
        attempt: Attempt(1),
        input: Some("f0".into()),
        n_map: 1,
        n_reduce: 1,
    };
    w.on_message(ToWorker::Assign(a.clone()));
    assert_eq!(w.take_ready().apply, vec![WorkerAction::Execute(a)]);
    w.on_executed(TaskId::Map(0), Attempt(1));
    assert_eq!(
        w.state(),
        &WorkerState::Finishing(TaskId::Map(0), Attempt(1))
    );
    w.take_ready();
    // A stale Commit for another run is ignored.
    w.on_message(ToWorker::Commit {
        task: TaskId::Map(0),
        attempt: Attempt(2),
    });
    assert!(w.take_ready().is_empty());
    w.on_message(ToWorker::Commit {
        task: TaskId::Map(0),
        attempt: Attempt(1),
    });
    assert!(matches!(
        w.take_ready().apply[..],
        [WorkerAction::Commit { .. }]
    ));
    w.on_committed(TaskId::Map(0), Attempt(1));
    let r = w.take_ready();
    assert_eq!(r.messages.len(), 2, "Committed, then the next Request");
    w.on_message(ToWorker::Exit);
    assert_eq!(w.take_ready().apply, vec![WorkerAction::Exit]);
    assert_eq!(w.state(), &WorkerState::Exited);
}
