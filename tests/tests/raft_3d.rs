//! Lab 3D (snapshots): the 6.5840 tests (`src/raft1/raft_test.go`, 2025) on the deterministic
//! simulator, on a fixed seed. `aver sim raft --seeds N` runs them over many seeds.

/// The fixed seed of `cargo test`.
const SEED: u64 = 1;

/// `TestSnapshotBasic3D`: snapshots every 10 entries; persisted state below the 2000 B of
/// gob scaled to postcard (`MAX_LOG_SIZE`).
#[test]
fn snapshot_basic_3d() {
    aver_tests::check("snapshot_basic_3d", SEED);
}

/// `TestSnapshotInstall3D`: InstallSnapshot to a disconnected follower; snapshot consistency.
#[test]
fn snapshot_install_3d() {
    aver_tests::check("snapshot_install_3d", SEED);
}

/// `TestSnapshotInstallUnreliable3D`: InstallSnapshot on an unreliable network.
#[test]
fn snapshot_install_unreliable_3d() {
    aver_tests::check("snapshot_install_unreliable_3d", SEED);
}

/// `TestSnapshotInstallCrash3D`: InstallSnapshot to a crashed follower.
#[test]
fn snapshot_install_crash_3d() {
    aver_tests::check("snapshot_install_crash_3d", SEED);
}

/// `TestSnapshotInstallUnCrash3D`: crashes on an unreliable network.
#[test]
fn snapshot_install_uncrash_3d() {
    aver_tests::check("snapshot_install_uncrash_3d", SEED);
}

/// `TestSnapshotAllCrash3D`: all crash; the log index never decreases.
#[test]
fn snapshot_all_crash_3d() {
    aver_tests::check("snapshot_all_crash_3d", SEED);
}

/// `TestSnapshotInit3D`: restart initialises the snapshot from disk.
#[test]
fn snapshot_init_3d() {
    aver_tests::check("snapshot_init_3d", SEED);
}

/// The scaled 3D storage limit (`MAX_LOG_SIZE`, whose docs hold the arithmetic) admits the
/// 95 random-int entries that fit in the lab's 2000 B of gob, and not 96, measured on the
/// encoding `raft_state_size` uses, with full-width ints and a snapshot boundary.
#[test]
fn max_log_size_admits_95_entries_as_gob_does() {
    use aver_core::contract::NodeId;
    use aver_core::raft::{
        Durable, Entry, HardState, LogIndex, PersistOp, Snapshot, SnapshotMeta, Term,
    };
    use aver_sim::raft::{Cmd, raft_state_size};
    use aver_tests::raft_3cd::MAX_LOG_SIZE;
    let state = |entries: u64| {
        let mut d = Durable::default();
        let (term, index) = (Term(60), LogIndex(9_000));
        let hard = HardState {
            term,
            voted_for: Some(NodeId(4)),
        };
        let meta = SnapshotMeta { index, term };
        let data = std::sync::Arc::from(&[][..]);
        d.apply(&PersistOp::HardState(hard));
        d.apply(&PersistOp::Snapshot(Snapshot { meta, data }));
        let entry = Entry {
            term,
            command: Cmd::Int(u64::MAX >> 1),
        };
        let entries = vec![entry; entries as usize];
        d.apply(&PersistOp::Append {
            first: index.next(),
            entries,
        });
        raft_state_size(&d)
    };
    assert!(state(95) < MAX_LOG_SIZE, "95 entries: {} B", state(95));
    assert!(state(96) >= MAX_LOG_SIZE, "96 entries: {} B", state(96));
}
