//! `SSLRequire` expressions into `Require expr` ones.
//!
//! httpd 2.4 parses both with ap_expr; SSLRequire sets `AP_EXPR_FLAG_SSL_EXPR_COMPAT`, under which
//! every comparison (`==`, `eq`, `-eq`, `<`, `lt`, `-lt`, …) compares strings "lexically by length
//! first" (util_expr_eval.c: `strcmplex`). For equality that is string equality, so `eq`/`-eq`
//! become `==` (in `Require expr` they compare integers: `"Snake Oil" eq "Other"` is true there);
//! an ordering has no exact twin and is refused. Variables are those mod_tls gives the same value
//! as mod_ssl; `SSL_CIPHER` (OpenSSL's names under mod_ssl, IANA's for TLS 1.2 under mod_tls),
//! mod_ssl's own functions (`PeerExtList`, `SSL`) and file tests are refused too. A refused
//! expression is written as `Require all denied` by the caller: closed until edited.

/// The `Require expr` text (without `Require expr`) for an SSLRequire expression, or why not.
pub fn translate(ssl: &str) -> Result<String, String> {
    let chars: Vec<char> = ssl.trim().chars().collect();
    let mut out = String::new();
    let mut i = 0;
    // After `=~`/`!~` a regular expression follows.
    let mut regex_next = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            out.push(c);
            i += 1;
            continue;
        }
        if regex_next && (c == '/' || (c == 'm' && chars.get(i + 1).is_some_and(|d| !d.is_alphanumeric()))) {
            let start = i;
            let delim = if c == 'm' {
                i += 1;
                chars[i]
            } else {
                c
            };
            i += 1;
            while i < chars.len() && chars[i] != delim {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            if i >= chars.len() {
                return Err("a regular expression is not closed".into());
            }
            i += 1;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            out.extend(&chars[start..i]);
            regex_next = false;
            continue;
        }
        regex_next = false;
        match c {
            '"' | '\'' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                if i >= chars.len() {
                    return Err("a quoted string is not closed".into());
                }
                i += 1;
                let text: String = chars[start..i].iter().collect();
                // ap_expr expands %{…} inside strings too.
                check_vars_in(&text)?;
                out.push_str(&text);
            }
            '%' if chars.get(i + 1) == Some(&'{') => {
                let end = chars[i..].iter().position(|&x| x == '}').ok_or("a %{ is not closed")? + i;
                let name: String = chars[i + 2..end].iter().collect();
                check_var(&name)?;
                out.extend(&chars[i..=end]);
                i = end + 1;
            }
            '(' | ')' | '{' | '}' | ',' | '.' => {
                out.push(c);
                i += 1;
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && chars[i].is_ascii_digit() {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            '=' | '!' | '<' | '>' | '&' | '|' => {
                let start = i;
                while i < chars.len() && matches!(chars[i], '=' | '!' | '<' | '>' | '&' | '|' | '~') {
                    i += 1;
                }
                let op: String = chars[start..i].iter().collect();
                out.push_str(operator(&op)?);
                regex_next = op == "=~" || op == "!~";
            }
            _ if c.is_alphabetic() || c == '-' || c == '_' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let is_function = chars[i..].iter().find(|x| !x.is_whitespace()) == Some(&'(');
                if is_function && !matches!(word.to_ascii_lowercase().as_str(), "not" | "and" | "or" | "in" | "-in") {
                    out.push_str(function(&word)?);
                } else {
                    out.push_str(operator(&word)?);
                }
            }
            other => return Err(format!("'{other}' is not part of the expressions translated")),
        }
    }
    if out.trim().is_empty() {
        return Err("the expression is empty".into());
    }
    Ok(out.trim().to_string())
}

/// An operator (or the words `true`, `false`) as `Require expr` needs it.
fn operator(op: &str) -> Result<&'static str, String> {
    let order = |op: &str| {
        Err(format!(
            "'{op}' compares as SSLRequire does (shorter strings first, then byte by byte), which no `Require expr` \
             operator does: write -lt/-le/-gt/-ge for numbers, with the variable's values in mind"
        ))
    };
    Ok(match op.to_ascii_lowercase().as_str() {
        "==" | "=" | "eq" | "-eq" => "==",
        "!=" | "ne" | "-ne" => "!=",
        "=~" => "=~",
        "!~" => "!~",
        "&&" | "and" => "&&",
        "||" | "or" => "||",
        "!" | "not" => "!",
        "in" | "-in" => "-in",
        "true" => "true",
        "false" => "false",
        "-n" => "-n",
        "-z" => "-z",
        "-ipmatch" => "-ipmatch",
        "-strmatch" => "-strmatch",
        "-strcmatch" => "-strcmatch",
        "-fnmatch" => "-fnmatch",
        "<" | "<=" | ">" | ">=" | "lt" | "le" | "gt" | "ge" | "-lt" | "-le" | "-gt" | "-ge" => return order(op),
        _ => return Err(format!("'{op}' is not an operator translated (file tests, mod_ssl's own words)")),
    })
}

