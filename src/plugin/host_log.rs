//! Host side of the `host` interface (log, config) and the empty `types`
//! one, implemented on [`LogView`]: the plugin's name and config and the
//! session id its records carry, borrowed for one host call.

use wasmtime::component::HasData;

use super::bindings::LogLevel;
use super::bindings::wasmtp::plugin::{host, types};
use super::sandbox::{PluginInfo, SessionTag};

/// Longest log message kept (longer ones are cut).
const MAX_LOG_MESSAGE: usize = 4096;
/// Most key/value fields kept per record.
const MAX_LOG_FIELDS: usize = 32;
/// Longest field key or value kept.
const MAX_LOG_FIELD: usize = 512;

/// The `host` interface's view of a store.
pub(crate) struct LogView<'a> {
    /// Name and config of the plugin.
    pub plugin: &'a PluginInfo,
    /// The session the instance serves now.
    pub session: &'a SessionTag,
}

/// [`HasData`] marker linking `host` and `types` to [`LogView`].
pub(crate) struct LogHost;

impl HasData for LogHost {
    type Data<'a> = LogView<'a>;
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl types::Host for LogView<'_> {}

impl host::Host for LogView<'_> {
    fn log(
        &mut self,
        level: LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let plugin = &*self.plugin.name;
        let session = self.session.get();
        let session = session.as_str();
        let message = cut(&message, MAX_LOG_MESSAGE);
        let fields: String = fields
            .iter()
            .take(MAX_LOG_FIELDS)
            .map(|(k, v)| format!(" {}={:?}", cut(k, MAX_LOG_FIELD), cut(v, MAX_LOG_FIELD)))
            .collect();
        match level {
            LogLevel::Trace => tracing::trace!(plugin, session, "{message}{fields}"),
            LogLevel::Debug => tracing::debug!(plugin, session, "{message}{fields}"),
            LogLevel::Info => tracing::info!(plugin, session, "{message}{fields}"),
            LogLevel::Warn => tracing::warn!(plugin, session, "{message}{fields}"),
            LogLevel::Error => tracing::error!(plugin, session, "{message}{fields}"),
        }
        Ok(())
    }

    fn config(&mut self) -> wasmtime::Result<String> {
        Ok(self.plugin.config_json.clone())
    }

    fn config_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        let value = key
            .split('.')
            .try_fold(&self.plugin.config, |v, part| v.get(part));
        Ok(value.map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }))
    }
}
