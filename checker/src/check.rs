//! The public entry points: partition, check partitions in parallel, combine.
//!
//! Partitions are ordered by key (a `BTreeMap`), so reports do not depend on hash order.
//! Workers take the largest partitions first, which keeps both cores busy on skewed
//! histories; one thread takes the smallest first, which finds a violation in a small
//! partition before the large ones are searched. When one partition is illegal the others are told to stop: the verdict cannot
//! change, and on big histories this is most of the win of partitioning.

use crate::search::{Limits, Outcome, SearchStats, check_partition};
use crate::{Event, EventKind, Model, Operation};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The verdict on a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckResult {
    /// Linearizable.
    Ok,
    /// Not linearizable.
    Illegal,
    /// The timeout expired before a verdict (never reported as `Ok`).
    Unknown,
}

/// The verdict with what the search learned about each partition.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// The verdict on the whole history.
    pub result: CheckResult,
    /// One entry per partition, ordered by key.
    pub partitions: Vec<PartitionAnalysis>,
}

/// What the search learned about one partition.
#[derive(Clone, Debug)]
pub struct PartitionAnalysis {
    /// The partition key ([`Model::partition`]).
    pub key: String,
    /// Indices into the history of the partition's operations, ordered by call.
    pub operations: Vec<usize>,
    /// This partition's verdict (`Unknown` also when stopped because another was illegal).
    pub result: CheckResult,
    /// True when the search was stopped because another partition was illegal.
    pub stopped: bool,
    /// True when this partition's memo reached [`CheckOptions::memory_max`].
    pub out_of_memory: bool,
    /// What the search did (for profiles).
    pub stats: SearchStats,
    /// History indices in linearization order: a whole linearization when `Ok`, the longest
    /// partial linearization found when `Illegal` or `Unknown`. Operations that never
    /// returned and are absent here never took effect.
    pub linearization: Vec<usize>,
    /// When `Illegal` (and the search hit a return, as it does unless the memory ran out):
    /// the operation whose return the search reached latest in time (history index),
    /// typically the one that observed what it could not have, and an illegal
    /// sub-history that the search has proved so: the operations it searched that were
    /// called before that return, ordered by call. Counterexamples start from it.
    pub core: Option<(usize, Vec<usize>)>,
}

/// Bytes the memo of one partition may take by default (4 GiB).
pub const MEMORY_MAX_DEFAULT: usize = 4 << 30;

/// How a check may spend time, memory and cores.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Give up (verdict `Unknown`) after this long; `None` waits for a verdict.
    pub timeout: Option<Duration>,
    /// Bytes the memo of one partition may take; past it the partition is `Unknown`
    /// ([`PartitionAnalysis::out_of_memory`]).
    pub memory_max: usize,
    /// Threads: partitions are checked in parallel, and a history with a single partition
    /// is searched by this many threads at once (once it proves hard, see below).
    pub threads: usize,
    /// Model steps a single partition's search takes on one thread before it starts over
    /// on `threads` threads: most histories are decided within the default (a few ms to
    /// some tens of ms, by model), and threads would cost more than they save there (moving
    /// the memo to shared tables and starting a thread cost about a millisecond; a 300-
    /// operation CAS history takes about 200,000 steps in 3 ms). 0: parallel at once.
    pub parallel_after_steps: u64,
}

/// Default of [`CheckOptions::parallel_after_steps`].
pub const PARALLEL_AFTER_STEPS_DEFAULT: u64 = 1 << 19;

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            timeout: None,
            memory_max: MEMORY_MAX_DEFAULT,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            parallel_after_steps: PARALLEL_AFTER_STEPS_DEFAULT,
        }
    }
}

/// Checks a history of operations; `timeout: None` waits for a verdict.
pub fn check_operations<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    timeout: Option<Duration>,
) -> CheckResult {
    let options = CheckOptions {
        timeout,
        ..CheckOptions::default()
    };
    analyse(model, history, &options, false).result
}

/// Like [`check_operations`], and also returns per-partition linearizations for
/// counterexamples and visualisation.
pub fn check_operations_verbose<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    timeout: Option<Duration>,
) -> Analysis {
    let options = CheckOptions {
        timeout,
        ..CheckOptions::default()
    };
    analyse(model, history, &options, true)
}

/// Like [`check_operations_verbose`], with every limit chosen by the caller.
pub fn check_operations_with<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> Analysis {
    analyse(model, history, options, true)
}

/// Checks a history of events (calls and returns in real-time order). Fails when a return
/// has no earlier call with the same id or an id is called twice.
pub fn check_events<M: Model>(
    model: &M,
    events: &[Event<M::Input, M::Output>],
    timeout: Option<Duration>,
) -> Result<CheckResult, String>
where
    M::Input: Clone,
    M::Output: Clone,
{
    let history = operations_from_events(events)?;
    Ok(check_operations(model, &history, timeout))
}

