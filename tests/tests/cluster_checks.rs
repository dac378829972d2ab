//! The simulator's cluster checker (`aver_sim::cluster`): RAFT-1, 3, 4, 5, 7, 9 after every
//! event, incrementally, with crashed servers counted by what their disks hold
//! (specs/invariants.md, "simulator" column).

use aver_sim::lab::Lab;

/// The digest fast path agrees with the catalogue functions on every pair it checks, over
/// scenarios with leader changes, conflicting logs, snapshots, crashes and torn writes.
#[test]
fn digest_checks_agree_with_catalogue_functions() {
    aver_sim::cluster::cross_check(true);
    let names = [
        "figure8_3c",
        "figure8_unreliable_3c",
        "snapshot_install_crash_3d",
        "backup_3b",
        "figure8_torn_writes",
    ];
    let outcomes: Vec<_> = names
        .iter()
        .map(|name| aver_tests::run_one(aver_tests::find(name).unwrap(), 1))
        .collect();
    aver_sim::cluster::cross_check(false);
    for outcome in outcomes {
        outcome.unwrap_or_else(|f| panic!("{f}"));
    }
}

/// RAFT-7 Commit Quorum reads a crashed server's disk, not the memory it had: an entry
/// committed on all three servers is reported once two of them lose their disks, although
/// their last memory still holds it.
#[test]
fn commit_quorum_reads_crashed_disks() {
    let mut lab = Lab::new("commit_quorum_disks", 1, 3, true, false);
    lab.one_int(7, 3, false).unwrap();
    let leader = lab.check_one_leader().unwrap();
    for f in [(leader + 1) % 3, (leader + 2) % 3] {
        lab.shutdown_server(f);
        lab.sim.wipe_disk(f);
        let frozen = lab.sim.node_or_frozen(f).unwrap();
        assert_eq!(
            frozen.log().last_index().0,
            1,
            "memory still holds the entry"
        );
    }
    let failure = lab
        .finish()
        .expect_err("a committed entry on one disk of three");
    assert!(failure.message.contains("RAFT-7"), "{failure}");
}
