//! The message header parser and editor; see `wasmtp_fuzz::headers`.
//!
//! Run with `cargo +nightly fuzz run headers` from this directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wasmtp_fuzz::headers(data));
