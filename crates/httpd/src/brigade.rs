//! Bucket brigades: the ring macros of apr_buckets.h re-done as methods, and the two ways the
//! filters take data out of a brigade — [`Brigade::consume`] (each bucket's bytes lent to a
//! closure, then the bucket deleted) and [`DataRun`] (buckets read in place and kept until their
//! bytes have been encrypted) — plus a writer that appends heap buckets (handshake bytes are
//! copied in; records are encrypted straight into the bucket memory it lends).
//!
//! A [`Brigade<'a>`] is valid for `'a`: a filter call's brigade for that call, a connection's own
//! brigades (`'static` here) as long as the connection's pool, which also owns the state holding
//! them. Buckets never leave this module as handles: bytes read from a bucket are only lent for
//! as long as the bucket is owned by whoever lends them, so no safe code above can keep bytes of
//! a deleted bucket or delete a bucket twice.

use std::ffi::c_void;
use std::io;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use crate::sys::{self, apr_bucket, apr_bucket_alloc_t, apr_bucket_brigade};
use crate::{APR_EOF, APR_SUCCESS, Status};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Brigade<'a>(NonNull<apr_bucket_brigade>, PhantomData<&'a apr_bucket_brigade>);

/// What kind of bucket it is, as far as the filters care.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BucketKind {
    /// Bytes in memory, a pipe, a socket…: read with [`Bucket::read`].
    Data,
    /// A region of an open file: the descriptor, offset and length.
    File { fd: libc::c_int, offset: i64, len: usize },
    /// Write out what came before it now.
    Flush,
    /// End of stream.
    Eos,
    /// End of connection: httpd closes it after this.
    Eoc,
    /// End of a request's output: httpd logs and frees the request when it is destroyed.
    Eor,
    /// Other metadata, passed on as it is.
    OtherMetadata,
}

impl BucketKind {
    pub fn is_metadata(self) -> bool {
        !matches!(self, BucketKind::Data | BucketKind::File { .. })
    }
}

/// A bucket, inside this module only (see the module's doc).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Bucket(NonNull<apr_bucket>);

