//! Search behaviour beyond verdicts: timeouts, counterexamples, unknown outcomes.

use aver_checker::counterexample::{find, replay, timeline};
use aver_checker::formats::read_history;
use aver_checker::models::{CasRegister, RegisterInput as In, RegisterOutput as Out};
use aver_checker::{CheckResult, Model, Operation, check_operations, check_operations_verbose};
use std::path::PathBuf;
use std::time::Duration;

fn corpus(file: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/porcupine")
        .join(file);
    assert!(
        path.is_file(),
        "the Porcupine corpus is missing: {}",
        path.display()
    );
    path
}

fn op(
    client: u64,
    input: In,
    call: u64,
    output: Option<Out>,
    ret: Option<u64>,
) -> Operation<In, Out> {
    Operation {
        client,
        input,
        call,
        output,
        ret,
    }
}

#[test]
fn a_timeout_gives_unknown_never_ok() {
    let history =
        read_history::<CasRegister>(&corpus("jepsen/etcd_002.log"), None).expect("parses");
    let result = check_operations(&CasRegister, &history, Some(Duration::from_nanos(1)));
    assert_eq!(result, CheckResult::Unknown);
    assert_eq!(
        check_operations(&CasRegister, &history, None),
        CheckResult::Ok
    );
}

#[test]
fn closed_intervals_make_touching_operations_concurrent() {
    // The read is called exactly when the write returns: concurrent, so it may see nil.
    let history = [
        op(0, In::Write(1), 0, Some(Out::Write), Some(5)),
        op(1, In::Read, 5, Some(Out::Read(None)), Some(6)),
    ];
    assert_eq!(
        check_operations(&CasRegister, &history, None),
        CheckResult::Ok
    );
    let later = [
        history[0].clone(),
        op(1, In::Read, 6, Some(Out::Read(None)), Some(7)),
    ];
    assert_eq!(
        check_operations(&CasRegister, &later, None),
        CheckResult::Illegal
    );
}

#[test]
fn a_never_returned_operation_may_take_effect_late_or_never() {
    let crashed = op(0, In::Write(1), 0, None, None);
    let read = |call, value| op(1, In::Read, call, Some(Out::Read(value)), Some(call + 1));
    let late = [crashed.clone(), read(10, None), read(20, Some(1))];
    assert_eq!(
        check_operations(&CasRegister, &late, None),
        CheckResult::Ok,
        "takes effect late"
    );
    let never = [crashed.clone(), read(10, None), read(20, None)];
    assert_eq!(
        check_operations(&CasRegister, &never, None),
        CheckResult::Ok,
        "never takes effect"
    );
    let flicker = [crashed, read(10, Some(1)), read(20, None)];
    assert_eq!(
        check_operations(&CasRegister, &flicker, None),
        CheckResult::Illegal,
        "not undone"
    );
}

#[test]
fn linearizations_replay_through_the_model() {
    let history =
        read_history::<CasRegister>(&corpus("jepsen/etcd_007.log"), None).expect("parses");
    let analysis = check_operations_verbose(&CasRegister, &history, None);
    assert_eq!(analysis.result, CheckResult::Ok);
    let order = &analysis.partitions[0].linearization;
    let returned = history.iter().filter(|o| o.ret.is_some()).count();
    assert!(
        order.len() >= returned,
        "every returned operation is linearized"
    );
    assert_eq!(
        replay(&CasRegister, &history, order).len(),
        order.len(),
        "the model accepts the order"
    );
}

#[test]
fn counterexample_of_etcd_057_is_a_minimal_ordering_violation() {
    let history =
        read_history::<CasRegister>(&corpus("jepsen/etcd_057.log"), None).expect("parses");
    let analysis = check_operations_verbose(&CasRegister, &history, None);
    let cx = find(&CasRegister, &history, &analysis, Duration::from_secs(10)).expect("illegal");
    assert!(cx.is_minimal && cx.explained);
    let sub = |ops: &[usize]| ops.iter().map(|&i| history[i].clone()).collect::<Vec<_>>();
    assert_eq!(
        check_operations(&CasRegister, &sub(&cx.minimal), None),
        CheckResult::Illegal
    );
    for k in 0..cx.minimal.len() {
        let mut fewer = cx.minimal.clone();
        fewer.remove(k);
        let still = check_operations(&CasRegister, &sub(&fewer), None);
        let unexplained = {
            let stretched: Vec<_> = sub(&fewer)
                .into_iter()
                .map(|o| Operation {
                    call: 0,
                    ret: o.ret.map(|_| 1),
                    ..o
                })
                .collect();
            check_operations(&CasRegister, &stretched, None) != CheckResult::Ok
        };
        assert!(
            still != CheckResult::Illegal || unexplained,
            "operation {k} could be removed"
        );
    }
    // The prefix is a partial linearization the model accepts.
    assert_eq!(
        replay(&CasRegister, &history, &cx.prefix).len(),
        cx.prefix.len()
    );
    assert!(cx.prefix.len() < history.len());
}

