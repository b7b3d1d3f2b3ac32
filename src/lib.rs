//! mod_tls: TLS 1.2 and 1.3 for Apache httpd through rustls.
//!
//! Layers, top to bottom (see docs/building.md, Layout): `module` is the exported `tls_module` record with its
//! directives and hooks; `filters` pump bytes between httpd's bucket brigades and [`stream`];
//! [`engine`] builds the rustls configurations from [`config`]; [`certs`] loads key material;
//! [`sessions`] files sessions per vhost over a storage trait; [`policy`] holds the decisions the
//! hooks act on; [`vars`] computes `SSL_*` variables from a handshake's snapshot. `httpd` holds
//! the raw bindings and the thin safe wrappers over them (socache included). Everything that calls into
//! httpd is compiled out of unit tests (those symbols exist only inside the httpd executable) and is
//! tested through the real server in `tests/`.

pub mod conf;
pub mod tls;

#[cfg(all(feature = "httpd", not(test)))]
mod adapter;
#[cfg(all(feature = "httpd", not(test)))]
pub mod httpd;
#[cfg(all(feature = "httpd", feature = "test-hooks", not(test)))]
mod test_hooks;

/// The module's version, as logged at start-up and reported in `SSL_VERSION_INTERFACE`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The rustls version linked in, read from Cargo.lock at build time.
pub const RUSTLS_VERSION: &str = env!("MOD_TLS_RUSTLS_VERSION");

/// Unit tests count the heap bytes each thread holds (see `idle_stream_holds_no_buffers`).
#[cfg(test)]
pub(crate) mod heap_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static CALLS: Cell<usize> = const { Cell::new(0) };
    }

    pub struct Counting;

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = LIVE.try_with(|l| l.set(l.get() + layout.size() as isize));
            let _ = CALLS.try_with(|c| c.set(c.get() + 1));
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as isize));
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = LIVE.try_with(|l| l.set(l.get() + new_size as isize - layout.size() as isize));
            let _ = CALLS.try_with(|c| c.set(c.get() + 1));
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// Heap bytes allocated and not yet freed by this thread (through Rust's allocator).
    pub fn live() -> isize {
        LIVE.with(|l| l.get())
    }

    /// Allocations (and reallocations) made by this thread so far.
    pub fn calls() -> usize {
        CALLS.with(|c| c.get())
    }
}