impl<'a> Brigade<'a> {
    /// # Safety
    /// `pool` and `alloc` must be live; the brigade lives as long as `pool`.
    pub(crate) unsafe fn create(pool: *mut sys::apr_pool_t, alloc: *mut apr_bucket_alloc_t) -> Brigade<'a> {
        // SAFETY: as documented.
        unsafe { Brigade::from_raw(sys::apr_brigade_create(pool, alloc)) }.expect("apr_brigade_create allocates")
    }

    /// # Safety
    /// `bb` must be NULL or a brigade live for `'a`.
    pub(crate) unsafe fn from_raw(bb: *mut apr_bucket_brigade) -> Option<Brigade<'a>> {
        NonNull::new(bb).map(|bb| Brigade(bb, PhantomData))
    }

    pub(crate) fn as_ptr(self) -> *mut apr_bucket_brigade {
        self.0.as_ptr()
    }

    /// APR_BRIGADE_SENTINEL: the ring head disguised as a bucket (`link` is the first field).
    fn sentinel(self) -> *mut apr_bucket {
        // SAFETY: live brigade (type invariant); no access, only the address.
        unsafe { ptr::addr_of_mut!((*self.as_ptr()).list) as *mut apr_bucket }
    }

    pub fn is_empty(self) -> bool {
        // SAFETY: live brigade.
        unsafe { (*self.as_ptr()).list.next == self.sentinel() }
    }

    fn first(self) -> Option<Bucket> {
        // SAFETY: live brigade.
        self.bucket_or_end(unsafe { (*self.as_ptr()).list.next })
    }

    /// The bucket after `b` in this brigade, if any.
    fn after(self, b: Bucket) -> Option<Bucket> {
        // SAFETY: `b` is in this brigade (caller's use of the handle), so its link is valid.
        self.bucket_or_end(unsafe { (*b.as_ptr()).link.next })
    }

    fn bucket_or_end(self, b: *mut apr_bucket) -> Option<Bucket> {
        if b == self.sentinel() { None } else { NonNull::new(b).map(Bucket) }
    }

    /// The buckets from `from` (or the first) to the end, as they are now.
    fn buckets_from(self, from: Option<Bucket>) -> impl Iterator<Item = Bucket> + 'a {
        let mut next = from;
        std::iter::from_fn(move || {
            let b = next?;
            next = self.after(b);
            Some(b)
        })
    }

    fn bucket_alloc(self) -> *mut apr_bucket_alloc_t {
        // SAFETY: live brigade.
        unsafe { (*self.as_ptr()).bucket_alloc }
    }

    /// APR_BRIGADE_INSERT_TAIL of a bucket in no brigade (removed, or new).
    fn push(self, b: Bucket) {
        // SAFETY: live brigade and a bucket that is in no ring.
        unsafe {
            let b = b.as_ptr();
            let head = self.sentinel();
            (*b).link.next = head;
            (*b).link.prev = (*head).link.prev;
            (*(*head).link.prev).link.next = b;
            (*head).link.prev = b;
        }
    }

    /// Destroys every bucket (apr_brigade_cleanup).
    pub fn clear(self) {
        // SAFETY: live brigade.
        unsafe { sys::apr_brigade_cleanup(self.as_ptr() as *mut c_void) };
    }

    /// Appends a copy of `data` as one heap bucket.
    pub fn push_copy(self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // SAFETY: the brigade's own allocator; the bucket is new.
        unsafe {
            let buf = sys::apr_bucket_alloc(data.len(), self.bucket_alloc()) as *mut u8;
            assert!(!buf.is_null(), "apr_bucket_alloc failed");
            ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
            self.push_heap(buf, data.len());
        }
    }

    /// Appends bucket memory `buf` (from this brigade's allocator) holding `len` bytes as a heap
    /// bucket that frees it.
    ///
    /// # Safety
    /// `buf` must come from `apr_bucket_alloc` with this brigade's allocator, and be owned by no one else.
    unsafe fn push_heap(self, buf: *mut u8, len: usize) {
        // SAFETY: as documented; heap_create takes ownership of `buf`.
        unsafe {
            let b = sys::apr_bucket_heap_create(buf as *const _, len, Some(sys::apr_bucket_free), self.bucket_alloc());
            self.push(Bucket(NonNull::new(b).expect("apr_bucket_heap_create allocates")));
        }
    }

    pub fn push_flush(self) {
        // SAFETY: the brigade's own allocator.
        let b = unsafe { sys::apr_bucket_flush_create(self.bucket_alloc()) };
        self.push(Bucket(NonNull::new(b).expect("apr_bucket_flush_create allocates")));
    }

    /// Whether the brigade holds a FLUSH bucket, and how many data bytes follow the last one (all
    /// of them without a FLUSH). Lengths are the buckets' own; ours are never of unknown length.
    pub fn bytes_after_flush(self) -> (bool, usize) {
        let (mut flushed, mut bytes) = (false, 0);
        for b in self.buckets_from(self.first()) {
            match b.kind() {
                BucketKind::Flush => {
                    flushed = true;
                    bytes = 0;
                }
                k if !k.is_metadata() => bytes += b.known_len().unwrap_or(0),
                _ => {}
            }
        }
        (flushed, bytes)
    }

    /// Whether the brigade holds any data bucket (not only metadata).
    pub fn has_data(self) -> bool {
        self.buckets_from(self.first()).any(|b| !b.kind().is_metadata())
    }

    /// The kind of the first bucket, if any.
    pub fn first_kind(self) -> Option<BucketKind> {
        self.first().map(Bucket::kind)
    }

    /// Moves the first bucket to the end of `dest` (metadata passed on in order).
    pub fn move_first_to(self, dest: Brigade<'_>) {
        if let Some(b) = self.first() {
            b.remove();
            dest.push(b);
        }
    }

    /// Takes every bucket out in order: `f` gets each one's kind and bytes (none for metadata),
    /// then the bucket is deleted. A read error, or an error from `f`, stops there and clears the
    /// brigade.
    pub fn consume<E>(
        self,
        block: bool,
        mut f: impl FnMut(BucketKind, &[u8]) -> Result<(), E>,
    ) -> Result<(), Consumed<E>> {
        while let Some(b) = self.first() {
            let kind = b.kind();
            let result = if kind.is_metadata() {
                f(kind, &[]).map_err(Consumed::Stopped)
            } else {
                // SAFETY: the bytes live until the bucket is deleted, after `f` returns.
                match unsafe { b.read(block) } {
                    Ok(data) => f(kind, data).map_err(Consumed::Stopped),
                    Err(rv) => Err(Consumed::Read(rv)),
                }
            };
            b.delete();
            if let Err(e) = result {
                self.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    /// The length of the FILE buckets from `b` to the end.
    fn file_bytes_from(self, b: Bucket) -> usize {
        self.buckets_from(Some(b))
            .map(|b| match b.kind() {
                BucketKind::File { len, .. } => len,
                _ => 0,
            })
            .sum()
    }
}

impl Bucket {
    fn as_ptr(self) -> *mut apr_bucket {
        self.0.as_ptr()
    }

    fn type_is(self, t: *const sys::apr_bucket_type_t) -> bool {
        // SAFETY: a live bucket (handle invariant).
        unsafe { ptr::eq((*self.as_ptr()).type_, t) }
    }

    pub fn kind(self) -> BucketKind {
        // SAFETY: a live bucket; the type records are httpd's and APR's statics.
        unsafe {
            if self.type_is(&raw const sys::apr_bucket_type_file) {
                let file = (*self.as_ptr()).data as *mut sys::apr_bucket_file;
                let mut fd: sys::apr_os_file_t = -1;
                if Status::from(sys::apr_os_file_get(&mut fd, (*file).fd)).is_success() && fd >= 0 {
                    return BucketKind::File { fd, offset: (*self.as_ptr()).start, len: (*self.as_ptr()).length };
                }
                return BucketKind::Data;
            }
            if (*(*self.as_ptr()).type_).is_metadata != sys::apr_bucket_type_t_APR_BUCKET_METADATA {
                return BucketKind::Data;
            }
            if self.type_is(&raw const sys::apr_bucket_type_flush) {
                BucketKind::Flush
            } else if self.type_is(&raw const sys::apr_bucket_type_eos) {
                BucketKind::Eos
            } else if self.type_is(&raw const sys::ap_bucket_type_eoc) {
                BucketKind::Eoc
            } else if self.type_is(&raw const sys::ap_bucket_type_eor) {
                BucketKind::Eor
            } else {
                BucketKind::OtherMetadata
            }
        }
    }

    /// The length, unless not known before reading (pipes, sockets).
    fn known_len(self) -> Option<usize> {
        // SAFETY: a live bucket.
        let len = unsafe { (*self.as_ptr()).length };
        (len != sys::apr_size_t::MAX).then_some(len)
    }

    /// APR_BUCKET_REMOVE: out of its brigade (to [`Brigade::push`] elsewhere, or delete).
    fn remove(self) {
        // SAFETY: a bucket in a ring.
        unsafe {
            let b = self.as_ptr();
            (*(*b).link.prev).link.next = (*b).link.next;
            (*(*b).link.next).link.prev = (*b).link.prev;
        }
    }

    /// apr_bucket_delete: remove and destroy. The handle must not be used afterwards.
    fn delete(self) {
        self.remove();
        self.destroy();
    }

    /// apr_bucket_destroy, of a bucket in no brigade. The handle must not be used afterwards.
    fn destroy(self) {
        // SAFETY: a bucket out of any ring, destroyed once.
        unsafe {
            let b = self.as_ptr();
            if let Some(d) = (*(*b).type_).destroy {
                d((*b).data);
            }
            if let Some(f) = (*b).free {
                f(b as *mut c_void);
            }
        }
    }

    /// apr_bucket_split: this bucket keeps the first `point` bytes, the rest becomes a new bucket
    /// after it.
    fn split(self, point: usize) -> Status {
        // SAFETY: a live bucket; every bucket type can split at a point within its length.
        Status::from(unsafe {
            ((*(*self.as_ptr()).type_).split.expect("every bucket type can split"))(self.as_ptr(), point)
        })
    }

    /// apr_bucket_read. File and pipe buckets read a bounded chunk and split themselves, so
    /// reading the first bucket of a brigade repeatedly streams a large file without loading it
    /// whole.
    ///
    /// # Safety
    /// The slice lives until the bucket is deleted or split: the caller must not use it after.
    unsafe fn read<'d>(self, block: bool) -> Result<&'d [u8], Status> {
        let mut data: *const std::ffi::c_char = ptr::null();
        let mut len: sys::apr_size_t = 0;
        let how = crate::read_type(block);
        // SAFETY: a live bucket; every bucket type can read.
        let rv = Status::from(unsafe {
            ((*(*self.as_ptr()).type_).read.expect("every bucket type can read"))(
                self.as_ptr(),
                &mut data,
                &mut len,
                how,
            )
        });
        if rv != APR_SUCCESS {
            return Err(rv);
        }
        if len == 0 || data.is_null() {
            return Ok(&[]);
        }
        // SAFETY: the bucket's data, valid until it is destroyed or changed (see above).
        Ok(unsafe { std::slice::from_raw_parts(data as *const u8, len) })
    }

    /// Reads the start of this FILE bucket (at most `max` bytes) with pread, appending it to `buf`
    /// (which must have room for it, so that slices into `buf` taken before stay valid), and
    /// splits the bucket there. This is what apr_bucket_read would do, minus its per-read
    /// mmap/munmap (a TLB shoot-down on every CPU) and page faults: the bytes are copied into
    /// records right away, so a plain read into a reused buffer is cheaper. Returns where the
    /// bytes start in `buf` and how many there are.
    fn read_file_into(self, max: usize, buf: &mut Vec<u8>) -> Result<(usize, usize), Status> {
        let BucketKind::File { fd, offset, len } = self.kind() else { return Err(crate::APR_ENOTIMPL) };
        let want = len.min(max.max(1));
        assert!(buf.capacity() - buf.len() >= want, "the file buffer must not move");
        if want < len {
            let rv = self.split(want);
            if rv != APR_SUCCESS {
                return Err(rv);
            }
        }
        let start = buf.len();
        let mut got = 0;
        while got < want {
            // SAFETY: within the capacity checked above.
            let at = unsafe { buf.as_mut_ptr().add(start + got) };
            // SAFETY: the bucket's descriptor; `want - got` bytes of room at `at`.
            let n = unsafe { libc::pread(fd, at.cast(), want - got, offset + got as i64) };
            match n {
                n if n > 0 => got += n as usize,
                // The file shrank under us: the response cannot be completed.
                0 => return Err(APR_EOF),
                _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                _ => return Err(Status::from(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))),
            }
        }
        // SAFETY: pread initialised the `got` bytes after `start`.
        unsafe { buf.set_len(start + got) };
        Ok((start, got))
    }
}

/// Why [`Brigade::consume`] stopped.
pub enum Consumed<E> {
    /// A bucket could not be read.
    Read(Status),
    /// The closure refused a bucket's bytes.
    Stopped(E),
}

/// Where a part of a [`DataRun`] lives.
enum Part {
    /// In the bucket's own memory (heap, pool, mmap… buckets).
    InBucket(*const u8, usize),
    /// In the run's file buffer, at this offset (FILE buckets, read with pread).
    InFileBuffer(usize, usize),
}

/// What [`DataRun::take_first`] did.
pub enum Taken {
    /// The first bucket's bytes (this many) joined the run.
    Bytes(usize),
    /// The run's file buffer is full: encrypt and clear the run, then take again.
    Full,
}

/// Data buckets taken out of a brigade and read in place (FILE buckets through a buffer of the
/// run's own), kept until [`clear`](Self::clear) deletes them, so that their bytes can be encrypted
/// together into full records across bucket boundaries. The bytes are lent out only while the
/// run is borrowed; dropping the run deletes its buckets.
pub struct DataRun {
    buckets: Vec<Bucket>,
    parts: Vec<Part>,
    bytes: usize,
    /// File data of this run; its capacity is fixed once reserved, so parts never move.
    file_buf: Vec<u8>,
    /// The most file data one run holds.
    file_capacity: usize,
}

impl DataRun {
    pub fn new(file_capacity: usize) -> DataRun {
        DataRun { buckets: Vec::new(), parts: Vec::new(), bytes: 0, file_buf: Vec::new(), file_capacity }
    }

    /// The bytes in the run.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes the first bucket of `bb` (a data bucket) into the run: read in place, or for a FILE
    /// bucket at most `limit` bytes of it read into the run's buffer (the rest stays in `bb`).
    pub fn take_first(&mut self, bb: Brigade<'_>, limit: usize) -> Result<Taken, Status> {
        let Some(b) = bb.first() else { return Ok(Taken::Bytes(0)) };
        let part = match b.kind() {
            // Nothing to read (and no buffer to reserve for it).
            BucketKind::File { len: 0, .. } => Part::InFileBuffer(self.file_buf.len(), 0),
            BucketKind::File { .. } => {
                if self.file_buf.capacity() == 0 {
                    // Only as large as the files of this brigade need (a 1 KiB response leaves a
                    // 1 KiB hole in the heap, not a 64 KiB one).
                    self.file_buf.reserve_exact(bb.file_bytes_from(b).min(self.file_capacity));
                }
                let room = limit.min(self.file_buf.capacity() - self.file_buf.len());
                if room == 0 {
                    return Ok(Taken::Full);
                }
                let (at, len) = b.read_file_into(room, &mut self.file_buf)?;
                Part::InFileBuffer(at, len)
            }
            // SAFETY: the bucket is kept (in `buckets`) until `clear`, which forgets the slice.
            _ => match unsafe { b.read(true) } {
                Ok(data) => Part::InBucket(data.as_ptr(), data.len()),
                Err(rv) => return Err(rv),
            },
        };
        // Reading split a FILE bucket: what is left of it is a new bucket after `b`, still in `bb`.
        b.remove();
        self.buckets.push(b);
        let n = match part {
            Part::InBucket(_, n) | Part::InFileBuffer(_, n) => n,
        };
        self.parts.push(part);
        self.bytes += n;
        Ok(Taken::Bytes(n))
    }

    /// The run's bytes, part by part.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> {
        self.parts.iter().map(|p| match *p {
            // SAFETY: the bucket holding it is owned by the run until `clear`, and `&self` is borrowed.
            Part::InBucket(ptr, len) => unsafe { std::slice::from_raw_parts(ptr, len) },
            Part::InFileBuffer(at, len) => &self.file_buf[at..at + len],
        })
    }

    /// Deletes the run's buckets and forgets their bytes (the file buffer keeps its capacity).
    pub fn clear(&mut self) {
        self.parts.clear();
        for b in self.buckets.drain(..) {
            b.destroy();
        }
        self.file_buf.clear();
        self.bytes = 0;
    }
}

