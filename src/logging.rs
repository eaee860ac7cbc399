//! tracing setup: text or JSON lines on stderr, filtered by `RUST_LOG` or
//! `[log] filter`. Every session runs in a `session{id=..}` span, so each of
//! its lines carries the session id (JSON: the `span`/`spans` fields).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `filter`.
/// Calling it twice is harmless (the second call changes nothing).
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    // Already initialised (tests that start several servers): keep the first.
    let _ = result;
}
