//! `aver-tests`: the ported 6.5840 suites, run on the deterministic simulator (`aver-sim`).
//!
//! * [`raft_3ab`], [`raft_3cd`]: the 28 lab tests, one function `fn(seed) -> Outcome<Report>`
//!   each, run both by `cargo test` (`tests/raft_3*.rs`) and by `aver sim raft --seeds N`.
//! * [`kvsrv1`], [`lock`]: the 8 tests of Lab 2 (kvsrv1 and its lock) on the tester in
//!   [`kv_lab`], run by `cargo test` (`tests/kvsrv1.rs`, `tests/lock.rs`) and by `aver sim kv`.
//! * [`alloc`]: the counting allocator the memory tests measure with.
//!
//! Suites ([`SUITES`]) group scenarios by `aver sim SUITE`; the `kv` suite's groups are
//! listed in [`KV`], where each KV service adds its own.
//!
//! A run is a function of its seed: same seed, same event trace (see [`aver_sim::Report`]'s
//! `trace_hash`). A failure names its seed and the command that replays it.

#![warn(missing_docs)]

pub mod alloc;
pub mod kv_lab;
pub mod kvraft1;
pub mod kvraft_lab;
pub mod kvsrv1;
pub mod lock;
pub mod raft_3ab;
pub mod raft_3cd;
pub mod rsm;
pub mod shard;
pub mod shardctrler;

pub use aver_sim::{Failure, Outcome, Report};

use std::panic::{AssertUnwindSafe, catch_unwind};

/// A scenario: the lab test it ports, its function and its event budget.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Our name (`figure8_unreliable_3c`).
    pub name: &'static str,
    /// The lab's name (`TestFigure8Unreliable3C`).
    pub lab_name: &'static str,
    /// The `aver sim` suite it belongs to (`raft`, `kv`).
    pub suite: &'static str,
    /// The scenario.
    pub run: fn(u64) -> Outcome<Report>,
    /// The most events a run may process: ten times the most any of seeds 1..=200 needed
    /// (`aver sim SUITE --seeds 200 --extra` prints it as "events max"), and at least 10 000,
    /// so only a core that loops or storms reaches it. Exceeding it fails the run.
    pub events_max: u64,
}

