//! Counters in shared memory: made by the parent in post_config, before it forks the children of
//! that configuration generation, which all add to the same counters (atomic adds: no lock).

use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{APR_SUCCESS, Pool, sys};

pub struct SharedCounters {
    base: NonNull<AtomicU64>,
    len: usize,
    /// When the counting began (this generation's start), in seconds since the epoch.
    pub since_unix: i64,
}

// SAFETY: the counters are atomics in memory mapped for as long as the configuration pool lives
// (in the parent) or the child process lives (children inherit the mapping).
unsafe impl Send for SharedCounters {}
unsafe impl Sync for SharedCounters {}

impl SharedCounters {
    /// `len` zeroed counters in anonymous shared memory owned by `pconf`, counting from
    /// `since_unix` (the caller's clock: this crate keeps none); None if the system refuses (the
    /// status page then shows no counters).
    pub fn create(pconf: Pool, len: usize, since_unix: i64) -> Option<Arc<SharedCounters>> {
        let bytes = len.max(1) * std::mem::size_of::<AtomicU64>();
        let mut shm: *mut sys::apr_shm_t = ptr::null_mut();
        // SAFETY: anonymous shared memory, destroyed with pconf; zeroed before use.
        let base = unsafe {
            if sys::apr_shm_create(&mut shm, bytes, ptr::null(), pconf.as_ptr()) != APR_SUCCESS.code() {
                return None;
            }
            let base = sys::apr_shm_baseaddr_get(shm) as *mut u8;
            ptr::write_bytes(base, 0, bytes);
            NonNull::new(base as *mut AtomicU64)?
        };
        Some(Arc::new(SharedCounters { base, len, since_unix }))
    }

    fn slot(&self, i: usize) -> Option<&AtomicU64> {
        // SAFETY: within the mapping made for `len` counters (see `Send`/`Sync` above).
        (i < self.len).then(|| unsafe { &*self.base.as_ptr().add(i) })
    }
}

impl SharedCounters {
    /// Adds one to counter `index` (beyond the counters made: nothing).
    pub fn add(&self, index: usize) {
        if let Some(c) = self.slot(index) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counter `index` (beyond the counters made: 0).
    pub fn get(&self, index: usize) -> u64 {
        self.slot(index).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}
