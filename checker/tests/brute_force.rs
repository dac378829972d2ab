//! The checker against a brute-force checker that tries every order of every subset.
//!
//! Histories are generated from a real sequential execution: each operation gets a
//! linearization point, outputs come from running the operations in point order through a
//! reference implementation, and intervals are drawn around the points. Some operations
//! never return (and may or may not have taken effect), some return with an unknown output,
//! and in some histories one output is then replaced by a random one, which usually makes
//! the history illegal. The brute force shares nothing with the search but the model.

use aver_checker::generate::{Anomaly, GenModel, GenSpec, generate};
use aver_checker::models::Register;
use aver_checker::models::{
    CasRegister, Kv, KvInput, KvOutput, KvValue, RegisterInput, RegisterOutput, VersionedInput,
    VersionedKv, VersionedOutput,
};
use aver_checker::{
    CheckOptions, CheckResult, Event, EventKind, Model, Operation, PowerSet, check_events,
    check_operations, check_operations_with,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::sync::Arc;

/// Tries every order of every subset that may be left out (never-returned operations).
fn brute_force<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> CheckResult {
    let mut placed = vec![false; history.len()];
    if search(model, history, &mut placed, &model.init()) {
        CheckResult::Ok
    } else {
        CheckResult::Illegal
    }
}

fn search<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    placed: &mut [bool],
    state: &M::State,
) -> bool {
    let unplaced: Vec<usize> = (0..history.len()).filter(|&j| !placed[j]).collect();
    if unplaced.iter().all(|&j| history[j].ret.is_none()) {
        return true; // whatever is left never took effect
    }
    for &i in &unplaced {
        // i may go next unless an unplaced operation returned strictly before i's call.
        let blocked = unplaced
            .iter()
            .any(|&j| history[j].ret.is_some_and(|r| r < history[i].call));
        if blocked {
            continue;
        }
        let Some(next) = model.step(state, &history[i].input, history[i].output.as_ref()) else {
            continue;
        };
        placed[i] = true;
        let found = search(model, history, placed, &next);
        placed[i] = false;
        if found {
            return true;
        }
    }
    false
}

/// One operation of a plan: what it does, when it takes effect, and how it is observed.
#[derive(Clone, Debug)]
struct Planned<I> {
    input: I,
    point: u64,
    before: u64,
    after: u64,
    /// 0: returns with its output; 1: returns, output unknown; 2: never returns but took
    /// effect; 3: never returns and never took effect.
    fate: u8,
}

/// A reference implementation: the output and next state of one operation.
type Run<S, I, O> = fn(&S, &I) -> (O, S);

/// Builds the history a plan produces; `mutation` replaces one output.
fn history<S: Clone, I: Clone, O: Clone>(
    init: S,
    run: Run<S, I, O>,
    plan: &[Planned<I>],
    mutation: Option<(usize, O)>,
) -> Vec<Operation<I, O>> {
    let mut order: Vec<usize> = (0..plan.len()).collect();
    order.sort_by_key(|&i| (plan[i].point, i));
    let mut outputs: Vec<Option<O>> = vec![None; plan.len()];
    let mut state = init;
    for i in order {
        if plan[i].fate != 3 {
            let (out, next) = run(&state, &plan[i].input);
            outputs[i] = Some(out);
            state = next;
        }
    }
    let mut ops: Vec<Operation<I, O>> = plan
        .iter()
        .zip(outputs)
        .enumerate()
        .map(|(i, (p, out))| Operation {
            client: i as u64,
            input: p.input.clone(),
            call: p.point.saturating_sub(p.before),
            output: if p.fate == 0 { out } else { None },
            ret: (p.fate <= 1).then_some(p.point + p.after),
        })
        .collect();
    if let Some((i, out)) = mutation {
        let i = i % ops.len();
        if ops[i].ret.is_some() {
            ops[i].output = Some(out);
        }
    }
    ops
}

fn planned<I: std::fmt::Debug>(
    input: impl Strategy<Value = I>,
) -> impl Strategy<Value = Planned<I>> {
    planned_with(input, 6)
}

