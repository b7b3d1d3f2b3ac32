//! What one vhost's TLS configuration holds on the heap at shared-hosting scale: many vhosts,
//! each with its own certificate, equal settings otherwise. A test binary of its own: heap bytes
//! are counted by a counting global allocator for the whole process. `-- --nocapture` shows the
//! figures.

use std::sync::Arc;

use mod_tls_core::conf::{CertSpec, Origin, ServerConf};
use mod_tls_core::tls::engine::{Providers, VhostTls, build_vhost};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static HEAP: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// `n` vhosts' settings, vhost `i` with certificate and key file number `files(i)` (made in `dir`
/// when first named): an ECDSA P-256 key each, signed by one CA.
fn vhosts(dir: &std::path::Path, n: usize, files: impl Fn(usize) -> usize) -> Vec<ServerConf> {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    (0..n)
        .map(|i| {
            let f = files(i);
            let (c, k) = (dir.join(format!("s{f}.crt")), dir.join(format!("s{f}.key")));
            if !c.exists() {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
                let cert = rcgen::CertificateParams::new(vec![format!("site{f}.test")])
                    .unwrap()
                    .signed_by(&key, &issuer)
                    .unwrap();
                std::fs::write(&c, cert.pem()).unwrap();
                std::fs::write(&k, key.serialize_pem()).unwrap();
            }
            let mut conf = ServerConf::default();
            conf.certificates = vec![CertSpec {
                cert_file: c,
                key_file: Some(k),
                origin: Origin { file: "v.conf".into(), line: i as u32 },
            }]
            .into();
            conf
        })
        .collect()
}

/// Builds every vhost after the first (which builds what all share, the provider) and returns
/// the heap bytes and allocations each holds once start-up is done, on average, and what was
/// built.
fn held_per_vhost(confs: &[ServerConf]) -> (isize, isize, Vec<Arc<VhostTls>>) {
    let mut providers = Providers::default();
    let mut kept = Vec::with_capacity(confs.len());
    kept.push(Arc::new(build_vhost(&confs[0], None, 0, &mut providers).unwrap().0));
    let region = Region::new(HEAP);
    for conf in &confs[1..] {
        kept.push(Arc::new(build_vhost(conf, None, 0, &mut providers).unwrap().0));
    }
    // What start-up read the certificates through goes with it.
    drop(providers);
    let c = region.change();
    let n = confs.len() as isize - 1;
    let bytes = (c.bytes_allocated as isize - c.bytes_deallocated as isize) / n;
    let allocs = (c.allocations as isize - c.deallocations as isize) / n;
    (bytes, allocs, kept)
}

#[test]
fn vhost_with_its_own_certificate_holds_little() {
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let confs = vhosts(dir.path(), N, |i| i);
    let (bytes, allocs, kept) = held_per_vhost(&confs);
    println!("per vhost, a certificate each: {bytes} bytes in {allocs} allocations held");
    // Its certificate (about 400 bytes here) and key (about 140) with their records, the
    // resolver and the vhost's record: no rustls config of its own until a handshake needs one.
    assert!(bytes < 950, "{bytes} bytes per vhost");
    drop(kept);
}

/// A certificate (a wildcard, say) that many vhosts name is read, parsed and held once: each
/// vhost holds its own record, resolver and session store, not a copy of the certificate.
#[test]
fn a_certificate_many_vhosts_name_is_held_once() {
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let confs = vhosts(dir.path(), N, |_| 0);
    let (bytes, allocs, kept) = held_per_vhost(&confs);
    println!("per vhost, one certificate for all: {bytes} bytes in {allocs} allocations held");
    let first = kept[0].certified_keys().next().unwrap();
    assert!(kept.iter().all(|v| Arc::ptr_eq(v.certified_keys().next().unwrap(), first)), "one key for all");
    assert!(bytes < 300, "{bytes} bytes per vhost: no certificate of its own");
}
