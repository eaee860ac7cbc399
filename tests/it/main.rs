//! Every integration test in one crate, so the test command compiles and
//! links one binary instead of one per file (each links the whole gateway
//! and wasmtime). Each file below is what was a test binary of its own;
//! its tests are named `<file>::<test>` (`cargo nextest run -E
//! 'test(/^kv_gateway::/)'` runs one file's). The `*_support` modules and
//! `common` are the shared helpers; servers they start (Redis, spamd) are
//! started once per test process.

// Test code: a failed unwrap is a failed test. (The crate's [lints] deny
// them in the gateway itself.) Helpers outside `#[test]` functions need
// this too, as do the fuzz targets compiled in below.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;
mod delivery_support;
mod dns_support;
mod kv_support;
mod plugin_support;

mod core_cli;
mod core_clients;
mod core_dist;
mod core_haproxy;
mod core_proxy;
mod core_reload;
mod core_reload_live;
mod core_service;
mod core_smtp;
mod delivery_backscatter;
mod delivery_forward;
mod files_private;
mod fuzz_replay;
mod hardening_proto;
mod host_async;
mod host_services;
mod kv_backends;
mod kv_cluster;
mod kv_gateway;
mod lang_c;
mod lang_chain;
mod lang_greylist;
mod lang_js;
mod lang_python;
mod lang_services;
mod lang_smtp;
mod lang_timing;
mod mail_auth;
mod mem_chain;
mod mem_dkim;
mod mem_limits;
mod metrics;
mod mime_view;
mod plugin_delivery;
mod plugin_dialogs;
mod plugin_examples;
mod plugin_hooks;
mod plugin_kit;
mod plugin_logging;
mod plugin_pool;
mod plugin_sandbox;
mod plugin_services;
mod plugin_swap;
mod plugin_tcp;
mod sdk_reference;
mod spool_crash;
mod spool_queue;
