//! Bounces: RFC 3464 delivery status notifications.
//!
//! A bounce is a `multipart/report; report-type=delivery-status` message
//! from `MAILER-DAEMON@<host>` to the envelope sender, with the null
//! reverse-path (so it can never bounce itself). It has three parts: a
//! human-readable explanation, the `message/delivery-status` part (one
//! per-recipient block per failed recipient), and the original message's
//! header (`text/rfc822-headers`, not the body, to keep bounces small). It
//! is spooled like any other message, so it is retried and survives
//! crashes. Messages from the null sender never cause a bounce.
//!
//! A delay warning ([`build_delay`]) has the same shape with
//! `Action: delayed` and `Will-Retry-Until:` for recipients still being
//! retried (`[delivery.spool] delay_warning_after`); at most one is sent
//! per message, never to the null sender.

use std::fmt::Write as _;

use crate::date::{rfc5322, rfc5322_secs};
use crate::ids::random_u64;

/// One permanently failed (or, in a delay warning, delayed) recipient.
#[derive(Debug, Clone)]
pub struct Failed {
    /// The recipient address.
    pub recipient: String,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// SMTP reply from the upstream (`Diagnostic-Code: smtp; ...`), if any.
    pub diagnostic: Option<String>,
    /// Why, in words (when there was no upstream reply, e.g. expiry).
    pub reason: String,
}

fn clean(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || !c.is_ascii() {
                ' '
            } else {
                c
            }
        })
        .take(max)
        .collect()
}

/// The header block of a message (up to the empty line), capped at 64 KiB.
pub fn header_block(message: &[u8]) -> &[u8] {
    let limit = message.len().min(64 * 1024);
    let head = &message[..limit];
    match head.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => &message[..i + 2],
        None => head,
    }
}

/// What a report says about its recipients.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Permanently failed: the message is returned.
    Failed,
    /// Still being retried, until this unix time (seconds).
    Delayed { retry_until: u64 },
}

/// Builds the bounce message (CRLF line endings) for `sender`'s message
/// `queue_id` accepted at `arrival` (unix seconds), from the MTA `host`
/// (`[server] hostname`).
pub fn build(
    host: &str,
    sender: &str,
    queue_id: &str,
    arrival: u64,
    failed: &[Failed],
    original: &[u8],
) -> Vec<u8> {
    report(
        Kind::Failed,
        host,
        sender,
        queue_id,
        arrival,
        failed,
        original,
    )
}

/// Builds a delay warning (RFC 3464 `Action: delayed`) for `sender`'s
/// message `queue_id` accepted at `arrival`, whose `delayed` recipients
/// are still retried until `retry_until` (unix seconds), from `host`.
pub fn build_delay(
    host: &str,
    sender: &str,
    queue_id: &str,
    arrival: u64,
    retry_until: u64,
    delayed: &[Failed],
    original: &[u8],
) -> Vec<u8> {
    report(
        Kind::Delayed { retry_until },
        host,
        sender,
        queue_id,
        arrival,
        delayed,
        original,
    )
}

fn report(
    kind: Kind,
    host: &str,
    sender: &str,
    queue_id: &str,
    arrival: u64,
    failed: &[Failed],
    original: &[u8],
) -> Vec<u8> {
    let (subject, explanation, action, part) = match kind {
        Kind::Failed => (
            "Undelivered Mail Returned to Sender",
            "could not be delivered to one or more\r\n\
             recipients. It has been returned to you."
                .to_string(),
            "failed",
            "Undelivered",
        ),
        Kind::Delayed { retry_until } => (
            "Delayed Mail (still being retried)",
            format!(
                "has not been delivered yet to one or\r\n\
                 more recipients. This is only a warning: delivery will be retried\r\n\
                 until {}. You do not need to send it again.",
                rfc5322_secs(retry_until)
            ),
            "delayed",
            "Delayed",
        ),
    };
    let boundary = format!("{:016x}/{}", random_u64(), host);
    let now = rfc5322(std::time::SystemTime::now());
    let arrival_date = rfc5322_secs(arrival);
    let mut m = String::with_capacity(2048);
    let _ = write!(
        m,
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: {subject}\r\n\
         Date: {now}\r\n\
         Message-ID: <{id}.bounce.{r:08x}@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host {host}.\r\n\
         \r\n\
         Your message (queue id {id}) {explanation}\r\n\
         \r\n",
        to = clean(sender, 256),
        id = queue_id,
        r = random_u64() as u32,
    );
    for f in failed {
        let _ = write!(
            m,
            "<{}>: {}\r\n",
            clean(&f.recipient, 256),
            clean(&f.reason, 400)
        );
    }
    let _ = write!(
        m,
        "\r\n--{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {host}\r\n\
         X-Wasmtp-Queue-ID: {queue_id}\r\n\
         Arrival-Date: {arrival_date}\r\n"
    );
    for f in failed {
        let _ = write!(
            m,
            "\r\nFinal-Recipient: rfc822; {}\r\nAction: {action}\r\nStatus: {}\r\n",
            clean(&f.recipient, 256),
            clean(&f.status, 16)
        );
        if let Kind::Delayed { retry_until } = kind {
            let _ = write!(m, "Will-Retry-Until: {}\r\n", rfc5322_secs(retry_until));
        }
        if let Some(d) = &f.diagnostic {
            let _ = write!(m, "Diagnostic-Code: smtp; {}\r\n", clean(d, 400));
        }
    }
    let _ = write!(
        m,
        "\r\n--{boundary}\r\n\
         Content-Description: {part} Message Headers\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n"
    );
    let mut out = m.into_bytes();
    let head = header_block(original);
    out.extend_from_slice(head);
    if !head.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_shape() {
        let b = build(
            "mx.example.test",
            "alice@example.org",
            "Q1",
            0,
            &[Failed {
                recipient: "bob@example.net".into(),
                status: "5.1.1".into(),
                diagnostic: Some("550 5.1.1 no such user\r\nInjected: x".into()),
                reason: "no such user".into(),
            }],
            b"Subject: hi\r\nFrom: alice@example.org\r\n\r\nsecret body\r\n",
        );
        let s = String::from_utf8(b).unwrap();
        assert!(s.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(s.contains(
            "Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ));
        assert!(s.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user  Injected: x\r\n"));
        assert!(!s.contains("\r\nInjected"));
        assert!(s.contains("Subject: hi\r\n"));
        assert!(!s.contains("secret body"));
        assert!(s.contains("To: <alice@example.org>"));
        assert!(s.contains("From: Mail Delivery System <MAILER-DAEMON@mx.example.test>"));
        // Every line ends with CRLF.
        assert!(!s.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn delay_warning_shape() {
        let b = build_delay(
            "mx.example.test",
            "alice@example.org",
            "Q2",
            0,
            86400,
            &[Failed {
                recipient: "slow@example.net".into(),
                status: "4.2.0".into(),
                diagnostic: Some("451 4.2.0 Later".into()),
                reason: "451 4.2.0 Later".into(),
            }],
            b"Subject: hi\r\n\r\nbody\r\n",
        );
        let s = String::from_utf8(b).unwrap();
        assert!(s.contains("Subject: Delayed Mail (still being retried)\r\n"));
        assert!(s.contains(
            "Final-Recipient: rfc822; slow@example.net\r\nAction: delayed\r\nStatus: 4.2.0\r\n\
             Will-Retry-Until: Fri, 02 Jan 1970 00:00:00 +0000\r\n"
        ));
        assert!(!s.contains("Action: failed"));
        assert!(s.contains("Subject: hi\r\n"));
        assert!(!s.replace("\r\n", "").contains('\n'));
    }
}
