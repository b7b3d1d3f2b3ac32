//! Every parser of directive values, on arbitrary text: none may panic, whatever it is given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mod_tls_core::conf::{CacheSpec, ClientAuth, EngineAddr, TlsOptions, parse_protocol_floor, reqtimeout_handshake};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = mod_tls_core::tls::ciphers::parse_list(text);
    let _ = mod_tls_core::tls::ciphers::lookup(text);
    let _ = parse_protocol_floor("TLSProtocol", text);
    let _ = CacheSpec::parse(text);
    let _ = ClientAuth::parse(text);
    let _ = reqtimeout_handshake(text);
    // Host names would be resolved: only literal forms go to the address parser.
    if !text.bytes().any(|b| b.is_ascii_alphabetic()) {
        let _ = EngineAddr::parse_all(text);
    }
    let _ = TlsOptions::default().apply_line(text);
    let _ = mod_tls_core::conf::host_matches(text, "www.example.net", &[], &[text.to_string()]);
});
