//! Limit how many messages a client IP address and an authenticated user
//! may send in a fixed window (Haraka `rate_limit`), with counters in the
//! gateway's key-value store.
//!
//! Each counted event runs one atomic `increment` of `ip:<address>` and,
//! after AUTH, of `user:<name>` in the granted bucket, with the window as
//! the TTL: the first event creates the counter and starts the window, the
//! counter disappears when the window ends (a fixed window). When a counter
//! passes its limit the event is refused with `451 4.7.0`; refused events
//! count too, so a client that keeps trying stays limited until the window
//! ends. Counters are shared by every connection and, on Redis, every gateway.
//!
//! Config keys (see README.md): `limit` (messages per window, default 100),
//! `user_limit` (default `limit`), `window` (seconds, or "90s", "10m", "1h";
//! default 3600), `bucket` (default "ratelimit"), `count_at` ("data-post"
//! default: one per message, refused at the end of DATA; "rcpt": one per
//! recipient, refused at RCPT), `by` (`["ip", "user"]` default),
//! `on_error` ("pass" default, or "tempfail").
//!
//! Grants: `kv = ["ratelimit"]` (the configured bucket).

use std::time::Duration;

use wasmtp_plugin_sdk::kv::Bucket;
use wasmtp_plugin_sdk::{
    Config, Connection, Hooks, LogLevel, Param, Plugin, Reply, Transaction, Verdict, export_plugin,
    log,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CountAt {
    DataPost,
    Rcpt,
}

struct RateLimit {
    bucket: Bucket,
    limit: i64,
    user_limit: i64,
    window: Duration,
    count_at: CountAt,
    by_ip: bool,
    by_user: bool,
    tempfail_on_error: bool,
}

/// `3600`, `"3600"`, `"90s"`, `"10m"`, `"1h"`, `"1d"` as a duration.
fn parse_window(config: &Config) -> Result<Duration, String> {
    let Some(value) = config.get("window") else {
        return Ok(Duration::from_secs(3600));
    };
    let secs = if let Some(n) = value.as_u64() {
        Some(n)
    } else if let Some(text) = value.as_str() {
        let text = text.trim();
        let (digits, unit) = text
            .find(|c: char| !c.is_ascii_digit())
            .map_or((text, ""), |i| text.split_at(i));
        let scale = match unit.trim() {
            "" | "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3600),
            "d" => Some(86_400),
            _ => None,
        };
        digits
            .parse::<u64>()
            .ok()
            .zip(scale)
            .and_then(|(n, s)| n.checked_mul(s))
    } else {
        None
    };
    match secs {
        Some(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(format!(
            "window must be a positive number of seconds or \"<n>s|m|h|d\", not {value}"
        )),
    }
}

fn parse_limit(config: &Config, key: &str, default: i64) -> Result<i64, String> {
    match config.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| format!("{key} must be a positive integer, not {v}")),
    }
}

impl RateLimit {
    /// Counts one event for every key that applies; the first counter past
    /// its limit refuses.
    fn count(&self, conn: &Connection) -> Verdict {
        let mut keys = Vec::with_capacity(2);
        if self.by_ip {
            keys.push((format!("ip:{}", conn.remote_ip()), self.limit));
        }
        if self.by_user
            && let Some(user) = conn.auth_user()
        {
            keys.push((format!("user:{user}"), self.user_limit));
        }
        for (key, limit) in keys {
            match self.bucket.increment(&key, 1, Some(self.window)) {
                Ok(n) if n > limit => {
                    log(
                        LogLevel::Info,
                        "rate limit exceeded",
                        &[("key", &key), ("count", &n.to_string())],
                    );
                    conn.set_note("ratelimit.exceeded", &key);
                    return Verdict::DenySoft(Reply::full(
                        451,
                        "4.7.0",
                        format!(
                            "rate limit exceeded ({limit} per {} s), try again later",
                            self.window.as_secs()
                        ),
                    ));
                }
                Ok(_) => {}
                Err(err) => {
                    let reason = err.reason();
                    log(
                        LogLevel::Warn,
                        "rate limit counter unavailable",
                        &[("key", &key), ("error", &reason)],
                    );
                    conn.set_note("ratelimit.error", &reason);
                    if self.tempfail_on_error {
                        return Verdict::DenySoft(Reply::full(
                            451,
                            "4.3.0",
                            "rate limit state unavailable, try again later",
                        ));
                    }
                }
            }
        }
        Verdict::Declined
    }
}

impl Plugin for RateLimit {
    fn init(config: &Config) -> Result<Self, String> {
        let limit = parse_limit(config, "limit", 100)?;
        let user_limit = parse_limit(config, "user_limit", limit)?;
        let count_at = match config.str("count_at").unwrap_or("data-post") {
            "data-post" | "data_post" => CountAt::DataPost,
            "rcpt" => CountAt::Rcpt,
            other => {
                return Err(format!(
                    "count_at must be \"data-post\" or \"rcpt\", not {other:?}"
                ));
            }
        };
        let by = if config.get("by").is_some() {
            config.strings("by")
        } else {
            vec!["ip".into(), "user".into()]
        };
        if let Some(bad) = by.iter().find(|b| *b != "ip" && *b != "user") {
            return Err(format!("by: {bad:?} is neither \"ip\" nor \"user\""));
        }
        let tempfail_on_error = match config.str("on_error").unwrap_or("pass") {
            "pass" => false,
            "tempfail" => true,
            other => {
                return Err(format!(
                    "on_error must be \"pass\" or \"tempfail\", not {other:?}"
                ));
            }
        };
        let bucket = config.str("bucket").unwrap_or("ratelimit").trim();
        if bucket.is_empty() {
            return Err("bucket must not be empty".into());
        }
        Ok(Self {
            bucket: Bucket::new(bucket),
            limit,
            user_limit,
            window: parse_window(config)?,
            count_at,
            by_ip: by.iter().any(|b| b == "ip"),
            by_user: by.iter().any(|b| b == "user"),
            tempfail_on_error,
        })
    }

    fn hooks(&self) -> Hooks {
        match self.count_at {
            CountAt::DataPost => Hooks::DATA_POST,
            CountAt::Rcpt => Hooks::RCPT,
        }
    }

    fn rcpt(&mut self, conn: &Connection, _t: &Transaction, _r: &str, _p: &[Param]) -> Verdict {
        self.count(conn)
    }

    fn data_post(&mut self, conn: &Connection, _t: &Transaction) -> Verdict {
        self.count(conn)
    }
}

export_plugin!(RateLimit);