/// `returned` is the weight of fate 0 against 1 for each other fate.
fn planned_with<I: std::fmt::Debug>(
    input: impl Strategy<Value = I>,
    returned: u32,
) -> impl Strategy<Value = Planned<I>> {
    (
        input,
        0..40u64,
        0..12u64,
        0..12u64,
        prop_oneof![returned => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
    )
        .prop_map(|(input, point, before, after, fate)| Planned {
            input,
            point: point * 2,
            before,
            after,
            fate,
        })
}

// --- the CAS register --------------------------------------------------------------------

fn run_cas(state: &Option<i64>, input: &RegisterInput) -> (RegisterOutput, Option<i64>) {
    match *input {
        RegisterInput::Read => (RegisterOutput::Read(*state), *state),
        RegisterInput::Write(v) => (RegisterOutput::Write, Some(v)),
        RegisterInput::Cas { expected, new } if *state == Some(expected) => {
            (RegisterOutput::Cas(true), Some(new))
        }
        RegisterInput::Cas { .. } => (RegisterOutput::Cas(false), *state),
    }
}

fn register_input() -> impl Strategy<Value = RegisterInput> {
    prop_oneof![
        Just(RegisterInput::Read),
        (0..3i64).prop_map(RegisterInput::Write),
        (0..3i64, 0..3i64).prop_map(|(expected, new)| RegisterInput::Cas { expected, new }),
    ]
}

fn register_output() -> impl Strategy<Value = RegisterOutput> {
    prop_oneof![
        prop::option::of(0..3i64).prop_map(RegisterOutput::Read),
        Just(RegisterOutput::Write),
        any::<bool>().prop_map(RegisterOutput::Cas),
    ]
}

type CasCase = (Vec<Planned<RegisterInput>>, Option<(usize, RegisterOutput)>);

/// Many crashed clients writing few values: never-returned operations with equal inputs
/// (which the search treats as interchangeable) are common.
fn crashed_writers_case() -> impl Strategy<Value = CasCase> {
    let input = prop_oneof![
        Just(RegisterInput::Read),
        (0..2i64).prop_map(RegisterInput::Write),
    ];
    let output = prop::option::of(0..2i64).prop_map(RegisterOutput::Read);
    (
        prop::collection::vec(planned_with(input, 1), 2..8),
        prop::option::of((0..8usize, output)),
    )
}

fn cas_case() -> impl Strategy<Value = CasCase> {
    (
        prop::collection::vec(planned(register_input()), 1..8),
        prop::option::of((0..8usize, register_output())),
    )
}

/// A plain register whose writes write distinct values, with many crashed clients: writes
/// nobody read are left out, and every never-returned write must matter to the next step.
fn unique_register_case() -> impl Strategy<Value = CasCase> {
    let input = prop_oneof![
        Just(RegisterInput::Read),
        (0..1000i64).prop_map(RegisterInput::Write),
    ];
    let output = prop::option::of(0..1000i64).prop_map(RegisterOutput::Read);
    (
        prop::collection::vec(planned_with(input, 2), 2..8),
        prop::option::of((0..8usize, output)),
    )
}

fn unique_register_verdict((plan, mutation): CasCase) -> CheckResult {
    let mutated = mutation.is_some();
    agree(&Register, &history(None, run_cas, &plan, mutation), mutated)
}

// --- KV (two keys, so partitioning is exercised) -----------------------------------------

type KvState = [String; 2];

/// Keys "a" and "b" in one state: the brute force does not partition, so P-compositionality
/// is checked too.
struct BothKeys;

impl Model for BothKeys {
    type State = (KvValue, KvValue);
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> Self::State {
        (Kv.init(), Kv.init())
    }

    fn step(
        &self,
        s: &Self::State,
        input: &KvInput,
        output: Option<&KvOutput>,
    ) -> Option<Self::State> {
        if input.key() == "b" {
            Some((s.0.clone(), Kv.step(&s.1, input, output)?))
        } else {
            Some((Kv.step(&s.0, input, output)?, s.1.clone()))
        }
    }

    fn describe_operation(&self, input: &KvInput, output: Option<&KvOutput>) -> String {
        Kv.describe_operation(input, output)
    }

    fn describe_state(&self, s: &Self::State) -> String {
        format!("{:?}", s)
    }
}

fn run_kv(state: &KvState, input: &KvInput) -> (KvOutput, KvState) {
    let k = (input.key() == "b") as usize;
    let mut next = state.clone();
    match input {
        KvInput::Get { .. } => (KvOutput::Value(state[k].clone()), next),
        KvInput::Put { value, .. } => {
            next[k] = value.to_string();
            (KvOutput::Done, next)
        }
        KvInput::Append { value, .. } => {
            next[k].push_str(value);
            (KvOutput::Done, next)
        }
    }
}

fn kv_input() -> impl Strategy<Value = KvInput> {
    let key = prop_oneof![Just("a".to_string()), Just("b".to_string())];
    let value = prop_oneof![Just("x"), Just("y"), Just("xy")].prop_map(Arc::from);
    (key, value, 0..3u8).prop_map(|(key, value, f)| match f {
        0 => KvInput::Get { key },
        1 => KvInput::Put { key, value },
        _ => KvInput::Append { key, value },
    })
}

fn kv_output() -> impl Strategy<Value = KvOutput> {
    prop_oneof![
        prop_oneof![Just(""), Just("x"), Just("y"), Just("xy"), Just("yx")]
            .prop_map(|v| KvOutput::Value(v.to_string())),
        Just(KvOutput::Done),
    ]
}

type KvCase = (Vec<Planned<KvInput>>, Option<(usize, KvOutput)>);

/// Appends of distinct tokens (and a rare put), many never returned: appends nobody saw
/// are left out, and never-returned ones must matter to the next step.
fn kv_tokens_case() -> impl Strategy<Value = KvCase> {
    let key = prop_oneof![Just("a".to_string()), Just("b".to_string())];
    let input = (key, 0..6u8, 0..6u8).prop_map(|(key, f, token)| {
        let value = Arc::from(format!("<{token}>"));
        match f {
            0 | 1 => KvInput::Get { key },
            2 => KvInput::Put { key, value },
            _ => KvInput::Append { key, value },
        }
    });
    let output = prop_oneof![Just(""), Just("<1>"), Just("<1><2>"), Just("<2><1>")]
        .prop_map(|v| KvOutput::Value(v.to_string()));
    (
        prop::collection::vec(planned_with(input, 2), 1..8),
        prop::option::of((0..8usize, output)),
    )
}

fn kv_case() -> impl Strategy<Value = KvCase> {
    (
        prop::collection::vec(planned(kv_input()), 1..8),
        prop::option::of((0..8usize, kv_output())),
    )
}

// --- versioned KV (nondeterministic: ErrMaybe) -------------------------------------------

fn run_versioned(
    state: &(String, u64),
    input: &VersionedInput,
) -> (VersionedOutput, (String, u64)) {
    match input {
        VersionedInput::Get { .. } if state.1 == 0 => (VersionedOutput::NoKey, state.clone()),
        VersionedInput::Get { .. } => (
            VersionedOutput::Value {
                value: state.0.clone(),
                version: state.1,
            },
            state.clone(),
        ),
        VersionedInput::Put { value, version, .. } if *version == state.1 => {
            (VersionedOutput::Done, (value.to_string(), state.1 + 1))
        }
        VersionedInput::Put { .. } if state.1 == 0 => (VersionedOutput::NoKey, state.clone()),
        VersionedInput::Put { .. } => (VersionedOutput::ErrVersion, state.clone()),
    }
}

fn versioned_input() -> impl Strategy<Value = VersionedInput> {
    let key = || "k".to_string();
    prop_oneof![
        Just(VersionedInput::Get { key: key() }),
        (prop_oneof![Just("x"), Just("y")], 0..3u64).prop_map(move |(v, version)| {
            VersionedInput::Put {
                key: key(),
                value: Arc::from(v),
                version,
            }
        }),
    ]
}

fn versioned_output() -> impl Strategy<Value = VersionedOutput> {
    prop_oneof![
        (prop_oneof![Just("x"), Just("y")], 1..3u64).prop_map(|(v, version)| {
            VersionedOutput::Value {
                value: v.to_string(),
                version,
            }
        }),
        Just(VersionedOutput::NoKey),
        Just(VersionedOutput::Done),
        Just(VersionedOutput::ErrVersion),
        Just(VersionedOutput::ErrMaybe),
    ]
}

type VersionedCase = (
    Vec<Planned<VersionedInput>>,
    Option<(usize, VersionedOutput)>,
);

fn versioned_case() -> impl Strategy<Value = VersionedCase> {
    (
        prop::collection::vec(planned(versioned_input()), 1..8),
        prop::option::of((0..8usize, versioned_output())),
    )
}

// --- properties ----------------------------------------------------------------------------

/// Checks one case both ways; an unmutated history came from a real execution, so it must
/// also be linearizable.
fn agree<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    mutated: bool,
) -> CheckResult
where
    M::Input: std::fmt::Debug + Clone,
    M::Output: std::fmt::Debug + Clone,
{
    agree_with(model, model, history, mutated)
}

