//! The shard controller model (`ShardCtrl`) against a brute-force checker and a reference
//! controller: histories of a real sequential execution (a reference controller that
//! rebalances round-robin, a choice of its own the model does not know) must be
//! linearizable; with one output replaced at random, the search and the brute force must
//! agree. Then hand-written histories of what a broken controller shows: replicas answering
//! one configuration number differently, a stale latest configuration, a wrong number.

use aver_checker::models::{CtrlConfig, CtrlGroups, CtrlInput, CtrlOutput, ShardCtrl};
use aver_checker::{CheckResult, Model, Operation, check_operations};
use proptest::prelude::*;
use std::collections::BTreeSet;

const SHARDS: usize = 4;

/// Tries every order of every subset of never-returned operations.
fn brute_force<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> CheckResult {
    fn search<M: Model>(
        model: &M,
        history: &[Operation<M::Input, M::Output>],
        placed: &mut [bool],
        state: &M::State,
    ) -> bool {
        let unplaced: Vec<usize> = (0..history.len()).filter(|&j| !placed[j]).collect();
        if unplaced.iter().all(|&j| history[j].ret.is_none()) {
            return true;
        }
        for &i in &unplaced {
            let blocked = unplaced
                .iter()
                .any(|&j| history[j].ret.is_some_and(|r| r < history[i].call));
            if blocked {
                continue;
            }
            let Some(next) = model.step(state, &history[i].input, history[i].output.as_ref())
            else {
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
    let mut placed = vec![false; history.len()];
    if search(model, history, &mut placed, &model.init()) {
        CheckResult::Ok
    } else {
        CheckResult::Illegal
    }
}

/// The reference controller: every configuration so far.
type Configs = Vec<CtrlConfig>;

fn initial() -> Configs {
    vec![CtrlConfig {
        num: 0,
        shards: vec![0; SHARDS],
        groups: CtrlGroups::new(),
    }]
}

/// Runs one operation on the reference controller (round-robin rebalancing over the groups
/// in gid order: balanced, every shard on a member, but not minimal).
fn run(configs: &Configs, input: &CtrlInput) -> (CtrlOutput, Configs) {
    let latest = configs.last().unwrap().clone();
    let mut next = CtrlConfig {
        num: latest.num + 1,
        ..latest.clone()
    };
    let refuse = (CtrlOutput::Err, configs.clone());
    match input {
        CtrlInput::Query(k) => {
            let k = k.filter(|k| (*k as usize) < configs.len());
            let c = k.map_or(latest, |k| configs[k as usize].clone());
            return (CtrlOutput::Config(c), configs.clone());
        }
        CtrlInput::Join(joining) => {
            // A server may be listed by one group only, members and joining together.
            let mut servers: BTreeSet<u64> = latest.groups.values().flatten().copied().collect();
            let clash = !joining.values().all(|list| {
                list.iter()
                    .collect::<BTreeSet<_>>()
                    .iter()
                    .all(|s| servers.insert(**s))
            });
            let bad = joining
                .keys()
                .any(|g| *g == 0 || latest.groups.contains_key(g));
            if joining.is_empty() || clash || bad || joining.values().any(Vec::is_empty) {
                return refuse;
            }
            next.groups.extend(joining.clone());
            round_robin(&mut next);
        }
        CtrlInput::Leave(leaving) => {
            if leaving.is_empty() || !leaving.iter().all(|g| latest.groups.contains_key(g)) {
                return refuse;
            }
            next.groups.retain(|g, _| !leaving.contains(g));
            round_robin(&mut next);
        }
        CtrlInput::Move { shard, gid } => {
            if *shard as usize >= SHARDS || !latest.groups.contains_key(gid) {
                return refuse;
            }
            next.shards[*shard as usize] = *gid;
        }
    }
    let mut after = configs.clone();
    after.push(next.clone());
    (CtrlOutput::Done(next.num), after)
}

fn round_robin(c: &mut CtrlConfig) {
    let gids: Vec<u64> = c.groups.keys().copied().collect();
    for (s, g) in c.shards.iter_mut().enumerate() {
        *g = if gids.is_empty() {
            0
        } else {
            gids[s % gids.len()]
        };
    }
}

fn input() -> impl Strategy<Value = CtrlInput> {
    // Group g's servers are [10g]; group 4 reuses group 1's server (refused while 1 is in).
    let servers = |g: u64| vec![if g == 4 { 10 } else { 10 * g }];
    prop_oneof![
        2 => prop::collection::btree_set(1..5u64, 1..3).prop_map(move |gids| {
            CtrlInput::Join(gids.into_iter().map(|g| (g, servers(g))).collect())
        }),
        1 => prop::collection::btree_set(1..4u64, 1..3).prop_map(CtrlInput::Leave),
        1 => (0..SHARDS as u64 + 1, 1..4u64)
            .prop_map(|(shard, gid)| CtrlInput::Move { shard, gid }),
        3 => prop::option::of(0..5u64).prop_map(CtrlInput::Query),
    ]
}

fn output() -> impl Strategy<Value = CtrlOutput> {
    prop_oneof![
        (0..5u64).prop_map(CtrlOutput::Done),
        Just(CtrlOutput::Err),
        (0..4u64, prop::collection::vec(0..4u64, SHARDS)).prop_map(|(num, shards)| {
            CtrlOutput::Config(CtrlConfig {
                num,
                shards,
                groups: CtrlGroups::new(),
            })
        }),
    ]
}

/// One operation of a plan: input, linearization point, interval around it, fate (0:
/// returns its output; 1: returns, output unknown; 2: never returns but took effect; 3:
/// never returns and never took effect).
type Planned = (CtrlInput, u64, u64, u64, u8);

fn history(
    plan: &[Planned],
    mutation: Option<(usize, CtrlOutput)>,
) -> Vec<Operation<CtrlInput, CtrlOutput>> {
    let mut order: Vec<usize> = (0..plan.len()).collect();
    order.sort_by_key(|&i| (plan[i].1, i));
    let mut outputs = vec![None; plan.len()];
    let mut configs = initial();
    for i in order {
        if plan[i].4 != 3 {
            let (out, next) = run(&configs, &plan[i].0);
            outputs[i] = Some(out);
            configs = next;
        }
    }
    let mut ops: Vec<_> = plan
        .iter()
        .zip(outputs)
        .enumerate()
        .map(
            |(i, ((input, point, before, after, fate), out))| Operation {
                client: i as u64,
                input: input.clone(),
                call: point.saturating_sub(*before),
                output: if *fate == 0 { out } else { None },
                ret: (*fate <= 1).then_some(point + after),
            },
        )
        .collect();
    if let Some((i, out)) = mutation {
        let i = i % ops.len();
        if ops[i].ret.is_some() {
            ops[i].output = Some(out);
        }
    }
    ops
}

fn planned() -> impl Strategy<Value = Planned> {
    let fate = prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)];
    (input(), 0..40u64, 0..12u64, 0..12u64, fate).prop_map(|(i, p, b, a, f)| (i, p * 2, b, a, f))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn shard_ctrl_agrees_with_brute_force(
        plan in prop::collection::vec(planned(), 1..8),
        mutation in prop::option::of((0..8usize, output())),
    ) {
        let model = ShardCtrl { shards: SHARDS };
        let ops = history(&plan, mutation.clone());
        let expected = brute_force(&model, &ops);
        let got = check_operations(&model, &ops, None);
        prop_assert_eq!(got, expected, "checker and brute force disagree on {:#?}", ops);
        if mutation.is_none() {
            prop_assert_eq!(got, CheckResult::Ok, "a real execution is illegal: {:#?}", ops);
        }
    }
}

fn op(
    client: u64,
    call: u64,
    ret: u64,
    input: CtrlInput,
    output: CtrlOutput,
) -> Operation<CtrlInput, CtrlOutput> {
    Operation {
        client,
        input,
        call,
        output: Some(output),
        ret: Some(ret),
    }
}

fn join(g: u64) -> CtrlInput {
    CtrlInput::Join([(g, vec![10 * g])].into_iter().collect())
}

fn config(num: u64, shards: &[u64], gids: &[u64]) -> CtrlOutput {
    CtrlOutput::Config(CtrlConfig {
        num,
        shards: shards.to_vec(),
        groups: gids.iter().map(|g| (*g, vec![10 * g])).collect(),
    })
}

/// Two replicas answer "configuration 2" with different assignments (the seeded bug
/// `rebalance-differs`): no single controller could.
#[test]
fn two_answers_for_one_configuration_are_illegal() {
    let model = ShardCtrl { shards: SHARDS };
    let ops = vec![
        op(0, 0, 1, join(1), CtrlOutput::Done(1)),
        op(0, 2, 3, join(2), CtrlOutput::Done(2)),
        op(
            1,
            4,
            5,
            CtrlInput::Query(Some(2)),
            config(2, &[1, 1, 2, 2], &[1, 2]),
        ),
        op(
            2,
            6,
            7,
            CtrlInput::Query(Some(2)),
            config(2, &[2, 2, 1, 1], &[1, 2]),
        ),
    ];
    assert_eq!(check_operations(&model, &ops[..3], None), CheckResult::Ok);
    assert_eq!(check_operations(&model, &ops, None), CheckResult::Illegal);
}

/// A latest-configuration query that misses a completed Join, a wrong configuration number,
/// an unbalanced assignment, and a Move whose configuration changed another shard.
#[test]
fn stale_wrong_and_unbalanced_answers_are_illegal() {
    let model = ShardCtrl { shards: SHARDS };
    let j1 = op(0, 0, 1, join(1), CtrlOutput::Done(1));
    let stale = op(1, 2, 3, CtrlInput::Query(None), config(0, &[0; 4], &[]));
    assert_eq!(
        check_operations(&model, &[j1.clone(), stale], None),
        CheckResult::Illegal
    );
    let wrong = op(1, 2, 3, join(2), CtrlOutput::Done(3));
    assert_eq!(
        check_operations(&model, &[j1.clone(), wrong], None),
        CheckResult::Illegal
    );
    let j2 = op(0, 2, 3, join(2), CtrlOutput::Done(2));
    let lopsided = op(
        1,
        4,
        5,
        CtrlInput::Query(None),
        config(2, &[1, 1, 1, 2], &[1, 2]),
    );
    let ops = [j1.clone(), j2.clone(), lopsided];
    assert_eq!(check_operations(&model, &ops, None), CheckResult::Illegal);
    let mv = op(
        0,
        4,
        5,
        CtrlInput::Move { shard: 0, gid: 2 },
        CtrlOutput::Done(3),
    );
    let q2 = op(
        1,
        6,
        7,
        CtrlInput::Query(Some(2)),
        config(2, &[1, 1, 2, 2], &[1, 2]),
    );
    let q3 = op(
        1,
        8,
        9,
        CtrlInput::Query(Some(3)),
        config(3, &[2, 1, 2, 1], &[1, 2]),
    );
    let ops = [j1.clone(), j2.clone(), mv.clone(), q2.clone(), q3];
    assert_eq!(check_operations(&model, &ops, None), CheckResult::Illegal);
    let q3 = op(
        1,
        8,
        9,
        CtrlInput::Query(Some(3)),
        config(3, &[2, 1, 2, 2], &[1, 2]),
    );
    assert_eq!(
        check_operations(&model, &[j1, j2, mv, q2, q3], None),
        CheckResult::Ok
    );
}
