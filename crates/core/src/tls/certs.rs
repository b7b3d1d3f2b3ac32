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

fn cannot_read(path: &Path, what: &str, e: std::io::Error) -> ConfError {
    unreadable(format!(
        "cannot read the {what} file {}: {e}. Check the path (relative paths start at ServerRoot) \
         and that the user starting httpd may read it",
        path.display()
    ))
}

fn empty(path: &Path, what: &str) -> ConfError {
    unreadable(format!("the {what} file {} is empty: it must hold PEM data", path.display()))
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, ConfError> {
    let data = std::fs::read(path).map_err(|e| cannot_read(path, what, e))?;
    if data.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(empty(path, what));
    }
    Ok(data)
}

/// The file opens and reads (a directory does not), and is not empty, with the messages
/// [`read_file`] gives, without reading more than a byte of it (a key stays on disk).
fn check_readable(path: &Path, what: &str) -> Result<(), ConfError> {
    use std::io::Read;
    let mut first = [0u8; 1];
    match std::fs::File::open(path).and_then(|mut f| f.read(&mut first)) {
        Ok(0) => Err(empty(path, what)),
        Ok(_) => Ok(()),
        Err(e) => Err(cannot_read(path, what, e)),
    }
}

/// The files a `TLSCertificate` names are there and readable. For a vhost TLS does not serve,
/// whose files are otherwise never read: mod_ssl and the C module check the files a directive
/// names wherever it is written, so a wrong path fails start-up there too.
pub fn check_present(spec: &CertSpec) -> Result<(), ConfError> {
    check_readable(&spec.cert_file, "certificate")?;
    if let Some(key) = &spec.key_file {
        check_readable(key, "key")?;
    }
    Ok(())
}

/// Reads the PEM certificate chain (end-entity first) and checks every certificate parses as X.509.
pub fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfError> {
    load_chain_seeing_leaf(path, |_| ()).map(|(chain, ())| chain)
}

