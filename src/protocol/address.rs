//! Reverse- and forward-paths (RFC 5321 4.1.2, limits 4.5.3.1; RFC 6531 for
//! UTF-8 addresses).
//!
//! - `<>` is the null reverse-path; `<Postmaster>` (no domain) is a valid
//!   forward-path.
//! - A source route (`<@a,@b:user@c>`) is accepted and stripped (RFC 5321
//!   4.1.2 and appendix C: "SHOULD ignore the route").
//! - `%` and `!` stay in the local part: they are syntactically valid atext,
//!   and refusing them is relay policy's job ([`local_part_has_routing`]).
//! - Limits: local-part 64 octets, domain 255, the whole path (brackets
//!   included) 256.
//! - Non-ASCII is allowed only when the transaction asked for SMTPUTF8.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Max local-part length in octets (RFC 5321 4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Max domain length in octets (RFC 5321 4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Max path length in octets, punctuation included (RFC 5321 4.5.3.1.3).
pub const MAX_PATH: usize = 256;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Not a valid path; the text says where.
    #[error("syntax error in address: {0}")]
    Syntax(&'static str),
    /// The local-part exceeds 64 octets.
    #[error("local part too long")]
    LocalPartTooLong,
    /// The domain exceeds 255 octets.
    #[error("domain too long")]
    DomainTooLong,
    /// The path exceeds 256 octets.
    #[error("path too long")]
    PathTooLong,
    /// Non-ASCII characters without SMTPUTF8.
    #[error("non-ASCII address requires SMTPUTF8")]
    NonAscii,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// `<>`.
    Null,
    /// `<Postmaster>` without a domain (forward-path only).
    Postmaster,
    /// `local@domain`, source route removed.
    Mailbox(String),
}

impl Path {
    /// The address as the events carry it: empty for `<>`.
    pub fn into_string(self) -> String {
        match self {
            Path::Null => String::new(),
            Path::Postmaster => "Postmaster".into(),
            Path::Mailbox(m) => m,
        }
    }
}

/// Parses `<...>` as given after `MAIL FROM:` or `RCPT TO:`.
/// `utf8` allows non-ASCII (SMTPUTF8 was given with MAIL).
pub fn parse_path(text: &str, utf8: bool) -> Result<Path, AddressError> {
    if text.len() > MAX_PATH {
        return Err(AddressError::PathTooLong);
    }
    if !utf8 && !text.is_ascii() {
        return Err(AddressError::NonAscii);
    }
    let inner = text
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .ok_or(AddressError::Syntax("path must be enclosed in <>"))?;
    if inner.is_empty() {
        return Ok(Path::Null);
    }
    let mailbox = strip_route(inner)?;
    if mailbox.eq_ignore_ascii_case("postmaster") {
        return Ok(Path::Postmaster);
    }
    check_mailbox(mailbox, utf8)?;
    Ok(Path::Mailbox(mailbox.to_string()))
}

/// Checks a bare mailbox `local@domain` (no brackets, no source route) by
/// the rules of RFC 5321 4.1.2 and 4.5.3.1: a dot-string or quoted-string
/// local part of at most 64 octets, a domain or address literal of at most
/// 255, at most 254 octets in all (the path's 256 less the brackets).
/// `utf8` allows non-ASCII (RFC 6531). The one mailbox rule: the engine
/// applies it to what clients send ([`parse_path`]), the plugin host to
/// what plugins put in the envelope.
pub fn check_mailbox(mailbox: &str, utf8: bool) -> Result<(), AddressError> {
    if mailbox.len() > MAX_PATH - 2 {
        return Err(AddressError::PathTooLong);
    }
    if !utf8 && !mailbox.is_ascii() {
        return Err(AddressError::NonAscii);
    }
    let (local, domain) = split_mailbox(mailbox)?;
    if local.len() > MAX_LOCAL_PART {
        return Err(AddressError::LocalPartTooLong);
    }
    if domain.len() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong);
    }
    if !is_domain_or_literal(domain, utf8) {
        return Err(AddressError::Syntax("invalid domain"));
    }
    Ok(())
}

/// Removes a source route `@a,@b:` (each hop must be a valid domain).
fn strip_route(inner: &str) -> Result<&str, AddressError> {
    if !inner.starts_with('@') {
        return Ok(inner);
    }
    let (route, rest) = inner
        .split_once(':')
        .ok_or(AddressError::Syntax("source route without ':'"))?;
    for hop in route.split(',') {
        let domain = hop
            .strip_prefix('@')
            .ok_or(AddressError::Syntax("bad source route"))?;
        if !is_domain(domain, true) {
            return Err(AddressError::Syntax("bad source route"));
        }
    }
    Ok(rest)
}

