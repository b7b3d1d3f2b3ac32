//! mod_reqtimeout's `RequestReadTimeout` lines, as far as they concern the TLS handshake.

/// Whether a `RequestReadTimeout` line sets mod_reqtimeout's handshake stage: `Some(true)` for
/// `handshake=N` with N > 0, `Some(false)` for `handshake=0`, `None` when the line leaves it alone.
pub fn reqtimeout_handshake(args: &str) -> Option<bool> {
    args.split_whitespace().find_map(|word| {
        let (key, value) = word.split_once('=')?;
        if !key.eq_ignore_ascii_case("handshake") {
            return None;
        }
        let first = value.split([',', '-']).next()?;
        Some(first.trim_matches('"').parse::<u32>().is_ok_and(|n| n > 0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reqtimeout_handshake_stage() {
        assert_eq!(reqtimeout_handshake("handshake=5 header=20-40,MinRate=500"), Some(true));
        assert_eq!(reqtimeout_handshake("Handshake=5-10,minrate=500"), Some(true));
        assert_eq!(reqtimeout_handshake("handshake=0"), Some(false));
        assert_eq!(reqtimeout_handshake("header=20-40,MinRate=500 body=20,MinRate=500"), None);
    }
}
