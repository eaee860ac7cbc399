//! The host-parsed MIME view of a message (the `mime` WIT interface).
//!
//! A message is parsed once, with `mail-parser`, the first time a plugin
//! asks for its structure; the result ([`MimeTree`]) is cached on the
//! [`crate::message::Message`] and dropped when a plugin replaces the body
//! or edits a `Content-*` or `MIME-Version` header field.
//!
//! The tree is flat: parts in depth-first order, each naming its parent,
//! the parts of a nested message (`message/rfc822`) following the part
//! that holds it. Every leaf keeps its transfer-decoded octets (base64 and
//! quoted-printable undone) and, for `text/*`, its text converted from its
//! charset to UTF-8 (unknown charsets are read as UTF-8, invalid octets
//! replaced). What is kept is bounded by the message size (a few times
//! over, for charset conversion); the part count and the nesting depth are
//! bounded by [`MAX_PARTS`] and [`MAX_DEPTH`], past which the view is the
//! error [`MimeError::TooComplex`] rather than a truncated tree a filter
//! could be fooled by.

use std::ops::Range;

use bytes::Bytes;
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, MessageParser, MimeHeaders, PartType};

/// Most MIME parts (every entity: multiparts, leaves, nested messages) a
/// message may have for the view to describe it.
pub const MAX_PARTS: usize = 1000;
/// Deepest nesting of parts (the top-level entity is depth 0).
pub const MAX_DEPTH: u32 = 32;

/// What a part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// `multipart/*`: its children follow it.
    Multipart,
    /// `message/rfc822` or `message/global`: the enclosed message's top
    /// entity follows it as its child.
    Message,
    /// `text/*`: decoded text is available.
    Text,
    /// Anything else.
    Binary,
}

/// One MIME entity of a message.
#[derive(Debug, Clone)]
pub struct Part {
    /// Index of the parent part; `None` for the top-level entity.
    pub parent: Option<u32>,
    /// Nesting depth (0 for the top-level entity).
    pub depth: u32,
    /// What the part holds.
    pub kind: PartKind,
    /// `type/subtype`, lower-cased (`text/plain` when absent, RFC 2045 5.2).
    pub content_type: String,
    /// The `charset` parameter, lower-cased, if given.
    pub charset: Option<String>,
    /// The `Content-Disposition` type, lower-cased (`attachment`, `inline`).
    pub disposition: Option<String>,
    /// The file name: `Content-Disposition` `filename`, else `Content-Type`
    /// `name`, with RFC 2231 and RFC 2047 encodings decoded.
    pub filename: Option<String>,
    /// `Content-ID` without angle brackets.
    pub content_id: Option<String>,
    /// `Content-Transfer-Encoding`, lower-cased (`7bit` when absent).
    pub transfer_encoding: String,
    /// Octets of the body as written in the message (still encoded).
    pub encoded_size: u64,
    /// True when the body could not be decoded cleanly (bad base64 or
    /// quoted-printable, a charset the host does not know).
    pub encoding_problem: bool,
    /// Where the part's body is in the message body (`read-body`
    /// offsets); `None` inside a nested message that was itself encoded.
    pub body_range: Option<Range<u64>>,
    /// The part's own header fields: name and unfolded value.
    pub headers: Vec<(String, String)>,
    /// The transfer-decoded body (empty for multiparts).
    pub content: Bytes,
    /// For `text/*`, the body converted to UTF-8.
    pub text: Option<String>,
}

/// Why a message has no MIME view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MimeError {
    /// Over [`MAX_PARTS`] or [`MAX_DEPTH`].
    #[error("{0}")]
    TooComplex(String),
    /// Nothing the parser recognises as a message.
    #[error("no MIME entity found in the message")]
    Unparsable,
}

/// The parts of one message, depth-first.
#[derive(Debug, Clone, Default)]
pub struct MimeTree {
    /// Parts in depth-first order; index 0 is the top-level entity.
    pub parts: Vec<Part>,
}

