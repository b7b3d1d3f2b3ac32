//! Bucket brigades: the ring macros of apr_buckets.h re-done as functions, bucket reads as slices,
//! and a writer that appends heap buckets (handshake bytes are copied in; records are encrypted
//! straight into the bucket memory it lends).

use std::ffi::c_void;
use std::io;
use std::ptr;

use super::sys::{self, apr_bucket, apr_bucket_alloc_t, apr_bucket_brigade};

/// A brigade we did not allocate ourselves and do not free (pool-owned in httpd's way).
#[derive(Clone, Copy)]
pub struct Brigade(pub *mut apr_bucket_brigade);

impl Brigade {
    /// # Safety
    /// `pool` and `alloc` must be live; the brigade lives as long as `pool`.
    pub unsafe fn create(pool: *mut sys::apr_pool_t, alloc: *mut apr_bucket_alloc_t) -> Brigade {
        Brigade(unsafe { sys::apr_brigade_create(pool, alloc) })
    }

    /// The ring's end marker, for walking a brigade without removing buckets.
    pub fn sentinel_ptr(self) -> *mut apr_bucket {
        self.sentinel()
    }

    fn sentinel(self) -> *mut apr_bucket {
        // APR_BRIGADE_SENTINEL: the ring head disguised as a bucket (`link` is the first field).
        unsafe { ptr::addr_of_mut!((*self.0).list) as *mut apr_bucket }
    }

    pub fn is_empty(self) -> bool {
        unsafe { (*self.0).list.next == self.sentinel() }
    }

    pub fn first(self) -> Option<*mut apr_bucket> {
        if self.is_empty() { None } else { Some(unsafe { (*self.0).list.next }) }
    }

    pub fn bucket_alloc(self) -> *mut apr_bucket_alloc_t {
        unsafe { (*self.0).bucket_alloc }
    }

    /// APR_BRIGADE_INSERT_TAIL.
    ///
    /// # Safety
    /// `b` must be a bucket not currently in any brigade.
    pub unsafe fn push(self, b: *mut apr_bucket) {
        unsafe {
            let head = self.sentinel();
            (*b).link.next = head;
            (*b).link.prev = (*head).link.prev;
            (*(*head).link.prev).link.next = b;
            (*head).link.prev = b;
        }
    }

    /// Destroys every bucket (apr_brigade_cleanup).
    pub fn clear(self) {
        unsafe { sys::apr_brigade_cleanup(self.0 as *mut c_void) };
    }

    /// Appends a copy of `data` as one heap bucket.
    pub fn push_copy(self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        unsafe { self.push(heap_copy(data, self.bucket_alloc())) }
    }

    /// Whether the brigade holds a FLUSH bucket, and how many data bytes follow the last one (all
    /// of them without a FLUSH). Lengths are the buckets' own; ours are never of unknown length.
    pub fn bytes_after_flush(self) -> (bool, usize) {
        let (mut flushed, mut bytes) = (false, 0);
        let mut b = self.first();
        while let Some(x) = b {
            if x == self.sentinel_ptr() {
                break;
            }
            unsafe {
                if is_flush(x) {
                    flushed = true;
                    bytes = 0;
                } else if !is_metadata(x) && (*x).length != sys::apr_size_t::MAX {
                    bytes += (*x).length;
                }
                b = Some((*x).link.next);
            }
        }
        (flushed, bytes)
    }

    pub fn push_flush(self) {
        unsafe { self.push(sys::apr_bucket_flush_create(self.bucket_alloc())) }
    }
}

/// APR_BUCKET_REMOVE.
///
/// # Safety
/// `b` must be in a brigade.
pub unsafe fn remove(b: *mut apr_bucket) {
    unsafe {
        (*(*b).link.prev).link.next = (*b).link.next;
        (*(*b).link.next).link.prev = (*b).link.prev;
    }
}

/// apr_bucket_delete: remove and destroy.
///
/// # Safety
/// `b` must be in a brigade and not used afterwards.
pub unsafe fn delete(b: *mut apr_bucket) {
    unsafe {
        remove(b);
        destroy(b);
    }
}

/// apr_bucket_destroy.
///
/// # Safety
/// `b` must not be in a brigade and not used afterwards.
pub unsafe fn destroy(b: *mut apr_bucket) {
    unsafe {
        if let Some(d) = (*(*b).type_).destroy {
            d((*b).data);
        }
        if let Some(f) = (*b).free {
            f(b as *mut c_void);
        }
    }
}

/// # Safety
/// `b` must be a valid bucket.
pub unsafe fn is_metadata(b: *mut apr_bucket) -> bool {
    unsafe { (*(*b).type_).is_metadata == sys::apr_bucket_type_t_APR_BUCKET_METADATA }
}

/// # Safety
/// `b` must be a valid bucket.
pub unsafe fn is_flush(b: *mut apr_bucket) -> bool {
    unsafe { ptr::eq((*b).type_, &raw const sys::apr_bucket_type_flush) }
}

