//! From what a plugin returned to a complete, checked [`Verdict`].
//!
//! A plugin's reply may leave the code, the enhanced code and the text to the
//! host; the host fills them in per verdict and hook. A code of the wrong
//! class for the verdict, a malformed enhanced code or one of another class,
//! text with CR, LF or NUL, an over-long line or too many lines make the
//! verdict invalid: that is a plugin failure, answered by its policy.

use std::borrow::Cow;

use super::bindings::{WitReply, WitVerdict};
use super::{FailurePolicy, Hook, Verdict};
use crate::protocol::{EnhancedCode, Reply, UnsafeText, replies};

/// Longest text of one reply line (512 octets on the wire, RFC 5321
/// section 4.5.3.1.5, less the code, the enhanced code and CRLF).
pub const MAX_LINE: usize = 490;
/// Most lines in one reply.
pub const MAX_LINES: usize = 32;

#[derive(Clone, Copy)]
enum Kind {
    Deny,
    DenySoft,
    DenyDisconnect,
    DenySoftDisconnect,
    Done,
}

/// The default reply for a verdict in a hook.
fn default_reply(kind: Kind, hook: &Hook<'_>) -> (u16, &'static str, &'static str) {
    let late = matches!(
        hook,
        Hook::Connect
            | Hook::Data
            | Hook::DataHeaders
            | Hook::BodyChunk(..)
            | Hook::DataPost
            | Hook::Queue
    );
    match (kind, hook) {
        (Kind::Deny | Kind::DenyDisconnect, Hook::Auth(..)) => {
            (535, "5.7.8", "Authentication credentials invalid")
        }
        (Kind::DenySoft | Kind::DenySoftDisconnect, Hook::Auth(..)) => {
            (454, "4.7.0", "Temporary authentication failure")
        }
        (Kind::Deny, _) if late => (554, "5.7.1", "Denied by policy"),
        (Kind::Deny, _) => (550, "5.7.1", "Denied by policy"),
        (Kind::DenyDisconnect, _) => (554, "5.7.1", "Denied by policy, closing connection"),
        (Kind::DenySoft, Hook::Connect) => (421, "4.7.0", "Try again later, closing connection"),
        (Kind::DenySoft, _) => (
            451,
            "4.7.1",
            "Temporarily denied by policy, try again later",
        ),
        (Kind::DenySoftDisconnect, _) => (421, "4.7.0", "Try again later, closing connection"),
        (Kind::Done, _) => (250, "2.0.0", "Ok"),
    }
}

/// Checks and completes a plugin's verdict for `hook`.
pub(crate) fn check(v: WitVerdict, hook: &Hook<'_>) -> Result<Verdict, String> {
    let (kind, reply) = match v {
        WitVerdict::Declined => return Ok(Verdict::Declined),
        WitVerdict::Ok => return Ok(Verdict::Ok),
        WitVerdict::Deny(r) => (Kind::Deny, r),
        WitVerdict::DenySoft(r) => (Kind::DenySoft, r),
        WitVerdict::DenyDisconnect(r) => (Kind::DenyDisconnect, r),
        WitVerdict::DenySoftDisconnect(r) => (Kind::DenySoftDisconnect, r),
        WitVerdict::Done(r) => (Kind::Done, r),
    };
    let reply = complete(kind, reply, hook)?;
    Ok(match kind {
        Kind::Deny => Verdict::Deny(reply),
        Kind::DenySoft => Verdict::DenySoft(reply),
        Kind::DenyDisconnect => Verdict::DenyDisconnect(reply),
        Kind::DenySoftDisconnect => Verdict::DenySoftDisconnect(reply),
        Kind::Done => Verdict::Done(reply),
    })
}

fn complete(kind: Kind, r: WitReply, hook: &Hook<'_>) -> Result<Reply, String> {
    let (dcode, denhanced, dtext) = default_reply(kind, hook);
    let code = r.code.unwrap_or(dcode);
    let classes: &[u16] = match kind {
        Kind::Deny | Kind::DenyDisconnect => &[5],
        Kind::DenySoft | Kind::DenySoftDisconnect => &[4],
        Kind::Done => &[2, 3, 4, 5],
    };
    if !(200..=599).contains(&code) || !classes.contains(&(code / 100)) {
        return Err(format!("reply code {code} does not fit the verdict"));
    }
    let enhanced = match (&r.enhanced, r.code) {
        (Some(e), _) => {
            let parsed =
                EnhancedCode::parse(e).ok_or_else(|| format!("malformed enhanced code {e:?}"))?;
            if u16::from(parsed.class) != code / 100 {
                return Err(format!(
                    "enhanced code {e} does not match reply code {code}"
                ));
            }
            Some(parsed)
        }
        // The host's default code: its default enhanced code.
        (None, None) => EnhancedCode::parse(denhanced),
        // The plugin's own code: the generic enhanced code of its class.
        (None, Some(_)) if code / 100 == 3 => None,
        (None, Some(_)) => Some(EnhancedCode::new((code / 100) as u8, 0, 0)),
    };
    if r.lines.len() > MAX_LINES {
        return Err(format!(
            "reply has {} lines (at most {MAX_LINES})",
            r.lines.len()
        ));
    }
    for line in &r.lines {
        if !Reply::is_safe_text(line) {
            return Err(UnsafeText.to_string());
        }
        if line.len() > MAX_LINE {
            return Err(format!("reply line longer than {MAX_LINE} octets"));
        }
    }
    let lines: Vec<Cow<'static, str>> = if r.lines.is_empty() {
        vec![Cow::Borrowed(dtext)]
    } else {
        r.lines.into_iter().map(Cow::Owned).collect()
    };
    Reply::checked(code, enhanced, lines).map_err(|e| e.to_string())
}

