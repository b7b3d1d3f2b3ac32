//! When a worker thread waits in place for the client's part of a handshake, and when it hands
//! the connection to the event MPM's poller instead.
//!
//! Waiting in the MPM (`CONN_STATE_ASYNC_WAITIO`) holds no thread, so stalled or slow clients
//! cannot exhaust the workers; but each such wait costs two thread hand-offs and two poller
//! updates (~40 µs of CPU per handshake on the development machine; 23 µs in a paired
//! `bench_floor.py` run with 48 handshakes at once on 50 workers). Waiting in the worker
//! (`poll()`, no CPU) is what mod_ssl does for the whole handshake. We take the cheap path only
//! while it is harmless: for a bounded time, for clients whose round trip fits in it, for at most
//! half of a child's threads at once, and only while half of the child's threads are idle.
//! The last rule matters beyond our own connections: when the event MPM finds no idle worker, it
//! closes the keep-alive connections it holds (an HTTP/2 session between requests gets a GOAWAY),
//! so threads waiting here must never be the ones that make the workers run out. The rest, and
//! whatever outlasts the grace period, wait in the MPM.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How long a worker waits for the client's answer before handing the connection to the poller.
/// Clients on the same host or LAN answer well within it even on a busy machine (a client that
/// computes 64 handshakes in turn took up to 41 ms in the benchmark); a stalled one costs a
/// worker only this long.
pub const GRACE_MS: i32 = 50;

/// Clients whose round trip (the kernel's estimate) exceeds this cannot answer within the grace
/// period: waiting for them would only hold a worker.
pub const MAX_RTT_US: u32 = GRACE_MS as u32 * 1000;

/// Threads waiting in place right now, in this process (all configurations: it bounds a share of
/// the process's threads, which all generations share).
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// A worker's permission to wait in place; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot(&'static AtomicUsize);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Permission to wait in the worker for a client with round trip `rtt_us`, in a child process
/// of `threads` worker threads; `None` means: wait in the MPM. `idle_up_to(n)` counts the child's
/// idle workers, and may stop at `n` (the decision needs no more), or says `None`: unknown. It is
/// asked last, when nothing cheaper has decided (it reads every worker's scoreboard entry, which
/// the other workers keep writing).
pub fn may_wait(rtt_us: Option<u32>, threads: usize, idle_up_to: impl FnOnce(usize) -> Option<usize>) -> Option<Slot> {
    take_slot(&WAITING, rtt_us, threads, idle_up_to)
}

fn take_slot(
    waiting: &'static AtomicUsize,
    rtt_us: Option<u32>,
    threads: usize,
    idle_up_to: impl FnOnce(usize) -> Option<usize>,
) -> Option<Slot> {
    if rtt_us.is_none_or(|rtt| rtt > MAX_RTT_US) {
        return None;
    }
    // At least half of the threads stay free for requests and for connections that are ready.
    let limit = threads / 2;
    if waiting.load(Ordering::Relaxed) >= limit {
        return None;
    }
    // Half of the threads are idle (this one is busy already and is not counted).
    let half = threads.div_ceil(2);
    if idle_up_to(half).is_none_or(|idle| idle < half) {
        return None;
    }
    waiting
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < limit).then_some(n + 1))
        .ok()
        .map(|_| Slot(waiting))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child with `idle` idle workers; the count stops where it is asked to.
    fn idle(idle: usize) -> impl FnOnce(usize) -> Option<usize> {
        move |enough| Some(idle.min(enough))
    }

    #[test]
    fn near_clients_wait_far_or_unknown_ones_do_not() {
        static W: AtomicUsize = AtomicUsize::new(0);
        assert!(take_slot(&W, Some(300), 64, idle(60)).is_some());
        assert!(take_slot(&W, Some(MAX_RTT_US), 64, idle(60)).is_some());
        assert!(take_slot(&W, Some(MAX_RTT_US + 1), 64, idle(60)).is_none());
        assert!(take_slot(&W, None, 64, idle(60)).is_none());
        assert_eq!(W.load(Ordering::Relaxed), 0, "slots are given back when dropped");
    }

    #[test]
    fn at_most_half_of_the_threads_wait() {
        static W: AtomicUsize = AtomicUsize::new(0);
        let slots: Vec<Slot> = (0..10).filter_map(|_| take_slot(&W, Some(100), 8, idle(8))).collect();
        assert_eq!(slots.len(), 4);
        drop(slots);
        assert_eq!(W.load(Ordering::Relaxed), 0);
        assert!(take_slot(&W, Some(100), 8, idle(8)).is_some());
        // A single-threaded child (prefork has no async wait anyway) never waits in place.
        assert!(take_slot(&W, Some(100), 1, idle(1)).is_none());
    }

    #[test]
    fn only_while_half_of_the_threads_are_idle() {
        static W: AtomicUsize = AtomicUsize::new(0);
        assert!(take_slot(&W, Some(100), 16, idle(8)).is_some());
        assert!(take_slot(&W, Some(100), 16, idle(7)).is_none());
        assert!(take_slot(&W, Some(100), 16, idle(0)).is_none());
        assert!(take_slot(&W, Some(100), 16, |_| None).is_none());
    }

    /// The scoreboard is read last, and no further than the decision needs.
    #[test]
    fn the_idle_workers_are_counted_last_and_only_as_far_as_needed() {
        static W: AtomicUsize = AtomicUsize::new(0);
        let asked = std::cell::Cell::new(None);
        let count = |enough| {
            asked.set(Some(enough));
            Some(enough)
        };
        assert!(take_slot(&W, Some(100), 25, count).is_some());
        assert_eq!(asked.get(), Some(13), "half of 25 threads, rounded up");
        asked.set(None);
        assert!(take_slot(&W, None, 25, count).is_none());
        assert!(take_slot(&W, Some(MAX_RTT_US + 1), 25, count).is_none());
        assert_eq!(asked.get(), None, "not read when the client is far or unknown");
        let slots: Vec<Slot> = (0..12).filter_map(|_| take_slot(&W, Some(100), 25, idle(25))).collect();
        assert_eq!(slots.len(), 12, "half of 25 threads, rounded down");
        assert!(take_slot(&W, Some(100), 25, count).is_none());
        assert_eq!(asked.get(), None, "not read when half of the threads wait already");
    }
}