/// As [`agree`], with a different (unpartitioned) model for the brute force.
fn agree_with<M: Model, B: Model<Input = M::Input, Output = M::Output>>(
    model: &M,
    brute: &B,
    history: &[Operation<M::Input, M::Output>],
    mutated: bool,
) -> CheckResult
where
    M::Input: std::fmt::Debug + Clone,
    M::Output: std::fmt::Debug + Clone,
{
    let expected = brute_force(brute, history);
    let got = check_operations(model, history, None);
    assert_eq!(
        got, expected,
        "checker and brute force disagree on {history:#?}"
    );
    // The parallel search, from the first step (it normally starts after 2^19 steps).
    let parallel = CheckOptions {
        threads: 3,
        parallel_after_steps: 0,
        ..CheckOptions::default()
    };
    let analysis_parallel = check_operations_with(model, history, &parallel);
    assert_eq!(
        analysis_parallel.result, expected,
        "the parallel search and brute force disagree on {history:#?}"
    );
    if expected == CheckResult::Illegal {
        // The sub-history an illegal search proves (the operations called before the latest
        // return it reached, which counterexamples start from) is illegal too, on one
        // thread and on several.
        let one = CheckOptions {
            threads: 1,
            ..CheckOptions::default()
        };
        for analysis in [
            check_operations_with(model, history, &one),
            analysis_parallel,
        ] {
            let partition = analysis
                .partitions
                .iter()
                .find(|p| p.result == CheckResult::Illegal)
                .expect("an illegal partition");
            let (stuck, core) = partition
                .core
                .as_ref()
                .expect("an illegal search has a core");
            assert!(
                core.contains(stuck),
                "the core holds the operation it is stuck at"
            );
            let sub: Vec<_> = core.iter().map(|&i| history[i].clone()).collect();
            assert_eq!(
                brute_force(brute, &sub),
                CheckResult::Illegal,
                "the core {core:?} of {history:#?} is linearizable"
            );
        }
    }
    if !mutated {
        assert_eq!(
            got,
            CheckResult::Ok,
            "a history of a real execution is illegal: {history:#?}"
        );
    }
    got
}

