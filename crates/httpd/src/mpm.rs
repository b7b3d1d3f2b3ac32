//! What the MPM and the scoreboard say about this child process.

use std::ffi::c_int;

use crate::{APR_SUCCESS, sys};

/// Whether the MPM can wait for a connection's I/O itself (`CONN_STATE_ASYNC_WAITIO`: event,
/// httpd 2.4.71+).
pub fn can_wait_io() -> bool {
    let mut yes: c_int = 0;
    // SAFETY: a query with an out-parameter.
    unsafe { sys::ap_mpm_query(sys::AP_MPMQ_CAN_WAITIO as c_int, &mut yes) == APR_SUCCESS.code() && yes != 0 }
}

/// The worker threads of each child process (1 for prefork).
pub fn threads_per_child() -> usize {
    let mut threads: c_int = 0;
    // SAFETY: a query with an out-parameter.
    let rv = unsafe { sys::ap_mpm_query(sys::AP_MPMQ_MAX_THREADS as c_int, &mut threads) };
    if rv == APR_SUCCESS.code() { threads.max(1) as usize } else { 1 }
}

/// How many of this child process's first `threads` worker slots the scoreboard shows idle
/// (`SERVER_READY`), counting no further than `enough`; `None` when the process has no
/// scoreboard slot. Children only (any connection hook runs after the scoreboard is attached).
pub fn idle_workers_of_this_child(threads: usize, enough: usize) -> Option<usize> {
    // SAFETY: scoreboard lookups for this process; worker records are read, never kept.
    unsafe {
        let mut me = sys::apr_proc_t { pid: libc::getpid(), ..Default::default() };
        let child = sys::ap_find_child_by_pid(&mut me);
        if child < 0 {
            return None;
        }
        let idle = (0..threads as i32)
            .filter(|&t| {
                let w = sys::ap_get_scoreboard_worker_from_indexes(child, t);
                !w.is_null() && u32::from((*w).status) == sys::SERVER_READY
            })
            .take(enough)
            .count();
        Some(idle)
    }
}
