//! Compiled components, cached on disk and in memory.
//!
//! Compiling a component takes 50 ms (Rust) to seconds (Python, JS), so the
//! host compiles each distinct wasm once: the cache key is the sha256 of the
//! wasm bytes plus a digest of the engine's compatibility hash (wasmtime
//! version, target and compiler settings). A restart or a reload of an
//! unchanged file maps the cached artefact (`Component::deserialize_file`);
//! the same component used twice in a chain is compiled once.

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
    /// A cache in `dir` (created if missing; memory-only if that fails).
    pub fn new(engine: &Engine, dir: &Path) -> Self {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_digest = hex::encode(&h.0.finalize()[..8]);
        let dir = match std::fs::create_dir_all(dir) {
            Ok(()) => Some(dir.to_path_buf()),
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

    /// The compiled component for `wasm` (blocking: run it off the async threads).
    pub fn component(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: Digest32,
    ) -> anyhow::Result<Component> {
        if let Some(c) = self
            .loaded
            .lock()
            .ok()
            .and_then(|m| m.get(&digest).cloned())
        {
            return Ok(c);
        }
        let Some(dir) = &self.dir else {
            let c = Component::new(engine, wasm).map_err(|e| anyhow::anyhow!("{e}"))?;
            self.remember(digest, &c);
            return Ok(c);
        };
        let file = dir.join(format!(
            "{}-{}.cwasm",
            hex::encode(digest),
            self.engine_digest
        ));
        if file.exists() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash (it is in the name),
            // atomically (temp file + rename), into the gateway's own cache
            // directory.
            match unsafe { Component::deserialize_file(engine, &file) } {
                Ok(c) => {
                    self.remember(digest, &c);
                    return Ok(c);
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), "recompiling, cached artefact unusable: {e}")
                }
            }
        }
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
        std::fs::write(&tmp, &compiled)
            .and_then(|()| std::fs::rename(&tmp, &file))
            .with_context(|| format!("cannot write {}", file.display()))?;
        // SAFETY: as above; we just wrote it.
        let c = unsafe { Component::deserialize_file(engine, &file) }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.remember(digest, &c);
        Ok(c)
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}
