//! TLS sessions shared through a store outside the process (httpd's socache in the module, see
//! `httpd::socache`), so that a session made by one child — or by another server of a fleet —
//! resumes in any other. rustls asks through [`StoresServerSessions`]; stateful TLS 1.2 session
//! ids and TLS 1.3 tickets are filed under the vhost's settings namespace
//! ([`crate::tls::engine::TlsFingerprint::session_namespace`]), so a session never resumes in a vhost
//! with other TLS settings.

use std::sync::Arc;

use rustls::server::StoresServerSessions;

/// Where sessions live: a key-value store with expiry shared by every process that serves.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Stores `value` (which may be read in place) under `key`; false when it could not.
    fn store(&self, key: &[u8], value: &mut [u8]) -> bool;
    fn retrieve(&self, key: &[u8]) -> Option<Vec<u8>>;
    fn remove(&self, key: &[u8]);
    /// The store is open in this process.
    fn is_ready(&self) -> bool;
}

/// One vhost's view of the store: its keys are prefixed with the vhost's settings namespace.
#[derive(Debug)]
pub struct VhostSessions<S: SessionStore> {
    store: Arc<S>,
    namespace: [u8; 8],
}

impl<S: SessionStore + 'static> VhostSessions<S> {
    pub fn new(store: Arc<S>, namespace: [u8; 8]) -> Self {
        VhostSessions { store, namespace }
    }

    /// The session storage of each vhost (by its settings namespace) in `store`.
    pub fn factory(store: Arc<S>) -> impl Fn([u8; 8]) -> Arc<dyn StoresServerSessions> {
        move |namespace| Arc::new(VhostSessions::new(store.clone(), namespace))
    }
}

impl<S: SessionStore> StoresServerSessions for VhostSessions<S> {
    fn put(&self, key: Vec<u8>, mut value: Vec<u8>) -> bool {
        let ok = self.store.store(&self.key_of(&key), &mut value);
        // The value holds the session's secrets: wipe our copy.
        zeroize::Zeroize::zeroize(&mut value);
        ok
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.store.retrieve(&self.key_of(key))
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let k = self.key_of(key);
        let v = self.store.retrieve(&k)?;
        self.store.remove(&k);
        Some(v)
    }

    fn can_cache(&self) -> bool {
        self.store.is_ready()
    }
}

impl<S: SessionStore> VhostSessions<S> {
    fn key_of(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(8 + key.len());
        k.extend_from_slice(&self.namespace);
        k.extend_from_slice(key);
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A store in memory, standing in for httpd's socache.
    #[derive(Debug, Default)]
    struct MemoryStore(Mutex<HashMap<Vec<u8>, Vec<u8>>>);

    impl SessionStore for MemoryStore {
        fn store(&self, key: &[u8], value: &mut [u8]) -> bool {
            self.0.lock().unwrap().insert(key.to_vec(), value.to_vec());
            true
        }
        fn retrieve(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.0.lock().unwrap().get(key).cloned()
        }
        fn remove(&self, key: &[u8]) {
            self.0.lock().unwrap().remove(key);
        }
        fn is_ready(&self) -> bool {
            true
        }
    }

    #[test]
    fn vhosts_with_other_settings_never_see_each_others_sessions() {
        let store = Arc::new(MemoryStore::default());
        let make = VhostSessions::factory(store.clone());
        let (a, b, a_again) = (make([1; 8]), make([2; 8]), make([1; 8]));
        assert!(a.put(b"id".to_vec(), b"session of a".to_vec()));
        assert_eq!(b.get(b"id"), None, "another namespace");
        assert_eq!(a_again.get(b"id").as_deref(), Some(&b"session of a"[..]), "same settings, e.g. another child");
        assert!(b.put(b"id".to_vec(), b"session of b".to_vec()));
        assert_eq!(a.get(b"id").as_deref(), Some(&b"session of a"[..]));
        // A TLS 1.3 ticket is taken: used once.
        assert_eq!(a.take(b"id").as_deref(), Some(&b"session of a"[..]));
        assert_eq!(a_again.get(b"id"), None);
        assert_eq!(b.get(b"id").as_deref(), Some(&b"session of b"[..]), "untouched");
        assert!(a.can_cache());
        assert_eq!(
            store.0.lock().unwrap().keys().next().map(|k| k[..8].to_vec()),
            Some(vec![2; 8]),
            "keys carry the namespace"
        );
    }
}
