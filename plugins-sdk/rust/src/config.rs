//! The plugin's own `config` table from the gateway config.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The plugin's `config` table (`[plugins.config]` in the gateway's TOML),
/// handed to [`crate::Plugin::init`].
#[derive(Debug, Clone, Default)]
pub struct Config {
    value: Value,
}

impl Config {
    /// Parses the JSON text the host passes to `init`.
    pub fn parse(json: &str) -> Result<Self, String> {
        if json.trim().is_empty() {
            return Ok(Self {
                value: Value::Object(Default::default()),
            });
        }
        serde_json::from_str(json)
            .map(|value| Self { value })
            .map_err(|e| format!("config is not valid JSON: {e}"))
    }

    /// Deserializes the whole table into your own type.
    pub fn to<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(self.value.clone()).map_err(|e| format!("invalid config: {e}"))
    }

    /// The raw JSON value of a key (dotted paths such as `limits.max` reach into tables).
    pub fn get(&self, key: &str) -> Option<&Value> {
        key.split('.').try_fold(&self.value, |v, part| v.get(part))
    }

    /// A string value.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// An integer value.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    /// A boolean value.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    /// A list of strings (a single string counts as a one-element list;
    /// non-string elements are skipped).
    pub fn strings(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The whole table as JSON.
    pub fn json(&self) -> &Value {
        &self.value
    }
}
