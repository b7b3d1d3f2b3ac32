//! Connection filters: registration with a generic thunk per filter type, the handle of a filter
//! in a connection's chain, and the input modes httpd reads with.

use std::ffi::CStr;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::brigade::Brigade;
use crate::{APR_ECONNABORTED, Conn, Status, catch_panic, read_type, sys};

/// How the filter above asks to read (`ap_input_mode_t`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReadMode {
    /// process_connection's handshake step: no data wanted, only the connection set up.
    Init,
    /// Up to `readbytes` bytes.
    Bytes,
    /// One line (up to `readbytes`, or httpd's line limit).
    Line,
    /// Look without consuming.
    Speculative,
    /// Everything there is.
    Exhaustive,
    /// Skip blank lines between pipelined requests.
    EatCrlf,
}

impl ReadMode {
    fn from_raw(mode: sys::ap_input_mode_t) -> ReadMode {
        match mode {
            sys::ap_input_mode_t_AP_MODE_INIT => ReadMode::Init,
            sys::ap_input_mode_t_AP_MODE_GETLINE => ReadMode::Line,
            sys::ap_input_mode_t_AP_MODE_SPECULATIVE => ReadMode::Speculative,
            sys::ap_input_mode_t_AP_MODE_EXHAUSTIVE => ReadMode::Exhaustive,
            sys::ap_input_mode_t_AP_MODE_EATCRLF => ReadMode::EatCrlf,
            _ => ReadMode::Bytes,
        }
    }
}

/// httpd's longest line (`HUGE_STRING_LEN`), for line reads without a limit of their own.
pub const LINE_LIMIT: usize = sys::HUGE_STRING_LEN as usize;

/// An input filter: `read` fills `bb` with what the filter above asked for, reading from the
/// filter below through `this`. `panicked` runs after a panic was caught (the read then fails
/// with ECONNABORTED).
pub trait InputFilter {
    fn read(c: Conn, this: Filter, bb: Brigade<'_>, mode: ReadMode, block: bool, readbytes: i64) -> Status;
    fn panicked(c: Conn, message: &str);
}

/// An output filter: `write` takes `bb` from the filter above and passes what it makes on
/// through `this`. `panicked` runs after a panic was caught (the brigade is then dropped and the
/// write fails with ECONNABORTED).
pub trait OutputFilter {
    fn write(c: Conn, this: Filter, bb: Brigade<'_>) -> Status;
    fn panicked(c: Conn, message: &str);
}

/// A registered filter type (process-wide, like httpd's registry of them: registered again by
/// each load of the module).
pub struct FilterKind(AtomicPtr<sys::ap_filter_rec_t>);

impl FilterKind {
    pub const fn new() -> FilterKind {
        FilterKind(AtomicPtr::new(ptr::null_mut()))
    }

    /// Registers input filter `F` as `name` at `connection + offset` (connection filters run
    /// between the network and HTTP).
    pub fn register_input<F: InputFilter>(&self, name: &'static CStr, offset: u32) {
        unsafe extern "C" fn thunk<F: InputFilter>(
            f: *mut sys::ap_filter_t,
            bb: *mut sys::apr_bucket_brigade,
            mode: sys::ap_input_mode_t,
            block: sys::apr_read_type_e,
            readbytes: sys::apr_off_t,
        ) -> sys::apr_status_t {
            // The pointers are read inside the panic boundary too; the connection, once known,
            // is told about a panic.
            let conn: std::cell::Cell<Option<Conn>> = std::cell::Cell::new(None);
            catch_panic(
                APR_ECONNABORTED,
                |m| match conn.get() {
                    Some(c) => F::panicked(c, m),
                    None => crate::log_panic("in an input filter", m),
                },
                || {
                    // SAFETY: httpd passes our filter in a live connection's chain and a live brigade.
                    let (this, c, bb) = unsafe { (Filter::from_raw(f), Conn::from_raw((*f).c), Brigade::from_raw(bb)) };
                    let (Some(c), Some(bb)) = (c, bb) else { return APR_ECONNABORTED };
                    conn.set(Some(c));
                    F::read(
                        c,
                        this,
                        bb,
                        ReadMode::from_raw(mode),
                        block == sys::apr_read_type_e_APR_BLOCK_READ,
                        readbytes,
                    )
                },
            )
            .code()
        }
        let ftype = sys::ap_filter_type_AP_FTYPE_CONNECTION + offset;
        // SAFETY: registering a filter function with its signature; httpd keeps the name.
        let rec = unsafe { sys::ap_register_input_filter(name.as_ptr(), Some(thunk::<F>), None, ftype) };
        self.0.store(rec, Ordering::Release);
    }

