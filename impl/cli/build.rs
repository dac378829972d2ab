//! Links `aver` with packed relative relocations (DT_RELR, glibc 2.36 and later): the binary
//! is large (every subsystem's code), and as a position-independent executable it carries
//! about 20,000 relative relocations that the dynamic loader would otherwise read from a
//! half-megabyte table at every start, touching some 200 pages. Packed, they take a few
//! kilobytes, which cuts about a third of the start-up of a short `aver lin` run. Set
//! `AVER_NO_RELR=1` when building on a system whose linker or C library predates them.

fn main() {
    println!("cargo:rerun-if-env-changed=AVER_NO_RELR");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let gnu = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|env| env == "gnu");
    if linux && gnu && std::env::var_os("AVER_NO_RELR").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