/// `load_chain`, giving the end-entity certificate, as its check parses it, to `see_leaf`.
fn load_chain_seeing_leaf<R>(
    path: &Path,
    see_leaf: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> R,
) -> Result<(Vec<CertificateDer<'static>>, R), ConfError> {
    let data = read_file(path, "certificate")?;
    let mut chain = Vec::new();
    let mut see_leaf = Some(see_leaf);
    let mut seen = None;
    for item in CertificateDer::pem_slice_iter(&data) {
        let cert =
            item.map_err(|e| key_material(format!("the certificate file {} is not valid PEM ({e})", path.display())))?;
        match x509_parser::parse_x509_certificate(&cert) {
            Ok((_, parsed)) => {
                if let Some(see) = see_leaf.take() {
                    seen = Some(see(&parsed));
                }
            }
            Err(e) => {
                return Err(key_material(format!(
                    "certificate #{} in {} does not parse as X.509 ({e}): replace it with a valid PEM certificate",
                    chain.len() + 1,
                    path.display()
                )));
            }
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
    let seen = seen.expect("the chain has a first certificate");
    Ok((chain, seen))
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
/// them unparsed. Start-up has checked it against its certificate: an EC key that states its
/// public key by comparing that (see `ec_key_matches`), any other by parsing it once.
struct KeyOnFirstUse {
    der: PrivateKeyDer<'static>,
    algorithm: rustls::SignatureAlgorithm,
    provider: &'static dyn rustls::crypto::KeyProvider,
    /// None if it no longer parses (it did at start-up): no scheme is offered, the handshake fails.
    parsed: std::sync::OnceLock<Option<Arc<dyn rustls::sign::SigningKey>>>,
    /// Set at start-up when vhost configurations of different settings name these files (a
    /// wildcard certificate, say): a process then makes one copy for all of them (see
    /// [`CopiesInProcess`]).
    named_by_several: std::sync::atomic::AtomicBool,
}

impl KeyOnFirstUse {
    fn parsed(&self) -> Option<&Arc<dyn rustls::sign::SigningKey>> {
        self.parsed.get_or_init(|| self.parse().ok()).as_ref()
    }

    fn parse(&self) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        self.provider.load_private_key(self.der.clone_key())
    }
}

/// A certificate and key as start-up loaded them (held by the vhosts that name their files),
/// able to make a copy of their own for a process that presents them.
#[derive(Clone, Debug)]
pub struct LoadedKey {
    pub certified: Arc<CertifiedKey>,
    /// The key as start-up holds it, unparsed (the same object as `certified`'s key).
    unparsed: Arc<KeyOnFirstUse>,
}

impl LoadedKey {
    /// `chain` with `der`, a key of `algorithm` that start-up has checked against it, held
    /// unparsed.
    fn lazy(
        chain: Vec<CertificateDer<'static>>,
        der: PrivateKeyDer<'static>,
        algorithm: rustls::SignatureAlgorithm,
        provider: &'static dyn rustls::crypto::KeyProvider,
    ) -> LoadedKey {
        let key = Arc::new(KeyOnFirstUse {
            der,
            algorithm,
            provider,
            parsed: std::sync::OnceLock::new(),
            named_by_several: Default::default(),
        });
        let certified = Arc::new(CertifiedKey::new(chain, key.clone()));
        LoadedKey { certified, unparsed: key }
    }

    /// Start-up found another vhost configuration naming these files: each process then makes
    /// one copy for all of them.
    pub(crate) fn named_again(&self) {
        self.unparsed.named_by_several.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The certified key for this process to present: a copy with the key parsed here, so
    /// that presenting it (a reference count per handshake) and parsing its key write to memory
    /// of this process only, never to a page start-up filled, which httpd's children share with
    /// the parent until one of them writes there. The copy borrows the chain's bytes, which are
    /// only read, from what start-up loaded: it cannot outlive it. A key that several vhost
    /// configurations name is copied and parsed once in the process, through `copies`.
    ///
    /// A key that does not parse (its file states the certificate's public key, which start-up
    /// checked, but the key is not that key's) is presented as start-up held it, and signs
    /// nothing: its handshakes fail. What to tell the administrator comes with it.
    pub fn for_this_process(&'static self, copies: &CopiesInProcess) -> CopyForProcess {
        if !self.unparsed.named_by_several.load(std::sync::atomic::Ordering::Relaxed) {
            return self.copy();
        }
        let key = Arc::as_ptr(&self.unparsed) as usize;
        if let Some(copy) = copies.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return copy.clone();
        }
        // Parsed outside the lock, which other certificates' first handshakes need too; two
        // threads that meet here parse twice, and the first copy stored is the one kept.
        let copy = self.copy();
        copies.0.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert(copy).clone()
    }

    fn copy(&'static self) -> CopyForProcess {
        match self.unparsed.parse() {
            Ok(key) => {
                let cert = self.certified.cert.iter().map(|c| CertificateDer::from(&c[..])).collect();
                (Arc::new(CertifiedKey { cert, key, ocsp: self.certified.ocsp.clone() }), None)
            }
            Err(e) => {
                let subject =
                    self.certified.cert.first().and_then(|c| {
                        x509_parser::parse_x509_certificate(c).ok().map(|(_, c)| c.subject().to_string())
                    });
                let problem = format!(
                    "the private key of the certificate for '{}' cannot be used ({e}): its file states the \
                     certificate's public key, but the key is another one. Handshakes needing it fail: put \
                     the right key file in place and restart httpd",
                    subject.unwrap_or_default()
                );
                (self.certified.clone(), Some(problem))
            }
        }
    }
}

/// The copies one process made of the certificates that several vhost configurations present
/// ([`LoadedKey::for_this_process`]), by the address of the key start-up loaded: both belong to
/// one configuration generation, and while it serves, that address is the key's alone (when the
/// generation's pool is cleaned up, start-up's keys may go first; the addresses are then never
/// looked up again). Vhosts with equal settings share a configuration, and so a copy, without it.
#[derive(Default)]
pub struct CopiesInProcess(std::sync::Mutex<std::collections::HashMap<usize, CopyForProcess>>);

/// A process's copy of a certificate and its key, and what the administrator must hear of it.
pub type CopyForProcess = (Arc<CertifiedKey>, Option<String>);

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

/// The elliptic curves whose keys can be checked against their certificate without being
/// parsed: the curve's OID (its DER content bytes) and the length of a private scalar on it.
const EC_CURVES: [(&[u8], usize); 3] = [
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07], 32), // P-256
    (&[0x2b, 0x81, 0x04, 0x00, 0x22], 48),                   // P-384
    (&[0x2b, 0x81, 0x04, 0x00, 0x23], 66),                   // P-521
];

