//! Proofs that an observed output is impossible in every linearization.
//!
//! Each proof uses only real-time order (`a.ret < b.call`: a precedes b in every
//! linearization) and which operations can produce which values; values written are unique
//! per operation, so "who could have produced this" has few answers. Every rule is
//! conservative: an operation whose outcome is unknown counts as possibly having taken
//! effect, anywhere after its call.

use super::sim::{Call, Op, Out, Run};
use super::{Anomaly, GenModel};

/// An operation of `run` whose observed output no linearization explains, described.
pub(crate) fn visible(
    model: GenModel,
    anomaly: Anomaly,
    run: &Run,
    victim: usize,
) -> Option<String> {
    let ops = &run.ops;
    let impossible = |r: usize| match model {
        GenModel::Register | GenModel::Cas => register_read_impossible(ops, r),
        GenModel::Kv => kv_get_impossible(ops, r),
        GenModel::VersionedKv => versioned_impossible(ops, r),
    };
    let witness = (0..ops.len()).find_map(|r| impossible(r).map(|why| (r, why)))?;
    let (r, why) = witness;
    let op = &ops[r];
    let victim = &ops[victim];
    Some(format!(
        "{anomaly} by the operation of client {} called at {}; seen by client {} at {}..{}: {why}",
        victim.client,
        victim.call,
        op.client,
        op.call,
        op.ret.unwrap_or(op.call),
    ))
}

/// `a` precedes `b` in real time.
fn before(a: &Op, b: &Op) -> bool {
    a.ret.is_some_and(|r| r < b.call)
}

/// `a` can be linearized after the start of `b`... i.e. not entirely after `b` returned.
fn may_precede_return(a: &Op, b: &Op) -> bool {
    b.ret.is_none_or(|r| a.call <= r)
}

/// The value a register operation may set, if it may set one.
fn sets(op: &Op) -> Option<i64> {
    match (&op.input, &op.output) {
        (Call::Write { value, .. }, _) => Some(*value),
        (Call::Cas { new, .. }, out) if *out != Some(Out::Cas(false)) => Some(*new),
        _ => None,
    }
}

/// Whether a register operation certainly took effect (it returned with a known success).
fn definitely_sets(op: &Op) -> bool {
    matches!(
        (&op.input, &op.output),
        (Call::Write { .. }, Some(Out::Write)) | (Call::Cas { .. }, Some(Out::Cas(true)))
    )
}

/// A read that saw `v`, or a cas that succeeded on `v`, when every operation that could have
/// produced `v` (the initial nil included) was overwritten before the observer was called.
fn register_read_impossible(ops: &[Op], r: usize) -> Option<String> {
    let observer = &ops[r];
    let seen = match (&observer.input, &observer.output) {
        (Call::Read { .. }, Some(Out::Read(v))) if observer.ret.is_some() => *v,
        (Call::Cas { expected, .. }, Some(Out::Cas(true))) => Some(*expected),
        _ => return None,
    };
    // Some definite write other than v precedes the observer and follows `after`.
    let overwritten_after = |after: Option<&Op>| {
        ops.iter().any(|w| {
            definitely_sets(w)
                && sets(w) != seen
                && before(w, observer)
                && after.is_none_or(|a| before(a, w))
        })
    };
    let show = |v: Option<i64>| v.map_or("nil".to_string(), |v| v.to_string());
    if seen.is_none() {
        return overwritten_after(None).then(|| "reads nil after a write completed".into());
    }
    let producers: Vec<&Op> = ops
        .iter()
        .enumerate()
        .filter(|&(i, o)| i != r && sets(o) == seen && may_precede_return(o, observer))
        .map(|(_, o)| o)
        .collect();
    producers
        .iter()
        .all(|&o| o.ret.is_some() && overwritten_after(Some(o)))
        .then(|| {
            format!(
                "observes {}, which every operation that could have written it was \
                 overwritten by a completed write before the observer was called",
                show(seen)
            )
        })
}

/// The tokens `<id>` of a KV value, in order.
fn tokens(value: &str) -> Option<Vec<usize>> {
    value
        .split_terminator('>')
        .map(|t| t.strip_prefix('<').and_then(|n| n.parse().ok()))
        .collect()
}

/// A get that saw a value no order of the appends and puts produces: a token twice, a
/// token of an operation called after the get returned, or the lack of a token appended
/// before the get was called, with no put that could have erased it in between.
fn kv_get_impossible(ops: &[Op], r: usize) -> Option<String> {
    let get = &ops[r];
    let (Call::Get { key }, Some(Out::Value(seen)), Some(_)) = (&get.input, &get.output, get.ret)
    else {
        return None;
    };
    let seen_tokens = tokens(seen)?;
    let mut sorted = seen_tokens.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Some(format!("the value {seen:?} holds one append twice"));
    }
    let future = |t: usize| ops.get(t).is_none_or(|o| !may_precede_return(o, get));
    if let Some(&t) = seen_tokens.iter().find(|&&t| future(t)) {
        return Some(format!("sees <{t}>, called after the get returned"));
    }
    let on_key = |o: &&Op| o.input.key() == *key;
    let puts: Vec<&Op> = ops
        .iter()
        .filter(on_key)
        .filter(|o| matches!(o.input, Call::Put { .. }))
        .collect();
    let missing = ops.iter().enumerate().find(|&(t, a)| {
        on_key(&a)
            && matches!(
                (&a.input, &a.output),
                (Call::Append { .. }, Some(Out::Done))
            )
            && before(a, get)
            && !seen_tokens.contains(&t)
            && puts
                .iter()
                .all(|p| before(p, a) || !may_precede_return(p, get))
    });
    missing.map(|(t, _)| format!("misses <{t}>, appended before the get was called"))
}

/// A versioned get (or successful put) that observed a version older than a successful put
/// which completed before it was called: versions never go back.
fn versioned_impossible(ops: &[Op], r: usize) -> Option<String> {
    let observer = &ops[r];
    let key = observer.input.key();
    let seen = match (&observer.input, &observer.output) {
        (_, _) if observer.ret.is_none() => return None,
        (Call::VGet { .. }, Some(Out::VValue(_, v))) => *v,
        (Call::VGet { .. }, Some(Out::NoKey)) => 0,
        (Call::VPut { version, .. }, Some(Out::Done)) => *version,
        _ => return None,
    };
    let newer = ops.iter().enumerate().find(|&(i, p)| {
        i != r
            && p.input.key() == key
            && before(p, observer)
            && matches!((&p.input, &p.output), (Call::VPut { version, .. }, Some(Out::Done)) if version + 1 > seen)
    })?;
    Some(format!(
        "observes version {seen} after the put of client {} (called at {}) made it newer",
        newer.1.client, newer.1.call
    ))
}