/// Functions both modules evaluate alike.
fn function(name: &str) -> Result<&'static str, String> {
    const SAME: &[&str] =
        &["tolower", "toupper", "escape", "unescape", "base64", "unbase64", "md5", "sha1", "req", "http", "reqenv"];
    SAME.iter().find(|f| f.eq_ignore_ascii_case(name)).copied().ok_or_else(|| {
        format!("{name}() is not translated (PeerExtList and SSL are mod_ssl's own; file functions read files)")
    })
}

/// `%{NAME}` names inside a quoted string.
fn check_vars_in(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(start) = rest.find("%{") {
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("a %{ is not closed")?;
        check_var(&after[..end])?;
        rest = &after[end + 1..];
    }
    Ok(())
}

/// A variable both modules give the same value: httpd's own (resolved by ap_expr alike), or a
/// TLS variable mod_tls fills as mod_ssl does.
fn check_var(name: &str) -> Result<(), String> {
    if name.contains(':') {
        let func = name.split(':').next().unwrap_or_default();
        return function(func).map(|_| ());
    }
    let upper = name.to_ascii_uppercase();
    let Some(tls) = upper.strip_prefix("SSL_") else { return Ok(()) };
    let cert_part = |s: &str| {
        matches!(s, "S_DN" | "I_DN" | "M_SERIAL" | "M_VERSION" | "V_START" | "V_END" | "V_REMAIN" | "A_SIG" | "A_KEY")
            || s.strip_prefix("S_DN_").or_else(|| s.strip_prefix("I_DN_")).is_some_and(|p| !p.is_empty())
            || s.starts_with("SAN_")
    };
    let same = match tls {
        "PROTOCOL" | "CLIENT_VERIFY" | "TLS_SNI" | "CIPHER_USEKEYSIZE" | "CIPHER_ALGKEYSIZE" | "SESSION_RESUMED" => {
            true
        }
        t => t.strip_prefix("CLIENT_").or_else(|| t.strip_prefix("SERVER_")).is_some_and(cert_part),
    };
    if same {
        Ok(())
    } else if tls == "CIPHER" {
        Err("%{SSL_CIPHER} holds OpenSSL's suite names under mod_ssl and IANA's (TLS_ECDHE_…) for TLS 1.2 under \
             mod_tls, whose suites are all ECDHE with AES-GCM or ChaCha20: compare with the names mod_tls gives"
            .into())
    } else {
        Err(format!("%{{{name}}} is not a variable mod_tls gives the same value as mod_ssl"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_becomes_string_equality_and_the_rest_is_kept() {
        assert_eq!(
            translate(r#"%{SSL_CLIENT_S_DN_O} eq "Snake Oil, Ltd.""#).unwrap(),
            r#"%{SSL_CLIENT_S_DN_O} == "Snake Oil, Ltd.""#
        );
        assert_eq!(
            translate(r#"%{SSL_CLIENT_S_DN_OU} in {"Staff", "CA"} and not (%{SSL_CLIENT_VERIFY} ne 'SUCCESS')"#)
                .unwrap(),
            r#"%{SSL_CLIENT_S_DN_OU} -in {"Staff", "CA"} && ! (%{SSL_CLIENT_VERIFY} != 'SUCCESS')"#
        );
        assert_eq!(translate("%{SSL_CLIENT_S_DN_CN} =~ m/^a|b$/i").unwrap(), "%{SSL_CLIENT_S_DN_CN} =~ m/^a|b$/i");
        assert_eq!(
            translate(r"%{REMOTE_ADDR} !~ /^192\.0\.2\./ || %{SSL_CLIENT_M_VERSION} -eq 3").unwrap(),
            r"%{REMOTE_ADDR} !~ /^192\.0\.2\./ || %{SSL_CLIENT_M_VERSION} == 3"
        );
        assert_eq!(translate("true").unwrap(), "true");
    }

    #[test]
    fn what_differs_is_refused() {
        assert!(translate("%{SSL_CLIENT_V_REMAIN} > 30").unwrap_err().contains("shorter strings first"));
        assert!(translate("%{SSL_CLIENT_V_REMAIN} -lt 30").is_err());
        assert!(translate("%{SSL_CIPHER} !~ m/^(EXP|NULL)-/").unwrap_err().contains("IANA"));
        assert!(translate(r#""x" in PeerExtList("1.2.3")"#).is_err());
        assert!(translate("-f '/etc/passwd'").is_err());
        assert!(translate("%{SSL_SESSION_ID} == ''").is_err());
        assert!(translate(r#"%{SSL_CLIENT_S_DN_CN} == "%{SSL_CIPHER}""#).is_err());
        assert!(translate("%{SSL_CLIENT_S_DN_CN} == 'x").is_err());
        assert!(translate("").is_err());
    }
}
