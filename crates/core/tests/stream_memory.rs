//! What a TLS stream costs in memory: heap bytes an idle keep-alive connection holds, and (a
//! diagnostic) the stack its handshake touches. A test binary of its own: heap bytes are counted
//! by a counting global allocator for the whole process, so nothing else may run beside these.

#[path = "support/pair.rs"]
mod support;

use std::io::Write;
use std::sync::Mutex;

use mod_tls_core::tls::stream::TlsStream;
use rustls::server::UnbufferedServerConnection;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::{pair_x25519, pump_with};

#[global_allocator]
static HEAP: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// One test at a time: the allocator's figures are the process's.
static ALONE: Mutex<()> = Mutex::new(());

/// Heap bytes allocated and not freed while `f` ran (and how many allocations it made); the
/// allocator counts a reallocation's growth as allocated and its shrinking as freed.
fn heap_change(f: impl FnOnce()) -> (isize, usize) {
    let region = Region::new(HEAP);
    f();
    let c = region.change();
    (c.bytes_allocated as isize - c.bytes_deallocated as isize, c.allocations + c.reallocations)
}

/// What an idle keep-alive connection's stream holds on the heap after one request: no buffer (a
/// buffered rustls connection alone keeps 4 KiB). C allocations (aws-lc's key schedules) are not
/// counted. `-- --nocapture` shows the figures.
#[test]
fn idle_stream_holds_no_buffers() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let (mut chooser, mut client) = pair_x25519(versions);
        // Only the server side's calls count: the client runs between them.
        let held = std::cell::Cell::new(0isize);
        let calls = std::cell::Cell::new(0usize);
        let counted = |f: &mut dyn FnMut()| {
            let (bytes, n) = heap_change(f);
            held.set(held.get() + bytes);
            calls.set(calls.get() + n);
        };
        let mut made = None;
        counted(&mut || made = Some(TlsStream::new()));
        let server = std::cell::RefCell::new(made.unwrap());
        for request in [false, true] {
            if request {
                client.writer().write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
            }
            pump_with(
                &mut client,
                &mut |tls| counted(&mut || server.borrow_mut().feed(tls, &mut chooser).unwrap()),
                &mut |out| {
                    // Room beforehand, so that only the server's own allocations count.
                    out.reserve(64 * 1024);
                    counted(&mut || server.borrow_mut().write_tls(out).unwrap());
                },
            );
        }
        counted(&mut || {
            let mut s = server.borrow_mut();
            let n = s.plaintext().len();
            s.consume(n);
            let mut out = Vec::with_capacity(64 * 1024);
            let body = [7u8; 1024];
            let before = out.capacity();
            s.send(&[&body], &mut out).unwrap();
            assert_eq!(out.capacity(), before);
            drop(out);
        });
        let stream = std::mem::size_of::<TlsStream>();
        let conn = std::mem::size_of::<UnbufferedServerConnection>();
        eprintln!(
            "{versions:?}: {} B on the heap (TlsStream {stream} B inline, rustls connection {conn} B); \
             {} Rust allocations for the handshake, request and response",
            held.get(),
            calls.get()
        );
        assert!(held.get() < 3 * 1024, "an idle stream holds {} bytes", held.get());
    }
}

/// Resident bytes of the mapping that holds `addr` (this thread's stack, for a local's address),
/// from /proc/self/smaps: pages a thread touched stay resident, so this is the deepest stack use
/// so far, to the page.
fn resident_stack_bytes(addr: usize) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ')
            && let Some((lo, hi)) = range.split_once('-')
            && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        {
            inside = (lo..hi).contains(&addr);
        } else if inside && let Some(kb) = line.strip_prefix("Rss:") {
            return kb.trim().trim_end_matches(" kB").trim().parse::<usize>().unwrap() * 1024;
        }
    }
    panic!("no mapping holds {addr:#x}")
}

/// What the server's thread is asked to do, in [`stack_probe`].
enum ServerStep {
    /// Read these TLS bytes, answer with what it writes.
    Tls(Vec<u8>),
    /// Answer with 1 KiB of response, encrypted.
    Respond,
    /// Say how much of its stack is resident.
    Measure,
}

/// How much stack the server side uses (a diagnostic, not a check: debug builds differ a lot):
/// `cargo test --release -p mod_tls_core --test stream_memory stack_probe -- --ignored
/// --nocapture`. Every worker thread keeps the deepest stack it ever used resident, so this is
/// idle memory per thread. The server runs on a fresh thread of its own (the client on another,
/// so that its stack does not count); figures are to the page.
#[test]
#[ignore]
fn stack_probe() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    for (i, (name, versions)) in [("TLS 1.3", TLS13), ("TLS 1.2", TLS12)].into_iter().enumerate() {
        let (mut chooser, mut client) = pair_x25519(versions);
        let (to_server, steps) = std::sync::mpsc::channel::<ServerStep>();
        let (answer, from_server) = std::sync::mpsc::channel::<Vec<u8>>();
        let server = std::thread::Builder::new()
            // Sizes that differ, so that the C library cannot give a thread the stack (and its
            // resident pages) of the one before.
            .stack_size((8 << 20) * (i + 1))
            .spawn(move || {
                let marker = 0u8;
                let here = std::ptr::addr_of!(marker) as usize;
                let mut server = TlsStream::new();
                let mut resident = vec![resident_stack_bytes(here)];
                for step in steps {
                    let mut out = Vec::new();
                    match step {
                        ServerStep::Tls(bytes) => {
                            server.feed(&bytes, &mut chooser).unwrap();
                            server.write_tls(&mut out).unwrap();
                        }
                        ServerStep::Respond => server.send(&[&[7u8; 1024]], &mut out).unwrap(),
                        ServerStep::Measure => resident.push(resident_stack_bytes(here)),
                    }
                    answer.send(out).unwrap();
                }
                resident
            })
            .unwrap();
        let ask = |step: ServerStep| {
            to_server.send(step).unwrap();
            from_server.recv().unwrap()
        };
        // The handshake, then a request and its response.
        for request in [false, true] {
            if request {
                client.writer().write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
            }
            let written = std::cell::RefCell::new(Vec::new());
            pump_with(
                &mut client,
                &mut |tls| written.borrow_mut().extend(ask(ServerStep::Tls(tls.to_vec()))),
                &mut |out| out.append(&mut written.borrow_mut()),
            );
            ask(ServerStep::Measure);
        }
        ask(ServerStep::Respond);
        ask(ServerStep::Measure);
        drop(to_server);
        let resident = server.join().unwrap();
        eprintln!(
            "{name}, X25519 only, the server's thread: stack resident {} B at the start, {} B after the \
             handshake, {} B after a request, {} B after 1 KiB out",
            resident[0], resident[1], resident[2], resident[3]
        );
    }
}