/// id-ecPublicKey, the algorithm of EC keys in certificates and in PKCS#8.
const EC_PUBLIC_KEY_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// An EC key as its file states it: the curve, the private scalar's length, and the public key
/// stored beside it. Reading these costs no cryptography.
#[derive(Debug, PartialEq)]
struct StoredEcKey<'a> {
    curve: &'a [u8],
    scalar_len: usize,
    public_key: &'a [u8],
}

/// The parts of an EC private key (PKCS#8 or SEC1 `EC PRIVATE KEY`) that its file states, or
/// None when it is not an EC key or leaves its curve or public key out (both optional in SEC1).
fn stored_ec_key<'a>(key: &'a PrivateKeyDer<'_>) -> Option<StoredEcKey<'a>> {
    let (sec1, outer_curve) = match key {
        PrivateKeyDer::Pkcs8(der) => {
            let info = pkcs8::PrivateKeyInfo::try_from(der.secret_pkcs8_der()).ok()?;
            if info.algorithm.oid.as_bytes() != EC_PUBLIC_KEY_OID {
                return None;
            }
            (info.private_key, info.algorithm.parameters.map(|p| p.value()))
        }
        PrivateKeyDer::Sec1(der) => (der.secret_sec1_der(), None),
        _ => return None,
    };
    // ECPrivateKey ::= SEQUENCE { version INTEGER (1), privateKey OCTET STRING,
    //                             [0] parameters OPTIONAL, [1] publicKey BIT STRING OPTIONAL }
    use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};
    let (_, sequence) = Any::from_der(sec1).ok()?;
    if sequence.tag() != Tag::Sequence {
        return None;
    }
    let (rest, version) = Any::from_der(sequence.data).ok()?;
    let (mut rest, scalar) = Any::from_der(rest).ok()?;
    if version.tag() != Tag::Integer || scalar.tag() != Tag::OctetString {
        return None;
    }
    let (mut curve, mut public_key) = (outer_curve, None);
    while !rest.is_empty() {
        let (next, field) = Any::from_der(rest).ok()?;
        rest = next;
        if field.class() != Class::ContextSpecific {
            return None;
        }
        let (_, inner) = Any::from_der(field.data).ok()?;
        match (field.tag().0, inner.tag()) {
            (0, Tag::Oid) => curve = curve.or(Some(inner.data)),
            // A BIT STRING's first byte counts the unused bits of its last: a point has none.
            (1, Tag::BitString) => {
                public_key = inner.data.split_first().filter(|(unused, _)| **unused == 0).map(|(_, p)| p)
            }
            _ => {}
        }
    }
    Some(StoredEcKey { curve: curve?, scalar_len: scalar.data.len(), public_key: public_key? })
}

/// The public key of a certificate, as `ec_key_matches` compares it.
struct CertificateKey {
    is_ec: bool,
    /// The curve's OID (DER content bytes), for an EC key.
    curve: Option<Vec<u8>>,
    public_key: Vec<u8>,
}

impl CertificateKey {
    fn of(cert: &x509_parser::certificate::X509Certificate<'_>) -> Self {
        let spki = cert.public_key();
        let is_ec = spki.algorithm.algorithm.as_bytes() == EC_PUBLIC_KEY_OID;
        CertificateKey {
            is_ec,
            curve: spki.algorithm.parameters.as_ref().filter(|_| is_ec).map(|p| p.data.to_vec()),
            public_key: if is_ec { spki.subject_public_key.data.to_vec() } else { Vec::new() },
        }
    }
}

/// Whether an EC key belongs to the certificate whose key is `cert`, decided from what the key
/// file states (its curve and stored public key) as mod_ssl decides it; None when the file does
/// not state enough, and the key must be parsed to tell.
///
/// Parsing an EC key recomputes its public key from the private scalar (a point multiplication,
/// a fifth of start-up with thousands of vhosts); here it is parsed where it first signs
/// instead (`KeyOnFirstUse`), in the children. A file whose stored public key is right but
/// whose scalar is not (tampered with, not mistaken) is found there: its vhost's handshakes fail.
fn ec_key_matches(key: &PrivateKeyDer<'_>, cert: &CertificateKey) -> Option<bool> {
    if !cert.is_ec {
        return None;
    }
    let stored = stored_ec_key(key)?;
    let &(_, scalar_len) = EC_CURVES.iter().find(|(oid, _)| *oid == stored.curve)?;
    Some(
        cert.curve.as_deref() == Some(stored.curve)
            && stored.scalar_len == scalar_len
            && stored.public_key == cert.public_key.as_slice(),
    )
}

