//! Per-server settings ([`ServerConf`]: the main server's and each `<VirtualHost>`'s), the
//! certificates (`TLSCertificate`) and client certificate mode (`TLSClientCertificate`) among
//! them, and how a vhost inherits from the main server.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::{ConfError, ErrorKind};
use super::{CacheSpec, CipherList, EngineAddr, Located, Origin, inherit};

/// `TLSCertificate cert_file [key_file]`, with paths already made absolute against ServerRoot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSpec {
    pub cert_file: PathBuf,
    pub key_file: Option<PathBuf>,
    pub origin: Origin,
}

impl CertSpec {
    /// A digest of the files (certificate, key) this names, where they were named aside.
    pub fn files_id(&self) -> [u8; 32] {
        use std::os::unix::ffi::OsStrExt;
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for path in std::iter::once(&self.cert_file).chain(&self.key_file) {
            // Length-prefixed: the paths cannot run into each other.
            digest.update(&(path.as_os_str().len() as u64).to_be_bytes());
            digest.update(path.as_os_str().as_bytes());
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(digest.finish().as_ref());
        id
    }
}

/// A list a server's settings hold in full for the whole generation (its `TLSCertificate`s, the
/// `TLSEngine` addresses): one allocation, shared (not copied) by the vhosts that inherit it;
/// none for a server without any.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedList<T>(Option<Arc<[T]>>);

/// A server's `TLSCertificate`s, in order: shared (not copied) by the vhosts that inherit the
/// main server's, and released once start-up has built what they name
/// ([`release`](Self::release)): the built configuration holds the certificates themselves, and
/// nothing needs their paths or where they were written after that (with thousands of vhosts,
/// a few hundred bytes each for the whole generation).
#[derive(Default)]
pub struct Certificates(std::sync::Mutex<SharedList<CertSpec>>);

impl Certificates {
    /// The list as it is (empty once released).
    pub fn specs(&self) -> SharedList<CertSpec> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The list, to change it (while the configuration is read, and in tests).
    pub fn specs_mut(&mut self) -> &mut SharedList<CertSpec> {
        self.0.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    /// One more `TLSCertificate` (while the configuration is read).
    pub fn push(&mut self, spec: CertSpec) {
        self.specs_mut().push(spec);
    }

    pub fn is_empty(&self) -> bool {
        self.specs().is_empty()
    }

    /// Drops the list: start-up has built what it names.
    pub fn release(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = SharedList::default();
    }

    /// A vhost's certificates: its own where it has any, the main server's (shared) otherwise.
    pub fn inherit(base: &Self, add: &Self) -> Self {
        SharedList::inherit(&base.specs(), &add.specs()).into()
    }
}

impl Clone for Certificates {
    fn clone(&self) -> Self {
        self.specs().into()
    }
}

impl From<SharedList<CertSpec>> for Certificates {
    fn from(list: SharedList<CertSpec>) -> Self {
        Certificates(std::sync::Mutex::new(list))
    }
}

impl From<Vec<CertSpec>> for Certificates {
    fn from(all: Vec<CertSpec>) -> Self {
        SharedList::from(all).into()
    }
}

impl PartialEq<Vec<CertSpec>> for Certificates {
    fn eq(&self, other: &Vec<CertSpec>) -> bool {
        self.specs() == *other
    }
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.specs().fmt(f)
    }
}

impl<T> Default for SharedList<T> {
    fn default() -> Self {
        SharedList(None)
    }
}

impl<T: Clone> SharedList<T> {
    /// One more entry (while the configuration is read).
    pub fn push(&mut self, item: T) {
        let mut all = self.to_vec();
        all.push(item);
        *self = all.into();
    }

    /// A vhost's list: its own where it has one, the main server's (shared) otherwise.
    pub fn inherit(base: &Self, add: &Self) -> Self {
        if add.is_empty() { base } else { add }.clone()
    }
}

impl<T> std::ops::Deref for SharedList<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl<T: Clone> std::ops::DerefMut for SharedList<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.0 {
            Some(all) => Arc::make_mut(all),
            None => &mut [],
        }
    }
}

impl<T> From<Vec<T>> for SharedList<T> {
    fn from(all: Vec<T>) -> Self {
        SharedList((!all.is_empty()).then(|| all.into()))
    }
}

