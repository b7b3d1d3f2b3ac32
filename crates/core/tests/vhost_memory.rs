//! What one vhost's TLS configuration holds on the heap at shared-hosting scale: many vhosts,
//! each with its own certificate, equal settings otherwise. A test binary of its own: heap bytes
//! are counted by a counting global allocator for the whole process. `-- --nocapture` shows the
//! figures.

use std::sync::Arc;

use mod_tls_core::conf::{CertSpec, Origin, ServerConf};
use mod_tls_core::tls::engine::{Providers, build_vhost};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static HEAP: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

#[test]
fn vhost_with_its_own_certificate_holds_little() {
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let confs: Vec<ServerConf> = (0..N)
        .map(|i| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let cert =
                rcgen::CertificateParams::new(vec![format!("site{i}.test")]).unwrap().signed_by(&key, &issuer).unwrap();
            let (c, k) = (dir.path().join(format!("s{i}.crt")), dir.path().join(format!("s{i}.key")));
            std::fs::write(&c, cert.pem()).unwrap();
            std::fs::write(&k, key.serialize_pem()).unwrap();
            let mut conf = ServerConf::default();
            conf.certificates = vec![CertSpec {
                cert_file: c,
                key_file: Some(k),
                origin: Origin { file: "v.conf".into(), line: i as u32 },
            }]
            .into();
            conf
        })
        .collect();
    let mut providers = Providers::default();
    // The first builds what all share (the provider).
    let first = build_vhost(&confs[0], None, None, &mut providers).unwrap().0;
    let mut kept = Vec::with_capacity(N);
    let region = Region::new(HEAP);
    for conf in &confs[1..] {
        kept.push(Arc::new(build_vhost(conf, None, None, &mut providers).unwrap().0));
    }
    let c = region.change();
    let bytes = (c.bytes_allocated as isize - c.bytes_deallocated as isize) / (N as isize - 1);
    let allocs = (c.allocations as isize - c.deallocations as isize) / (N as isize - 1);
    println!("per vhost: {bytes} bytes in {allocs} allocations held");
    // Its certificate (about 400 bytes here) and key (about 140) with their records, the
    // resolver and the vhost's record: no rustls config of its own until a handshake needs one.
    assert!(bytes < 1500, "{bytes} bytes per vhost");
    drop((first, kept));
}
