//! The parser of replies read from an upstream server; see
//! `wasmtp_fuzz::upstream_reply`.
//!
//! Run with `cargo +nightly fuzz run upstream_reply` from this directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wasmtp_fuzz::upstream_reply(data));
