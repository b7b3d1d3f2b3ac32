//! Loading `TLSCertificate` files into rustls keys, with errors an administrator can act on.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use zeroize::Zeroizing;

use crate::conf::CertSpec;
use crate::conf::error::{ConfError, ErrorKind};

fn unreadable(message: String) -> ConfError {
    ConfError::new(ErrorKind::Unreadable, message)
}

fn key_material(message: String) -> ConfError {
    ConfError::new(ErrorKind::KeyMaterial, message)
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, ConfError> {
    let data = std::fs::read(path).map_err(|e| {
        unreadable(format!(
            "cannot read the {what} file {}: {e}. Check the path (relative paths start at ServerRoot) \
             and that the user starting httpd may read it",
            path.display()
        ))
    })?;
    if data.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(unreadable(format!("the {what} file {} is empty: it must hold PEM data", path.display())));
    }
    Ok(data)
}

/// Reads the PEM certificate chain (end-entity first) and checks every certificate parses as X.509.
pub fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfError> {
    let data = read_file(path, "certificate")?;
    let mut chain = Vec::new();
    for item in CertificateDer::pem_slice_iter(&data) {
        let cert =
            item.map_err(|e| key_material(format!("the certificate file {} is not valid PEM ({e})", path.display())))?;
        if let Err(e) = x509_parser::parse_x509_certificate(&cert) {
            return Err(key_material(format!(
                "certificate #{} in {} does not parse as X.509 ({e}): replace it with a valid PEM certificate",
                chain.len() + 1,
                path.display()
            )));
        }
        // The PEM decoder's buffer has room to spare (its size follows the base64 text): each
        // certificate is held for the whole generation, so keep exactly its bytes.
        chain.push(CertificateDer::from(cert.to_vec()));
    }
    if chain.is_empty() {
        return Err(key_material(format!(
            "{} holds no certificate: it needs at least one '-----BEGIN CERTIFICATE-----' block",
            path.display()
        )));
    }
    // Usually one or two, held for the whole generation: no spare room.
    chain.shrink_to_fit();
    Ok(chain)
}

fn holds(data: &[u8], marker: &[u8]) -> bool {
    data.windows(marker.len()).any(|w| w == marker)
}

/// Whether a file name is one of OpenSSL's hash links (`c_rehash`, `openssl rehash`): eight hex
/// digits, a dot, and a number (`5d30f3c5.0`), or for CRLs `r` and a number (`5d30f3c5.r0`).
fn is_hash_name(name: &str, crl: bool) -> bool {
    let Some((hash, n)) = name.split_once('.') else { return false };
    let n = if crl { n.strip_prefix('r') } else { Some(n) };
    hash.len() == 8
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
        && n.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The files of a directory of certificates (`crl`: of CRLs) as OpenSSL's hashed directories
/// and bundles of files have them: `.pem` and `.crt` (`.pem` and `.crl`) files and hash links,
/// each file once however many names lead to it (by device and inode: a hash link and its
/// target are one file), in name order.
fn dir_files(dir: &Path, crl: bool) -> Result<Vec<std::path::PathBuf>, ConfError> {
    use std::os::unix::fs::MetadataExt;
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| unreadable(format!("cannot read the directory {}: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let ext = p.extension().map(|x| x.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
            is_hash_name(&name, crl) || ext == "pem" || ext == if crl { "crl" } else { "crt" }
        })
        .collect();
    names.sort();
    let mut seen = Vec::new();
    let mut files = Vec::new();
    for p in names {
        // A dangling link or a subdirectory is no file of the set.
        let Ok(meta) = std::fs::metadata(&p) else { continue };
        if meta.is_file() && !seen.contains(&(meta.dev(), meta.ino())) {
            seen.push((meta.dev(), meta.ino()));
            files.push(p);
        }
    }
    Ok(files)
}

/// Reads trust anchors for verifying peers: a PEM bundle, or a directory of them (a hashed
/// directory as `SSLCACertificatePath` names one: each file once; files of the directory that
/// hold no certificate, such as CRLs beside them, are passed over).
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, ConfError> {
    let files = if path.is_dir() { dir_files(path, false)? } else { vec![path.to_path_buf()] };
    let mut roots = rustls::RootCertStore::empty();
    for file in &files {
        if path.is_dir() && !holds(&read_file(file, "certificate")?, b"BEGIN CERTIFICATE") {
            continue;
        }
        for (i, cert) in load_chain(file)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                key_material(format!("certificate #{} in {} cannot be a trust anchor ({e})", i + 1, file.display()))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(unreadable(format!(
            "the directory {} holds no certificate (in .pem or .crt files, or hash links such as 5d30f3c5.0)",
            path.display()
        )));
    }
    Ok(roots)
}

/// Reads certificate revocation lists, PEM (one or more) or DER, from a file or a directory of
/// them (a hashed directory as `SSLCARevocationPath` names one: each file once; `.pem` files
/// that hold no CRL, such as certificates beside them, are passed over).
pub fn load_crls(path: &Path) -> Result<Vec<rustls_pki_types::CertificateRevocationListDer<'static>>, ConfError> {
    if !path.is_dir() {
        return load_crl_file(path);
    }
    let mut crls = Vec::new();
    for file in dir_files(path, true)? {
        let pem_without_crl = file.extension().is_some_and(|x| x.eq_ignore_ascii_case("pem"))
            && !holds(&read_file(&file, "CRL")?, b"X509 CRL");
        if !pem_without_crl {
            crls.extend(load_crl_file(&file)?);
        }
    }
    if crls.is_empty() {
        return Err(unreadable(format!(
            "the directory {} holds no CRL (in .crl or .pem files, or hash links such as 5d30f3c5.r0)",
            path.display()
        )));
    }
    Ok(crls)
}