impl<'a, T> IntoIterator for &'a SharedList<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: PartialEq> PartialEq<Vec<T>> for SharedList<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        **self == **other
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for SharedList<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// `TLSClientCertificate`: whether clients must, may or cannot present a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ClientAuth {
    #[default]
    None,
    Optional,
    Required,
    /// mod_ssl's `optional_no_ca`: any certificate is accepted, for the application to judge by
    /// `SSL_CLIENT_VERIFY` (SUCCESS, GENEROUS or FAILED:reason).
    OptionalNoCa,
}

impl ClientAuth {
    pub fn parse(arg: &str) -> Result<ClientAuth, ConfError> {
        match arg.to_ascii_lowercase().as_str() {
            "none" => Ok(ClientAuth::None),
            "optional" => Ok(ClientAuth::Optional),
            "required" | "require" => Ok(ClientAuth::Required),
            "optional_no_ca" => Ok(ClientAuth::OptionalNoCa),
            _ => Err(ConfError::new(
                ErrorKind::BadValue,
                format!("TLSClientCertificate '{arg}': write required, optional, optional_no_ca or none"),
            )),
        }
    }

    /// The `TLSClientCertificate` word of a mode, as [`ClientAuth::parse`] reads it back.
    pub const fn word(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
            ClientAuth::OptionalNoCa => "optional_no_ca",
        }
    }
}

impl std::fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// Per-server (main server and each `<VirtualHost>`) settings: the directive values only (what
/// start-up builds from them is kept apart, by the module).
///
/// httpd keeps two of these per vhost (its own, as written, and the merged one) for the whole
/// generation, so with thousands of vhosts their size counts: what nearly every vhost has is
/// held here, the rest in [`TlsSettings`], shared (not copied) by the vhosts that inherit all of
/// it and absent where nothing sets it. Its fields read as this struct's own (`Deref`); writing
/// one makes this server's own copy (`DerefMut`).
#[derive(Default, Clone)]
pub struct ServerConf {
    /// `TLSEngine`, global: the main server's, shared by every vhost.
    pub engines: SharedList<EngineAddr>,
    /// `TLSStrictSNI`, global; `None` = default (on).
    pub strict_sni: Option<bool>,
    pub certificates: Certificates,
    /// The certificates are the main server's, inherited by a vhost without its own.
    pub certificates_inherited: bool,
    pub(crate) settings: Option<Arc<TlsSettings>>,
}

/// The settings of a [`ServerConf`] that few vhosts set themselves.
#[derive(Default, Clone)]
pub struct TlsSettings {
    /// `TLSProtocol`: lowest wire version.
    pub protocol_floor: Option<Located<u16>>,
    pub ciphers_prefer: CipherList,
    pub ciphers_suppress: CipherList,
    /// `TLSHonorClientOrder`; `None` = default (on).
    pub honor_client_order: Option<bool>,
    /// `TLSPassPhraseDialog exec:program`, global: asked for the passphrases of encrypted keys.
    pub passphrase_program: Option<PathBuf>,
    /// `TLSClientCertificate`.
    pub client_auth: Option<Located<ClientAuth>>,
    /// `TLSClientCA`: trust anchors for client certificates.
    pub client_ca: Option<Located<PathBuf>>,
    /// `TLSClientCRL`: revocation lists checked for the whole client chain.
    pub client_crls: Vec<Located<PathBuf>>,
    /// `TLSUserName`: the variable whose value becomes the request's user.
    pub user_name_var: Option<String>,
    /// `TLSSessionCache`, global; `None` = the default shared-memory cache.
    pub session_cache_spec: Option<Located<CacheSpec>>,
    /// `TLSSessionCacheTimeout` (server config and virtual host, as mod_ssl's): how long a session may be resumed, counted from its
    /// full handshake; `None` = the default.
    pub session_lifetime_secs: Option<u64>,
}

/// What a server without settings of its own reads.
static NO_SETTINGS: std::sync::LazyLock<TlsSettings> = std::sync::LazyLock::new(TlsSettings::default);

impl std::ops::Deref for ServerConf {
    type Target = TlsSettings;

