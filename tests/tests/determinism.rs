//! Same seed ⇒ identical run: a scenario run twice yields the same event-trace hash, and a
//! different seed a different one (STYLE.md: seeds reproduce everything).

use aver_tests::check;

#[test]
fn same_seed_same_trace_figure8_unreliable_3c() {
    let a = check("figure8_unreliable_3c", 7);
    let b = check("figure8_unreliable_3c", 7);
    assert_eq!(a, b, "two runs of one seed differ");
    let c = check("figure8_unreliable_3c", 8);
    assert_ne!(a.trace_hash, c.trace_hash, "different seeds, same trace");
}

#[test]
fn same_seed_same_trace_snapshot_install_uncrash_3d() {
    let a = check("snapshot_install_uncrash_3d", 3);
    let b = check("snapshot_install_uncrash_3d", 3);
    assert_eq!(a, b, "two runs of one seed differ");
}