macro_rules! scenarios {
    ($(#[$doc:meta])* $group:ident in $suite:literal:
     $($module:ident :: $name:ident = $lab:literal, $events_max:expr;)*) => {
        $(#[$doc])*
        pub const $group: &[Scenario] = &[
            $(Scenario {
                name: stringify!($name),
                lab_name: $lab,
                suite: $suite,
                run: $module::$name,
                events_max: $events_max,
            }),*
        ];
    };
}

scenarios! {
    /// Every Raft scenario, in the lab's order (3A, 3B, 3C, 3D).
    RAFT in "raft":
    raft_3ab::initial_election_3a = "TestInitialElection3A", 10_000;
    raft_3ab::re_election_3a = "TestReElection3A", 10_000;
    raft_3ab::many_elections_3a = "TestManyElections3A", 10_000;
    raft_3ab::basic_agree_3b = "TestBasicAgree3B", 10_000;
    raft_3ab::rpc_bytes_3b = "TestRPCBytes3B", 10_000;
    raft_3ab::follower_failure_3b = "TestFollowerFailure3B", 10_000;
    raft_3ab::leader_failure_3b = "TestLeaderFailure3B", 10_000;
    raft_3ab::fail_agree_3b = "TestFailAgree3B", 10_000;
    raft_3ab::fail_no_agree_3b = "TestFailNoAgree3B", 10_000;
    raft_3ab::concurrent_starts_3b = "TestConcurrentStarts3B", 10_000;
    raft_3ab::rejoin_3b = "TestRejoin3B", 10_000;
    raft_3ab::backup_3b = "TestBackup3B", 30_000;
    raft_3ab::count_3b = "TestCount3B", 10_000;
    raft_3cd::persist1_3c = "TestPersist13C", 10_000;
    raft_3cd::persist2_3c = "TestPersist23C", 11_000;
    raft_3cd::persist3_3c = "TestPersist33C", 10_000;
    raft_3cd::figure8_3c = "TestFigure83C", 54_000;
    raft_3cd::unreliable_agree_3c = "TestUnreliableAgree3C", 50_000;
    raft_3cd::figure8_unreliable_3c = "TestFigure8Unreliable3C", 78_000;
    raft_3cd::reliable_churn_3c = "TestReliableChurn3C", 840_000;
    raft_3cd::unreliable_churn_3c = "TestUnreliableChurn3C", 280_000;
    raft_3cd::snapshot_basic_3d = "TestSnapshotBasic3D", 23_000;
    raft_3cd::snapshot_install_3d = "TestSnapshotInstall3D", 47_000;
    raft_3cd::snapshot_install_unreliable_3d = "TestSnapshotInstallUnreliable3D", 55_000;
    raft_3cd::snapshot_install_crash_3d = "TestSnapshotInstallCrash3D", 37_000;
    raft_3cd::snapshot_install_uncrash_3d = "TestSnapshotInstallUnCrash3D", 39_000;
    raft_3cd::snapshot_all_crash_3d = "TestSnapshotAllCrash3D", 15_000;
    raft_3cd::snapshot_init_3d = "TestSnapshotInit3D", 10_000;
}

scenarios! {
    /// Lab 2's kvsrv1 tests (`src/kvsrv1/kvsrv_test.go`), in the lab's order.
    KVSRV1 in "kv":
    kvsrv1::kvsrv1_reliable_put = "TestReliablePut", 10_000;
    kvsrv1::kvsrv1_put_concurrent_reliable = "TestPutConcurrentReliable", 2_000_000;
    kvsrv1::kvsrv1_mem_put_many_clients_reliable = "TestMemPutManyClientsReliable", 8_000_000;
    kvsrv1::kvsrv1_unreliable_net = "TestUnreliableNet", 10_000;
}

scenarios! {
    /// Lab 2's lock tests (`src/kvsrv1/lock/lock_test.go`), in the lab's order.
    LOCK in "kv":
    lock::lock_one_client_reliable = "TestOneClientReliable", 43_000;
    lock::lock_many_clients_reliable = "TestManyClientsReliable", 125_000;
    lock::lock_one_client_unreliable = "TestOneClientUnreliable", 10_000;
    lock::lock_many_clients_unreliable = "TestManyClientsUnreliable", 36_000;
}

scenarios! {
    /// Lab 4's rsm tests (`src/kvraft1/rsm/rsm_test.go`, 4A and 4C), in the lab's order.
    RSM in "kv":
    rsm::rsm_basic_4a = "TestBasic4A", 1_800;
    rsm::rsm_concurrent_4a = "TestConcurrent4A", 21_000;
    rsm::rsm_leader_failure_4a = "TestLeaderFailure4A", 1_300;
    rsm::rsm_leader_partition_4a = "TestLeaderPartition4A", 2_800;
    rsm::rsm_restart_replay_4a = "TestRestartReplay4A", 16_000;
    rsm::rsm_shutdown_4a = "TestShutdown4A", 3_100;
    rsm::rsm_restart_submit_4a = "TestRestartSubmit4A", 24_000;
    rsm::rsm_snapshot_4c = "TestSnapshot4C", 8_900;
}

scenarios! {
    /// Lab 4's kvraft1 tests (`src/kvraft1/kvraft_test.go`, 4B and 4C), in the lab's order.
    KVRAFT1 in "kv":
    kvraft1::kvraft_basic_4b = "TestBasic4B", 110_000;
    kvraft1::kvraft_speed_4b = "TestSpeed4B", 110_000;
    kvraft1::kvraft_concurrent_4b = "TestConcurrent4B", 540_000;
    kvraft1::kvraft_unreliable_4b = "TestUnreliable4B", 66_000;
    kvraft1::kvraft_one_partition_4b = "TestOnePartition4B", 9_600;
    kvraft1::kvraft_many_partitions_one_client_4b = "TestManyPartitionsOneClient4B", 130_000;
    kvraft1::kvraft_many_partitions_many_clients_4b = "TestManyPartitionsManyClients4B", 570_000;
    kvraft1::kvraft_persist_one_client_4b = "TestPersistOneClient4B", 86_000;
    kvraft1::kvraft_persist_concurrent_4b = "TestPersistConcurrent4B", 420_000;
    kvraft1::kvraft_persist_concurrent_unreliable_4b =
        "TestPersistConcurrentUnreliable4B", 53_000;
    kvraft1::kvraft_persist_partition_4b = "TestPersistPartition4B", 440_000;
    kvraft1::kvraft_persist_partition_unreliable_4b =
        "TestPersistPartitionUnreliable4B", 60_000;
    kvraft1::kvraft_persist_partition_unreliable_linearizable_4b =
        "TestPersistPartitionUnreliableLinearizable4B", 220_000;
    kvraft1::kvraft_snapshot_rpc_4c = "TestSnapshotRPC4C", 6_600;
    kvraft1::kvraft_snapshot_size_4c = "TestSnapshotSize4C", 86_000;
    kvraft1::kvraft_speed_4c = "TestSpeed4C", 110_000;
    kvraft1::kvraft_snapshot_recover_4c = "TestSnapshotRecover4C", 86_000;
    kvraft1::kvraft_snapshot_recover_many_clients_4c =
        "TestSnapshotRecoverManyClients4C", 1_900_000;
    kvraft1::kvraft_snapshot_unreliable_4c = "TestSnapshotUnreliable4C", 62_000;
    kvraft1::kvraft_snapshot_unreliable_recover_4c = "TestSnapshotUnreliableRecover4C", 53_000;
    kvraft1::kvraft_snapshot_unreliable_recover_concurrent_partition_4c =
        "TestSnapshotUnreliableRecoverConcurrentPartition4C", 62_000;
    kvraft1::kvraft_snapshot_unreliable_recover_concurrent_partition_linearizable_4c =
        "TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable4C", 220_000;
}

scenarios! {
    /// The older shardctrler tests (`src/shardctrler/test_test.go`, 2024), in the lab's order,
    /// on a Raft-replicated controller.
    SHARDCTRLER in "shardctrler":
    shardctrler::ctrl_basic = "TestBasic", 13_000;
    shardctrler::ctrl_multi = "TestMulti", 10_000;
    shardctrler::ctrl_minimal_again = "TestMinimalAgain", 10_000;
}

/// The controller on an unreliable network with partitions, crashes and snapshots.
pub const CTRL_CHAOS: Scenario = Scenario {
    name: "ctrl_unreliable_chaos",
    suite: "shardctrler",
    lab_name: "(none: 5 clerks, random Join/Leave/Move/Query, unreliable, partitions, crashes)",
    run: shardctrler::ctrl_unreliable_chaos,
    events_max: 1_000_000,
};

/// The groups of the `kv` suite (`aver sim kv`), in order. A KV service adds its group here.
pub const KV: &[&[Scenario]] = &[KVSRV1, LOCK, RSM, KVRAFT1];

/// One `aver sim SUITE`.
pub struct Suite {
    /// The suite's name.
    pub name: &'static str,
    /// Its lab scenarios, group by group.
    pub groups: &'static [&'static [Scenario]],
    /// Scenarios beyond the lab's (`--extra`).
    pub extra: &'static [Scenario],
}

/// Every suite, as `aver sim` knows them.
pub const SUITES: &[Suite] = &[
    Suite {
        name: "raft",
        groups: &[RAFT],
        extra: EXTRA,
    },
    Suite {
        name: "kv",
        groups: KV,
        extra: KV_EXTRA,
    },
    Suite {
        name: "rsm",
        groups: &[RSM],
        extra: &[],
    },
    Suite {
        name: "kvraft",
        groups: &[KVRAFT1],
        extra: &[KVRAFT_CHAOS],
    },
    Suite {
        name: "shardctrler",
        groups: &[SHARDCTRLER],
        extra: &[CTRL_CHAOS],
    },
];

impl Suite {
    /// The suite named `name`.
    pub fn named(name: &str) -> Option<&'static Suite> {
        SUITES.iter().find(|s| s.name == name)
    }

    /// Its lab scenarios, in order (and the extra ones with `extra`).
    pub fn scenarios(&self, extra: bool) -> Vec<&'static Scenario> {
        let lab = self.groups.iter().flat_map(|g| g.iter());
        let more = self.extra.iter().filter(move |_| extra);
        lab.chain(more).collect()
    }
}

