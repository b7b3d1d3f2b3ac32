//! OCSP stapling: the responses mod_md keeps (asked for through the module's `ap_ssl_ocsp_*`
//! calls) put into the certificate presented.

use std::sync::Arc;

use rustls::sign::CertifiedKey;

/// OCSP stapling for one certificate: its id (for `ap_ssl_ocsp_*`) and the key carrying the
/// latest response, rebuilt only when the response changes.
pub struct Stapling {
    pub id: [u8; 32],
    current: std::sync::Mutex<Option<(Vec<u8>, Arc<CertifiedKey>)>>,
}

impl Stapling {
    pub fn new(key: &CertifiedKey) -> Stapling {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.cert.first().map_or(&[][..], |c| c.as_ref()));
        let mut id = [0u8; 32];
        id.copy_from_slice(digest.as_ref());
        Stapling { id, current: std::sync::Mutex::new(None) }
    }

    /// `key` with `response` stapled.
    pub fn with_response(&self, key: &Arc<CertifiedKey>, response: &[u8]) -> Arc<CertifiedKey> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((der, k)) = cur.as_ref()
            && der == response
        {
            return k.clone();
        }
        let mut stapled = (**key).clone();
        stapled.ocsp = Some(response.to_vec());
        let stapled = Arc::new(stapled);
        *cur = Some((response.to_vec(), stapled.clone()));
        stapled
    }
}
