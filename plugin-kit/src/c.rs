//! C plugins: bindings generated from the WIT (what `wit-bindgen c` does)
//! and a core module turned into a component (what `wasm-tools component
//! new --adapt` does), both as libraries so no CLI needs installing.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// The files [`bindings`] writes: `plugin.h`, `plugin.c` and
/// `plugin_component_type.o`.
pub const BINDING_FILES: [&str; 3] = ["plugin.h", "plugin.c", "plugin_component_type.o"];

/// Generates the C bindings of `world` of the WIT `wit` (the text of
/// `plugin.wit`) into `out`, named as for world `plugin` whatever the world
/// (so the SDK compiles against both): see [`BINDING_FILES`].
pub fn bindings(wit: &str, world: &str, out: &Path) -> Result<()> {
    use wit_bindgen_core::wit_parser::Resolve;
    let mut resolve = Resolve::default();
    let pkg = resolve
        .push_str("plugin.wit", wit)
        .context("parsing the WIT contract")?;
    let world = resolve.select_world(&[pkg], Some(world))?;
    let opts = wit_bindgen_c::Opts {
        autodrop_borrows: wit_bindgen_c::Enabled::Yes,
        rename_world: Some(crate::lang::WORLD.to_string()),
        ..Default::default()
    };
    let mut files = wit_bindgen_core::Files::default();
    opts.build().generate(&mut resolve, world, &mut files)?;
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Turns a core module built for wasi preview1 (a reactor, carrying the
/// bindings' component-type section) into a component, with wasmtime's
/// preview1 reactor adapter.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    use wasi_preview1_component_adapter_provider as adapter;
    wit_component::ComponentEncoder::default()
        .module(core)
        .context("not a core module with the bindings' component type")?
        .adapter(
            adapter::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            adapter::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
        .context("wit-component: turning the core module into a component")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_are_written_for_both_worlds() {
        for world in [crate::lang::WORLD, crate::lang::WORLD_LIFECYCLE] {
            let dir = tempfile::tempdir().unwrap();
            bindings(crate::embedded::WIT, world, dir.path()).unwrap();
            for f in BINDING_FILES {
                assert!(dir.path().join(f).is_file(), "{world}: {f}");
            }
        }
    }

    #[test]
    fn a_non_module_is_refused_with_a_reason() {
        let err = componentize(b"not wasm").unwrap_err();
        assert!(format!("{err:#}").contains("core module"), "{err:#}");
    }
}
