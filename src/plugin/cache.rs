//! Compiled components, cached on disk and in memory.
//!
//! Compiling a component takes 50 ms (Rust) to seconds (Python, JS), so the
//! host compiles each distinct wasm once: the cache key is the sha256 of the
//! wasm bytes plus a digest of the engine's compatibility hash (wasmtime
//! version, target and compiler settings). A restart or a reload of an
//! unchanged file maps the cached artefact (`Component::deserialize_file`);
//! the same component used twice in a chain is compiled once.
//!
//! A cached artefact is native code the gateway maps and runs, so it is
//! trusted only when nobody else could have written it: the directory and
//! each file must be owned by the gateway's user and not writable by group
//! or others. A directory that fails the check disables the disk cache
//! (components are compiled in memory); a file that fails it is compiled
//! anew and replaced.
//!
//! Every rebuild of a plugin adds an artefact (≈ 48 MB for a JavaScript
//! one): after each load the host evicts least recently used artefacts
//! beyond `[plugin_host] cache_max_size` (see `eviction`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A sha256 digest.
pub(crate) type Digest32 = [u8; 32];

/// The compiled-component cache.
pub(crate) struct Cache {
    /// Directory of `<wasm sha256>-<engine digest>.cwasm` files (`None`: memory only).
    dir: Option<PathBuf>,
    /// Digest of the engine's compatibility hash, part of every file name.
    engine_digest: String,
    /// Components compiled or loaded by this process, by wasm digest.
    loaded: Mutex<HashMap<Digest32, Component>>,
}

/// Feeds `Hash` output into sha256, so the engine digest is stable across
/// processes (unlike `DefaultHasher`).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The sha256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> Digest32 {
    Sha256::digest(bytes).into()
}

impl Cache {
    /// A cache in `dir` (created if missing; memory-only if that fails,
    /// or if `dir` is empty).
    pub(super) fn new(engine: &Engine, dir: &Path) -> Self {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_digest = hex::encode(&h.0.finalize()[..8]);
        let made = match dir.as_os_str().is_empty() {
            true => Ok(false),
            false => std::fs::create_dir_all(dir).and_then(|()| private_dir(dir).map(|()| true)),
        };
        let dir = match made {
            Ok(false) => None,
            Ok(true) => Some(dir.to_path_buf()),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "plugin cache disabled: {e}");
                None
            }
        };
        Self {
            dir,
            engine_digest,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    fn remember(&self, digest: Digest32, c: &Component) {
        if let Ok(mut map) = self.loaded.lock() {
            map.insert(digest, c.clone());
        }
    }

    /// The cache directory, when the disk cache is on.
    pub(super) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The file name of the artefact of the wasm with sha256 `digest`.
    pub(super) fn file_name(&self, digest: &Digest32) -> String {
        format!("{}-{}.cwasm", hex::encode(digest), self.engine_digest)
    }

    /// The compiled component for `wasm` (blocking: run it off the async
    /// threads). `compiling` is called before a compilation (not when the
    /// component is already in memory or in the disk cache).
    pub(super) fn component(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: Digest32,
        compiling: impl FnOnce(),
    ) -> anyhow::Result<Component> {
        if let Some(c) = self
            .loaded
            .lock()
            .ok()
            .and_then(|m| m.get(&digest).cloned())
        {
            if let Some(dir) = &self.dir {
                super::eviction::touch(&dir.join(self.file_name(&digest)));
            }
            return Ok(c);
        }
        let Some(dir) = &self.dir else {
            compiling();
            let c = Component::new(engine, wasm).map_err(|e| anyhow::anyhow!("{e}"))?;
            self.remember(digest, &c);
            return Ok(c);
        };
        let file = dir.join(self.file_name(&digest));
        if file.exists()
            && let Err(e) = trusted(&file)
        {
            tracing::warn!(file = %file.display(), "recompiling, cached artefact not trusted: {e}");
        } else if file.exists() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash (it is in the name),
            // atomically (temp file + rename), into the gateway's own cache
            // directory; `trusted` checked that only the gateway's user
            // could have written it.
            #[allow(unsafe_code)]
            let cached = unsafe { Component::deserialize_file(engine, &file) };
            match cached {
                Ok(c) => {
                    // Its mtime is its last use, for the eviction.
                    super::eviction::touch(&file);
                    self.remember(digest, &c);
                    return Ok(c);
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), "recompiling, cached artefact unusable: {e}")
                }
            }
        }
        compiling();
        let compiled = engine
            .precompile_component(wasm)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // Unique per call, not only per process: two threads compiling the
        // same component must never write (truncate) one file that the other
        // has already renamed into place and mapped.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!(
            ".{}.{}.{}.tmp",
            hex::encode(digest),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        write_private(&tmp, &compiled)
            .and_then(|()| std::fs::rename(&tmp, &file))
            .with_context(|| format!("cannot write {}", file.display()))?;
        // SAFETY: as above; we just wrote it.
        #[allow(unsafe_code)]
        let c = unsafe { Component::deserialize_file(engine, &file) }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.remember(digest, &c);
        Ok(c)
    }
}

/// Writes a new file readable and writable by its owner only (0600).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// The effective user id of the gateway.
#[allow(unsafe_code)]
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether `meta` is owned by us and not writable by group or others.
fn private(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if meta.uid() != euid() {
        return Err(format!(
            "owned by uid {}, not the gateway's uid {}",
            meta.uid(),
            euid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Checks the cache directory; a directory we own that is writable by
/// others is tightened to 0700 first.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other("not a directory"));
    }
    if meta.uid() == euid() && meta.mode() & 0o022 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let meta = std::fs::symlink_metadata(dir)?;
    private(&meta).map_err(std::io::Error::other)
}

/// Whether a cached file may be mapped as code: a regular file (not a
/// symlink) owned by us, not writable by group or others.
fn trusted(file: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(file).map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    private(&meta)
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_private_files_are_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.cwasm");
        write_private(&f, b"x").unwrap();
        assert!(trusted(&f).is_ok());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(trusted(&f).unwrap_err().contains("writable"));
        let link = dir.path().join("b.cwasm");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(trusted(&link).is_err());
    }

    #[test]
    fn an_open_directory_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("cache");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        private_dir(&d).unwrap();
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
