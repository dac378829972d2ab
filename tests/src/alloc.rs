//! Counting what a value holds on the heap, for the 6.5840 memory tests.
//!
//! [`CountingAlloc`] wraps the system allocator and counts, per thread, the bytes allocated.
//! [`heap_size`] clones a value and counts what the clone allocated: the deep size of
//! everything the value owns (every field, whatever its type), which is what a memory test of
//! a server asks. A binary opts in with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: aver_tests::alloc::CountingAlloc = aver_tests::alloc::CountingAlloc;
//! ```
//!
//! (`aver` and the `kvsrv1` test binary do). Without it [`heap_size`] returns `None`, and a
//! memory scenario fails saying so rather than passing blindly.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCATED: Cell<u64> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    // `try_with`: the thread-local is gone while a thread shuts down.
    let _ = ALLOCATED.try_with(|a| a.set(a.get().wrapping_add(bytes as u64)));
}

/// The system allocator, counting bytes allocated per thread.
pub struct CountingAlloc;

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the counter
// is a thread-local `Cell` that never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size.saturating_sub(layout.size()));
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Bytes allocated by this thread so far, or `None` when [`CountingAlloc`] is not the global
/// allocator of this binary.
pub fn allocated() -> Option<u64> {
    let before = ALLOCATED.with(Cell::get);
    let probe = std::hint::black_box(Box::new(0u64));
    let after = ALLOCATED.with(Cell::get);
    drop(probe);
    (after > before).then_some(after)
}

/// The bytes `value` owns on the heap (measured by cloning it), or `None` when the counting
/// allocator is not installed.
pub fn heap_size<T: Clone>(value: &T) -> Option<u64> {
    let before = allocated()?;
    let copy = std::hint::black_box(value.clone());
    let after = ALLOCATED.with(Cell::get);
    drop(copy);
    Some(after - before)
}
