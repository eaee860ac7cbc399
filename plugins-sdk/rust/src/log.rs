//! Structured logging into the gateway's log (with the plugin name and session id).

use crate::LogLevel;
use crate::bindings::wasmtp::plugin::host;

/// Logs a record with key/value fields.
pub fn log(level: LogLevel, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    host::log(level, message, &fields);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message, &[]);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(LogLevel::Info, message, &[]);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message, &[]);
}

/// Logs at error level.
pub fn error(message: &str) {
    log(LogLevel::Error, message, &[]);
}