/// Loads one `TLSCertificate` and checks that key and certificate belong together.
pub fn load_certified_key(
    spec: &CertSpec,
    provider: &CryptoProvider,
    ask: Option<PassphraseSource<'_>>,
) -> Result<Arc<CertifiedKey>, ConfError> {
    load_key_pair(spec, provider, ask).map(|loaded| loaded.certified)
}

/// `load_certified_key`, with what a process needs to present the key with its own copy.
pub fn load_key_pair(
    spec: &CertSpec,
    provider: &CryptoProvider,
    ask: Option<PassphraseSource<'_>>,
) -> Result<LoadedKey, ConfError> {
    let (chain, cert_key) = load_chain_seeing_leaf(&spec.cert_file, CertificateKey::of)?;
    let key_path = spec.key_file.as_deref().unwrap_or(&spec.cert_file);
    let key = load_key(key_path, ask)?;
    let mismatch = || {
        key_material(format!(
            "the private key in {} does not belong to the certificate in {}: give the key that was used \
             to create this certificate",
            key_path.display(),
            spec.cert_file.display()
        ))
    };
    match ec_key_matches(&key, &cert_key) {
        Some(true) => {
            return Ok(LoadedKey::lazy(chain, key, rustls::SignatureAlgorithm::ECDSA, provider.key_provider));
        }
        Some(false) => return Err(mismatch()),
        None => {}
    }
    // The loader of the certificate's key type first: the generic one tries RSA before ECDSA, a
    // wasted parse for every EC key (with thousands of vhosts, a tenth of start-up). Whatever it
    // refuses goes through the generic one, for the usual messages.
    let signing_key = match cert_key.is_ec {
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
        Ok(ck) => Ok(LoadedKey::lazy(ck.cert, key, ck.key.algorithm(), provider.key_provider)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(mismatch()),
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

    /// A self-signed certificate for a.test, and its certificate and key files in `dir`.
    fn self_signed_files(dir: &Path) -> (rcgen::CertifiedKey<rcgen::KeyPair>, std::path::PathBuf, std::path::PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let cert = write(dir, "c.pem", ck.cert.pem().as_bytes());
        let key = write(dir, "k.pem", ck.signing_key.serialize_pem().as_bytes());
        (ck, cert, key)
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
        let (ck, cert, key) = self_signed_files(dir.path());
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
        let (_, cert, key) = self_signed_files(dir.path());
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

    fn openssl(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("openssl").current_dir(dir).args(args).status().unwrap();
        assert!(ok.success(), "openssl {args:?}");
    }

    fn read_key(path: &Path) -> PrivateKeyDer<'static> {
        load_key(path, None).unwrap()
    }

    /// An EC key that states its curve and public key is checked against its certificate by
    /// comparing them, in every form OpenSSL and rcgen write it; one that leaves its public key
    /// out is parsed to tell, as before.
    #[test]
    fn an_ec_key_is_checked_against_its_certificate_from_what_its_file_states() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let curve_of = |name: &str| match name {
            "P-256" => EC_CURVES[0],
            _ => EC_CURVES[1],
        };
        for curve in ["P-256", "P-384"] {
            openssl(
                d,
                &["genpkey", "-algorithm", "EC", "-pkeyopt", &format!("ec_paramgen_curve:{curve}"), "-out", "p8.key"],
            );
            openssl(d, &["ec", "-in", "p8.key", "-out", "sec1.key"]);
            openssl(d, &["ec", "-in", "p8.key", "-no_public", "-out", "nopub.key"]);
            openssl(d, &["req", "-x509", "-key", "p8.key", "-subj", "/CN=a.test", "-days", "2", "-out", "c.pem"]);
            let cert = d.join("c.pem");
            for file in ["p8.key", "sec1.key"] {
                let key = read_key(&d.join(file));
                let stored = stored_ec_key(&key).unwrap_or_else(|| panic!("{curve} {file} states its parts"));
                assert_eq!((stored.curve, stored.scalar_len), curve_of(curve), "{curve} {file}");
                let loaded = load_certified_key(&spec(&cert, Some(&d.join(file))), &provider(), None).unwrap();
                let scheme = match curve {
                    "P-256" => rustls::SignatureScheme::ECDSA_NISTP256_SHA256,
                    _ => rustls::SignatureScheme::ECDSA_NISTP384_SHA384,
                };
                assert!(loaded.key.choose_scheme(&[scheme]).is_some(), "{curve} {file} signs");
            }
            assert_eq!(stored_ec_key(&read_key(&d.join("nopub.key"))), None, "{curve}: no public key stated");
            load_certified_key(&spec(&cert, Some(&d.join("nopub.key"))), &provider(), None)
                .expect("parsed to tell, and it belongs");
            std::fs::rename(d.join("c.pem"), d.join(format!("{curve}.pem"))).unwrap();
            std::fs::rename(d.join("p8.key"), d.join(format!("{curve}.key"))).unwrap();
            std::fs::rename(d.join("nopub.key"), d.join(format!("{curve}-nopub.key"))).unwrap();
        }
        let rcgen_key = rcgen::KeyPair::generate().unwrap();
        let rcgen_der = PrivateKeyDer::Pkcs8(rcgen_key.serialize_der().into());
        let stored = stored_ec_key(&rcgen_der).expect("rcgen states them");
        assert_eq!(stored.public_key, rcgen_key.public_key_raw());

        // Another curve's key, another key on the same curve (with and without its public key).
        for (cert, key) in [("P-256.pem", "P-384.key"), ("P-384.pem", "P-256.key"), ("P-384.pem", "P-256-nopub.key")] {
            let e = load_certified_key(&spec(&d.join(cert), Some(&d.join(key))), &provider(), None).unwrap_err();
            assert!(e.message.contains("does not belong to the certificate"), "{cert} {key}: {e}");
        }
        openssl(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.key"]);
        let e =
            load_certified_key(&spec(&d.join("P-256.pem"), Some(&d.join("other.key"))), &provider(), None).unwrap_err();
        assert!(e.message.contains("does not belong to the certificate"), "{e}");
        assert_eq!(e.kind, ErrorKind::KeyMaterial);
    }

    /// A key file whose stated public key is its certificate's but whose private scalar is not
    /// (which only tampering makes) passes start-up, as with mod_ssl, and then signs nothing:
    /// its vhost's handshakes fail instead of sending a signature that cannot verify.
    #[test]
    fn a_key_whose_scalar_is_not_its_stated_public_key_never_signs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = rcgen::KeyPair::generate().unwrap();
        let b = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".into()]).unwrap().self_signed(&a).unwrap();
        let mut tampered = b.serialize_der();
        let at = tampered.windows(65).position(|w| w == b.public_key_raw()).expect("b's public key in its file");
        tampered[at..at + 65].copy_from_slice(a.public_key_raw());
        let key_pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &tampered)
        );
        let key_file = write(d, "k.pem", key_pem.as_bytes());
        let cert_file = write(d, "c.pem", cert.pem().as_bytes());
        let loaded = load_certified_key(&spec(&cert_file, Some(&key_file)), &provider(), None).unwrap();
        assert!(loaded.key.choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256]).is_none());
        // A process that presents it says why its handshakes fail.
        let pair: &'static LoadedKey =
            Box::leak(Box::new(load_key_pair(&spec(&cert_file, Some(&key_file)), &provider(), None).unwrap()));
        let (presented, problem) = pair.for_this_process(&CopiesInProcess::default());
        assert!(presented.key.choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256]).is_none());
        let problem = problem.expect("a problem to log");
        assert!(problem.contains("cannot be used") && problem.contains("restart httpd"), "{problem}");
    }

    /// A process's copy signs with a key parsed for it; start-up's stays unparsed.
    #[test]
    fn a_copy_for_this_process_parses_its_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let (_, cert, key) = self_signed_files(dir.path());
        let loaded: &'static LoadedKey =
            Box::leak(Box::new(load_key_pair(&spec(&cert, Some(&key)), &provider(), None).unwrap()));
        let (copy, problem) = loaded.for_this_process(&CopiesInProcess::default());
        assert_eq!(problem, None);
        assert_eq!(copy.cert[0].as_ptr(), loaded.certified.cert[0].as_ptr(), "the chain is borrowed");
        assert_eq!(copy.cert, loaded.certified.cert);
        assert!(!format!("{:?}", copy.key).starts_with("KeyOnFirstUse"), "parsed: {:?}", copy.key);
        assert!(copy.key.choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256]).is_some());
        assert!(loaded.unparsed.parsed.get().is_none(), "start-up's key is not parsed");
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