/// Splits `local@domain`, checking the local part (dot-string or quoted string).
fn split_mailbox(mailbox: &str) -> Result<(&str, &str), AddressError> {
    let bytes = mailbox.as_bytes();
    let at = if bytes.first() == Some(&b'"') {
        let end = quoted_end(bytes).ok_or(AddressError::Syntax("bad quoted local part"))?;
        if bytes.get(end) != Some(&b'@') {
            return Err(AddressError::Syntax("missing @ after quoted local part"));
        }
        end
    } else {
        let at = mailbox
            .find('@')
            .ok_or(AddressError::Syntax("missing @domain"))?;
        if !is_dot_string(&mailbox[..at]) {
            return Err(AddressError::Syntax("invalid local part"));
        }
        at
    };
    Ok((&mailbox[..at], &mailbox[at + 1..]))
}

/// Index just past the closing quote of a quoted string starting at 0.
fn quoted_end(bytes: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                // quoted-pairSMTP = "\" %d32-126
                match bytes.get(i + 1) {
                    Some(32..=126) => i += 2,
                    _ => return None,
                }
            }
            // qtextSMTP = %d32-33 / %d35-91 / %d93-126, plus UTF-8 (RFC 6531)
            32..=126 | 0x80.. => i += 1,
            _ => return None,
        }
    }
    None
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// Dot-string = Atom *("." Atom).
fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// Domain = sub-domain *("." sub-domain), each a Let-dig [Ldh-str] of at
/// most 63 octets; `utf8` allows U-labels.
pub fn is_domain(s: &str, utf8: bool) -> bool {
    if s.is_empty() || s.len() > MAX_DOMAIN {
        return false;
    }
    s.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || (utf8 && !c.is_ascii()))
    })
}

/// An address literal `[1.2.3.4]` or `[IPv6:...]`.
pub fn is_address_literal(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return false;
    };
    if let Some(v6) = inner
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("IPv6:"))
        .map(|_| &inner[5..])
    {
        return v6.parse::<Ipv6Addr>().is_ok();
    }
    inner.parse::<Ipv4Addr>().is_ok()
}

/// A domain or an address literal.
pub fn is_domain_or_literal(s: &str, utf8: bool) -> bool {
    is_address_literal(s) || is_domain(s, utf8)
}

/// The domain of `local@domain` (after the last `@`), `None` without one
/// (`Postmaster`, the null sender).
pub fn domain_of(addr: &str) -> Option<&str> {
    addr.rsplit_once('@').map(|(_, d)| d)
}

/// The local part of `local@domain` (everything before the last `@`).
pub fn local_part_of(addr: &str) -> &str {
    addr.rsplit_once('@').map_or(addr, |(l, _)| l)
}

