//! Test-only instruments for finding secrets left behind in memory. Not published.
//!
//! - [`Scanner`]: a global allocator that, while armed, searches every block it frees for a
//!   needle and counts the blocks that still held it (a freed block keeps its bytes until
//!   reused: a copy of a secret that was not wiped is found there);
//! - [`stack_contains`]: searches the stack below the caller's frame, where the frames of
//!   functions that already returned left their locals.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Counts freed blocks that contain a needle. Install with `#[global_allocator]`.
pub struct Scanner {
    armed: AtomicBool,
    hits: AtomicUsize,
    needle: Mutex<Vec<u8>>,
}

impl Scanner {
    /// A disarmed scanner.
    pub const fn new() -> Self {
        Scanner {
            armed: AtomicBool::new(false),
            hits: AtomicUsize::new(0),
            needle: Mutex::new(Vec::new()),
        }
    }

    /// Starts counting freed blocks that contain `needle` (at least 8 bytes).
    pub fn arm(&self, needle: &[u8]) {
        assert!(
            needle.len() >= 8,
            "a needle that short would match by chance"
        );
        let mut held = self
            .needle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.clear();
        held.extend_from_slice(needle);
        drop(held);
        self.hits.store(0, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Stops counting; returns how many freed blocks held the needle.
    pub fn disarm(&self) -> usize {
        self.armed.store(false, Ordering::SeqCst);
        self.hits.load(Ordering::SeqCst)
    }
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to the system allocator with the caller's arguments; the
// scan only reads the block being freed, which is still allocated and `layout.size()` long.
unsafe impl GlobalAlloc for Scanner {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.armed.load(Ordering::SeqCst) {
            // `try_lock`: the needle's own buffer is never freed while armed, and a block
            // freed while another thread holds the lock is not scanned (tests run the
            // scanned code on one thread).
            if let Ok(needle) = self.needle.try_lock() {
                // SAFETY: `ptr` is a live block of `layout.size()` bytes (freed below).
                let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
                if !needle.is_empty() && block.windows(needle.len()).any(|w| w == needle.as_slice())
                {
                    self.hits.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Whether `needle` occurs in the `depth` bytes of stack below the caller's frame, skipping
/// the first `skip` bytes (where this function's own frame lies).
///
/// Reads memory below the stack pointer: not part of any live object, but mapped (the
/// thread's stack), and only read. Call it right after the function under test returned,
/// from the frame that called it, and have that function run below a pad of `skip` bytes.
#[inline(never)]
pub fn stack_contains(needle: &[u8], skip: usize, depth: usize) -> bool {
    let marker = 0u8;
    let top = std::hint::black_box(core::ptr::addr_of!(marker)) as usize;
    let (start, end) = (top - depth, top - skip);
    let mut at = start;
    while at + needle.len() <= end {
        let mut i = 0;
        while i < needle.len() {
            // SAFETY: `at + i` lies in this thread's stack mapping, below the current frame
            // (depth is far less than a test thread's 2 MiB stack); a volatile read of one
            // byte from mapped memory.
            let byte = unsafe { core::ptr::read_volatile((at + i) as *const u8) };
            if byte != needle[i] {
                break;
            }
            i += 1;
        }
        if i == needle.len() {
            return true;
        }
        at += 1;
    }
    false
}
