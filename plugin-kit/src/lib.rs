//! The plugin toolchain of wasmtp, shared by `wasmtp plugin new/build` and
//! `cargo xtask plugins`: one copy of every build recipe.
//!
//! # Layout
//! - [`lang`]: the four plugin languages and their build recipes (the
//!   command lines that turn sources into a component).
//! - [`embedded`]: the WIT contract and each language's SDK, compiled into
//!   this crate from the repository's own files (one source of truth).
//! - [`c`]: C bindings (wit-bindgen-c) and componentization of a core
//!   module (wit-component with wasmtime's preview1 reactor adapter).
//! - [`toolchain`]: finding each build program, and the exact install
//!   command when one is missing ([`MissingTool`]).
//! - [`manifest`]: `wasmtp-plugin.toml`, a plugin project's manifest.
//! - [`new`]: `wasmtp plugin new`, writing a standalone project.
//! - [`project`]: `wasmtp plugin build`, running a manifest's build.

pub mod c;
pub mod embedded;
pub mod lang;
pub mod manifest;
pub mod new;
pub mod project;
pub mod toolchain;

pub use lang::Lang;
pub use manifest::Manifest;
pub use toolchain::MissingTool;
