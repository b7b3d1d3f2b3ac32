//! Certificate fields as mod_ssl names and formats them (`SSL_SERVER_S_DN`, `SSL_SERVER_M_SERIAL`,
//! …; the same suffixes serve `SSL_CLIENT_*`). Parsed with x509-parser, formatted as OpenSSL does
//! for mod_ssl: RFC 2253 distinguished names, upper-case hex serials, `Mon DD HH:MM:SS YYYY GMT`.

use x509_parser::prelude::*;

/// The attribute suffixes mod_ssl offers for `…_S_DN_x` / `…_I_DN_x`, with their OIDs.
const DN_PARTS: &[(&str, &str)] = &[
    ("C", "2.5.4.6"),
    ("ST", "2.5.4.8"),
    ("SP", "2.5.4.8"),
    ("L", "2.5.4.7"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("CN", "2.5.4.3"),
    ("T", "2.5.4.12"),
    ("I", "2.5.4.43"),
    ("G", "2.5.4.42"),
    ("S", "2.5.4.4"),
    ("D", "2.5.4.13"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("Email", "1.2.840.113549.1.9.1"),
    ("serialNumber", "2.5.4.5"),
];

/// OpenSSL's short names in RFC 2253 output.
fn rfc2253_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.6" => "C",
        "2.5.4.8" => "ST",
        "2.5.4.7" => "L",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.3" => "CN",
        "2.5.4.12" => "title",
        "2.5.4.43" => "initials",
        "2.5.4.42" => "GN",
        "2.5.4.4" => "SN",
        "2.5.4.13" => "description",
        "2.5.4.5" => "serialNumber",
        "2.5.4.9" => "street",
        "2.5.4.17" => "postalCode",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

fn attr_value(attr: &AttributeTypeAndValue<'_>) -> String {
    match attr.as_str() {
        Ok(s) => s.to_string(),
        Err(_) => format!("#{}", hex_upper(attr.attr_value().data)),
    }
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, ch) in value.chars().enumerate() {
        let special = matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (ch == '#' || ch == ' '))
            || (i == last && ch == ' ');
        if special {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// A distinguished name in RFC 2253 form (last RDN first), as mod_ssl prints `SSL_*_S_DN`.
pub fn dn_string(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let key = rfc2253_name(&oid).map(str::to_string).unwrap_or(oid);
                    format!("{key}={}", escape_rfc2253(&attr_value(attr)))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// `…_DN_<part>` (the first such attribute) and `…_DN_<part>_<n>` (the n-th, n ≥ 1).
fn dn_part(name: &X509Name<'_>, part: &str) -> Option<String> {
    let (key, index) = match part.rsplit_once('_') {
        Some((k, n)) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => (k, n.parse::<usize>().ok()?),
        _ => (part, 0),
    };
    let oid = DN_PARTS.iter().find(|(k, _)| *k == key)?.1;
    name.iter_attributes().filter(|a| a.attr_type().to_id_string() == oid).nth(index).map(attr_value)
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// `Nov 28 07:00:00 2026 GMT`, as OpenSSL's ASN1_TIME_print.
pub fn openssl_time(unix: i64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let t = crate::tls::time::Civil::from_unix(unix);
    format!(
        "{} {:>2} {:02}:{:02}:{:02} {} GMT",
        MONTHS[(t.month - 1) as usize],
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    )
}

/// OpenSSL's long name of an algorithm, as mod_ssl reports `A_SIG` and `A_KEY` (OBJ_nid2ln);
/// x509-parser's short name, or the dotted OID, for the few this list lacks.
fn openssl_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    let name = match oid.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => "rsaEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.2.840.10045.2.1" => "id-ecPublicKey",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        _ => return sn(oid),
    };
    name.to_string()
}

fn sn(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry())
        .map(str::to_string)
        .unwrap_or_else(|_| oid.to_id_string())
}

/// The value of a certificate variable given its suffix after `SSL_SERVER_` / `SSL_CLIENT_`
/// (`S_DN`, `S_DN_CN`, `I_DN`, `M_SERIAL`, `M_VERSION`, `V_START`, `V_END`, `V_REMAIN`, `A_SIG`,
/// `A_KEY`, `SAN_DNS_0`, `SAN_Email_0`, `SAN_IPaddr_0`, `CERT`), or `None`.
pub fn cert_var(der: &[u8], suffix: &str, now_unix: i64) -> Option<String> {
    if suffix == "CERT" {
        return Some(pem(der));
    }
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    parsed_cert_var(&cert, suffix, now_unix)
}

/// [`cert_var`] on an already parsed certificate (`CERT` excluded).
fn parsed_cert_var(cert: &X509Certificate<'_>, suffix: &str, now_unix: i64) -> Option<String> {
    let value = match suffix {
        "S_DN" => dn_string(cert.subject()),
        "I_DN" => dn_string(cert.issuer()),
        "M_VERSION" => (cert.version().0 + 1).to_string(),
        "M_SERIAL" => {
            let raw = cert.raw_serial();
            // DER pads positive numbers whose top bit is set with a zero byte; OpenSSL prints the
            // magnitude.
            let raw = if raw.len() > 1 && raw[0] == 0 && raw[1] & 0x80 != 0 { &raw[1..] } else { raw };
            hex_upper(raw)
        }
        "V_START" => openssl_time(cert.validity().not_before.timestamp()),
        "V_END" => openssl_time(cert.validity().not_after.timestamp()),
        "V_REMAIN" => {
            let left = cert.validity().not_after.timestamp() - now_unix;
            (left.max(0) / 86_400).to_string()
        }
        "A_SIG" => openssl_name(&cert.signature_algorithm.algorithm),
        "A_KEY" => openssl_name(&cert.public_key().algorithm.algorithm),
        // RFC 4523's CertificateExactAssertion, as mod_ssl writes it.
        "CERT_RFC4523_CEA" => {
            format!("{{ serialNumber {}, issuer rdnSequence:\"{}\" }}", cert.serial, dn_string(cert.issuer()))
        }
        _ => {
            if let Some(part) = suffix.strip_prefix("S_DN_") {
                dn_part(cert.subject(), part)?
            } else if let Some(part) = suffix.strip_prefix("I_DN_") {
                dn_part(cert.issuer(), part)?
            } else if let Some(rest) = suffix.strip_prefix("SAN_") {
                let (kind, n) = rest.rsplit_once('_')?;
                let n: usize = n.parse().ok()?;
                san_values(cert, kind).into_iter().nth(n)?
            } else {
                return None;
            }
        }
    };
    Some(value)
}

fn san_values(cert: &X509Certificate<'_>, kind: &str) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|g| match (kind, g) {
            ("DNS", GeneralName::DNSName(d)) => Some(d.to_string()),
            ("Email", GeneralName::RFC822Name(e)) => Some(e.to_string()),
            ("IPaddr", GeneralName::IPAddress(ip)) => match ip.len() {
                4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).ok()?).to_string()),
                16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).ok()?).to_string()),
                _ => None,
            },
            // otherName forms mod_ssl knows: Microsoft's UPN and RFC 4985's SRVName.
            ("OTHER_msUPN", GeneralName::OtherName(oid, value)) if oid.to_id_string() == OID_MS_UPN => {
                other_name_string(value)
            }
            ("OTHER_dnsSRV", GeneralName::OtherName(oid, value)) if oid.to_id_string() == OID_DNS_SRV => {
                other_name_string(value)
            }
            _ => None,
        })
        .collect()
}

