//! What a TLS stream costs in memory: heap bytes an idle keep-alive connection holds, and (a
//! diagnostic) the stack its handshake touches. A test binary of its own, with a global allocator
//! that counts the heap bytes of the thread that asks for them.

#[path = "support/pair.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::Mutex;

use mod_tls_core::tls::stream::TlsStream;
use rustls::server::UnbufferedServerConnection;
use support::{pair_x25519, pump_with};

/// The system allocator, counting what the threads inside [`heap_change`] allocate and free.
/// Only those threads: the test harness's own thread allocates while a test runs (it reports the
/// ignored probe then), which a count of the whole process took in about one run in twenty.
struct CountingThisThread;

thread_local! {
    /// (counting, bytes allocated minus freed, allocations and reallocations) of this thread.
    static COUNT: Cell<(bool, isize, usize)> = const { Cell::new((false, 0, 0)) };
}

fn count(bytes: isize, calls: usize) {
    // Never fails for lack of the thread-local: a thread being torn down just is not counted.
    let _ = COUNT.try_with(|c| {
        let (on, held, n) = c.get();
        if on {
            c.set((on, held + bytes, n + calls));
        }
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; counting allocates nothing.
unsafe impl GlobalAlloc for CountingThisThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, 1);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, 1);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize), 0);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize, 1);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static HEAP: CountingThisThread = CountingThisThread;

/// One test at a time (the stack probe measures resident memory).
static ALONE: Mutex<()> = Mutex::new(());

/// Heap bytes this thread allocated and did not free while `f` ran (and how many allocations it
/// made); a reallocation's growth counts as allocated and its shrinking as freed.
fn heap_change(f: impl FnOnce()) -> (isize, usize) {
    COUNT.with(|c| c.set((true, 0, 0)));
    f();
    let (_, held, calls) = COUNT.with(|c| c.replace((false, 0, 0)));
    (held, calls)
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
/// --nocapture`. The handshake runs on a stack lent to it (`lent_stack`), so these are what
/// a worker thread's own stack keeps resident through a connection, to the page.
#[test]
#[ignore]
fn stack_probe() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    for (i, (name, versions)) in [("TLS 1.3", TLS13), ("TLS 1.2", TLS12)].into_iter().enumerate() {
        let resident = server_thread_stack(versions, i);
        eprintln!(
            "{name}, X25519 only, the server's thread: stack resident {} B at the start, {} B after the \
             handshake, {} B after a request, {} B after 1 KiB out",
            resident[0], resident[1], resident[2], resident[3]
        );
    }
}

/// A worker thread keeps resident every stack page it ever touched, and httpd has hundreds: the
/// TLS work of a connection (a handshake: 24 KiB of stack, 36 KiB with ML-KEM; a record's
/// decryption or encryption) must not leave the thread's own stack deeper than it found it.
#[test]
fn a_connection_leaves_the_server_threads_stack_as_deep_as_it_found_it() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    for (i, (name, versions)) in [("TLS 1.3", TLS13), ("TLS 1.2", TLS12)].into_iter().enumerate() {
        let resident = server_thread_stack(versions, i + 2);
        // One page of slack: the debug build's frames for `feed` and `send` themselves.
        for (after, r) in ["the handshake", "a request", "a response"].into_iter().zip(&resident[1..]) {
            assert!(
                *r <= resident[0] + 4096,
                "{name}: the server's thread went from {} to {r} B of stack through {after}",
                resident[0]
            );
        }
    }
}

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// Runs a handshake, a request and a 1 KiB response with the server on a fresh thread of its own
/// (the client on this one, so that its stack does not count), and returns how much of the
/// server thread's stack was resident at its start, after the handshake, after the request and
/// after the response. `nth` gives each call its own stack size, so that the C library cannot
/// give a new thread the stack (and its resident pages) of one before.
fn server_thread_stack(versions: &[&'static rustls::SupportedProtocolVersion], nth: usize) -> Vec<usize> {
    let (mut chooser, mut client) = pair_x25519(versions);
    let (to_server, steps) = std::sync::mpsc::channel::<ServerStep>();
    let (answer, from_server) = std::sync::mpsc::channel::<Vec<u8>>();
    let server = std::thread::Builder::new()
        .stack_size((8 << 20) + (nth + 1) * (64 << 10))
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
    server.join().unwrap()
}