/// True when the local part carries old routing syntax a relay could be
/// tricked by: `%` (`user%other@local`), `!` (UUCP bang path) or an `@`
/// inside a quoted local part. Relay policy should refuse these for
/// non-relay clients.
pub fn local_part_has_routing(addr: &str) -> bool {
    local_part_of(addr).contains(['%', '!', '@'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use AddressError::*;
        let m = |s: &str| Ok(Path::Mailbox(s.into()));
        let long_local = format!("<{}@x.org>", "a".repeat(65));
        let ok_local = format!("<{}@x.org>", "a".repeat(64));
        let long_path = format!("<{}@{}.org>", "a".repeat(60), "abcdefghi.".repeat(20));
        let long_label = format!("<a@{}.org>", "a".repeat(64));
        let cases: Vec<(&str, bool, Result<Path, AddressError>)> = vec![
            ("<>", false, Ok(Path::Null)),
            ("<a@b.example>", false, m("a@b.example")),
            ("<Postmaster>", false, Ok(Path::Postmaster)),
            ("<postMASTER>", false, Ok(Path::Postmaster)),
            ("<a.b+tag@x-y.example>", false, m("a.b+tag@x-y.example")),
            (
                "<@r1.example,@r2.example:a@b.example>",
                false,
                m("a@b.example"),
            ),
            ("<@r1.example:a@b.example>", false, m("a@b.example")),
            (
                "<@bad_route:a@b.example>",
                false,
                Err(Syntax("bad source route")),
            ),
            (
                "<@r1.example a@b.example>",
                false,
                Err(Syntax("source route without ':'")),
            ),
            ("<user%other@b.example>", false, m("user%other@b.example")),
            ("<host!user@b.example>", false, m("host!user@b.example")),
            ("<\"a b\"@b.example>", false, m("\"a b\"@b.example")),
            ("<\"a\\\"@x\"@b.example>", false, m("\"a\\\"@x\"@b.example")),
            (
                "<\"unterminated@b.example>",
                false,
                Err(Syntax("bad quoted local part")),
            ),
            ("<a@[127.0.0.1]>", false, m("a@[127.0.0.1]")),
            ("<a@[IPv6:::1]>", false, m("a@[IPv6:::1]")),
            ("<a@[300.0.0.1]>", false, Err(Syntax("invalid domain"))),
            (
                "a@b.example",
                false,
                Err(Syntax("path must be enclosed in <>")),
            ),
            (
                "<a@b.example",
                false,
                Err(Syntax("path must be enclosed in <>")),
            ),
            ("<a>", false, Err(Syntax("missing @domain"))),
            ("<a..b@c.example>", false, Err(Syntax("invalid local part"))),
            ("<.a@c.example>", false, Err(Syntax("invalid local part"))),
            ("<a b@c.example>", false, Err(Syntax("invalid local part"))),
            ("<a@-c.example>", false, Err(Syntax("invalid domain"))),
            ("<a@c..example>", false, Err(Syntax("invalid domain"))),
            ("<a@c.example.>", false, Err(Syntax("invalid domain"))),
            ("<a@c_d.example>", false, Err(Syntax("invalid domain"))),
            ("<a@>", false, Err(Syntax("invalid domain"))),
            (
                "<@b.example>",
                false,
                Err(Syntax("source route without ':'")),
            ),
            ("<üser@b.example>", false, Err(NonAscii)),
            ("<üser@b.example>", true, m("üser@b.example")),
            ("<a@bü.example>", true, m("a@bü.example")),
            (&long_local, false, Err(LocalPartTooLong)),
            (&ok_local, false, m(&ok_local[1..ok_local.len() - 1])),
            (&long_path, false, Err(PathTooLong)),
            (&long_label, false, Err(Syntax("invalid domain"))),
        ];
        for (input, utf8, want) in cases {
            assert_eq!(parse_path(input, utf8), want, "{input}");
        }
    }

    #[test]
    fn bare_mailboxes() {
        use AddressError::*;
        assert_eq!(check_mailbox("a@b.example", false), Ok(()));
        assert_eq!(check_mailbox("\"a b\"@b.example", false), Ok(()));
        assert_eq!(check_mailbox("a@[192.0.2.1]", false), Ok(()));
        assert_eq!(check_mailbox("üser@b.example", true), Ok(()));
        assert_eq!(check_mailbox("üser@b.example", false), Err(NonAscii));
        assert_eq!(
            check_mailbox("<a@b.example>", false),
            Err(Syntax("invalid local part"))
        );
        assert_eq!(
            check_mailbox("a b@b.example", false),
            Err(Syntax("invalid local part"))
        );
        assert_eq!(
            check_mailbox("a@b.example\r\n", false),
            Err(Syntax("invalid domain"))
        );
        assert_eq!(check_mailbox("a@-b", false), Err(Syntax("invalid domain")));
        assert_eq!(
            check_mailbox("a@[1.2.3]", false),
            Err(Syntax("invalid domain"))
        );
        assert_eq!(
            check_mailbox("nodomain", false),
            Err(Syntax("missing @domain"))
        );
        let long = format!("{}@{}.example", "a".repeat(64), "b".repeat(190));
        assert_eq!(check_mailbox(&long, false), Err(PathTooLong));
    }

    #[test]
    fn helpers() {
        assert_eq!(domain_of("a@b.example"), Some("b.example"));
        assert_eq!(domain_of("\"x@y\"@b.example"), Some("b.example"));
        assert_eq!(domain_of("Postmaster"), None);
        assert_eq!(local_part_of("a@b"), "a");
        assert!(local_part_has_routing("u%v@b"));
        assert!(local_part_has_routing("h!u@b"));
        assert!(local_part_has_routing("\"u@v\"@b"));
        assert!(!local_part_has_routing("u.v@b"));
        assert!(!is_domain_or_literal("[::1]", false));
        assert!(is_domain_or_literal("mx.example", false));
    }
}
