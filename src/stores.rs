//! httpd's storage behind the TLS layer's traits: the socache as the session store, shared
//! memory as the status counters, brigades as the record sink. The `httpd` crate offers these
//! as plain handles and knows nothing of TLS; the ties are made here.

use std::io;
use std::sync::Arc;

use httpd::brigade::BrigadeWriter;
use httpd::shm::SharedCounters;
use httpd::socache::{SessionCache, SocacheError};

use crate::conf::CacheSpec;
use crate::conf::error::{ConfError, ErrorKind};
use crate::tls::sessions::SessionStore;
use crate::tls::stats::Counters;
use crate::tls::stream::RecordSink;

/// TLS sessions in httpd's socache: a session made by one child — or by another server of a
/// fleet sharing memcached/redis — resumes in any other.
#[derive(Debug)]
pub struct SocacheSessions(pub Arc<SessionCache>);

impl SessionStore for SocacheSessions {
    fn store(&self, key: &[u8], value: &mut [u8], expires_at: u64) -> bool {
        self.0.store(key, value, expires_at)
    }

    fn retrieve(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.retrieve(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.take(key)
    }

    fn is_ready(&self) -> bool {
        self.0.is_ready()
    }
}

/// What went wrong opening or starting the cache, as the sentence for the administrator.
pub fn socache_error(e: SocacheError) -> ConfError {
    let message = match e {
        SocacheError::NoProvider { name } => {
            format!(
                "the session cache type '{name}' is not available: load its module ({})",
                CacheSpec::module_for(&name)
            )
        }
        SocacheError::Unwritable => "invalid provider name or arguments (a NUL byte)".to_string(),
        SocacheError::Refused { spec, message } => format!("'{spec}': {message}"),
        SocacheError::Mutex(rv) => format!("cannot create the session cache mutex (error {rv})"),
        SocacheError::Init { spec, status } => {
            format!("the session cache {spec} could not be initialised (error {status})")
        }
    };
    ConfError::new(ErrorKind::SessionCache, message)
}

/// The status page's counters in the shared memory all children of a generation add to.
pub struct ShmCounters(pub Arc<SharedCounters>);

impl Counters for ShmCounters {
    fn add(&self, index: usize) {
        self.0.add(index)
    }

    fn get(&self, index: usize) -> u64 {
        self.0.get(index)
    }
}

/// TLS records written straight into bucket memory (see [`BrigadeWriter::room`]).
pub struct BrigadeSink<'a>(pub BrigadeWriter<'a>);

impl RecordSink for BrigadeSink<'_> {
    fn room(&mut self, len: usize) -> &mut [u8] {
        self.0.room(len)
    }

    fn commit(&mut self, _lent: usize, used: usize) {
        self.0.commit(used)
    }
}

impl io::Write for BrigadeSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