fn load_crl_file(path: &Path) -> Result<Vec<rustls_pki_types::CertificateRevocationListDer<'static>>, ConfError> {
    use rustls_pki_types::CertificateRevocationListDer as Crl;
    let data = read_file(path, "CRL")?;
    let crls: Vec<Crl<'static>> = if data.windows(10).any(|w| w == b"-----BEGIN") {
        Crl::pem_slice_iter(&data)
            .collect::<Result<_, _>>()
            .map_err(|e| key_material(format!("the CRL file {} is not valid PEM ({e})", path.display())))?
    } else {
        vec![Crl::from(data)]
    };
    if crls.is_empty() {
        return Err(key_material(format!(
            "{} holds no CRL: expected PEM 'X509 CRL' blocks or one DER CRL",
            path.display()
        )));
    }
    for crl in &crls {
        match x509_parser::parse_x509_crl(crl) {
            Err(e) => {
                return Err(key_material(format!(
                    "a CRL in {} does not parse ({e}): give a PEM or DER X.509 CRL",
                    path.display()
                )));
            }
            // rustls (webpki) only takes X.509 v2 CRLs, which carry a CRL number.
            Ok((_, parsed)) if parsed.version().is_none() || parsed.crl_number().is_none() => {
                return Err(key_material(format!(
                    "a CRL in {} is an X.509 v1 CRL (no CRL number): issue v2 CRLs, e.g. with a 'crlnumber' \
                     file and 'crl_extensions' in the openssl ca configuration",
                    path.display()
                )));
            }
            Ok(_) => {}
        }
    }
    Ok(crls)
}