/// The `aver sim` flags that seed the bugs set on this thread for `suite` (for replays).
pub fn bug_flags(suite: &str) -> String {
    match suite {
        "raft" => aver_sim::raft::bug_flags(aver_sim::raft::seeded_bugs()),
        "kv" => {
            kv_lab::bug_flags(kv_lab::seeded_bugs())
                + &kvraft_lab::bug_flags(kvraft_lab::seeded_bugs())
        }
        "shardctrler" => shardctrler::lab::bug_flags(shardctrler::lab::seeded_bugs()),
        _ => String::new(),
    }
}

/// KV scenarios beyond the lab's (`aver sim kv --extra`).
pub const KV_EXTRA: &[Scenario] = &[
    Scenario {
        name: "kvsrv1_put_concurrent_unreliable",
        suite: "kv",
        lab_name: "(none: TestPutConcurrentReliable's clients on the unreliable network)",
        run: kvsrv1::kvsrv1_put_concurrent_unreliable,
        events_max: 17_000,
    },
    KVRAFT_CHAOS,
];

/// The many-client, many-key kvraft scenario with partitions and crashes during client time.
pub const KVRAFT_CHAOS: Scenario = Scenario {
    name: "kvraft_many_clients_chaos",
    suite: "kv",
    lab_name: "(none: 20 clients, 100 keys, unreliable, partitions and crashes while clients run)",
    run: kvraft1::kvraft_many_clients_chaos,
    events_max: 180_000,
};