const OID_MS_UPN: &str = "1.3.6.1.4.1.311.20.2.3";
const OID_DNS_SRV: &str = "1.3.6.1.5.5.7.8.7";
/// The SAN kinds exported, in mod_ssl's names.
const SAN_KINDS: [&str; 5] = ["DNS", "Email", "IPaddr", "OTHER_msUPN", "OTHER_dnsSRV"];

/// The string inside an otherName's `[0] EXPLICIT` value (UTF8String, IA5String…).
fn other_name_string(value: &[u8]) -> Option<String> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, explicit) = x509_parser::der_parser::der::parse_der(value).ok()?;
    let inner = match explicit.content {
        BerObjectContent::Unknown(any) => x509_parser::der_parser::der::parse_der(any.data).ok()?.1,
        _ => return None,
    };
    inner.as_str().ok().map(str::to_string)
}

/// Every variable of a certificate that `StdEnvVars` exports, as (suffix, value).
pub fn all_cert_vars(der: &[u8], now_unix: i64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok((_, cert)) = X509Certificate::from_der(der) else { return out };
    // One parse for all of them: StdEnvVars asks for every field on every request.
    for s in ["M_VERSION", "M_SERIAL", "V_START", "V_END", "V_REMAIN", "A_SIG", "A_KEY", "S_DN", "I_DN"] {
        if let Some(v) = parsed_cert_var(&cert, s, now_unix) {
            out.push((s.to_string(), v));
        }
    }
    for (prefix, name) in [("S_DN_", cert.subject()), ("I_DN_", cert.issuer())] {
        for (part, _) in DN_PARTS.iter().filter(|(k, _)| *k != "SP") {
            let mut n = 0;
            while let Some(v) = dn_part(name, &if n == 0 { part.to_string() } else { format!("{part}_{n}") }) {
                let key = if n == 0 { format!("{prefix}{part}") } else { format!("{prefix}{part}_{n}") };
                out.push((key, v));
                n += 1;
            }
        }
    }
    for kind in SAN_KINDS {
        for (i, v) in san_values(&cert, kind).into_iter().enumerate() {
            out.push((format!("SAN_{kind}_{i}"), v));
        }
    }
    out
}