/// Converts events to operations, with each event's position as its time.
pub(crate) fn operations_from_events<I: Clone, O: Clone>(
    events: &[Event<I, O>],
) -> Result<Vec<Operation<I, O>>, String> {
    let mut ops: Vec<Operation<I, O>> = Vec::new();
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    for (time, event) in events.iter().enumerate() {
        let time = time as u64;
        match &event.kind {
            EventKind::Call(input) => {
                if open.insert(event.id, ops.len()).is_some() {
                    return Err(format!("event {time}: id {} called twice", event.id));
                }
                let (client, input) = (event.client, input.clone());
                ops.push(Operation {
                    client,
                    input,
                    call: time,
                    output: None,
                    ret: None,
                });
            }
            EventKind::Return(output) => {
                let Some(i) = open.remove(&event.id) else {
                    return Err(format!(
                        "event {time}: return of id {} without a call",
                        event.id
                    ));
                };
                ops[i].output = output.clone();
                ops[i].ret = Some(time);
            }
        }
    }
    Ok(ops)
}

/// Groups operation indices by partition key, each group ordered by call time.
pub(crate) fn partitions<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> Vec<(String, Vec<usize>)> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        groups
            .entry(model.partition(&op.input))
            .or_default()
            .push(i);
    }
    let mut groups: Vec<(String, Vec<usize>)> = groups.into_iter().collect();
    for (_, ops) in &mut groups {
        ops.sort_by_key(|&i| (history[i].call, i));
    }
    groups
}

pub(crate) fn analyse<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
    track: bool,
) -> Analysis {
    let groups = partitions(model, history);
    let stop = AtomicBool::new(false);
    let threads = options.threads.max(1);
    let limits = Limits {
        deadline: options.timeout.map(|t| Instant::now() + t),
        stop: &stop,
        track,
        memory_max: options.memory_max,
        // One partition gets every thread; several are checked side by side instead.
        threads: if groups.len() == 1 { threads } else { 1 },
        parallel_after_steps: options.parallel_after_steps,
    };
    let outcomes = run_all(model, history, &groups, &limits, threads);
    let partitions: Vec<PartitionAnalysis> = groups
        .into_iter()
        .zip(outcomes)
        .map(|((key, operations), outcome)| PartitionAnalysis {
            key,
            result: outcome.result,
            stopped: outcome.stopped,
            out_of_memory: outcome.out_of_memory,
            stats: outcome.stats,
            linearization: outcome
                .linearization
                .iter()
                .map(|&k| operations[k])
                .collect(),
            core: outcome.core.map(|(stuck, before)| {
                let before = before.iter().map(|&k| operations[k]).collect();
                (operations[stuck], before)
            }),
            operations,
        })
        .collect();
    Analysis {
        result: combine(&partitions),
        partitions,
    }
}

fn combine(partitions: &[PartitionAnalysis]) -> CheckResult {
    let results = partitions.iter().map(|p| p.result);
    if results.clone().any(|r| r == CheckResult::Illegal) {
        CheckResult::Illegal
    } else if results.clone().any(|r| r == CheckResult::Unknown) {
        CheckResult::Unknown
    } else {
        CheckResult::Ok
    }
}

/// Runs every partition, on up to `threads` threads (none for one partition).
fn run_all<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    groups: &[(String, Vec<usize>)],
    limits: &Limits,
    threads: usize,
) -> Vec<Outcome> {
    let run_one = |g: usize| {
        if limits.stop.load(Ordering::Relaxed) {
            let linearization = Vec::new();
            return Outcome {
                result: CheckResult::Unknown,
                stopped: true,
                out_of_memory: false,
                stats: SearchStats::default(),
                linearization,
                core: None,
            };
        }
        let ops: Vec<&Operation<M::Input, M::Output>> =
            groups[g].1.iter().map(|&i| &history[i]).collect();
        let outcome = check_partition(model, &ops, limits);
        if outcome.result == CheckResult::Illegal {
            limits.stop.store(true, Ordering::Relaxed);
        }
        outcome
    };
    let workers = threads.min(groups.len());
    let mut order: Vec<usize> = (0..groups.len()).collect();
    if workers <= 1 {
        // Smallest first: one illegal partition decides the history and stops the rest, and
        // small partitions are cheap to decide, so a violation in one of them is found
        // before the big ones are searched (the verdict is the same in any order).
        order.sort_by_key(|&g| (groups[g].1.len(), g));
        let mut outcomes: Vec<Option<Outcome>> = (0..groups.len()).map(|_| None).collect();
        for g in order {
            outcomes[g] = Some(run_one(g));
        }
        return outcomes
            .into_iter()
            .map(|o| o.expect("every partition ran"))
            .collect();
    }
    // Largest first on several threads: a big partition started last would leave the other
    // cores idle while it runs.
    order.sort_by_key(|&g| (std::cmp::Reverse(groups[g].1.len()), g));
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..groups.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(&g) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let outcome = run_one(g);
                    slots.lock().unwrap_or_else(|e| e.into_inner())[g] = Some(outcome);
                }
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_else(|e| e.into_inner());
    slots
        .into_iter()
        .map(|o| o.expect("every partition ran"))
        .collect()
}
