//! Raw bindgen output for the installed httpd and APR headers (see build.rs). Nothing else lives here.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    unnecessary_transmutes,
    unsafe_op_in_unsafe_fn,
    clippy::all
)]
include!(concat!(env!("OUT_DIR"), "/httpd_bindings.rs"));
