//! Counting heap allocations, for `--diagnose`: how many allocations an operation costs is
//! exact and immune to the noise of a shared machine, and allocator calls showed up at the
//! top of the profiles.
//!
//! Counting stays off for the headline table: the shared counter is one more contended
//! cache line per allocation, and the headline should time the code as users run it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct CountingAllocator;

static ENABLED: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static PAUSED: AtomicBool = AtomicBool::new(false);

/// Starts counting; there is no need ever to stop.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Leaves out what runs between `pause(true)` and `pause(false)` (untimed set-up and
/// checks inside a timed run); no effect while counting is off.
#[allow(dead_code)] // used by orm-bench only
pub fn pause(paused: bool) {
    PAUSED.store(paused, Ordering::Relaxed);
}

/// Allocations (and reallocations) since counting was enabled.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

fn count() {
    if ENABLED.load(Ordering::Relaxed) && !PAUSED.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches
// only atomics and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}
