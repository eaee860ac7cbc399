//! The reply catalogue: every reply the gateway writes on its own, one
//! constructor each, so call sites read as intent and the wire text lives in
//! one place. The engine's replies come first, then the session driver's,
//! the delivery backends' and the plugin host's.
//!
//! Not here: a plugin's own reply (checked in `plugin::verdict`, which also
//! holds the per-hook defaults a verdict without text falls back to, as the
//! plugin contract documents them) and an upstream's reply (parsed in
//! `delivery::client`); both are [`Reply`] values all the same.

use std::borrow::Cow;
use std::fmt::Display;

use super::reply::{EnhancedCode, Reply};

const fn esc(class: u8, subject: u16, detail: u16) -> EnhancedCode {
    EnhancedCode::new(class, subject, detail)
}

/// `220 <host> ESMTP wasmtp`.
pub fn greeting(host: &str) -> Reply {
    Reply::plain(220, format!("{host} ESMTP wasmtp"))
}
/// `250-<host>` and one capability per line (EHLO; see `protocol::ehlo`).
pub fn ehlo(lines: Vec<Cow<'static, str>>) -> Reply {
    Reply::multiline(250, None, lines)
}
/// `250 <host>` (HELO).
pub fn helo(host: &str) -> Reply {
    Reply::plain(250, host.to_string())
}
/// `221 2.0.0 Bye`.
pub fn bye() -> Reply {
    Reply::new(221, esc(2, 0, 0), "Bye")
}
/// `250 2.1.0 Ok` (MAIL).
pub fn mail_ok() -> Reply {
    Reply::new(250, esc(2, 1, 0), "Ok")
}
/// `250 2.1.5 Ok` (RCPT).
pub fn rcpt_ok() -> Reply {
    Reply::new(250, esc(2, 1, 5), "Ok")
}
/// `354 End data with <CR><LF>.<CR><LF>`.
pub fn start_data() -> Reply {
    Reply::plain(354, "End data with <CR><LF>.<CR><LF>")
}
/// `250 2.0.0 <n> octets received` (a non-last BDAT chunk).
pub fn chunk_ok(n: u64) -> Reply {
    Reply::new(250, esc(2, 0, 0), format!("{n} octets received"))
}
/// `250 2.0.0 Ok: queued` (MessageComplete answered with `Default`).
pub fn queued() -> Reply {
    Reply::new(250, esc(2, 0, 0), "Ok: queued")
}
/// `252 2.5.2 Cannot VRFY user, ...`.
pub fn vrfy() -> Reply {
    Reply::new(
        252,
        esc(2, 5, 2),
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}
/// `214 2.0.0 ...` (HELP).
pub fn help() -> Reply {
    Reply::new(
        214,
        esc(2, 0, 0),
        "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
    )
}
/// `220 2.0.0 Ready to start TLS`.
pub fn starttls() -> Reply {
    Reply::new(220, esc(2, 0, 0), "Ready to start TLS")
}
/// `235 2.7.0 Authentication successful`.
pub fn auth_ok() -> Reply {
    Reply::new(235, esc(2, 7, 0), "Authentication successful")
}
/// `334 <challenge>`.
pub fn auth_challenge(text: &'static str) -> Reply {
    Reply::plain(334, text)
}

/// `500 5.5.1 Command unrecognized`.
pub fn unrecognized() -> Reply {
    Reply::new(500, esc(5, 5, 1), "Command unrecognized")
}
/// `500 5.5.2 Line too long` (RFC 5321 4.5.3.1.10 names this reply).
pub fn line_too_long() -> Reply {
    Reply::new(500, esc(5, 5, 2), "Line too long")
}
/// `500 5.5.2 Bare LF received` (a command line ending in LF alone).
pub fn bare_lf_command() -> Reply {
    Reply::new(
        500,
        esc(5, 5, 2),
        "Syntax error: bare <LF> received, lines must end with <CR><LF>",
    )
}
/// `500 5.5.2 Invalid characters in command`.
pub fn bad_bytes() -> Reply {
    Reply::new(
        500,
        esc(5, 5, 2),
        "Syntax error: invalid characters in command",
    )
}
/// `501 5.5.4 Syntax error: <what>`.
pub fn syntax(what: &str) -> Reply {
    Reply::new(501, esc(5, 5, 4), format!("Syntax error: {what}"))
}
/// `501 5.5.2 Invalid base64` (AUTH).
pub fn bad_base64() -> Reply {
    Reply::new(501, esc(5, 5, 2), "Invalid base64 data")
}
/// `501 5.5.2 Invalid AUTH response` (PLAIN not authzid NUL authcid NUL passwd, or not UTF-8).
pub fn bad_auth_response() -> Reply {
    Reply::new(501, esc(5, 5, 2), "Invalid authentication response")
}
/// `501 5.7.0 Authentication cancelled`.
pub fn auth_cancelled() -> Reply {
    Reply::new(501, esc(5, 7, 0), "Authentication cancelled")
}
/// `501 <esc> <address error>` (5.1.7 sender, 5.1.3 recipient).
pub fn bad_address(sender: bool, what: &str) -> Reply {
    let e = if sender { esc(5, 1, 7) } else { esc(5, 1, 3) };
    Reply::new(501, e, format!("Bad address: {what}"))
}
/// `553 5.6.7 Non-ASCII address requires SMTPUTF8` (RFC 6531 3.4).
pub fn needs_smtputf8() -> Reply {
    Reply::new(553, esc(5, 6, 7), "Non-ASCII address requires SMTPUTF8")
}
/// `502 5.5.1 Command not implemented`.
pub fn not_implemented() -> Reply {
    Reply::new(502, esc(5, 5, 1), "Command not implemented")
}
/// `503 5.5.1 <why>` (bad sequence of commands).
pub fn sequence(why: &'static str) -> Reply {
    Reply::new(503, esc(5, 5, 1), why)
}
/// `504 5.5.4 Unrecognized authentication mechanism`.
pub fn unknown_mechanism() -> Reply {
    Reply::new(504, esc(5, 5, 4), "Unrecognized authentication mechanism")
}
/// `555 5.5.4 Unsupported parameter <key>`.
pub fn unsupported_param(key: &str) -> Reply {
    Reply::new(555, esc(5, 5, 4), format!("Unsupported parameter {key}"))
}
/// `530 5.7.0 Must issue a STARTTLS command first`.
pub fn tls_required() -> Reply {
    Reply::new(530, esc(5, 7, 0), "Must issue a STARTTLS command first")
}
/// `530 5.7.0 Authentication required`.
pub fn auth_required() -> Reply {
    Reply::new(530, esc(5, 7, 0), "Authentication required")
}
/// `538 5.7.11 Encryption required for requested authentication mechanism`.
pub fn auth_needs_tls() -> Reply {
    Reply::new(
        538,
        esc(5, 7, 11),
        "Encryption required for requested authentication mechanism",
    )
}
/// `454 4.7.0 TLS not available`.
pub fn tls_unavailable() -> Reply {
    Reply::new(454, esc(4, 7, 0), "TLS not available")
}
/// `452 4.5.3 Too many recipients`.
pub fn too_many_recipients() -> Reply {
    Reply::new(452, esc(4, 5, 3), "Too many recipients")
}
/// `554 5.5.1 No valid recipients`.
pub fn no_recipients() -> Reply {
    Reply::new(554, esc(5, 5, 1), "No valid recipients")
}
/// `552 5.3.4 Message size exceeds fixed maximum message size`.
pub fn too_big() -> Reply {
    Reply::new(
        552,
        esc(5, 3, 4),
        "Message size exceeds fixed maximum message size",
    )
}
/// `550 5.5.2 Message contains bare CR or LF`.
pub fn bare_line_ending() -> Reply {
    Reply::new(550, esc(5, 5, 2), "Message contains bare CR or LF")
}
/// `500 5.5.2 Line too long` at the end of a message with an overlong text
/// line. RFC 5321 4.5.3.1.10 lists "500 Line too long" for exceeding the
/// text-line limit; 552 5.3.4 would wrongly say the message is too big.
pub fn text_line_too_long() -> Reply {
    Reply::new(
        500,
        esc(5, 5, 2),
        "Message contains a line longer than the limit",
    )
}
/// `421 4.7.0 Too many errors`.
pub fn too_many_errors() -> Reply {
    Reply::new(421, esc(4, 7, 0), "Too many errors, closing connection")
}
/// `421 4.7.0 Too many authentication failures`.
pub fn too_many_auth_failures() -> Reply {
    Reply::new(
        421,
        esc(4, 7, 0),
        "Too many authentication failures, closing connection",
    )
}
/// `550 5.6.0 Message contains NUL octets`: RFC 5322 2.3 and RFC 6152 allow
/// NUL only in BODY=BINARYMIME; a downstream that drops NULs could see a
/// different message (or an end of data) than we checked.
pub fn nul_in_content() -> Reply {
    Reply::new(550, esc(5, 6, 0), "Message contains NUL octets")
}
/// `421 4.7.0 Too many commands` when NOOP/VRFY/HELP/RSET exceed the
/// per-session budget (Postfix `smtpd_junk_command_limit`).
pub fn too_many_commands() -> Reply {
    Reply::new(421, esc(4, 7, 0), "Too many commands, closing connection")
}
/// `554 5.5.0 SMTP protocol synchronization error` for an unauthenticated
/// client that sent commands before the reply to the end of DATA (Postfix
/// `smtpd_forbid_unauth_pipelining`); the session then closes.
pub fn pipelining_violation() -> Reply {
    Reply::new(
        554,
        esc(5, 5, 0),
        "SMTP protocol synchronization error (commands sent before the reply to the end of DATA)",
    )
}
/// `421 4.7.0` for AUTH from an address with too many recent failures
/// (across sessions); the session closes.
pub fn too_many_auth_failures_from_address() -> Reply {
    Reply::new(
        421,
        esc(4, 7, 0),
        "Too many authentication failures from your address, try later",
    )
}

// ---- General replies, used by the engine and the driver alike.

/// `250 2.0.0 Ok`.
pub fn ok() -> Reply {
    Reply::new(250, esc(2, 0, 0), "Ok")
}
/// `421 4.3.2 <host> Service shutting down`.
pub fn shutting_down(host: &str) -> Reply {
    Reply::new(
        421,
        esc(4, 3, 2),
        format!("{host} Service shutting down, closing transmission channel"),
    )
}
/// `421 4.4.2 <host> Timeout`.
pub fn timeout(host: &str) -> Reply {
    Reply::new(421, esc(4, 4, 2), format!("{host} Error: timeout exceeded"))
}
/// `421 4.7.0 Too many connections`.
pub fn too_many_connections(host: &str) -> Reply {
    Reply::new(
        421,
        esc(4, 7, 0),
        format!("{host} Too many connections, try again later"),
    )
}
/// `451 4.3.0` local error (plugin failure with the tempfail policy, I/O errors).
pub fn local_error() -> Reply {
    Reply::new(
        451,
        esc(4, 3, 0),
        "Requested action aborted: local error in processing",
    )
}
/// `554 5.3.0` permanent local error (plugin failure with the reject policy).
pub fn permanent_local_error() -> Reply {
    Reply::new(554, esc(5, 3, 0), "Transaction failed")
}

// ---- The session driver's replies (src/session).

/// `554 5.5.1` for a client that talked before the greeting.
pub fn early_talker() -> Reply {
    Reply::new(
        554,
        esc(5, 5, 1),
        "Protocol error: client sent data before the greeting",
    )
}
/// `535 5.7.8 Authentication credentials invalid` (RFC 4954).
pub fn auth_failed() -> Reply {
    Reply::new(535, esc(5, 7, 8), "Authentication credentials invalid")
}
/// `552 5.3.4` for a header section past `[limits]` (RFC 3463: message
/// too big for system).
pub fn header_too_large(why: impl Display) -> Reply {
    Reply::new(
        552,
        esc(5, 3, 4),
        format!("Message header too large: {why}"),
    )
}
/// `452 4.3.1` when the memory budget for messages is used up.
pub fn memory_full() -> Reply {
    Reply::new(
        452,
        esc(4, 3, 1),
        "Insufficient system storage, try again later",
    )
}
/// `250 2.0.0 Ok: queued as <id>` (delivered, spooled, or queued by a plugin).
pub fn queued_as(id: &str) -> Reply {
    Reply::new(250, esc(2, 0, 0), format!("Ok: queued as {id}"))
}
/// `550 5.7.1 Relay access denied`.
pub fn relay_denied() -> Reply {
    Reply::new(550, esc(5, 7, 1), "Relay access denied")
}

// ---- The delivery backends' replies (src/delivery).

/// `451 4.3.0 ... (spool)` when the spool could not write a message.
pub fn spool_error() -> Reply {
    Reply::new(
        451,
        esc(4, 3, 0),
        "Requested action aborted: local error in processing (spool)",
    )
}
/// `250 2.0.0 Ok: queued as <id> (upstream: <reply>)` (forward mode);
/// `upstream` is the upstream's reply on one line.
pub fn queued_upstream(id: &str, upstream: &str) -> Reply {
    Reply::new(
        250,
        esc(2, 0, 0),
        format!(
            "Ok: queued as {id} (upstream: {})",
            printable(upstream, 200)
        ),
    )
}
/// An upstream's failure relayed to our client as `<code> <enhanced>
/// <what>: upstream said <code> <text>` (class kept, code clamped to
/// 4xx/5xx, control characters dropped, text cut at 400 characters).
pub fn relayed(upstream: &Reply, what: &str) -> Reply {
    let code = if upstream.is_permanent() || upstream.is_transient() {
        upstream.code()
    } else {
        451
    };
    let e = upstream.enhanced_or_default();
    let class = if code >= 500 { 5 } else { 4 };
    let text = printable(&upstream.text(), 400);
    Reply::new(
        code,
        esc(class, e.subject, e.detail),
        format!("{what}: upstream said {code} {text}"),
    )
}
/// `451 4.x.y Upstream refused recipient <who> (...)`: some recipients were
/// refused, so none is accepted (forward mode is all or nothing).
pub fn upstream_refused_recipient(who: &str, upstream: &Reply) -> Reply {
    let e = upstream.enhanced_or_default();
    Reply::new(
        451,
        esc(4, e.subject, e.detail),
        format!(
            "Upstream refused recipient <{who}> ({}); message not accepted for any recipient, try again later",
            printable(&upstream.one_line(), 300)
        ),
    )
}
/// `451 4.7.5` when TLS to the upstream is required but failed.
pub fn upstream_tls_unavailable() -> Reply {
    Reply::new(
        451,
        esc(4, 7, 5),
        "Upstream TLS unavailable; try again later",
    )
}
/// `451 4.4.2` when the upstream connection broke after the message was sent.
pub fn upstream_lost_after_data() -> Reply {
    Reply::new(
        451,
        esc(4, 4, 2),
        "Connection to upstream lost after the message was sent; try again later",
    )
}
/// `451 4.4.1` when the upstream refused the session with `code`.
pub fn upstream_refused_session(code: u16) -> Reply {
    Reply::new(
        451,
        esc(4, 4, 1),
        format!("Upstream refused the session ({code}); try again later"),
    )
}
/// `451 4.4.1 Upstream unavailable`.
pub fn upstream_unavailable() -> Reply {
    Reply::new(451, esc(4, 4, 1), "Upstream unavailable; try again later")
}
/// `553 5.6.7` when the message needs SMTPUTF8 and the upstream lacks it.
pub fn upstream_no_smtputf8(peer: impl Display) -> Reply {
    Reply::new(
        553,
        esc(5, 6, 7),
        format!("Upstream {peer} does not support SMTPUTF8, which the message needs"),
    )
}
/// `554 5.6.3` when the message needs `extension` (BINARYMIME) and the
/// upstream lacks it.
pub fn upstream_conversion_unsupported(peer: impl Display, extension: &str) -> Reply {
    Reply::new(
        554,
        esc(5, 6, 3),
        format!(
            "Conversion required but not supported: upstream {peer} does not support {extension}"
        ),
    )
}
/// `550 5.1.1 <rcpt>: Recipient address rejected: undeliverable address:
/// <why>` (recipient verification; both texts already quoted).
pub fn recipient_undeliverable(recipient: &str, why: &str) -> Reply {
    Reply::new(
        550,
        esc(5, 1, 1),
        format!("<{recipient}>: Recipient address rejected: undeliverable address: {why}"),
    )
}
/// `450 4.1.1 <rcpt>: Recipient address rejected: unverified address:
/// <why>` (the upstream could not say; both texts already quoted).
pub fn recipient_unverified(recipient: &str, why: &str) -> Reply {
    Reply::new(
        450,
        esc(4, 1, 1),
        format!("<{recipient}>: Recipient address rejected: unverified address: {why}"),
    )
}

// ---- The plugin host's replies (src/plugin).

/// `451 4.3.0` for a failed plugin with the `tempfail` policy.
pub fn plugin_tempfail() -> Reply {
    Reply::new(
        451,
        esc(4, 3, 0),
        "Temporary local problem, try again later",
    )
}
/// `554 5.3.0` for a failed plugin with the `reject` policy.
pub fn plugin_reject() -> Reply {
    Reply::new(554, esc(5, 3, 0), "Permanent local problem")
}

/// At most `max` characters of `text`, control characters dropped (a
/// quoted upstream reply stays one short, printable line).
fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_keeps_class_and_drops_control_characters() {
        let up = Reply::new(550, esc(5, 1, 1), "no such user\u{7}");
        let out = relayed(&up, "RCPT <a@b>");
        assert_eq!(out.code(), 550);
        assert_eq!(out.enhanced(), Some(esc(5, 1, 1)));
        assert_eq!(out.lines(), ["RCPT <a@b>: upstream said 550 no such user"]);
        let odd = Reply::plain(354, "go on");
        let out = relayed(&odd, "DATA");
        assert_eq!(out.code(), 451);
        assert_eq!(out.enhanced(), Some(esc(4, 0, 0)));
    }

    #[test]
    fn quoted_texts_cannot_inject_lines() {
        let r = queued_as("id\r\n250 x");
        assert_eq!(r.to_bytes(), b"250 2.0.0 Ok: queued as id  250 x\r\n");
        let r = upstream_no_smtputf8("mx\n");
        assert!(Reply::is_safe_text(&r.text()));
    }
}