/// Whole days from `now_unix` until the certificate expires (negative once it has); None when it
/// does not parse.
pub fn days_left(der: &[u8], now_unix: i64) -> Option<i64> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some((cert.validity().not_after.timestamp() - now_unix).div_euclid(86_400))
}

/// PEM text of a DER certificate.
pub fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> (rcgen::Certificate, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["www.example.net".into(), "example.net".into()]).unwrap();
        p.subject_alt_names.push(rcgen::SanType::Rfc822Name("admin@example.net".try_into().unwrap()));
        p.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CountryName, "DE");
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "Example, Inc.");
        p.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, "Web");
        p.distinguished_name.push(rcgen::DnType::CommonName, "www.example.net");
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x8f, 0x01, 0x0a]));
        p.not_before = rcgen::date_time_ymd(2026, 1, 5);
        p.not_after = rcgen::date_time_ymd(2027, 11, 28);
        let c = p.self_signed(&key).unwrap();
        let der = c.der().to_vec();
        (c, der)
    }

    #[test]
    fn other_names_and_the_rfc4523_assertion() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names
            .push(rcgen::SanType::OtherName((vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3], "alice@corp.example".into())));
        p.subject_alt_names
            .push(rcgen::SanType::OtherName((vec![1, 3, 6, 1, 5, 5, 7, 8, 7], "_ldap.example.net".into())));
        p.subject_alt_names.push(rcgen::SanType::OtherName((vec![1, 2, 3, 4], "not exported".into())));
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, "Issuing CA");
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x8f, 0x01, 0x0a]));
        let der = p.self_signed(&key).unwrap().der().to_vec();
        let v = |s| cert_var(&der, s, 0);
        assert_eq!(v("SAN_OTHER_msUPN_0").as_deref(), Some("alice@corp.example"));
        assert_eq!(v("SAN_OTHER_dnsSRV_0").as_deref(), Some("_ldap.example.net"));
        assert_eq!(v("SAN_OTHER_msUPN_1"), None);
        assert_eq!(
            v("CERT_RFC4523_CEA").as_deref(),
            Some("{ serialNumber 9371914, issuer rdnSequence:\"CN=Issuing CA\" }")
        );
        let all = all_cert_vars(&der, 0);
        assert!(all.contains(&("SAN_OTHER_msUPN_0".into(), "alice@corp.example".into())), "{all:?}");
    }

    /// `A_SIG` and `A_KEY` say what mod_ssl says (OpenSSL's long names): checked against
    /// `openssl x509 -text` for certificates openssl makes of each key type.
    #[test]
    fn algorithm_names_as_openssl_prints_them() {
        let dir = tempfile::tempdir().unwrap();
        for newkey in [
            &["-newkey", "rsa:2048"][..],
            &["-newkey", "rsa-pss", "-pkeyopt", "rsa_keygen_bits:2048"],
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            &["-newkey", "ed25519"],
        ] {
            let (key, pem_file) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
            let out = std::process::Command::new("openssl")
                .args(["req", "-x509", "-nodes", "-subj", "/CN=t", "-days", "1", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&pem_file)
                .args(newkey)
                .output()
                .expect("openssl");
            assert!(out.status.success(), "{newkey:?}: {}", String::from_utf8_lossy(&out.stderr));
            let text = std::process::Command::new("openssl")
                .args(["x509", "-noout", "-text", "-in"])
                .arg(&pem_file)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&text.stdout).into_owned();
            let field =
                |label: &str| text.lines().find_map(|l| l.trim().strip_prefix(label)).map(|v| v.trim().to_string());
            use rustls::pki_types::pem::PemObject;
            let der = rustls::pki_types::CertificateDer::from_pem_file(&pem_file).unwrap();
            assert_eq!(cert_var(&der, "A_SIG", 0), field("Signature Algorithm:"), "{newkey:?}");
            assert_eq!(cert_var(&der, "A_KEY", 0), field("Public Key Algorithm:"), "{newkey:?}");
        }
    }

    #[test]
    fn fields_in_mod_ssl_format() {
        let (_, der) = cert();
        let v = |s: &str| cert_var(&der, s, 1_795_000_000);
        assert_eq!(v("S_DN").unwrap(), "CN=www.example.net,OU=Web,O=Example\\, Inc.,C=DE");
        assert_eq!(v("S_DN_CN").unwrap(), "www.example.net");
        assert_eq!(v("S_DN_O").unwrap(), "Example, Inc.");
        assert_eq!(v("S_DN_C").unwrap(), "DE");
        assert_eq!(v("S_DN_L"), None);
        assert_eq!(v("I_DN"), v("S_DN"), "self-signed");
        assert_eq!(v("M_SERIAL").unwrap(), "8F010A");
        assert_eq!(v("M_VERSION").unwrap(), "3");
        assert_eq!(v("V_START").unwrap(), "Jan  5 00:00:00 2026 GMT");
        assert_eq!(v("V_END").unwrap(), "Nov 28 00:00:00 2027 GMT");
        assert_eq!(v("SAN_DNS_0").unwrap(), "www.example.net");
        assert_eq!(v("SAN_DNS_1").unwrap(), "example.net");
        assert_eq!(v("SAN_DNS_2"), None);
        assert_eq!(v("SAN_Email_0").unwrap(), "admin@example.net");
        assert_eq!(v("SAN_IPaddr_0").unwrap(), "127.0.0.1");
        assert_eq!(v("A_SIG").unwrap(), "ecdsa-with-SHA256");
        assert_eq!(v("A_KEY").unwrap(), "id-ecPublicKey");
        assert!(v("CERT").unwrap().starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(v("NOPE"), None);
    }

    #[test]
    fn pem_matches_a_reference_encoder() {
        let (c, der) = cert();
        assert_eq!(pem(&der).replace("\r\n", "\n"), c.pem().replace("\r\n", "\n"));
    }

    #[test]
    fn all_vars_list_parts_once() {
        let (_, der) = cert();
        let all = all_cert_vars(&der, 0);
        let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        for k in ["S_DN", "S_DN_CN", "S_DN_OU", "I_DN_O", "M_SERIAL", "SAN_DNS_1", "SAN_Email_0", "V_REMAIN"] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        assert!(!keys.contains(&"S_DN_SP"));
    }

    #[test]
    fn openssl_time_format() {
        assert_eq!(openssl_time(0), "Jan  1 00:00:00 1970 GMT");
        assert_eq!(openssl_time(1_795_000_000), "Nov 18 11:06:40 2026 GMT");
        assert_eq!(openssl_time(951_782_400), "Feb 29 00:00:00 2000 GMT");
    }
}