/// What the chain answers when a plugin fails; `None` for `skip`.
pub(crate) fn failure_verdict(policy: FailurePolicy) -> Option<Verdict> {
    match policy {
        FailurePolicy::Skip => None,
        FailurePolicy::Tempfail => Some(Verdict::DenySoft(replies::plugin_tempfail())),
        FailurePolicy::Reject => Some(Verdict::Deny(replies::plugin_reject())),
    }
}

impl Verdict {
    /// The reply of a deny-class verdict (what `deny` hooks are told about).
    pub fn deny_reply(&self) -> Option<&Reply> {
        match self {
            Verdict::Deny(r)
            | Verdict::DenySoft(r)
            | Verdict::DenyDisconnect(r)
            | Verdict::DenySoftDisconnect(r) => Some(r),
            _ => None,
        }
    }

    /// The reply carried by the verdict, if any.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Verdict::Declined | Verdict::Ok => None,
            Verdict::Done(r) => Some(r),
            other => other.deny_reply(),
        }
    }

    /// True for the verdicts that close the connection after the reply.
    pub fn disconnects(&self) -> bool {
        matches!(
            self,
            Verdict::DenyDisconnect(_) | Verdict::DenySoftDisconnect(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(code: Option<u16>, enhanced: Option<&str>, lines: &[&str]) -> WitReply {
        WitReply {
            code,
            enhanced: enhanced.map(str::to_string),
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn defaults_per_hook() {
        let v = check(
            WitVerdict::Deny(r(None, None, &[])),
            &Hook::Rcpt("a@b", &[]),
        )
        .unwrap();
        assert_eq!(v.reply().unwrap().to_string(), "550 5.7.1 Denied by policy");
        let v = check(
            WitVerdict::Deny(r(None, Some("5.7.0"), &["no"])),
            &Hook::DataPost,
        )
        .unwrap();
        assert_eq!(v.reply().unwrap().to_string(), "554 5.7.0 no");
        let v = check(
            WitVerdict::DenySoft(r(Some(450), None, &["later"])),
            &Hook::Mail("", &[]),
        )
        .unwrap();
        assert_eq!(v.reply().unwrap().to_string(), "450 4.0.0 later");
        let v = check(WitVerdict::Done(r(Some(354), None, &["go"])), &Hook::Data).unwrap();
        assert_eq!(v.reply().unwrap().to_string(), "354 go");
    }

    #[test]
    fn refused_replies() {
        let hook = Hook::Rcpt("a@b", &[]);
        for bad in [
            WitVerdict::Deny(r(Some(250), None, &[])),
            WitVerdict::Deny(r(Some(450), None, &[])),
            WitVerdict::DenySoft(r(Some(550), None, &[])),
            WitVerdict::Deny(r(Some(550), Some("4.1.1"), &[])),
            WitVerdict::Deny(r(None, Some("5.x.1"), &[])),
            WitVerdict::Deny(r(None, None, &["a\r\nRCPT TO:<x>"])),
            WitVerdict::Deny(r(None, None, &["nul\0"])),
            WitVerdict::Done(r(Some(700), None, &[])),
            WitVerdict::Done(r(Some(199), None, &[])),
        ] {
            assert!(check(bad.clone(), &hook).is_err(), "{bad:?}");
        }
        let long = "x".repeat(MAX_LINE + 1);
        assert!(check(WitVerdict::Deny(r(None, None, &[&long])), &hook).is_err());
    }

    #[test]
    fn failure_policies() {
        assert_eq!(failure_verdict(FailurePolicy::Skip), None);
        let t = failure_verdict(FailurePolicy::Tempfail).unwrap();
        assert!(t.reply().unwrap().to_string().starts_with("451 4.3.0 "));
        let t = failure_verdict(FailurePolicy::Reject).unwrap();
        assert!(t.reply().unwrap().to_string().starts_with("554 5.3.0 "));
    }
}