#[test]
fn timeline_draws_one_row_per_client_in_event_order() {
    let history = [
        op(7, In::Write(4), 0, Some(Out::Write), Some(10)),
        op(3, In::Write(3), 20, Some(Out::Write), Some(30)),
        op(9, In::Read, 40, Some(Out::Read(Some(4))), Some(50)),
        op(
            5,
            In::Cas {
                expected: 1,
                new: 2,
            },
            5,
            None,
            None,
        ),
    ];
    let text = timeline(&CasRegister, &history, &[0, 1, 2, 3]);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 4);
    assert!(
        rows[0].starts_with("client 3") && rows[3].starts_with("client 9"),
        "{text}"
    );
    let col = |row: &str, s: &str| {
        row.find(s)
            .unwrap_or_else(|| panic!("{s} missing in {text}"))
    };
    assert!(
        col(rows[2], "write(4)") < col(rows[0], "write(3)"),
        "{text}"
    );
    assert!(
        col(rows[0], "write(3)") < col(rows[3], "read() -> 4"),
        "{text}"
    );
    assert!(
        rows[1].contains("cas(1, 2) -> ?") && rows[1].trim_end().ends_with('>'),
        "{text}"
    );
    assert_eq!(CasRegister.describe_state(&Some(4)), "4");
}

#[test]
fn the_first_illegal_partition_stops_the_others() {
    use aver_checker::models::{Kv, KvInput, KvOutput};
    use std::sync::Arc;
    // Key "slow": 16 concurrent appends and a get no order explains: without the stop this
    // explores every subset in every order (far beyond the minute allowed below).
    let mut history: Vec<Operation<KvInput, KvOutput>> = (0..16)
        .map(|c| Operation {
            client: c,
            input: KvInput::Append {
                key: "slow".into(),
                value: Arc::from(format!("<{c}>")),
            },
            call: 0,
            output: Some(KvOutput::Done),
            ret: Some(100),
        })
        .collect();
    history.push(Operation {
        client: 99,
        input: KvInput::Get { key: "slow".into() },
        call: 1,
        output: Some(KvOutput::Value("nothing appended this".into())),
        ret: Some(100),
    });
    // Key "a": a put that completed, then a get that does not see it.
    let put = KvInput::Put {
        key: "a".into(),
        value: Arc::from("x"),
    };
    history.push(Operation {
        client: 20,
        input: put,
        call: 0,
        output: Some(KvOutput::Done),
        ret: Some(1),
    });
    let get = KvInput::Get { key: "a".into() };
    history.push(Operation {
        client: 21,
        input: get,
        call: 2,
        output: Some(KvOutput::Value(String::new())),
        ret: Some(3),
    });
    let started = std::time::Instant::now();
    let analysis = check_operations_verbose(&Kv, &history, Some(Duration::from_secs(60)));
    assert_eq!(analysis.result, CheckResult::Illegal);
    let slow = analysis
        .partitions
        .iter()
        .find(|p| p.key == "slow")
        .expect("partition");
    assert!(
        slow.stopped && slow.result == CheckResult::Unknown,
        "stopped, not timed out"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "stopped early");
}

#[test]
fn kv_counterexample_keeps_the_appends_that_explain_the_get() {
    use aver_checker::models::{Kv, KvInput};
    let history = read_history::<Kv>(&corpus("kv/c10-bad.txt"), None).expect("parses");
    let analysis = check_operations_verbose(&Kv, &history, None);
    let cx = find(&Kv, &history, &analysis, Duration::from_secs(10)).expect("illegal");
    assert!(cx.explained, "a witness was found");
    let gets = cx
        .minimal
        .iter()
        .filter(|&&i| matches!(history[i].input, KvInput::Get { .. }))
        .count();
    assert!(
        gets >= 1 && cx.minimal.len() > gets,
        "the get comes with its appends: {:?}",
        cx.minimal
    );
    let sub: Vec<_> = cx.minimal.iter().map(|&i| history[i].clone()).collect();
    assert_eq!(check_operations(&Kv, &sub, None), CheckResult::Illegal);
}
