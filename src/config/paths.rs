//! Relative paths in a config file are relative to the file's directory.
//!
//! The rule covers every key that holds a path, and the defaults of those
//! keys too: `[tls] cert`/`key`, `[delivery] maildir`, `[delivery.forward]
//! ca_file`, `[delivery.spool] dir`, `[kv] path`, `[plugin_host]
//! cache_dir`, `[server] control_socket` and `[[plugins]] path`. So a config
//! works the same whatever directory the gateway is started from.

use std::path::{Path, PathBuf};

use super::Config;

/// Joins every relative path of `config` onto `base` (`""`: no change).
pub(super) fn resolve(config: &mut Config, base: &Path) {
    if base.as_os_str().is_empty() {
        return;
    }
    let join = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    let tls = &mut config.tls;
    tls.cert.iter_mut().chain(tls.key.iter_mut()).for_each(join);
    let delivery = &mut config.delivery;
    join(&mut delivery.maildir);
    delivery.forward.ca_file.iter_mut().for_each(join);
    join(&mut delivery.spool.dir);
    join(&mut config.kv.path);
    join(&mut config.plugin_host.cache_dir);
    if !config.server.control_socket.as_os_str().is_empty() {
        join(&mut config.server.control_socket);
    }
    config.plugins.iter_mut().for_each(|p| join(&mut p.path));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_joined_absolute_ones_kept() {
        let text = "[tls]\ncert = \"c.pem\"\nkey = \"/k.pem\"\n\
                    [delivery]\nmaildir = \"md\"\n\
                    [[plugins]]\nname = \"p\"\npath = \"../p.wasm\"\n";
        let mut c: Config = toml::from_str(text).unwrap();
        resolve(&mut c, Path::new("/etc/wasmtp"));
        assert_eq!(c.tls.cert, Some(PathBuf::from("/etc/wasmtp/c.pem")));
        assert_eq!(c.tls.key, Some(PathBuf::from("/k.pem")));
        assert_eq!(c.delivery.maildir, PathBuf::from("/etc/wasmtp/md"));
        assert_eq!(c.plugins[0].path, PathBuf::from("/etc/wasmtp/../p.wasm"));
        // Defaults follow the same rule.
        assert_eq!(c.kv.path, PathBuf::from("/etc/wasmtp/var/kv"));
        assert_eq!(
            c.plugin_host.cache_dir,
            PathBuf::from("/etc/wasmtp/target/wasmtp-cache")
        );
        let before = c.clone();
        resolve(&mut c, Path::new(""));
        assert_eq!(c.kv.path, before.kv.path);
    }
}
