//! Replies read from an upstream server, parsed from the wire.
//!
//! An upstream's reply is a [`Reply`], the type we send our own replies in:
//! both are a code, an optional enhanced code (the upstream's first line's)
//! and text lines without code or enhanced code. A bare CR or a NUL inside
//! an upstream's line becomes a space, so its text is safe to log, quote in
//! a DSN or relay to our client.

use crate::protocol::{EnhancedCode, Reply};

/// Longest reply (all lines) accepted from an upstream; more is a protocol error.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Outcome of parsing the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole reply and the number of bytes it used.
    Reply(Reply, usize),
    /// More bytes are needed.
    Incomplete,
    /// Not an SMTP reply.
    Invalid(String),
}

/// Parses one reply at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut pos = 0;
    let mut code = None;
    let mut enhanced = None;
    let mut lines = Vec::new();
    loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            if buf.len() > MAX_REPLY_BYTES {
                return Parsed::Invalid("reply too long".into());
            }
            return Parsed::Incomplete;
        };
        let mut line = &buf[pos..pos + nl];
        pos += nl + 1;
        if pos > MAX_REPLY_BYTES {
            return Parsed::Invalid("reply too long".into());
        }
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Parsed::Invalid(format!(
                "malformed reply line {:?}",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            ));
        }
        let c = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        if !(200..600).contains(&c) {
            return Parsed::Invalid(format!("reply code {c} out of range"));
        }
        if *code.get_or_insert(c) != c {
            return Parsed::Invalid("reply code changed within a multi-line reply".into());
        }
        let (last, text) = match line.get(3) {
            None => (true, &[][..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Parsed::Invalid("malformed reply separator".into()),
        };
        let mut text = String::from_utf8_lossy(text).into_owned();
        let first_word = text.split(' ').next().unwrap_or("");
        if let Some(e) = EnhancedCode::parse(first_word)
            && u16::from(e.class) == c / 100
        {
            if lines.is_empty() {
                enhanced = Some(e);
            }
            text = text[first_word.len()..].trim_start().to_string();
        }
        lines.push(text);
        if last {
            let code = code.unwrap_or(c);
            return Parsed::Reply(Reply::multiline(code, enhanced, lines), pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_multi_incomplete() {
        match parse(b"250 2.1.0 Ok\r\nrest") {
            Parsed::Reply(r, n) => {
                assert_eq!(r.code(), 250);
                assert_eq!(r.enhanced(), Some(EnhancedCode::new(2, 1, 0)));
                assert_eq!(r.lines(), ["Ok"]);
                assert_eq!(n, 14);
            }
            other => panic!("{other:?}"),
        }
        match parse(b"250-a.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n") {
            Parsed::Reply(r, _) => assert_eq!(r.lines(), ["a.example", "PIPELINING", "STARTTLS"]),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse(b"250-a\r\n250 b"), Parsed::Incomplete);
        assert!(matches!(parse(b"hello\r\n"), Parsed::Invalid(_)));
        assert!(matches!(parse(b"250-a\r\n251 b\r\n"), Parsed::Invalid(_)));
        assert!(matches!(parse(b"220\r\n"), Parsed::Reply(_, 5)));
    }

    #[test]
    fn bare_cr_and_nul_become_spaces() {
        match parse(b"550 5.1.1 no\rsuch\0user\r\n") {
            Parsed::Reply(r, _) => assert_eq!(r.lines(), ["no such user"]),
            other => panic!("{other:?}"),
        }
    }
}
