//! Semantic checks that serde cannot express. Each failure names the key
//! path it is about; [`super::Config::from_str`] turns it into a position.

use std::collections::HashSet;

use super::Config;

/// A failed check: the key path and the message.
pub(super) type Failure = (String, String);

fn fail(key: impl Into<String>, message: impl Into<String>) -> Result<(), Failure> {
    Err((key.into(), message.into()))
}

/// Checks and normalises (lower-cases domains) a freshly parsed config.
pub(super) fn validate(config: &mut Config) -> Result<(), Failure> {
    server(config)?;
    listeners(config)?;
    tls(config)?;
    limits(config)?;
    timeouts(config)?;
    relay(config)?;
    auth(config)?;
    plugins(config)?;
    config.metrics.check()?;
    config.kv.check()?;
    Ok(())
}

fn plugins(config: &mut Config) -> Result<(), Failure> {
    for (i, p) in config.plugins.iter().enumerate() {
        if let Err((key, message)) = p.check_instances() {
            return fail(format!("plugins[{i}].{key}"), message);
        }
        if let Err((key, message)) = p.grants() {
            return fail(format!("plugins[{i}].{key}"), message);
        }
    }
    Ok(())
}

/// A plausible domain name or address literal: no spaces, no `@`, no control characters.
pub(super) fn plausible_domain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        })
        && !name.starts_with('.')
}

fn server(config: &mut Config) -> Result<(), Failure> {
    let s = &config.server;
    if !plausible_domain(&s.hostname) {
        return fail(
            "server.hostname",
            format!("invalid host name {:?}", s.hostname),
        );
    }
    if s.max_connections == 0 {
        return fail("server.max_connections", "must be at least 1");
    }
    if s.max_connections_per_ip == 0 {
        return fail("server.max_connections_per_ip", "must be at least 1");
    }
    Ok(())
}

fn listeners(config: &mut Config) -> Result<(), Failure> {
    let mut seen = HashSet::new();
    for (i, l) in config.listeners.iter().enumerate() {
        // Port 0 picks a free port at bind time: never a duplicate.
        if l.address.port() != 0 && !seen.insert(l.address) {
            return fail(
                format!("listeners[{i}].address"),
                format!("duplicate listener address {}", l.address),
            );
        }
        if l.proxy_protocol && l.proxy_trusted.is_empty() {
            return fail(
                format!("listeners[{i}].proxy_protocol"),
                "needs `proxy_trusted`: the networks of the load balancers allowed to send the PROXY header",
            );
        }
        if !l.proxy_protocol && !l.proxy_trusted.is_empty() {
            return fail(
                format!("listeners[{i}].proxy_trusted"),
                "has no effect without `proxy_protocol = true`",
            );
        }
    }
    Ok(())
}

fn tls(config: &mut Config) -> Result<(), Failure> {
    let t = &config.tls;
    match (&t.cert, &t.key) {
        (Some(_), None) => return fail("tls.cert", "`cert` is set but `key` is missing"),
        (None, Some(_)) => return fail("tls.key", "`key` is set but `cert` is missing"),
        (Some(cert), Some(key)) => {
            crate::tls::load_pem(cert, key).map_err(|e| (e.key().to_string(), e.to_string()))?;
        }
        (None, None) => {
            for (i, name) in t.self_signed_names.iter().enumerate() {
                if !plausible_domain(name) {
                    return fail(
                        format!("tls.self_signed_names[{i}]"),
                        format!("invalid name {name:?}"),
                    );
                }
            }
        }
    }
    Ok(())
}

fn limits(config: &mut Config) -> Result<(), Failure> {
    let l = &config.limits;
    if l.max_command_line < 512 {
        return fail(
            "limits.max_command_line",
            format!(
                "{} is below the RFC 5321 minimum of 512",
                l.max_command_line
            ),
        );
    }
    if l.max_text_line < 1000 {
        return fail(
            "limits.max_text_line",
            format!("{} is below the RFC 5321 minimum of 1000", l.max_text_line),
        );
    }
    if l.max_recipients < 100 {
        return fail(
            "limits.max_recipients",
            format!("{} is below the RFC 5321 minimum of 100", l.max_recipients),
        );
    }
    if l.max_header_fields == 0 || l.max_header_bytes < 1000 {
        return fail(
            "limits.max_header_fields",
            "max_header_fields must be more than 0 and max_header_bytes at least 1000",
        );
    }
    if l.memory_budget != 0 && l.memory_budget < l.max_message_size {
        return fail(
            "limits.memory_budget",
            format!(
                "{} is below max_message_size ({}): no message could be received",
                l.memory_budget, l.max_message_size
            ),
        );
    }
    if l.max_message_size == 0 {
        return fail("limits.max_message_size", "must be more than 0");
    }
    if l.max_errors == 0 {
        return fail("limits.max_errors", "must be at least 1");
    }
    if config.server.ipv6_prefix_per_ip > 128 {
        return fail("server.ipv6_prefix_per_ip", "must be at most 128");
    }
    Ok(())
}

fn timeouts(config: &mut Config) -> Result<(), Failure> {
    let t = &config.timeouts;
    for (key, value) in [
        ("command", t.command),
        ("data_block", t.data_block),
        ("tls_handshake", t.tls_handshake),
        ("session", t.session),
    ] {
        if value.is_zero() {
            return fail(format!("timeouts.{key}"), "must be more than 0");
        }
    }
    if t.greeting_delay >= t.session {
        return fail(
            "timeouts.greeting_delay",
            "must be shorter than the session deadline",
        );
    }
    Ok(())
}

fn relay(config: &mut Config) -> Result<(), Failure> {
    for (i, d) in config.relay.local_domains.iter_mut().enumerate() {
        let norm = d.trim().trim_end_matches('.').to_ascii_lowercase();
        if !plausible_domain(&norm) {
            return fail(
                format!("relay.local_domains[{i}]"),
                format!("invalid domain {d:?}"),
            );
        }
        *d = norm;
    }
    Ok(())
}

fn auth(config: &mut Config) -> Result<(), Failure> {
    let mut seen = HashSet::new();
    for (i, u) in config.auth.users.iter().enumerate() {
        if u.username.is_empty() {
            return fail(format!("auth.users[{i}].username"), "must not be empty");
        }
        if !seen.insert(u.username.as_str()) {
            return fail(
                format!("auth.users[{i}].username"),
                format!("duplicate user {:?}", u.username),
            );
        }
    }
    if config.auth.max_failures == 0 {
        return fail("auth.max_failures", "must be at least 1");
    }
    Ok(())
}
