//! Counterexamples people can read.
//!
//! A verdict of `Illegal` on 2,000 operations is true but useless; what a reader needs is the
//! few operations that cannot coexist. [`find`] takes the first illegal partition and
//!
//! 1. keeps the longest partial linearization the search found (the *prefix*: every
//!    operation that returned before one of its members is also a member, and the model
//!    accepts them in that order), and
//! 2. shrinks the partition to a *minimal* illegal sub-history: it starts from the
//!    sub-history the search itself proved illegal (the operations called before the latest
//!    return it reached, [`crate::PartitionAnalysis::core`]), then takes the shortest
//!    illegal prefix in call order (binary search, each candidate re-checked), then removes
//!    operations while the rest stays illegal, runs of them first and single ones last
//!    (delta debugging), until no single removal keeps it illegal (1-minimal). Each check that finds a candidate illegal also proves such a
//!    sub-history of it, which shrinking moves on to at once. Every sub-history kept was
//!    checked (or proved by a check), so the result is illegal by construction; a budget
//!    bounds the time, and running out is reported, not hidden.
//!
//! Shrinking alone tends to a useless answer: remove every `write(2)` and a lone
//! `read() -> 2` is illegal, and 1-minimal. So shrinking also keeps the sub-history
//! *explained*: some operation of it (the witness, typically the read that saw a stale
//! value) makes it linearizable when that one operation may take effect at any time. The
//! violation is then about *when* the witness took effect, and the operations that explain
//! what it observed stay in. When no explained start can be found in time (each check has a
//! small budget), shrinking falls back to illegality alone and says so
//! ([`Counterexample::explained`]).
//!
//! [`timeline`] draws operations as an ASCII timeline, one row per client.

use crate::check::analyse;
use crate::{Analysis, CheckOptions, CheckResult, Model, Operation};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Why a history is not linearizable, in terms of its operations (history indices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterexample {
    /// The illegal partition's key.
    pub partition: String,
    /// The longest partial linearization found, in linearization order.
    pub prefix: Vec<usize>,
    /// An illegal sub-history of the partition, ordered by call.
    pub minimal: Vec<usize>,
    /// False when the budget ran out before `minimal` was 1-minimal (it is still illegal).
    pub is_minimal: bool,
    /// True when `minimal` is explained: letting one of its operations take effect at any
    /// time makes it linearizable (see the module documentation).
    pub explained: bool,
}

/// Longest one check of a candidate with one operation's interval stretched may take.
const STRETCHED_BUDGET: Duration = Duration::from_millis(50);

/// Builds the counterexample of an `Illegal` analysis (`None` otherwise); `budget` bounds
/// the shrinking time.
pub fn find<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    analysis: &Analysis,
    budget: Duration,
) -> Option<Counterexample>
where
    M::Input: Clone,
    M::Output: Clone,
{
    let partition = analysis
        .partitions
        .iter()
        .find(|p| p.result == CheckResult::Illegal)?;
    let deadline = Instant::now() + budget;
    let search_witness_until = Instant::now() + budget / 2;
    // The operation the search got stuck at: the likeliest witness.
    let hint = partition.core.as_ref().map(|(stuck, _)| *stuck);
    // One check of `ops`: when illegal, the smallest illegal sub-history it proves (its
    // core, see `PartitionAnalysis::core`), else `None` (legal, or out of time).
    let illegal = |ops: &[usize]| -> Option<Vec<usize>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let sub: Vec<_> = ops.iter().map(|&i| history[i].clone()).collect();
        // One thread: shrinking runs many small checks, and a budget of wall time should
        // cost no more CPU than that.
        let options = CheckOptions {
            timeout: Some(left),
            threads: 1,
            ..CheckOptions::default()
        };
        let checked = analyse(model, &sub, &options, false);
        if checked.result != CheckResult::Illegal {
            return None;
        }
        let core = checked
            .partitions
            .iter()
            .find(|p| p.result == CheckResult::Illegal)
            .and_then(|p| p.core.as_ref());
        Some(core.map_or_else(
            || ops.to_vec(),
            |(_, before)| before.iter().map(|&k| ops[k]).collect(),
        ))
    };
    let witness = Cell::new(None);
    let explained = |ops: &[usize], any: bool| {
        // Looking for a witness among every operation may take half the budget: shrinking
        // for illegality alone needs the rest when there is none.
        let until = if any { search_witness_until } else { deadline };
        explained_by_one(model, history, ops, &witness, hint, any, until)
    };
    // Explained by the witness and illegal: the core when it is explained too, else `ops`.
    // Explained is asked first: a stretched check that finds a linearization is quick, and
    // a candidate that lost an operation its witness needs is then rejected without a
    // search for illegality, which on a long candidate is the costly check.
    let keep = |ops: &[usize]| -> Option<Vec<usize>> {
        if !explained(ops, false) {
            return None;
        }
        let core = illegal(ops)?;
        if core.len() < ops.len() && explained(&core, false) {
            return Some(core);
        }
        Some(ops.to_vec())
    };
    let whole = partition
        .core
        .as_ref()
        .map_or(&partition.operations, |(_, before)| before);
    // The witness the search got stuck at first, on the core and on the whole partition;
    // only then every other operation.
    let starts = [whole, &partition.operations];
    let start = starts
        .into_iter()
        .find(|ops| explained(ops, false))
        .or_else(|| starts.into_iter().find(|ops| explained(ops, true)));
    let (minimal, is_minimal, explained) = match start {
        Some(start) => {
            let shortest = shortest_illegal_prefix(start, &keep);
            let (minimal, is_minimal) = remove_while_illegal(shortest, &keep, deadline);
            (minimal, is_minimal, true)
        }
        None => {
            let plain = shortest_illegal_prefix(whole, &illegal);
            let (minimal, is_minimal) = remove_while_illegal(plain, &illegal, deadline);
            (minimal, is_minimal, false)
        }
    };
    Some(Counterexample {
        partition: partition.key.clone(),
        prefix: partition.linearization.clone(),
        minimal,
        is_minimal,
        explained,
    })
}