fn too_many() -> MimeError {
    MimeError::TooComplex(format!("the message has more than {MAX_PARTS} MIME parts"))
}

fn too_deep() -> MimeError {
    MimeError::TooComplex(format!(
        "the message nests MIME parts deeper than {MAX_DEPTH}"
    ))
}

/// Bounds check before the parser runs, in one pass over the octets:
/// every multipart declares a `boundary=` parameter, so more declarations
/// than [`MAX_PARTS`] means more parts than allowed, and the parser (whose
/// work grows with the nesting of multiparts) never sees such a message.
fn prescan(raw: &[u8]) -> Result<(), MimeError> {
    let declared = memchr::memchr_iter(b'=', raw)
        .filter(|&p| {
            p >= 8
                && raw
                    .get(p - 8..p)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"boundary"))
        })
        .count();
    if declared > MAX_PARTS {
        return Err(too_many());
    }
    Ok(())
}

/// Parses `raw` (header section and body, as delivered) whose body starts
/// at `body_start`.
pub fn parse(raw: &[u8], body_start: usize) -> Result<MimeTree, MimeError> {
    prescan(raw)?;
    let parsed = MessageParser::default()
        .parse(raw)
        .ok_or(MimeError::Unparsable)?;
    let mut tree = MimeTree::default();
    let base = Some(-(body_start as i64));
    flatten(&parsed, raw, base, None, 0, &mut tree)?;
    Ok(tree)
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Unfolds a raw header value: CRLFs removed, surrounding white space trimmed.
fn unfold(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    for &b in raw {
        if b != b'\r' && b != b'\n' {
            out.push(b);
        }
    }
    String::from_utf8_lossy(&out).trim().to_string()
}

/// Transfer-decoded octets of a text part from its encoded body (the
/// parser keeps only the charset-converted text of those).
fn decode_transfer(encoding: Encoding, encoded: &[u8]) -> Vec<u8> {
    match encoding {
        Encoding::Base64 => base64_decode(encoded).unwrap_or_default(),
        Encoding::QuotedPrintable => quoted_printable_decode(encoded).unwrap_or_default(),
        Encoding::None => encoded.to_vec(),
    }
}

/// Appends the parts of `msg` (whose bytes are `raw`) to `tree`, the top
/// one under `parent` at `depth`. `base` maps an offset in `raw` to an
/// offset in the outer message body (`None` when `raw` is a decoded copy).
fn flatten(
    msg: &mail_parser::Message<'_>,
    raw: &[u8],
    base: Option<i64>,
    parent: Option<u32>,
    depth: u32,
    tree: &mut MimeTree,
) -> Result<(), MimeError> {
    // Parent (within this message) and depth of each part, from the
    // multipart child lists: parts come depth-first, parents first.
    let mut place: Vec<(Option<u32>, u32)> = vec![(parent, depth); msg.parts.len()];
    for (id, part) in msg.parts.iter().enumerate() {
        if tree.parts.len() >= MAX_PARTS {
            return Err(too_many());
        }
        let (parent, depth) = place.get(id).copied().unwrap_or((parent, depth));
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let index = tree.parts.len() as u32;
        if let PartType::Multipart(children) = &part.body {
            for &c in children {
                if let Some(p) = place.get_mut(c as usize)
                    && c as usize > id
                {
                    *p = (Some(index), depth + 1);
                }
            }
        }
        let ct = part.content_type();
        let content_type = match ct {
            Some(ct) => match ct.subtype() {
                Some(sub) => lower(&format!("{}/{}", ct.ctype(), sub)),
                None => lower(ct.ctype()),
            },
            None => "text/plain".to_string(),
        };
        let kind = match &part.body {
            PartType::Multipart(_) => PartKind::Multipart,
            PartType::Message(_) => PartKind::Message,
            PartType::Text(_) | PartType::Html(_) => PartKind::Text,
            PartType::Binary(_) | PartType::InlineBinary(_) => PartKind::Binary,
        };
        // The parser leaves `offset_end` at 0 for the last part of a nested
        // message: that part runs to the end of the message.
        let end = match part.offset_end as usize {
            0 => raw.len(),
            e => e,
        };
        let body_at = part.offset_body as usize..end.max(part.offset_body as usize);
        let encoded = raw.get(body_at.clone()).unwrap_or_default();
        let body_range = base.and_then(|b| {
            let start = u64::try_from(body_at.start as i64 + b).ok()?;
            let end = u64::try_from(body_at.end as i64 + b).ok()?;
            Some(start..end)
        });
        let (content, text) = match &part.body {
            PartType::Text(t) | PartType::Html(t) => (
                Bytes::from(decode_transfer(part.encoding, encoded)),
                Some(t.to_string()),
            ),
            PartType::Binary(b) | PartType::InlineBinary(b) => (Bytes::copy_from_slice(b), None),
            PartType::Message(m) => (Bytes::copy_from_slice(m.raw_message()), None),
            PartType::Multipart(_) => (Bytes::new(), None),
        };
        let headers = part
            .headers
            .iter()
            .map(|h| {
                let value = raw
                    .get(h.offset_start as usize..h.offset_end as usize)
                    .unwrap_or_default();
                (h.name.as_str().to_string(), unfold(value))
            })
            .collect();
        tree.parts.push(Part {
            parent,
            depth,
            kind,
            content_type,
            charset: ct.and_then(|c| c.attribute("charset")).map(lower),
            disposition: part.content_disposition().map(|d| lower(d.ctype())),
            filename: part.attachment_name().map(str::to_string),
            content_id: part
                .content_id()
                .map(|id| id.trim_matches(['<', '>']).to_string()),
            transfer_encoding: part
                .content_transfer_encoding()
                .map_or_else(|| "7bit".to_string(), lower),
            encoded_size: encoded.len() as u64,
            encoding_problem: part.is_encoding_problem,
            body_range,
            headers,
            content,
            text,
        });
        if let PartType::Message(nested) = &part.body {
            // Not encoded: the nested message is the body itself, so its
            // offsets map to the outer body; decoded, they do not.
            let inner_base = match part.encoding {
                Encoding::None => base.map(|b| b + body_at.start as i64),
                _ => None,
            };
            flatten(
                nested,
                nested.raw_message(),
                inner_base,
                Some(index),
                depth + 1,
                tree,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(msg: &str) -> Result<MimeTree, MimeError> {
        let raw = msg.replace('\n', "\r\n");
        let body_start = raw.find("\r\n\r\n").map_or(raw.len(), |p| p + 4);
        parse(raw.as_bytes(), body_start)
    }

    #[test]
    fn nested_multipart_with_encoded_names_and_charsets() {
        let t = tree(concat!(
            "From: a@b.example\n",
            "Content-Type: multipart/mixed; boundary=\"outer\"\n\n",
            "--outer\n",
            "Content-Type: multipart/alternative; boundary=\"inner\"\n\n",
            "--inner\n",
            "Content-Type: text/plain; charset=iso-8859-1\n",
            "Content-Transfer-Encoding: quoted-printable\n\n",
            "caf=E9\n",
            "--inner\n",
            "Content-Type: text/html; charset=koi8-r\n",
            "Content-Transfer-Encoding: base64\n\n",
            "8NLJ18XU\n",
            "--inner--\n",
            "--outer\n",
            "Content-Type: application/octet-stream\n",
            "Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.exe\n",
            "Content-Transfer-Encoding: base64\n\n",
            "TVqQAA==\n",
            "--outer\n",
            "Content-Type: application/pdf; name=\"=?utf-8?B?w6l0w6kucGRm?=\"\n",
            "Content-Disposition: attachment\n\n",
            "%PDF\n",
            "--outer--\n",
        ))
        .unwrap();
        let p = &t.parts;
        assert_eq!(p.len(), 6);
        assert_eq!(p[0].content_type, "multipart/mixed");
        assert_eq!((p[1].parent, p[1].depth), (Some(0), 1));
        assert_eq!((p[2].parent, p[2].depth), (Some(1), 2));
        assert_eq!(p[2].text.as_deref(), Some("café"));
        assert_eq!(&p[2].content[..], b"caf\xe9");
        assert_eq!(p[2].charset.as_deref(), Some("iso-8859-1"));
        assert_eq!(p[3].text.as_deref(), Some("Привет"));
        assert_eq!(p[3].transfer_encoding, "base64");
        assert_eq!((p[4].parent, p[4].depth), (Some(0), 1));
        assert_eq!(p[4].filename.as_deref(), Some("résumé.exe"));
        assert_eq!(&p[4].content[..], b"MZ\x90\x00");
        assert_eq!(p[4].disposition.as_deref(), Some("attachment"));
        assert_eq!(p[5].filename.as_deref(), Some("été.pdf"));
    }

    #[test]
    fn body_ranges_point_into_the_body() {
        let raw = concat!(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n",
            "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
        );
        let start = raw.find("\r\n\r\n").unwrap() + 4;
        let t = parse(raw.as_bytes(), start).unwrap();
        let body = &raw[start..];
        let r = t.parts[1].body_range.clone().unwrap();
        assert_eq!(&body[r.start as usize..r.end as usize], "hello");
    }

    #[test]
    fn nested_message_parts_follow_their_holder() {
        let t = tree(concat!(
            "Content-Type: multipart/mixed; boundary=b\n\n",
            "--b\nContent-Type: message/rfc822\n\n",
            "Subject: inner\nContent-Type: application/x-msdownload; name=x.exe\n\nMZ\n",
            "--b--\n",
        ))
        .unwrap();
        let kinds: Vec<_> = t
            .parts
            .iter()
            .map(|p| (p.kind, p.parent, p.depth))
            .collect();
        assert_eq!(
            kinds,
            [
                (PartKind::Multipart, None, 0),
                (PartKind::Message, Some(0), 1),
                (PartKind::Binary, Some(1), 2)
            ]
        );
        assert_eq!(t.parts[2].filename.as_deref(), Some("x.exe"));
    }

    #[test]
    fn hostile_messages_get_an_answer_or_an_error() {
        // 10,000 parts.
        let mut many = String::from("Content-Type: multipart/mixed; boundary=b\n\n");
        for _ in 0..10_000 {
            many.push_str("--b\nContent-Type: text/plain\n\nx\n");
        }
        many.push_str("--b--\n");
        assert_eq!(tree(&many).unwrap_err(), too_many());
        // Deep nesting, never closed.
        let mut deep = String::new();
        for i in 0..2000 {
            deep.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"
            ));
        }
        deep.push_str("Content-Type: text/plain\n\nx\n");
        assert!(matches!(tree(&deep), Err(MimeError::TooComplex(_))));
        let mut deep40 = String::new();
        for i in 0..40 {
            deep40.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"
            ));
        }
        deep40.push_str("Content-Type: text/plain\n\nx\n");
        assert_eq!(tree(&deep40).unwrap_err(), too_deep());
        // Broken boundary, bad base64, unknown charset: an answer.
        let t = tree(concat!(
            "Content-Type: multipart/mixed; boundary=nope\n\n",
            "--other\nContent-Type: text/plain\n\nx\n",
        ))
        .unwrap();
        assert!(!t.parts.is_empty());
        let t = tree(concat!(
            "Content-Type: text/plain; charset=x-no-such-charset\n",
            "Content-Transfer-Encoding: base64\n\n",
            "!!!not base64@@@\n",
        ))
        .unwrap();
        assert_eq!(t.parts.len(), 1);
        assert_eq!(t.parts[0].charset.as_deref(), Some("x-no-such-charset"));
    }
}