/// Scenarios beyond the lab's 28 (`aver sim raft --extra`): extra faults.
pub const EXTRA: &[Scenario] = &[Scenario {
    name: "figure8_torn_writes",
    suite: "raft",
    lab_name: "(none: Figure 8 with crashes that tear writes)",
    run: raft_3cd::figure8_torn_writes,
    events_max: 40_000,
}];

/// Finds a scenario (lab or extra, any suite) by our name or the lab's.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SUITES
        .iter()
        .flat_map(|s| s.scenarios(true))
        .find(|s| s.name == name || s.lab_name == name)
}

/// Runs one scenario on one seed within its event budget; a panic (a core assertion)
/// becomes a [`Failure`] too.
pub fn run_one(scenario: &Scenario, seed: u64) -> Outcome<Report> {
    run_with_budget(scenario, seed, scenario.events_max)
}

/// Runs one scenario on one seed with the event budget `events_max`.
pub fn run_with_budget(scenario: &Scenario, seed: u64, events_max: u64) -> Outcome<Report> {
    aver_sim::sim::budget_next_run(events_max);
    match catch_unwind(AssertUnwindSafe(|| (scenario.run)(seed))) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            let flags = bug_flags(scenario.suite);
            let message = format!("panicked: {message}");
            Err(Failure::sim(
                scenario.suite,
                scenario.name,
                seed,
                0,
                message,
                &flags,
            ))
        }
    }
}

/// For `#[test]`s: runs `name` on `seed` and panics with the replay command on failure.
pub fn check(name: &str, seed: u64) -> Report {
    let scenario = find(name).unwrap_or_else(|| panic!("no scenario {name}"));
    match run_one(scenario, seed) {
        Ok(report) => report,
        Err(f) => panic!("{f}"),
    }
}