    /// Registers output filter `F` as `name` at `connection + offset`.
    pub fn register_output<F: OutputFilter>(&self, name: &'static CStr, offset: u32) {
        unsafe extern "C" fn thunk<F: OutputFilter>(
            f: *mut sys::ap_filter_t,
            bb: *mut sys::apr_bucket_brigade,
        ) -> sys::apr_status_t {
            // As for input: the pointers are read inside the panic boundary.
            let seen: std::cell::Cell<Option<(Conn, Brigade<'_>)>> = std::cell::Cell::new(None);
            catch_panic(
                APR_ECONNABORTED,
                |m| match seen.get() {
                    Some((c, bb)) => {
                        bb.clear();
                        F::panicked(c, m)
                    }
                    None => crate::log_panic("in an output filter", m),
                },
                || {
                    // SAFETY: httpd passes our filter in a live connection's chain and a live brigade.
                    let (this, c, bb) = unsafe { (Filter::from_raw(f), Conn::from_raw((*f).c), Brigade::from_raw(bb)) };
                    let (Some(c), Some(bb)) = (c, bb) else { return APR_ECONNABORTED };
                    seen.set(Some((c, bb)));
                    F::write(c, this, bb)
                },
            )
            .code()
        }
        let ftype = sys::ap_filter_type_AP_FTYPE_CONNECTION + offset;
        // SAFETY: registering a filter function with its signature; httpd keeps the name.
        let rec = unsafe { sys::ap_register_output_filter(name.as_ptr(), Some(thunk::<F>), None, ftype) };
        self.0.store(rec, Ordering::Release);
    }

    /// Adds a filter of this (input) type to connection `c`.
    pub fn add_input(&self, c: Conn) -> Filter {
        // SAFETY: a registered filter type and a live connection.
        unsafe {
            Filter::from_raw(sys::ap_add_input_filter_handle(
                self.0.load(Ordering::Acquire),
                ptr::null_mut(),
                ptr::null_mut(),
                c.as_ptr(),
            ))
        }
    }

    /// Adds a filter of this (output) type to connection `c`.
    pub fn add_output(&self, c: Conn) -> Filter {
        // SAFETY: a registered filter type and a live connection.
        unsafe {
            Filter::from_raw(sys::ap_add_output_filter_handle(
                self.0.load(Ordering::Acquire),
                ptr::null_mut(),
                ptr::null_mut(),
                c.as_ptr(),
            ))
        }
    }
}

impl Default for FilterKind {
    fn default() -> Self {
        Self::new()
    }
}

/// One filter in a connection's chain, valid as long as the connection (whose state keeps it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Filter(NonNull<sys::ap_filter_t>);

impl Filter {
    /// # Safety
    /// `f` must be a filter of a live connection.
    unsafe fn from_raw(f: *mut sys::ap_filter_t) -> Filter {
        Filter(NonNull::new(f).expect("httpd passes live filters"))
    }

    /// The filter below this one now (filters below may come and go, e.g. mod_reqtimeout's).
    fn next(self) -> *mut sys::ap_filter_t {
        // SAFETY: live (type invariant).
        unsafe { (*self.0.as_ptr()).next }
    }

    /// Passes `bb` to the filters below (output).
    pub fn pass_down(self, bb: Brigade<'_>) -> Status {
        // SAFETY: the rest of a live chain; a live brigade.
        Status::from(unsafe { sys::ap_pass_brigade(self.next(), bb.as_ptr()) })
    }

    /// Reads from the filters below into `bb` (input).
    pub fn read_below(self, bb: Brigade<'_>, mode: ReadMode, block: bool, readbytes: i64) -> Status {
        let mode = match mode {
            ReadMode::Init => sys::ap_input_mode_t_AP_MODE_INIT,
            ReadMode::Bytes => sys::ap_input_mode_t_AP_MODE_READBYTES,
            ReadMode::Line => sys::ap_input_mode_t_AP_MODE_GETLINE,
            ReadMode::Speculative => sys::ap_input_mode_t_AP_MODE_SPECULATIVE,
            ReadMode::Exhaustive => sys::ap_input_mode_t_AP_MODE_EXHAUSTIVE,
            ReadMode::EatCrlf => sys::ap_input_mode_t_AP_MODE_EATCRLF,
        };
        // SAFETY: the rest of a live chain; a live brigade.
        Status::from(unsafe { sys::ap_get_brigade(self.next(), bb.as_ptr(), mode, read_type(block), readbytes) })
    }
}
