//! The replies the engine sends on its own, one constructor each, so the
//! state machine reads as intent and the wire text lives in one place.

use super::reply::{EnhancedCode, Reply};

const fn esc(class: u8, subject: u16, detail: u16) -> EnhancedCode {
    EnhancedCode::new(class, subject, detail)
}

/// `220 <host> ESMTP wasmtp`.
pub fn greeting(host: &str) -> Reply {
    Reply::plain(220, format!("{host} ESMTP wasmtp"))
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