/// Whether letting one operation of `ops` take effect at any time makes them linearizable.
/// Tries the previous witness first, then `hint` (the operation the search got stuck at,
/// typically the read that saw what it could not have), then, with `any`, every other
/// operation, later-called ones first (where violations are usually observed); remembers
/// the one that worked. Shrinking keeps its witness (`any` false): a candidate without it
/// is not tried with each of its operations (each such check may take its whole budget).
fn explained_by_one<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    ops: &[usize],
    witness: &Cell<Option<usize>>,
    hint: Option<usize>,
    any: bool,
    deadline: Instant,
) -> bool
where
    M::Input: Clone,
    M::Output: Clone,
{
    let fixes = |w: usize| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let sub: Vec<_> = ops
            .iter()
            .map(|&i| stretched_if(&history[i], i == w))
            .collect();
        let options = CheckOptions {
            timeout: Some(STRETCHED_BUDGET.min(left)),
            threads: 1,
            ..CheckOptions::default()
        };
        analyse(model, &sub, &options, false).result == CheckResult::Ok
    };
    let previous = witness.get().filter(|w| ops.contains(w));
    let hint = hint.filter(|w| ops.contains(w) && Some(*w) != previous);
    let found = previous
        .filter(|&w| fixes(w))
        .or_else(|| hint.filter(|&w| fixes(w)))
        .or_else(|| {
            ops.iter()
                .filter(|_| any)
                .rev()
                .copied()
                .filter(|&o| Some(o) != previous && Some(o) != hint)
                .take_while(|_| Instant::now() < deadline)
                .find(|&o| fixes(o))
        });
    witness.set(found.or(previous));
    found.is_some()
}

/// The operation, with its interval stretched over all time when `stretch`.
fn stretched_if<I: Clone, O: Clone>(op: &Operation<I, O>, stretch: bool) -> Operation<I, O> {
    let mut op = op.clone();
    if stretch {
        op.call = 0;
        op.ret = op.ret.map(|_| u64::MAX);
    }
    op
}

/// A short illegal sub-history of `ops` (ordered by call; `ops` itself must be illegal):
/// binary search for the shortest illegal prefix in call order, where each illegal check
/// also proves a sub-history (its core) that bounds the search from above. Illegality of
/// prefixes need not be monotone: the search keeps an illegal answer, so the answer is
/// always illegal, if not always the shortest.
fn shortest_illegal_prefix(
    ops: &[usize],
    illegal: &impl Fn(&[usize]) -> Option<Vec<usize>>,
) -> Vec<usize> {
    let (mut lo, mut hi) = (0, ops.len());
    let mut best = ops.to_vec();
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        match illegal(&ops[..mid]) {
            Some(sub) => {
                let end = sub
                    .last()
                    .and_then(|last| ops[..mid].iter().position(|o| o == last))
                    .map_or(mid, |p| p + 1);
                hi = end.max(lo + 1);
                best = sub;
            }
            None => lo = mid,
        }
    }
    best
}