    fn deref(&self) -> &TlsSettings {
        self.settings.as_deref().unwrap_or(&NO_SETTINGS)
    }
}

impl std::ops::DerefMut for ServerConf {
    fn deref_mut(&mut self) -> &mut TlsSettings {
        Arc::make_mut(self.settings.get_or_insert_with(Default::default))
    }
}

impl ServerConf {
    /// A vhost's effective settings: its own where it has any, the main server's otherwise.
    pub fn merge(base: &ServerConf, add: &ServerConf) -> ServerConf {
        let settings = match (&base.settings, &add.settings) {
            // Nothing of its own: the main server's, shared.
            (_, None) => base.settings.clone(),
            (None, Some(_)) => add.settings.clone(),
            (Some(b), Some(a)) => Some(Arc::new(TlsSettings::merge(b, a))),
        };
        ServerConf {
            engines: SharedList::inherit(&base.engines, &add.engines),
            strict_sni: add.strict_sni.or(base.strict_sni),
            certificates: Certificates::inherit(&base.certificates, &add.certificates),
            certificates_inherited: add.certificates.is_empty() && !base.certificates.is_empty(),
            settings,
        }
    }
}

impl TlsSettings {
    /// The settings of a vhost that sets some of them (`add`) under the main server's (`base`).
    pub(crate) fn merge(base: &TlsSettings, add: &TlsSettings) -> TlsSettings {
        TlsSettings {
            protocol_floor: add.protocol_floor.clone().or_else(|| base.protocol_floor.clone()),
            ciphers_prefer: CipherList::merge(&base.ciphers_prefer, &add.ciphers_prefer),
            ciphers_suppress: CipherList::merge(&base.ciphers_suppress, &add.ciphers_suppress),
            honor_client_order: add.honor_client_order.or(base.honor_client_order),
            client_auth: add.client_auth.clone().or_else(|| base.client_auth.clone()),
            client_ca: add.client_ca.clone().or_else(|| base.client_ca.clone()),
            client_crls: inherit(&base.client_crls, &add.client_crls),
            user_name_var: add.user_name_var.clone().or_else(|| base.user_name_var.clone()),
            passphrase_program: base.passphrase_program.clone(),
            session_cache_spec: base.session_cache_spec.clone(),
            session_lifetime_secs: add.session_lifetime_secs.or(base.session_lifetime_secs),
        }
    }
}

impl ServerConf {
    /// Everything a vhost's rustls configuration is built from, as values (without where each
    /// was written): vhosts with equal keys get the same configuration, built once. A wildcard
    /// certificate named by a thousand vhosts is then read, parsed and held once.
    pub fn tls_build_key(&self) -> String {
        let specs = self.certificates.specs();
        let certs: Vec<_> = specs.iter().map(|c| (&c.cert_file, &c.key_file)).collect();
        let ids = |l: &CipherList| l.ids().iter().map(|i| i.value).collect::<Vec<u16>>();
        format!(
            "{certs:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.floor(),
            ids(&self.ciphers_prefer),
            ids(&self.ciphers_suppress),
            self.honor_client_order,
            self.client_auth(),
            self.client_ca.as_ref().map(|l| &l.value),
            self.client_crls.iter().map(|l| &l.value).collect::<Vec<_>>(),
            self.session_lifetime_secs(),
        )
    }

