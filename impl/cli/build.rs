//! Links the `aver` executable without position independence on Linux.
//!
//! A position-independent executable has every pointer inside it relocated by the dynamic
//! loader at each start. For this binary (the whole stack: 11 MB of code) that was a third
//! of the CPU of `aver lin` on a small Jepsen log (porcupine/jepsen/etcd_095: 1.93 ms with
//! PIE, 1.29 ms without, `perf stat -r 80`), where the check itself takes 0.1 ms. Linked
//! with `-no-pie`, those pointers are fixed at link time. The cost: the executable's
//! own code and data sit at a fixed address (shared libraries, the stack and the heap are
//! still randomized); its servers listen on 127.0.0.1 by default.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
