//! Links the `aver` executable for a fast start on Linux: without position independence,
//! and with the code `aver lin` runs laid out side by side.
//!
//! A position-independent executable has every pointer inside it relocated by the dynamic
//! loader at each start. For this binary (the whole stack: 11 MB of code) that was a third
//! of the CPU of `aver lin` on a small Jepsen log (porcupine/jepsen/etcd_095: 1.93 ms with
//! PIE, 1.29 ms without, `perf stat -r 80`), where the check itself takes 0.1 ms. Linked
//! with `-no-pie`, those pointers are fixed at link time. The cost: the executable's
//! own code and data sit at a fixed address (shared libraries, the stack and the heap are
//! still randomized); its servers listen on 127.0.0.1 by default.
//!
//! The kernel maps code in on first use, one fault per 64 KB window it touches. The
//! functions `aver lin` runs (lin-symbols.txt, written by lin-symbols.sh) are spread over
//! the 11 MB, so a check of porcupine/jepsen/etcd_087 took 69 such faults, against 29 for
//! the 2.4 MB executable of commit e7c4ba9. The list goes to the linker (lld, which rustc
//! uses by default on x86_64 Linux), which places those functions first, side by side:
//! about 520 KB. Names the binary no longer has are skipped, so a stale list only gives
//! back the unordered layout. GNU ld does not know the option, so the list is passed only
//! when rustc links with its own lld: rustc 1.90 or later, and no linker chosen by the
//! user (`target.<triple>.linker`, or a linker flag in `RUSTFLAGS`).

fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "linux" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        let x86_64_gnu =
            var("CARGO_CFG_TARGET_ARCH") == "x86_64" && var("CARGO_CFG_TARGET_ENV") == "gnu";
        if x86_64_gnu && links_with_rust_lld(&var) {
            let list = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("lin-symbols.txt");
            println!(
                "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
                list.display()
            );
            println!("cargo:rerun-if-changed=lin-symbols.txt");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// Whether rustc links with its own lld: the default on x86_64 Linux since rustc 1.90, unless
/// the user named a linker (cargo then sets `RUSTC_LINKER`) or passed linker flags.
fn links_with_rust_lld(var: &dyn Fn(&str) -> String) -> bool {
    if !var("RUSTC_LINKER").is_empty() {
        return false;
    }
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    if flags.contains("linker") || flags.contains("fuse-ld") || flags.contains("self-contained") {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = String::from_utf8_lossy(&out.stdout);
    let mut parts = version
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
