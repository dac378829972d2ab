//! Histories of a simulated object, with a verdict known by construction.
//!
//! Clients call operations on one object (a register, a CAS register, a string KV store or a
//! versioned KV store) with overlapping, heavy-tailed timing. Each operation takes effect at
//! one instant (its linearization point) between its call and its return, and its output is
//! computed by running the operations in point order through a sequential implementation:
//! the history is linearizable by construction. Some operations time out (the client never
//! sees a reply; the operation takes effect at some later time, or never) and some clients
//! crash mid-operation (the operation took effect before the crash, or never); in both
//! cases the client comes back under a new id, as a Jepsen process does.
//!
//! An anomaly, when asked for, is injected into the object's behaviour (a stale read, a lost
//! write, an append applied twice, a compare-and-set that succeeds on a wrong value) and
//! then *proven* visible: some operation's observed output is shown impossible in every
//! linearization by an argument that looks only at real-time order and at which operations
//! can produce which values (see `proof.rs`). Values written are unique, so that argument is
//! short. When no operation of the history makes the anomaly provable, the next candidate
//! is tried; when none does, generation fails with a message rather than guess a verdict.
//!
//! Everything is a function of the seed ([`Rng`] is SplitMix64, stable across versions).

mod proof;
mod sim;

use crate::CheckResult;
use std::fmt;

/// The object simulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenModel {
    /// A read/write register (`register` model).
    Register,
    /// A register with compare-and-set (`cas` model).
    Cas,
    /// String keys with get, put and append (`kv` model), append-heavy.
    Kv,
    /// String keys with get and versioned put (`versioned-kv` model).
    VersionedKv,
}

/// An anomaly injected into the object's behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// A read returns a value that was already overwritten when the read was called.
    StaleRead,
    /// A write (put, append) is acknowledged but never applied.
    LostWrite,
    /// An append is applied twice (kv only).
    DuplicatedAppend,
    /// A compare-and-set (versioned put) succeeds although the value (version) differs.
    WrongCas,
}

impl Anomaly {
    /// The anomaly's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Anomaly::StaleRead => "stale-read",
            Anomaly::LostWrite => "lost-write",
            Anomaly::DuplicatedAppend => "duplicated-append",
            Anomaly::WrongCas => "wrong-cas",
        }
    }

    /// Every anomaly, for parsing and help texts.
    pub const ALL: [Anomaly; 4] = [
        Anomaly::StaleRead,
        Anomaly::LostWrite,
        Anomaly::DuplicatedAppend,
        Anomaly::WrongCas,
    ];
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenSpec {
    /// The object.
    pub model: GenModel,
    /// Clients running at once.
    pub clients: usize,
    /// Operations in the history.
    pub ops: usize,
    /// Keys (1 for the registers).
    pub keys: usize,
    /// Probability that an operation times out.
    pub unknown: f64,
    /// Probability that a client crashes during an operation.
    pub crash: f64,
    /// The anomaly to inject, if any.
    pub anomaly: Option<Anomaly>,
    /// The seed of every random choice.
    pub seed: u64,
}

/// A generated history.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The history in aver's JSON Lines format (operations, one per line).
    pub jsonl: String,
    /// The verdict, known by construction (`Ok` or `Illegal`).
    pub expected: CheckResult,
    /// Operations whose client never saw a reply.
    pub unknown_ops: usize,
    /// What was injected and which operation proves it, for the record.
    pub note: String,
}

/// Longest history generated (operations).
pub const OPS_MAX: usize = 1_000_000;
/// Most clients at once.
pub const CLIENTS_MAX: usize = 10_000;

/// Generates a history, or says why the spec cannot be met.
pub fn generate(spec: &GenSpec) -> Result<Generated, String> {
    validate(spec)?;
    let Some(anomaly) = spec.anomaly else {
        let run = sim::simulate(spec, None);
        return Ok(finish(spec, &run, CheckResult::Ok, String::new()));
    };
    let candidates = sim::simulate(spec, None).candidates(anomaly);
    for victim in candidates {
        let run = sim::simulate(spec, Some((anomaly, victim)));
        if let Some(why) = proof::visible(spec.model, anomaly, &run, victim) {
            return Ok(finish(spec, &run, CheckResult::Illegal, why));
        }
    }
    Err(format!(
        "no operation of this history shows a {anomaly} that is provably not linearizable \
         (seed {}); try another seed or more operations",
        spec.seed
    ))
}

fn validate(spec: &GenSpec) -> Result<(), String> {
    let unit = |p: f64, name: &str| {
        if (0.0..=1.0).contains(&p) {
            Ok(())
        } else {
            Err(format!("--{name} must be a probability in [0, 1], not {p}"))
        }
    };
    unit(spec.unknown, "unknown")?;
    unit(spec.crash, "crash")?;
    if spec.unknown + spec.crash > 0.9 {
        return Err("--unknown plus --crash must be at most 0.9".into());
    }
    if spec.clients == 0 || spec.clients > CLIENTS_MAX {
        return Err(format!("--clients must be in 1..={CLIENTS_MAX}"));
    }
    if spec.ops > OPS_MAX {
        return Err(format!("--ops must be at most {OPS_MAX}"));
    }
    let keyed = matches!(spec.model, GenModel::Kv | GenModel::VersionedKv);
    if spec.keys == 0 || (!keyed && spec.keys != 1) {
        return Err("--keys must be 1 for the register and cas models, and at least 1".into());
    }
    let fits = matches!(
        (spec.model, spec.anomaly),
        (_, None | Some(Anomaly::StaleRead | Anomaly::LostWrite))
            | (GenModel::Kv, Some(Anomaly::DuplicatedAppend))
            | (
                GenModel::Cas | GenModel::VersionedKv,
                Some(Anomaly::WrongCas)
            )
    );
    if !fits {
        let anomaly = spec.anomaly.map_or("", Anomaly::name);
        return Err(format!(
            "--anomaly {anomaly} does not apply to this model (duplicated-append: kv; \
             wrong-cas: cas, versioned-kv)"
        ));
    }
    Ok(())
}

fn finish(spec: &GenSpec, run: &sim::Run, expected: CheckResult, note: String) -> Generated {
    let mut jsonl = String::new();
    for op in &run.ops {
        jsonl.push_str(&sim::json_line(spec.model, op));
        jsonl.push('\n');
    }
    Generated {
        jsonl,
        expected,
        unknown_ops: run.ops.iter().filter(|o| o.ret.is_none()).count(),
        note,
    }
}

/// SplitMix64: small, fast, and the same sequence on every platform and version.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6a09_e667_f3bc_c908)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponentially distributed with the given mean, at least 1 (times are integers).
    pub fn exp(&mut self, mean: f64) -> u64 {
        let u = 1.0 - self.unit(); // (0, 1]
        1 + (-u.ln() * mean) as u64
    }
}
