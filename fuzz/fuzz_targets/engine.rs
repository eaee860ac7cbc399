//! The protocol engine: arbitrary reads (chunks may repeat, so messages of
//! megabytes), arbitrary decisions and configs; see `wasmtp_fuzz::engine`.
//!
//! Run with `cargo +nightly fuzz run engine` from this directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wasmtp_fuzz::engine(data));