fn cas_verdict((plan, mutation): CasCase) -> CheckResult {
    let mutated = mutation.is_some();
    agree(
        &CasRegister,
        &history(None, run_cas, &plan, mutation),
        mutated,
    )
}

fn kv_verdict((plan, mutation): KvCase) -> CheckResult {
    let mutated = mutation.is_some();
    agree_with(
        &Kv,
        &BothKeys,
        &history(Default::default(), run_kv, &plan, mutation),
        mutated,
    )
}

fn versioned_verdict((plan, mutation): VersionedCase) -> CheckResult {
    let mutated = mutation.is_some();
    let init = (String::new(), 0);
    agree(
        &PowerSet(VersionedKv),
        &history(init, run_versioned, &plan, mutation),
        mutated,
    )
}

proptest! {
    #![proptest_config(Config { cases: 400, ..Config::default() })]

    #[test]
    fn cas_register_agrees_with_brute_force(case in cas_case()) {
        cas_verdict(case);
    }

    #[test]
    fn crashed_writers_agree_with_brute_force(case in crashed_writers_case()) {
        cas_verdict(case);
    }

    #[test]
    fn partitioned_kv_agrees_with_brute_force(case in kv_case()) {
        kv_verdict(case);
    }

    #[test]
    fn versioned_kv_agrees_with_brute_force(case in versioned_case()) {
        versioned_verdict(case);
    }

    #[test]
    fn register_with_unread_crashed_writes_agrees_with_brute_force(case in unique_register_case()) {
        unique_register_verdict(case);
    }

    #[test]
    fn kv_with_unseen_crashed_appends_agrees_with_brute_force(case in kv_tokens_case()) {
        kv_verdict(case);
    }
}

