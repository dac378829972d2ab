//! Lab 3D (snapshots): the 6.5840 tests (`src/raft1/raft_test.go`, 2025) on the deterministic
//! simulator, on a fixed seed. `aver sim raft --seeds N` runs them over many seeds.

/// The fixed seed of `cargo test`.
const SEED: u64 = 1;

/// `TestSnapshotBasic3D`: snapshots every 10 entries; persisted state < 2000 B.
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
