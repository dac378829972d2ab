//! The MapReduce model's pinned numbers: each CI configuration checked exhaustively (state
//! count pinned, every property holding, every `sometimes` example found), and each seeded bug
//! caught by the property that states what a user loses. Run in release:
//! `cargo test -p aver-models --release --test mr`.

use aver_core::mr::{MrBug, MrBugs};
use aver_models::mr::{MrModelCfg, PROPERTIES};
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::time::Instant;

fn check(cfg: MrModelCfg) -> (usize, Vec<(&'static str, Option<usize>)>) {
    let model = cfg.clone().into_model();
    let t = Instant::now();
    let checker = model.checker().threads(1).spawn_dfs().join();
    eprintln!(
        "{cfg}: unique={} states={} depth={} in {:.2}s",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        t.elapsed().as_secs_f64()
    );
    let found = PROPERTIES
        .iter()
        .map(|p| {
            (
                p.name,
                checker.discovery(p.name).map(|d| d.into_actions().len()),
            )
        })
        .collect();
    (checker.unique_state_count(), found)
}

fn assert_all_hold(found: &[(&'static str, Option<usize>)]) {
    for (p, (name, d)) in PROPERTIES.iter().zip(found) {
        match p.expectation {
            Expectation::Sometimes => assert!(d.is_some(), "{name}: no example"),
            _ => assert!(d.is_none(), "{name}: violated in {d:?} steps"),
        }
    }
}

/// Every property holds in every CI configuration, every `sometimes` has an example, and
/// the state counts are pinned (a change to the core or the model shows up here).
#[test]
fn mr_ci_configurations_hold() {
    let pinned = [("ci", 11_244), ("ci_backups", 60_439)];
    for ((name, cfg), (pinned_name, pinned_count)) in MrModelCfg::ci_all().into_iter().zip(pinned) {
        assert_eq!(name, pinned_name);
        let (unique, found) = check(cfg);
        assert_all_hold(&found);
        assert_eq!(unique, pinned_count, "{name}: unique state count changed");
    }
}

fn caught_by(bug: MrBug, property: &'static str) {
    let mut cfg = MrModelCfg::ci();
    cfg.bugs = MrBugs::NONE.with(bug);
    let model = cfg.into_model();
    let checker = model
        .checker()
        .threads(1)
        .finish_when(HasDiscoveries::AnyFailures)
        .spawn_bfs()
        .join();
    let path = checker.discovery(property);
    assert!(path.is_some(), "{bug} not caught by {property}");
}

#[test]
fn seeded_bug_reassign_without_timeout_is_caught_by_mr5() {
    caught_by(MrBug::ReassignWithoutTimeout, "MR-5 runs justified");
}

#[test]
fn seeded_bug_done_on_stale_report_is_caught_by_mr3() {
    caught_by(
        MrBug::DoneOnStaleReport,
        "MR-3 outputs from completed tasks",
    );
}
