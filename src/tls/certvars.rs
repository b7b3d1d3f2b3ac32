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
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {:>2} {:02}:{:02}:{:02} {} GMT",
        MONTHS[(month - 1) as usize],
        day,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        year
    )
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
        "A_SIG" => sn(&cert.signature_algorithm.algorithm),
        "A_KEY" => sn(&cert.public_key().algorithm.algorithm),
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
            _ => None,
        })
        .collect()
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
    for kind in ["DNS", "Email", "IPaddr"] {
        for (i, v) in san_values(&cert, kind).into_iter().enumerate() {
            out.push((format!("SAN_{kind}_{i}"), v));
        }
    }
    out
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