/// Small generated histories: the verdict known by construction, the brute force and the
/// checker (one thread and several) all agree, for every model and anomaly.
#[test]
fn generated_verdicts_agree_with_brute_force() {
    use aver_checker::formats::{decode, parse_records};
    let combos = [
        (GenModel::Register, None),
        (GenModel::Register, Some(Anomaly::StaleRead)),
        (GenModel::Register, Some(Anomaly::LostWrite)),
        (GenModel::Cas, None),
        (GenModel::Cas, Some(Anomaly::WrongCas)),
        (GenModel::Cas, Some(Anomaly::StaleRead)),
        (GenModel::Kv, None),
        (GenModel::Kv, Some(Anomaly::DuplicatedAppend)),
        (GenModel::Kv, Some(Anomaly::LostWrite)),
        (GenModel::VersionedKv, None),
        (GenModel::VersionedKv, Some(Anomaly::StaleRead)),
    ];
    let mut checked = [0usize; 2];
    for (model, anomaly) in combos {
        for seed in 1..=12 {
            let spec = GenSpec {
                model,
                clients: 3,
                ops: 9,
                keys: 1,
                unknown: 0.15,
                crash: 0.1,
                anomaly,
                seed,
            };
            let Ok(generated) = generate(&spec) else {
                continue; // no provable anomaly in so short a history
            };
            let records = parse_records("gen.jsonl", &generated.jsonl, None).expect("parses");
            let mutated = generated.expected == CheckResult::Illegal;
            let got = match model {
                GenModel::Register => agree(
                    &Register,
                    &decode::<Register>("g", &records).unwrap(),
                    mutated,
                ),
                GenModel::Cas => agree(
                    &CasRegister,
                    &decode::<CasRegister>("g", &records).unwrap(),
                    mutated,
                ),
                GenModel::Kv => agree(&Kv, &decode::<Kv>("g", &records).unwrap(), mutated),
                GenModel::VersionedKv => {
                    let m = PowerSet(VersionedKv);
                    agree(
                        &m,
                        &decode::<PowerSet<VersionedKv>>("g", &records).unwrap(),
                        mutated,
                    )
                }
            };
            assert_eq!(got, generated.expected, "{spec:?}");
            checked[mutated as usize] += 1;
        }
    }
    assert!(
        checked[0] >= 40 && checked[1] >= 40,
        "too few generated: {checked:?}"
    );
}

/// Samples `n` cases with a fixed seed and counts the verdicts.
fn verdict_counts<T: std::fmt::Debug>(
    strategy: impl Strategy<Value = T>,
    verdict: fn(T) -> CheckResult,
) -> (usize, usize) {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let (mut ok, mut illegal) = (0, 0);
    for _ in 0..300 {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        match verdict(case) {
            CheckResult::Ok => ok += 1,
            CheckResult::Illegal => illegal += 1,
            CheckResult::Unknown => panic!("no timeout was set"),
        }
    }
    (ok, illegal)
}

/// The generators reach both verdicts often, so the agreement above means something for each.
#[test]
fn generated_histories_cover_both_verdicts() {
    for (name, (ok, illegal)) in [
        ("cas", verdict_counts(cas_case(), cas_verdict)),
        (
            "crashed writers",
            verdict_counts(crashed_writers_case(), cas_verdict),
        ),
        ("kv", verdict_counts(kv_case(), kv_verdict)),
        (
            "versioned kv",
            verdict_counts(versioned_case(), versioned_verdict),
        ),
    ] {
        assert!(
            ok >= 60 && illegal >= 60,
            "{name}: {ok} linearizable, {illegal} illegal of 300"
        );
    }
}

/// Events are checked as the operations they pair into.
#[test]
fn events_check_like_the_operations_they_pair_into() {
    let call = |id, input| Event {
        client: id,
        id,
        kind: EventKind::Call(input),
    };
    let ret = |id, output| Event {
        client: id,
        id,
        kind: EventKind::Return(Some(output)),
    };
    let ok = [
        call(0, RegisterInput::Write(1)),
        call(1, RegisterInput::Read),
        ret(1, RegisterOutput::Read(Some(1))),
        ret(0, RegisterOutput::Write),
    ];
    assert_eq!(check_events(&CasRegister, &ok, None), Ok(CheckResult::Ok));
    let stale = [
        call(0, RegisterInput::Write(1)),
        ret(0, RegisterOutput::Write),
        call(1, RegisterInput::Read),
        ret(1, RegisterOutput::Read(None)),
    ];
    assert_eq!(
        check_events(&CasRegister, &stale, None),
        Ok(CheckResult::Illegal)
    );
    assert!(
        check_events(&CasRegister, &stale[1..], None).is_err(),
        "return without call"
    );
}
