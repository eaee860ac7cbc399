//! The MIME structure of a message without decoding it (RFC 2045, RFC 2046
//! 5.1.1): an entity's header block and body, and a multipart body's parts,
//! as slices of the raw message. For plugins that need names, types or
//! offsets of parts but not their decoded contents: a 30 MiB message of
//! base64 attachments costs a scan for boundaries, not a decode.

use mail_parser::{Message, MimeHeaders};
use memchr::memmem;

/// An entity's media type and subtype, lowercase, from its parsed header
/// block; `text/plain` when it has no Content-Type (RFC 2045 5.2).
pub fn media_type(head: &Message<'_>) -> (String, String) {
    match head.content_type() {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("").to_ascii_lowercase(),
        ),
        None => ("text".to_string(), "plain".to_string()),
    }
}

/// An entity's header block (with its terminating empty line) and body. An
/// entity without an empty line is all header block. Only the header lines
/// are scanned, never the body (which can be megabytes).
pub fn split_entity(entity: &[u8]) -> (&[u8], &[u8]) {
    let mut at = 0;
    while at < entity.len() {
        let line_end = match memchr::memchr(b'\n', &entity[at..]) {
            Some(n) => at + n + 1,
            None => entity.len(),
        };
        let line = &entity[at..line_end];
        if line == b"\r\n" || line == b"\n" {
            return entity.split_at(line_end);
        }
        at = line_end;
    }
    (entity, &[])
}

/// The body parts of a multipart body (RFC 2046 5.1.1): the text between
/// delimiter lines `--boundary` that start a line, up to the close
/// delimiter `--boundary--`; the preamble and epilogue are not parts. A
/// body that never closes runs to its end.
pub fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<&'a [u8]> {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&delimiter);
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while let Some(i) = finder.find(&body[pos..]) {
        let at = pos + i;
        pos = at + delimiter.len();
        let line_start = at == 0 || body[at - 1] == b'\n';
        let rest = &body[pos..];
        // `--boundary` must end there: a longer boundary is another one.
        let ends = rest.is_empty()
            || rest.starts_with(b"--")
            || matches!(rest[0], b'\r' | b'\n' | b' ' | b'\t');
        if !line_start || !ends {
            continue;
        }
        if let Some(s) = start {
            // The CRLF before the delimiter belongs to the delimiter.
            let mut end = at;
            if end > s && body[end - 1] == b'\n' {
                end -= 1;
                if end > s && body[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            parts.push(&body[s..end]);
        }
        if rest.starts_with(b"--") {
            return parts;
        }
        match memchr::memchr(b'\n', rest) {
            Some(n) => {
                pos += n + 1;
                start = Some(pos);
            }
            None => return parts,
        }
    }
    if let Some(s) = start {
        parts.push(&body[s..]);
    }
    parts
}

/// Where `part` (a slice of `whole`) starts in `whole`.
pub fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_between_delimiter_lines() {
        let body = b"preamble\r\n--B\r\nA: 1\r\n\r\none\r\n--B \r\n\r\ntwo\r\n--BX\r\nstill two\r\n--B--\r\nepilogue\r\n--B\r\nnot a part";
        let parts = split_multipart(body, b"B");
        assert_eq!(
            parts,
            vec![
                &b"A: 1\r\n\r\none"[..],
                &b"\r\ntwo\r\n--BX\r\nstill two"[..]
            ]
        );
    }

    #[test]
    fn an_unclosed_multipart_runs_to_the_end() {
        let parts = split_multipart(b"--B\r\n\r\nx\r\n--B\r\n\r\ny", b"B");
        assert_eq!(parts, vec![&b"\r\nx"[..], &b"\r\ny"[..]]);
        assert!(split_multipart(b"no delimiter", b"B").is_empty());
        assert!(split_multipart(b"x--B\r\n", b"B").is_empty());
    }

    #[test]
    fn offsets_of_slices() {
        let whole = b"abcdef";
        assert_eq!(offset_in(whole, &whole[2..4]), 2);
    }

    #[test]
    fn entity_split_at_the_first_empty_line() {
        assert_eq!(
            split_entity(b"A: 1\r\n\r\nbody"),
            (&b"A: 1\r\n\r\n"[..], &b"body"[..])
        );
        assert_eq!(split_entity(b"\r\nbody"), (&b"\r\n"[..], &b"body"[..]));
        assert_eq!(split_entity(b"A: 1\r\n"), (&b"A: 1\r\n"[..], &b""[..]));
    }
}
