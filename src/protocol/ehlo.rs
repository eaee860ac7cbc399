//! The EHLO capability list and the HELO/EHLO argument check.

use std::borrow::Cow;

use super::address::{is_address_literal, is_domain};
use super::event::EngineConfig;
use super::replies;
use super::reply::Reply;

/// The default EHLO reply: our name, then one capability per line.
///
/// STARTTLS only while TLS is not active; AUTH only when it may be used now
/// (over TLS, or plaintext explicitly allowed), so a client never sees a
/// mechanism it would be refused with 538.
pub fn capabilities(config: &EngineConfig, tls_active: bool) -> Reply {
    let mut lines: Vec<Cow<'static, str>> = vec![
        config.hostname.clone().into(),
        "PIPELINING".into(),
        format!("SIZE {}", config.max_message_size).into(),
        "8BITMIME".into(),
        "ENHANCEDSTATUSCODES".into(),
    ];
    if config.smtputf8 {
        lines.push("SMTPUTF8".into());
    }
    if config.chunking {
        lines.push("CHUNKING".into());
        lines.push("BINARYMIME".into());
    }
    if config.starttls && !tls_active {
        lines.push("STARTTLS".into());
    }
    if auth_usable(config, tls_active) {
        lines.push("AUTH PLAIN LOGIN".into());
    }
    replies::ehlo(lines)
}

/// AUTH is offered and allowed on this connection right now.
pub fn auth_usable(config: &EngineConfig, tls_active: bool) -> bool {
    config.auth && (tls_active || config.auth_plaintext)
}

/// Whether a HELO/EHLO argument is acceptable: an address literal, or a
/// domain. Lenient on one point: `_` is allowed in labels, because many
/// desktop clients announce host names such as `DESKTOP_1` and refusing
/// them helps nobody. UTF-8 names are allowed (RFC 6531 permits U-labels
/// after EHLO).
pub fn valid_hello_arg(arg: &str) -> bool {
    if arg.starts_with('[') {
        return is_address_literal(arg);
    }
    is_domain(&arg.replace('_', "a"), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_table() {
        let base = EngineConfig::default();
        // (starttls, auth, auth_plaintext, tls_active, expect STARTTLS, expect AUTH)
        let cases = [
            (false, false, false, false, false, false),
            (true, false, false, false, true, false),
            (true, false, false, true, false, false),
            (true, true, false, false, true, false),
            (true, true, false, true, false, true),
            (false, true, true, false, false, true),
        ];
        for (starttls, auth, plain, tls, want_tls, want_auth) in cases {
            let cfg = EngineConfig {
                starttls,
                auth,
                auth_plaintext: plain,
                ..base.clone()
            };
            let r = capabilities(&cfg, tls);
            let has = |s: &str| r.lines().iter().any(|l| l == s);
            assert_eq!(has("STARTTLS"), want_tls);
            assert_eq!(has("AUTH PLAIN LOGIN"), want_auth);
            assert!(has("PIPELINING") && has("8BITMIME") && has("ENHANCEDSTATUSCODES"));
            assert!(has(&format!("SIZE {}", base.max_message_size)));
            assert_eq!(r.lines()[0], "localhost");
        }
        let cfg = EngineConfig {
            chunking: false,
            smtputf8: false,
            ..base
        };
        let r = capabilities(&cfg, false);
        assert!(!r.lines().iter().any(|l| l == "CHUNKING" || l == "SMTPUTF8"));
    }

    #[test]
    fn hello_args() {
        for ok in [
            "mx.example",
            "localhost",
            "DESKTOP_1",
            "[127.0.0.1]",
            "[IPv6:::1]",
            "bü.example",
        ] {
            assert!(valid_hello_arg(ok), "{ok}");
        }
        for bad in ["", "-x.example", "a..b", "[1.2.3]", "a b", "x@y", "a;b"] {
            assert!(!valid_hello_arg(bad), "{bad}");
        }
    }
}