    /// [`tls_build_key`](Self::tls_build_key) as a SHA-256 digest: what start-up keeps per
    /// distinct configuration while it builds them all (a few hundred bytes per vhost less, held
    /// among the vhosts' own allocations until start-up ends).
    pub fn tls_build_id(&self) -> [u8; 32] {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.tls_build_key().as_bytes());
        let mut id = [0u8; 32];
        id.copy_from_slice(digest.as_ref());
        id
    }

    pub fn strict_sni(&self) -> bool {
        self.strict_sni.unwrap_or(true)
    }

    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth.as_ref().map_or(ClientAuth::None, |l| l.value)
    }

    pub fn session_lifetime_secs(&self) -> u64 {
        self.session_lifetime_secs.unwrap_or(crate::tls::sessions::DEFAULT_LIFETIME_SECS)
    }

    pub fn floor(&self) -> u16 {
        self.protocol_floor.as_ref().map_or(0x0303, |l| l.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_modes() {
        assert_eq!(ClientAuth::parse("REQUIRED"), Ok(ClientAuth::Required));
        assert_eq!(ClientAuth::parse("optional"), Ok(ClientAuth::Optional));
        assert_eq!(ClientAuth::parse("none"), Ok(ClientAuth::None));
        assert_eq!(ClientAuth::parse("optional_no_ca"), Ok(ClientAuth::OptionalNoCa));
        assert!(ClientAuth::parse("yes").unwrap_err().message.contains("required, optional, optional_no_ca or none"));
    }

    #[test]
    fn vhosts_with_the_same_values_share_a_build_key() {
        let at = |line| Origin { file: "a.conf".into(), line };
        let conf = |line, key: &str| {
            let mut c = ServerConf {
                certificates: vec![CertSpec {
                    cert_file: "/w/wild.pem".into(),
                    key_file: Some(key.into()),
                    origin: at(line),
                }]
                .into(),
                ..Default::default()
            };
            c.client_auth = Some(Located { value: ClientAuth::Required, origin: at(line) });
            c
        };
        assert_eq!(
            conf(3, "/w/wild.key").tls_build_key(),
            conf(900, "/w/wild.key").tls_build_key(),
            "where: no matter"
        );
        assert_ne!(conf(3, "/w/wild.key").tls_build_key(), conf(3, "/w/other.key").tls_build_key());
        assert_eq!(conf(3, "/w/wild.key").tls_build_id(), conf(900, "/w/wild.key").tls_build_id());
        assert_ne!(conf(3, "/w/wild.key").tls_build_id(), conf(3, "/w/other.key").tls_build_id());
        let mut later = conf(3, "/w/wild.key");
        later.session_lifetime_secs = Some(60);
        assert_ne!(later.tls_build_key(), conf(3, "/w/wild.key").tls_build_key());
        let mut optional = conf(3, "/w/wild.key");
        optional.client_auth = Some(Located { value: ClientAuth::Optional, origin: at(3) });
        assert_ne!(optional.tls_build_key(), conf(3, "/w/wild.key").tls_build_key());
    }

    /// A vhost that sets none of the less common settings shares the main server's (one copy for
    /// thousands of vhosts); one that sets some gets its own, merged, and the main server's stay.
    #[test]
    // These fields are TlsSettings', reached through DerefMut: they cannot go into the initializer.
    #[allow(clippy::field_reassign_with_default)]
    fn settings_are_shared_until_a_vhost_sets_its_own() {
        let mut main = ServerConf::default();
        main.protocol_floor = Some(Located { value: 0x0304, origin: Origin { file: "m".into(), line: 1 } });
        let plain_vhost = ServerConf::default();
        let merged = ServerConf::merge(&main, &plain_vhost);
        assert!(Arc::ptr_eq(merged.settings.as_ref().unwrap(), main.settings.as_ref().unwrap()), "shared");
        assert_eq!(merged.floor(), 0x0304);
        let mut own = ServerConf::default();
        own.client_auth = Some(Located { value: ClientAuth::Required, origin: Origin { file: "v".into(), line: 2 } });
        let merged = ServerConf::merge(&main, &own);
        assert_eq!((merged.floor(), merged.client_auth()), (0x0304, ClientAuth::Required));
        assert_eq!(main.client_auth(), ClientAuth::None, "the main server's are untouched");
        assert!(ServerConf::merge(&ServerConf::default(), &ServerConf::default()).settings.is_none(), "nothing held");
        assert_eq!(ServerConf::default().floor(), 0x0303, "defaults read through");
    }

    #[test]
    fn vhost_inherits_certificates_only_when_it_has_none() {
        let spec =
            |f: &str| CertSpec { cert_file: f.into(), key_file: None, origin: Origin { file: "x".into(), line: 1 } };
        let base = ServerConf { certificates: vec![spec("a")].into(), ..Default::default() };
        let empty = ServerConf::default();
        let own = ServerConf { certificates: vec![spec("b")].into(), ..Default::default() };
        assert_eq!(ServerConf::merge(&base, &empty).certificates, vec![spec("a")]);
        assert_eq!(ServerConf::merge(&base, &own).certificates, vec![spec("b")]);
    }
}
