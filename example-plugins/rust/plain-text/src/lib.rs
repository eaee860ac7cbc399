//! The question the MIME-aware example plugins (content-filter,
//! attachment-block, disclaimer) ask before parsing a whole message: is the
//! body one plain-text part whose decoded text is the body itself?
//!
//! Most mail a gateway sees is either that (no MIME structure at all) or
//! multipart. Parsing a 100 KiB single-part body with `mail-parser` only to
//! learn that it is one text part costs far more than the plugins' real
//! work, so each of them parses the header block alone (a few hundred
//! octets) and takes the whole-message path only when the body needs it.
//! The rules are `mail-parser`'s own (`parsers/message.rs`), so both paths
//! see the same text:
//! - the top-level `Content-Type` is absent or `text/plain` (RFC 2045's
//!   default), so the body is the message's one text part;
//! - `Content-Disposition` does not say `attachment`, so that part is the
//!   text body, not an attachment;
//! - `Content-Transfer-Encoding` is neither base64 nor quoted-printable
//!   (`mail-parser` treats every other value as "none");
//! - the charset maps the octets to themselves: an ASCII body under an
//!   ASCII-compatible charset, or valid UTF-8 declared as UTF-8 or not
//!   declared at all.

use mail_parser::{Message, MessageParser, MimeHeaders};

pub mod mime;

/// Largest piece asked of the host's `read-body` per call.
pub const READ_PIECE: u32 = 1 << 20;

/// The whole message for a MIME parse, as one buffer: `head` (the header
/// block) followed by the `size`-octet body, read straight into it through
/// `read(offset, len)` (the host's `read-body`). The body is never held
/// twice: a 30 MiB message costs 30 MiB (plus one 1 MiB piece) of the
/// plugin's memory, not the 60 to 90 MiB of reading the body into its own
/// buffer and then appending it.
pub fn whole_message(
    mut head: Vec<u8>,
    size: u64,
    mut read: impl FnMut(u64, u32) -> Vec<u8>,
) -> Vec<u8> {
    let start = head.len();
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    head.reserve_exact(size);
    while head.len() - start < size {
        let piece = read((head.len() - start) as u64, READ_PIECE);
        if piece.is_empty() {
            break;
        }
        head.extend_from_slice(&piece);
    }
    head
}

/// Charsets under which an ASCII body decodes to itself.
const ASCII_COMPATIBLE: &[&str] = &[
    "us-ascii",
    "ascii",
    "utf-8",
    "utf8",
    "iso-8859-1",
    "iso-8859-15",
    "latin1",
    "windows-1252",
];

/// The header block (ending with its empty line) parsed as a message with
/// an empty body; `None` when `mail-parser` finds no message in it.
pub fn parse_head(head: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(head)
}

/// Whether the message whose header block is `head` has a body that is one
/// plain-text part, not an attachment, with no transfer encoding to undo.
pub fn single_plain_part(head: &Message<'_>) -> bool {
    let plain = head.content_type().is_none_or(|ct| {
        ct.ctype().eq_ignore_ascii_case("text")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("plain"))
    });
    let inline = head
        .content_disposition()
        .is_none_or(|d| !d.is_attachment());
    let unencoded = head.content_transfer_encoding().is_none_or(|cte| {
        !cte.eq_ignore_ascii_case("base64") && !cte.eq_ignore_ascii_case("quoted-printable")
    });
    plain && inline && unencoded
}

/// `body` as text when decoding it under the header's charset would give
/// the same octets back; `None` when only a full parse can say.
pub fn identity_text<'b>(head: &Message<'_>, body: &'b [u8]) -> Option<&'b str> {
    let charset = head
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .map(str::to_ascii_lowercase);
    if body.is_ascii() {
        let compatible = charset
            .as_deref()
            .is_none_or(|c| ASCII_COMPATIBLE.contains(&c));
        return if compatible {
            std::str::from_utf8(body).ok()
        } else {
            None
        };
    }
    match charset.as_deref() {
        None | Some("utf-8" | "utf8") => std::str::from_utf8(body).ok(),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(head: &str) -> bool {
        parse_head(head.as_bytes()).is_some_and(|m| single_plain_part(&m))
    }

    #[test]
    fn recognises_single_plain_parts() {
        assert!(plain("Subject: x\r\n\r\n"));
        assert!(plain(
            "Subject: x\r\nContent-Type: TEXT/Plain; charset=utf-8\r\n\r\n"
        ));
        assert!(plain(
            "Subject: x\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        ));
        assert!(plain("Subject: x\r\nContent-Disposition: inline\r\n\r\n"));
        assert!(!plain("Content-Type: multipart/mixed; boundary=x\r\n\r\n"));
        assert!(!plain("Content-Type: text/html\r\n\r\n"));
        assert!(!plain("Content-Type: application/x-msdownload\r\n\r\n"));
        assert!(!plain("Content-Type: message/rfc822\r\n\r\n"));
        assert!(!plain(
            "Subject: x\r\nContent-Transfer-Encoding: Base64\r\n\r\n"
        ));
        assert!(!plain(
            "Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        ));
        assert!(!plain(
            "Subject: x\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\n"
        ));
    }

    #[test]
    fn identity_only_when_decoding_changes_nothing() {
        let head = |h: &'static str| parse_head(h.as_bytes());
        let none = head("Subject: x\r\n\r\n").unwrap();
        let utf8 = head("Content-Type: text/plain; charset=UTF-8\r\n\r\n").unwrap();
        let latin = head("Content-Type: text/plain; charset=iso-8859-2\r\n\r\n").unwrap();
        let utf16 = head("Content-Type: text/plain; charset=utf-16\r\n\r\n").unwrap();
        assert_eq!(identity_text(&none, b"hi\r\n"), Some("hi\r\n"));
        assert_eq!(
            identity_text(&utf8, "h\u{e9}\r\n".as_bytes()),
            Some("h\u{e9}\r\n")
        );
        assert_eq!(
            identity_text(&none, "h\u{e9}\r\n".as_bytes()),
            Some("h\u{e9}\r\n")
        );
        assert_eq!(identity_text(&none, b"h\xe9\r\n"), None);
        assert_eq!(identity_text(&latin, "h\u{e9}\r\n".as_bytes()), None);
        assert_eq!(identity_text(&utf16, b"hi\r\n"), None);
    }
}