/// Removes operations while the rest stays illegal (taking the smaller sub-history a check
/// proves, when it proves one), until no single removal keeps it illegal: delta debugging
/// (ddmin), which first tries to remove large runs of operations (halves, then quarters,
/// ...) and only at the end single ones. Most operations of a long history do not matter,
/// and each check that keeps a large candidate illegal is a whole search, so removing them
/// a run at a time takes a few checks where one at a time took one per operation.
fn remove_while_illegal(
    mut ops: Vec<usize>,
    illegal: &impl Fn(&[usize]) -> Option<Vec<usize>>,
    deadline: Instant,
) -> (Vec<usize>, bool) {
    let mut runs = 2;
    loop {
        if ops.is_empty() {
            return (ops, true);
        }
        let runs_now = runs.min(ops.len());
        let size = ops.len().div_ceil(runs_now);
        let mut removed = false;
        // Later runs first: operations called after the violation are the likeliest to go.
        for run in (0..runs_now).rev() {
            let (from, to) = (run * size, ((run + 1) * size).min(ops.len()));
            if from >= to {
                continue;
            }
            if Instant::now() >= deadline {
                return (ops, false);
            }
            let candidate: Vec<usize> = ops[..from].iter().chain(&ops[to..]).copied().collect();
            if let Some(smaller) = illegal(&candidate) {
                ops = smaller;
                removed = true;
                break;
            }
        }
        if removed {
            runs = (runs_now - 1).max(2);
        } else if runs_now == ops.len() {
            // Every single removal was tried: 1-minimal.
            return (ops, true);
        } else {
            runs = (runs_now * 2).min(ops.len());
        }
    }
}

/// The states after each operation of a (partial) linearization, replayed through the
/// model. Stops early if the model rejects an operation (it never does for the search's
/// own linearizations).
pub fn replay<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    order: &[usize],
) -> Vec<M::State> {
    let mut state = model.init();
    let mut states = Vec::with_capacity(order.len());
    for &i in order {
        let op = &history[i];
        match model.step(&state, &op.input, op.output.as_ref()) {
            Some(next) => state = next,
            None => break,
        }
        states.push(state.clone());
    }
    states
}

/// Draws operations (history indices) as an ASCII timeline: one row per client (more when
/// a client's operations overlap), `|label|` spans from call to return in event order, and
/// `>` marks an operation that never returned.
pub fn timeline<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    ops: &[usize],
) -> String {
    let labels: BTreeMap<usize, String> = ops
        .iter()
        .map(|&i| {
            (
                i,
                model.describe_operation(&history[i].input, history[i].output.as_ref()),
            )
        })
        .collect();
    let spans = layout(history, ops, &labels);
    let width = spans.values().map(|&(_, end)| end + 1).max().unwrap_or(0);
    let rows = lanes(history, ops, &spans);
    let name_width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, members) in rows {
        let mut line = vec![' '; width];
        for i in members {
            draw(&mut line, spans[&i], &labels[&i], history[i].ret.is_none());
        }
        let line: String = line.into_iter().collect();
        out.push_str(&format!("{name:>name_width$} {}\n", line.trim_end()));
    }
    out
}

/// Column of each operation's call and return: events keep their time order, and a span
/// is wide enough for its label. Never-returned operations end after every other event.
fn layout<I, O>(
    history: &[Operation<I, O>],
    ops: &[usize],
    labels: &BTreeMap<usize, String>,
) -> BTreeMap<usize, (usize, usize)> {
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for &i in ops {
        events.push((history[i].call, false, i));
        if let Some(ret) = history[i].ret {
            events.push((ret, true, i));
        }
    }
    events.sort_unstable();
    let mut spans: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    let mut cursor = 0;
    for (_, is_return, i) in events {
        let start = spans.get(&i).map_or(cursor, |s| s.0);
        let column = if is_return {
            cursor.max(start + labels[&i].chars().count() + 3)
        } else {
            cursor
        };
        spans.insert(i, (start, column));
        cursor = column + 2;
    }
    for &i in ops.iter().filter(|&&i| history[i].ret.is_none()) {
        let start = spans[&i].0;
        spans.insert(
            i,
            (start, cursor.max(start + labels[&i].chars().count() + 3)),
        );
    }
    spans
}

/// Rows: per client, as few lanes as keep its operations from overlapping.
fn lanes<I, O>(
    history: &[Operation<I, O>],
    ops: &[usize],
    spans: &BTreeMap<usize, (usize, usize)>,
) -> Vec<(String, Vec<usize>)> {
    let mut by_client: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for &i in ops {
        by_client.entry(history[i].client).or_default().push(i);
    }
    let mut rows = Vec::new();
    for (client, mut members) in by_client {
        members.sort_by_key(|i| spans[i].0);
        let mut client_rows: Vec<(usize, Vec<usize>)> = Vec::new();
        for i in members {
            match client_rows.iter_mut().find(|(end, _)| *end < spans[&i].0) {
                Some((end, row)) => {
                    *end = spans[&i].1;
                    row.push(i);
                }
                None => client_rows.push((spans[&i].1, vec![i])),
            }
        }
        rows.extend(
            client_rows
                .into_iter()
                .map(|(_, row)| (format!("client {client}"), row)),
        );
    }
    rows
}

fn draw(line: &mut [char], (start, end): (usize, usize), label: &str, open: bool) {
    line[start] = '|';
    for c in line.iter_mut().take(end).skip(start + 1) {
        *c = '-';
    }
    line[end] = if open { '>' } else { '|' };
    let label: Vec<char> = label.chars().collect();
    let from = start + 1 + (end - start - 1 - label.len()) / 2;
    line[from..from + label.len()].copy_from_slice(&label);
}
