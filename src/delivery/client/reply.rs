//! Replies read from an upstream server, parsed from the wire.

use crate::protocol::{EnhancedCode, Reply};

/// Longest reply (all lines) accepted from an upstream; more is a protocol error.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// One reply from an upstream: code, optional enhanced code, text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamReply {
    /// Three-digit code.
    pub code: u16,
    /// Enhanced status code from the first line, when the upstream sent one.
    pub enhanced: Option<EnhancedCode>,
    /// Text of each line without code, separator and enhanced code.
    pub lines: Vec<String>,
}

/// Outcome of parsing the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole reply and the number of bytes it used.
    Reply(UpstreamReply, usize),
    /// More bytes are needed.
    Incomplete,
    /// Not an SMTP reply.
    Invalid(String),
}

impl UpstreamReply {
    /// 2, 3, 4 or 5.
    pub fn class(&self) -> u16 {
        self.code / 100
    }
    /// 2xx.
    pub fn is_success(&self) -> bool {
        self.class() == 2
    }
    /// 4xx.
    pub fn is_transient(&self) -> bool {
        self.class() == 4
    }
    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        self.class() == 5
    }
    /// All lines joined by a space (for logs, reports and DSNs).
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
    /// `code enhanced text` on one line (for logs, reports and DSNs).
    pub fn one_line(&self) -> String {
        match self.enhanced {
            Some(e) => format!("{} {} {}", self.code, e, self.text()),
            None => format!("{} {}", self.code, self.text()),
        }
    }
    /// The enhanced code, or `class.0.0` when the upstream sent none.
    pub fn enhanced_or_default(&self) -> EnhancedCode {
        self.enhanced
            .unwrap_or(EnhancedCode::new(self.class().clamp(2, 5) as u8, 0, 0))
    }

    /// Relays this failure to our client as `<code> <enhanced> upstream: <text>`
    /// (class kept, code clamped to 4xx/5xx).
    pub fn relayed(&self, what: &str) -> Reply {
        let code = if self.is_permanent() || self.is_transient() {
            self.code
        } else {
            451
        };
        let e = self.enhanced_or_default();
        let enhanced = EnhancedCode::new((code / 100) as u8, e.subject, e.detail);
        let text: String = self
            .text()
            .chars()
            .filter(|c| !c.is_control())
            .take(400)
            .collect();
        Reply::new(
            code,
            enhanced,
            format!("{what}: upstream said {code} {text}"),
        )
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
                return Parsed::Reply(
                    UpstreamReply {
                        code,
                        enhanced,
                        lines,
                    },
                    pos,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_multi_incomplete() {
        match UpstreamReply::parse(b"250 2.1.0 Ok\r\nrest") {
            Parsed::Reply(r, n) => {
                assert_eq!(r.code, 250);
                assert_eq!(r.enhanced, Some(EnhancedCode::new(2, 1, 0)));
                assert_eq!(r.lines, vec!["Ok"]);
                assert_eq!(n, 14);
            }
            other => panic!("{other:?}"),
        }
        match UpstreamReply::parse(b"250-a.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n") {
            Parsed::Reply(r, _) => assert_eq!(r.lines, vec!["a.example", "PIPELINING", "STARTTLS"]),
            other => panic!("{other:?}"),
        }
        assert_eq!(UpstreamReply::parse(b"250-a\r\n250 b"), Parsed::Incomplete);
        assert!(matches!(
            UpstreamReply::parse(b"hello\r\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            UpstreamReply::parse(b"250-a\r\n251 b\r\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            UpstreamReply::parse(b"220\r\n"),
            Parsed::Reply(_, 5)
        ));
    }

    #[test]
    fn relayed_keeps_class() {
        let r = UpstreamReply {
            code: 550,
            enhanced: Some(EnhancedCode::new(5, 1, 1)),
            lines: vec!["no such user\u{7}".into()],
        };
        let out = r.relayed("RCPT <a@b>");
        assert_eq!(out.code, 550);
        assert_eq!(out.enhanced, Some(EnhancedCode::new(5, 1, 1)));
        assert!(!out.lines[0].contains('\u{7}'));
    }
}