/// # Safety
/// `b` must be a valid bucket.
pub unsafe fn is_eos(b: *mut apr_bucket) -> bool {
    unsafe { ptr::eq((*b).type_, &raw const sys::apr_bucket_type_eos) }
}

/// # Safety
/// `b` must be a valid bucket.
pub unsafe fn is_eoc(b: *mut apr_bucket) -> bool {
    unsafe { ptr::eq((*b).type_, &raw const sys::ap_bucket_type_eoc) }
}

/// The end of a request's output (EOR): httpd logs and frees the request when it is destroyed.
///
/// # Safety
/// `b` must be a valid bucket.
pub unsafe fn is_eor(b: *mut apr_bucket) -> bool {
    unsafe { ptr::eq((*b).type_, &raw const sys::ap_bucket_type_eor) }
}

/// For a FILE bucket: the OS descriptor of its file and the extent (offset, length) it covers.
///
/// # Safety
/// `b` must be a valid bucket.
pub unsafe fn file_extent(b: *mut apr_bucket) -> Option<(libc::c_int, i64, usize)> {
    unsafe {
        if !ptr::eq((*b).type_, &raw const sys::apr_bucket_type_file) {
            return None;
        }
        let file = (*b).data as *mut sys::apr_bucket_file;
        let mut fd: sys::apr_os_file_t = -1;
        if sys::apr_os_file_get(&mut fd, (*file).fd) != super::APR_SUCCESS || fd < 0 {
            return None;
        }
        Some((fd, (*b).start, (*b).length))
    }
}

/// apr_bucket_split: `b` keeps the first `point` bytes, the rest becomes a new bucket after it.
///
/// # Safety
/// `b` must be a valid bucket of known length greater than `point`.
pub unsafe fn split(b: *mut apr_bucket, point: usize) -> sys::apr_status_t {
    unsafe { ((*(*b).type_).split.expect("every bucket type can split"))(b, point) }
}

/// apr_bucket_read. File and pipe buckets read a bounded chunk and split themselves, so reading
/// the first bucket of a brigade repeatedly streams a large file without loading it whole.
///
/// # Safety
/// `b` must be a valid bucket; the slice lives until the bucket is destroyed or modified.
pub unsafe fn read<'a>(b: *mut apr_bucket, block: bool) -> Result<&'a [u8], sys::apr_status_t> {
    let mut data: *const std::ffi::c_char = ptr::null();
    let mut len: sys::apr_size_t = 0;
    let how = if block { sys::apr_read_type_e_APR_BLOCK_READ } else { sys::apr_read_type_e_APR_NONBLOCK_READ };
    let rv = unsafe { ((*(*b).type_).read.expect("every bucket type can read"))(b, &mut data, &mut len, how) };
    if rv != super::APR_SUCCESS {
        return Err(rv);
    }
    if len == 0 || data.is_null() {
        return Ok(&[]);
    }
    Ok(unsafe { std::slice::from_raw_parts(data as *const u8, len) })
}

/// A heap bucket holding a copy of `data`, allocated from the connection's bucket allocator (whose
/// free lists recycle the memory for the next bucket).
///
/// # Safety
/// `alloc` must be live.
pub unsafe fn heap_copy(data: &[u8], alloc: *mut apr_bucket_alloc_t) -> *mut apr_bucket {
    unsafe {
        let buf = sys::apr_bucket_alloc(data.len(), alloc) as *mut u8;
        assert!(!buf.is_null(), "apr_bucket_alloc failed");
        ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        sys::apr_bucket_heap_create(buf as *const _, data.len(), Some(sys::apr_bucket_free), alloc)
    }
}

/// Appends heap buckets to a brigade: what is written through `io::Write` is copied; a
/// `RecordSink` room is bucket memory that becomes the bucket itself.
pub struct BrigadeWriter {
    pub bb: Brigade,
    /// Bucket memory lent by `room`, until `commit`.
    lent: *mut u8,
}

impl BrigadeWriter {
    pub fn new(bb: Brigade) -> Self {
        BrigadeWriter { bb, lent: ptr::null_mut() }
    }
}

impl crate::tls::stream::RecordSink for BrigadeWriter {
    fn room(&mut self, len: usize) -> &mut [u8] {
        unsafe {
            let buf = sys::apr_bucket_alloc(len, self.bb.bucket_alloc()) as *mut u8;
            assert!(!buf.is_null(), "apr_bucket_alloc failed");
            self.lent = buf;
            // The memory is only written through this slice (records are encrypted into it) and
            // only what was written is kept (`commit`).
            std::slice::from_raw_parts_mut(buf, len)
        }
    }

    fn commit(&mut self, _lent: usize, used: usize) {
        let buf = std::mem::replace(&mut self.lent, ptr::null_mut());
        if buf.is_null() {
            return;
        }
        unsafe {
            if used == 0 {
                sys::apr_bucket_free(buf.cast());
                return;
            }
            let alloc = self.bb.bucket_alloc();
            self.bb.push(sys::apr_bucket_heap_create(buf as *const _, used, Some(sys::apr_bucket_free), alloc));
        }
    }
}

impl io::Write for BrigadeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bb.push_copy(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