impl Drop for DataRun {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Appends heap buckets to a brigade: what is written through `io::Write` is copied; memory lent
/// by [`room`](Self::room) becomes the bucket itself at [`commit`](Self::commit).
pub struct BrigadeWriter<'a> {
    bb: Brigade<'a>,
    /// Bucket memory lent by `room`, until `commit`.
    lent: *mut u8,
}

impl<'a> BrigadeWriter<'a> {
    pub fn new(bb: Brigade<'a>) -> Self {
        BrigadeWriter { bb, lent: ptr::null_mut() }
    }
}

impl BrigadeWriter<'_> {
    /// `len` zeroed bytes of bucket memory to write into, until [`commit`](Self::commit).
    pub fn room(&mut self, len: usize) -> &mut [u8] {
        // SAFETY: fresh bucket memory of `len` bytes from the brigade's allocator, zeroed before
        // it becomes a `&mut [u8]` (a slice of uninitialised bytes is undefined behaviour even if
        // only written; the memset costs a fraction of the encryption that fills it); only what
        // was written is kept.
        unsafe {
            let buf = sys::apr_bucket_alloc(len, self.bb.bucket_alloc()) as *mut u8;
            assert!(!buf.is_null(), "apr_bucket_alloc failed");
            ptr::write_bytes(buf, 0, len);
            self.lent = buf;
            std::slice::from_raw_parts_mut(buf, len)
        }
    }

    /// Appends the first `used` bytes of the memory [`room`](Self::room) lent as a bucket (none:
    /// the memory is freed).
    pub fn commit(&mut self, used: usize) {
        let buf = std::mem::replace(&mut self.lent, ptr::null_mut());
        if buf.is_null() {
            return;
        }
        // SAFETY: the memory lent by `room`, ours until now.
        unsafe {
            if used == 0 {
                sys::apr_bucket_free(buf.cast());
                return;
            }
            self.bb.push_heap(buf, used);
        }
    }
}

impl io::Write for BrigadeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bb.push_copy(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