/// Supplies the passphrase of an encrypted key file. `retry` is true when a first passphrase
/// (possibly remembered from an earlier start) did not decrypt it.
pub type PassphraseSource<'a> = &'a mut dyn FnMut(&Path, bool) -> Result<Zeroizing<String>, ConfError>;

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// Decrypts an `ENCRYPTED PRIVATE KEY` (PKCS#8, PBES2) block with passphrases from `ask`.
fn decrypt_pkcs8(path: &Path, text: &str, ask: PassphraseSource<'_>) -> Result<PrivateKeyDer<'static>, ConfError> {
    let start = text.find(ENCRYPTED_BEGIN).expect("caller checked");
    let end = text[start..]
        .find(ENCRYPTED_END)
        .map(|e| start + e + ENCRYPTED_END.len())
        .ok_or_else(|| key_material(format!("the encrypted private key in {} has no END line", path.display())))?;
    let (_, doc) = pkcs8::der::Document::from_pem(&text[start..end])
        .map_err(|e| key_material(format!("the encrypted private key in {} is not valid PEM ({e})", path.display())))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
        .map_err(|e| key_material(format!("the encrypted private key in {} does not parse ({e})", path.display())))?;
    for retry in [false, true] {
        let passphrase = ask(path, retry)?;
        if let Ok(secret) = info.decrypt(passphrase.as_bytes()) {
            return Ok(PrivateKeyDer::Pkcs8(secret.as_bytes().to_vec().into()));
        }
    }
    Err(key_material(format!(
        "the private key in {} could not be decrypted with the passphrase TLSPassPhraseDialog gave: \
         check the passphrase (or the key's encryption, PKCS#8 PBES2 is supported)",
        path.display()
    )))
}

/// Reads the private key (PKCS#8, PKCS#1 or SEC1 PEM; encrypted PKCS#8 when `ask` can supply
/// the passphrase).
pub fn load_key(path: &Path, ask: Option<PassphraseSource<'_>>) -> Result<PrivateKeyDer<'static>, ConfError> {
    let data = read_file(path, "key")?;
    let text = String::from_utf8_lossy(&data);
    if text.contains(ENCRYPTED_BEGIN) {
        return match ask {
            Some(ask) => decrypt_pkcs8(path, &text, ask),
            None => Err(key_material(format!(
                "the private key in {} is encrypted: configure 'TLSPassPhraseDialog exec:/path/to/program' \
                 to supply its passphrase, or store the key unencrypted and protect the file",
                path.display()
            ))),
        };
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(key_material(format!(
            "the private key in {} uses OpenSSL's legacy PEM encryption: convert it to encrypted PKCS#8 \
             ('openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.key -out new.key')",
            path.display()
        )));
    }
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| match e {
        pem::Error::NoItemsFound => key_material(format!(
            "{} holds no private key: expected a PEM 'PRIVATE KEY', 'RSA PRIVATE KEY' or 'EC PRIVATE KEY' block \
             (name the key file as the second argument of TLSCertificate if it is separate)",
            path.display()
        )),
        e => key_material(format!("the private key in {} is not valid PEM ({e})", path.display())),
    })
}

/// A private key kept as its DER bytes (about 140 bytes for P-256) and parsed into the crypto
/// library's form (about 1 KB for P-256, more for RSA) where it is first used to sign: in each
/// child, for the vhosts that get handshakes. A server with thousands of vhosts holds most of
/// them unparsed. Start-up has already parsed it once and checked it against its certificate.
struct KeyOnFirstUse {
    der: PrivateKeyDer<'static>,
    algorithm: rustls::SignatureAlgorithm,
    provider: &'static dyn rustls::crypto::KeyProvider,
    /// None if it no longer parses (it did at start-up): no scheme is offered, the handshake fails.
    parsed: std::sync::OnceLock<Option<Arc<dyn rustls::sign::SigningKey>>>,
}

impl KeyOnFirstUse {
    fn parsed(&self) -> Option<&Arc<dyn rustls::sign::SigningKey>> {
        self.parsed.get_or_init(|| self.provider.load_private_key(self.der.clone_key()).ok()).as_ref()
    }
}

impl std::fmt::Debug for KeyOnFirstUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key's bytes.
        f.debug_struct("KeyOnFirstUse").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl rustls::sign::SigningKey for KeyOnFirstUse {
    fn choose_scheme(&self, offered: &[rustls::SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        self.parsed()?.choose_scheme(offered)
    }

    fn public_key(&self) -> Option<rustls_pki_types::SubjectPublicKeyInfoDer<'_>> {
        self.parsed()?.public_key()
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        self.algorithm
    }
}

/// Whether a certificate's public key is an elliptic-curve one (ECDSA).
fn is_ec_certificate(der: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(der)
        .is_ok_and(|(_, c)| c.public_key().algorithm.algorithm == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY)
}

/// Loads one `TLSCertificate` and checks that key and certificate belong together.
pub fn load_certified_key(
    spec: &CertSpec,
    provider: &CryptoProvider,
    ask: Option<PassphraseSource<'_>>,
) -> Result<Arc<CertifiedKey>, ConfError> {
    let chain = load_chain(&spec.cert_file)?;
    let key_path = spec.key_file.as_deref().unwrap_or(&spec.cert_file);
    let key = load_key(key_path, ask)?;
    // The loader of the certificate's key type first: the generic one tries RSA before ECDSA, a
    // wasted parse for every EC key (with thousands of vhosts, a tenth of start-up). Whatever it
    // refuses goes through the generic one, for the usual messages.
    let signing_key = match is_ec_certificate(&chain[0]) {
        true => rustls::crypto::aws_lc_rs::sign::any_ecdsa_type(&key).ok(),
        false => None,
    };
    let checked = match signing_key {
        Some(k) => {
            let ck = CertifiedKey::new(chain, k);
            match ck.keys_match() {
                Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(ck),
                Err(e) => Err(e),
            }
        }
        None => CertifiedKey::from_der(chain, key.clone_key(), provider),
    };
    match checked {
        // Checked now (the key parses and matches the certificate); held as its DER bytes and
        // parsed again where it first signs (see `KeyOnFirstUse`).
        Ok(ck) => {
            let lazy = KeyOnFirstUse {
                der: key,
                algorithm: ck.key.algorithm(),
                provider: provider.key_provider,
                parsed: std::sync::OnceLock::new(),
            };
            Ok(Arc::new(CertifiedKey::new(ck.cert, Arc::new(lazy))))
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(key_material(format!(
            "the private key in {} does not belong to the certificate in {}: give the key that was used \
             to create this certificate",
            key_path.display(),
            spec.cert_file.display()
        ))),
        Err(e) => Err(key_material(format!(
            "the private key in {} cannot be used ({e}): supported are RSA (2048 bits or more), \
             ECDSA P-256/P-384 and Ed25519 keys",
            key_path.display()
        ))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::conf::Origin;
    use std::io::Write;

    pub(crate) fn provider() -> CryptoProvider {
        rustls::crypto::aws_lc_rs::default_provider()
    }

    fn write(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().write_all(data).unwrap();
        p
    }

    fn spec(cert: &Path, key: Option<&Path>) -> CertSpec {
        CertSpec { cert_file: cert.into(), key_file: key.map(Into::into), origin: Origin { file: "t".into(), line: 1 } }
    }

    #[test]
    fn hashed_directories_give_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["other.test".into()]).unwrap();
        write(dir.path(), "ca.pem", ca.cert.pem().as_bytes());
        write(dir.path(), "other.crt", other.cert.pem().as_bytes());
        std::os::unix::fs::symlink("ca.pem", dir.path().join("0a1b2c3d.0")).unwrap();
        std::os::unix::fs::symlink("ca.pem", dir.path().join("0a1b2c3d.1")).unwrap();
        std::os::unix::fs::symlink("gone.pem", dir.path().join("deadbeef.0")).unwrap();
        write(dir.path(), "notes.txt", b"not read");
        assert_eq!(load_roots(dir.path()).unwrap().roots.len(), 2);
        assert!(is_hash_name("5d30f3c5.r12", true) && !is_hash_name("5d30f3c5.0", true));
        assert!(!is_hash_name("5d30f3c.0", false) && !is_hash_name("5d30f3cz.0", false));
        let empty = tempfile::tempdir().unwrap();
        let e = load_roots(empty.path()).unwrap_err().to_string();
        assert!(e.contains("holds no certificate"), "{e}");
        assert!(load_crls(empty.path()).unwrap_err().to_string().contains("holds no CRL"));
    }

    #[test]
    fn cert_and_key_in_one_or_two_files() {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let cert = write(dir.path(), "c.pem", ck.cert.pem().as_bytes());
        let key = write(dir.path(), "k.pem", ck.signing_key.serialize_pem().as_bytes());
        let both =
            write(dir.path(), "both.pem", format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem()).as_bytes());
        load_certified_key(&spec(&cert, Some(&key)), &provider(), None).unwrap();
        load_certified_key(&spec(&both, None), &provider(), None).unwrap();
        let e = load_certified_key(&spec(&cert, None), &provider(), None).unwrap_err();
        assert!(e.message.contains("holds no private key"), "{e}");
    }

    /// The key is held unparsed until it first signs, and then signs as the parsed key would.
    #[test]
    fn a_key_is_parsed_where_it_first_signs() {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let cert = write(dir.path(), "c.pem", ck.cert.pem().as_bytes());
        let key = write(dir.path(), "k.pem", ck.signing_key.serialize_pem().as_bytes());
        let loaded = load_certified_key(&spec(&cert, Some(&key)), &provider(), None).unwrap();
        let debug = format!("{:?}", loaded.key);
        assert!(debug.starts_with("KeyOnFirstUse") && !debug.contains("der"), "{debug}");
        assert_eq!(loaded.key.algorithm(), rustls::SignatureAlgorithm::ECDSA);
        let signer = loaded.key.choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256]).expect("signs");
        let signature = signer.sign(b"hello").unwrap();
        let spki = loaded.key.public_key().expect("public key once parsed");
        use x509_parser::prelude::FromDer;
        let public = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).unwrap().1;
        let verified = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            public.subject_public_key.data.as_ref(),
        )
        .verify(b"hello", &signature);
        assert!(verified.is_ok(), "the signature verifies with the certificate's key");
        assert!(loaded.key.choose_scheme(&[rustls::SignatureScheme::ED25519]).is_none(), "not its scheme");
    }

    #[test]
    fn mismatched_missing_empty_and_garbage_files_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let cert = write(dir.path(), "c.pem", a.cert.pem().as_bytes());
        let other_key = write(dir.path(), "k.pem", b.signing_key.serialize_pem().as_bytes());
        let e = load_certified_key(&spec(&cert, Some(&other_key)), &provider(), None).unwrap_err();
        assert!(e.message.contains("does not belong to the certificate"), "{e}");

        let e = load_certified_key(&spec(&dir.path().join("nope.pem"), None), &provider(), None).unwrap_err();
        assert!(e.message.contains("cannot read the certificate file") && e.message.contains("nope.pem"), "{e}");
        assert_eq!(e.kind, ErrorKind::Unreadable);

        let empty = write(dir.path(), "empty.pem", b"\n");
        let e = load_certified_key(&spec(&empty, None), &provider(), None).unwrap_err();
        assert!(e.message.contains("is empty"), "{e}");

        let junk = write(dir.path(), "junk.pem", b"-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n");
        let e = load_certified_key(&spec(&junk, Some(&other_key)), &provider(), None).unwrap_err();
        assert!(e.message.contains("does not parse as X.509"), "{e}");
        assert_eq!(e.kind, ErrorKind::KeyMaterial);
    }

    #[test]
    fn encrypted_pkcs8_with_right_and_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let cert = write(dir.path(), "c.pem", ck.cert.pem().as_bytes());
        let plain = write(dir.path(), "plain.key", ck.signing_key.serialize_pem().as_bytes());
        let enc = dir.path().join("enc.key");
        let ok = std::process::Command::new("openssl")
            .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout", "pass:s3cret", "-in"])
            .arg(&plain)
            .arg("-out")
            .arg(&enc)
            .status()
            .unwrap();
        assert!(ok.success());
        let asked = std::cell::Cell::new(0);
        let mut right = |_: &Path, _: bool| {
            asked.set(asked.get() + 1);
            Ok(Zeroizing::new("s3cret".to_string()))
        };
        load_certified_key(&spec(&cert, Some(&enc)), &provider(), Some(&mut right)).unwrap();
        assert_eq!(asked.get(), 1);
        let mut wrong = |_: &Path, _: bool| Ok(Zeroizing::new("nope".to_string()));
        let e = load_certified_key(&spec(&cert, Some(&enc)), &provider(), Some(&mut wrong)).unwrap_err();
        assert!(e.message.contains("could not be decrypted") && !e.message.contains("nope"), "{e}");
        let e = load_certified_key(&spec(&cert, Some(&enc)), &provider(), None).unwrap_err();
        assert!(e.message.contains("TLSPassPhraseDialog"), "{e}");
    }
}
