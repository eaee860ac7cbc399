//! `wasmtp plugin inspect`: what a component is to this host, learnt the
//! way the loader learns it (compile through the cache, link, `init` with a
//! config): the `wasmtp:plugin` version it targets, its imports with the
//! capability each needs, its exports, the hooks `init` asks for, its size
//! and compile time.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use wasmtime::component::types::ComponentItem;

use super::config::{PluginConfig, PluginHostConfig};
use super::services::HostServices;
use super::swap::build_loader;

/// What inspecting a plugin found.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Size of the `.wasm` file, in octets.
    pub size: u64,
    /// Versions of the `wasmtp:plugin` package named by its imports and
    /// exports (one, for a well-built plugin).
    pub versions: Vec<String>,
    /// Imported interfaces, with the grant each needs (if any).
    pub imports: Vec<(String, Option<&'static str>)>,
    /// Exported interfaces, each with its function names (types left out).
    pub exports: Vec<(String, Vec<String>)>,
    /// Time to get the compiled component (compiling, or mapping the cache).
    pub compile: Duration,
    /// True when the compiled component came from the cache.
    pub cache_hit: bool,
    /// Whether it exports the optional `lifecycle` interface.
    pub lifecycle: bool,
    /// The hooks its `init` asked for with the config, or why `init` or
    /// linking failed.
    pub hooks: Result<Vec<&'static str>, String>,
}

/// The grant (or refusal) an imported interface implies.
fn capability(name: &str) -> Option<&'static str> {
    let iface = name.split('@').next().unwrap_or(name);
    Some(match iface {
        "wasmtp:plugin/dns" => "dns: answers only with `dns = true`",
        "wasmtp:plugin/kv" => "kv: buckets named in `kv = [...]` only",
        "wasi:sockets/tcp" | "wasi:sockets/tcp-create-socket" => {
            "network: TCP only to `connect = [...]` destinations"
        }
        "wasi:sockets/udp" | "wasi:sockets/udp-create-socket" => "network: UDP (always refused)",
        "wasi:sockets/ip-name-lookup" => "name lookups: through [dns] only, with `dns = true`",
        "wasi:http/outgoing-handler" => "http: only to `http = [...]` origins",
        "wasi:filesystem/types" | "wasi:filesystem/preopens" => {
            "filesystem: none is granted (no preopens)"
        }
        "wasi:cli/environment" => "environment: empty",
        _ => return None,
    })
}

/// The `wasmtp:plugin` version in an interface name, if it is one of ours.
fn plugin_version(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("wasmtp:plugin/")?;
    Some(rest.split_once('@').map_or("(unversioned)", |(_, v)| v))
}

/// Inspects the plugin `p` under `host` (its `config` is what `init` gets).
pub async fn inspect(
    host: &PluginHostConfig,
    p: &PluginConfig,
    services: HostServices,
) -> anyhow::Result<Inspection> {
    let size = std::fs::metadata(&p.path)
        .with_context(|| format!("cannot read {}", p.path.display()))?
        .len();
    let loader = build_loader(host, std::slice::from_ref(p), services)?;
    let start = Instant::now();
    let (component, _, compiled) = loader.compile(p).await?;
    let compile = start.elapsed();
    let engine = &loader.engine;
    let ty = component.component_type();
    let mut versions: Vec<String> = Vec::new();
    let mut note_version = |name: &str| {
        if let Some(v) = plugin_version(name)
            && !versions.iter().any(|x| x == v)
        {
            versions.push(v.to_string());
        }
    };
    let mut imports = Vec::new();
    for (name, _) in ty.imports(engine) {
        note_version(name);
        imports.push((name.to_string(), capability(name)));
    }
    let mut exports = Vec::new();
    for (name, item) in ty.exports(engine) {
        note_version(name);
        let funcs = match &item.ty {
            ComponentItem::ComponentInstance(i) => i
                .exports(engine)
                .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
                .map(|(f, _)| f.to_string())
                .collect(),
            _ => Vec::new(),
        };
        exports.push((name.to_string(), funcs));
    }
    let lifecycle = exports
        .iter()
        .any(|(n, _)| n.starts_with("wasmtp:plugin/lifecycle"));
    let hooks = async {
        let info = loader.info(p)?;
        let (pre, indices, _) = loader.link(&component)?;
        let wanted = loader.probe(&pre, &indices, &info).await?;
        anyhow::Ok(
            super::HOOKS
                .iter()
                .filter(|(_, flag)| wanted.contains(*flag))
                .map(|(name, _)| *name)
                .collect(),
        )
    }
    .await
    .map_err(|e| format!("{e:#}"));
    Ok(Inspection {
        size,
        versions,
        imports,
        exports,
        compile,
        cache_hit: !compiled,
        lifecycle,
        hooks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(plugin_version("wasmtp:plugin/hooks@0.1.0"), Some("0.1.0"));
        assert_eq!(plugin_version("wasi:io/streams@0.2.0"), None);
        assert!(capability("wasmtp:plugin/dns@0.1.0").is_some());
        assert!(capability("wasi:sockets/tcp@0.2.3").is_some());
        assert!(capability("wasi:io/streams@0.2.0").is_none());
    }
}
