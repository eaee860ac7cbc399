//! Typed SMTP replies (RFC 5321 section 4.2) with enhanced status codes
//! (RFC 3463). Handlers build values, never byte literals.

use std::borrow::Cow;
use std::fmt;

/// An enhanced status code `class.subject.detail` (RFC 3463).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// Subject (0..=999).
    pub subject: u16,
    /// Detail (0..=999).
    pub detail: u16,
}

impl EnhancedCode {
    /// Builds a code from its three parts.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Self {
            class,
            subject,
            detail,
        }
    }

    /// Parses `"5.7.1"`; `None` if malformed or the class is not 2, 4 or 5.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split('.');
        let class: u8 = it.next()?.parse().ok()?;
        let subject: u16 = it.next()?.parse().ok()?;
        let detail: u16 = it.next()?.parse().ok()?;
        if it.next().is_some() || !matches!(class, 2 | 4 | 5) || subject > 999 || detail > 999 {
            return None;
        }
        Some(Self::new(class, subject, detail))
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One SMTP reply: a code, an optional enhanced code and one or more text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Three-digit reply code (200..=599).
    pub code: u16,
    /// Enhanced status code, written at the start of every line when present.
    pub enhanced: Option<EnhancedCode>,
    /// Text lines; never contain CR, LF or NUL (see [`Reply::is_safe_text`]).
    pub lines: Vec<Cow<'static, str>>,
}

impl Reply {
    /// A one-line reply with an enhanced code.
    pub fn new(code: u16, enhanced: EnhancedCode, text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A one-line reply without an enhanced code (greeting, EHLO, 354, 334).
    pub fn plain(code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            enhanced: None,
            lines: vec![text.into()],
        }
    }

    /// First digit of the code: 2, 3, 4 or 5.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        matches!(self.class(), 2 | 3)
    }

    /// True when a text is safe to put in a reply line: no CR, LF or NUL.
    pub fn is_safe_text(text: &str) -> bool {
        !text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
    }

    /// Appends the wire form (`250-...\r\n250 ...\r\n`) to `out`.
    ///
    /// Unsafe characters that slipped into a text line are replaced by
    /// spaces, so a reply can never inject a line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let code = self.code.clamp(200, 599);
        let empty: [Cow<'static, str>; 1] = [Cow::Borrowed("")];
        let lines: &[Cow<'static, str>] = if self.lines.is_empty() {
            &empty
        } else {
            &self.lines
        };
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{code}{sep}").as_bytes());
            if let Some(esc) = self.enhanced {
                out.extend_from_slice(format!("{esc} ").as_bytes());
            }
            out.extend(line.bytes().map(|b| {
                if matches!(b, b'\r' | b'\n' | 0) {
                    b' '
                } else {
                    b
                }
            }));
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        self.write_to(&mut v);
        v
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        f.write_str(String::from_utf8_lossy(&bytes).trim_end())
    }
}

/// Frequently used replies, so call sites read as intent.
impl Reply {
    /// `250 2.0.0 Ok`.
    pub fn ok() -> Self {
        Self::new(250, EnhancedCode::new(2, 0, 0), "Ok")
    }
    /// `421 4.3.2 <host> Service shutting down`.
    pub fn shutting_down(host: &str) -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 3, 2),
            format!("{host} Service shutting down, closing transmission channel"),
        )
    }
    /// `421 4.4.2 <host> Timeout`.
    pub fn timeout(host: &str) -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 4, 2),
            format!("{host} Error: timeout exceeded"),
        )
    }
    /// `421 4.7.0 Too many connections`.
    pub fn too_many_connections(host: &str) -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 7, 0),
            format!("{host} Too many connections, try again later"),
        )
    }
    /// `451 4.3.0` local error (plugin failure with the tempfail policy, I/O errors).
    pub fn local_error() -> Self {
        Self::new(
            451,
            EnhancedCode::new(4, 3, 0),
            "Requested action aborted: local error in processing",
        )
    }
    /// `554 5.3.0` permanent local error (plugin failure with the reject policy).
    pub fn permanent_local_error() -> Self {
        Self::new(554, EnhancedCode::new(5, 3, 0), "Transaction failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line() {
        assert_eq!(Reply::ok().to_bytes(), b"250 2.0.0 Ok\r\n");
        let r = Reply {
            code: 250,
            enhanced: None,
            lines: vec!["a".into(), "b".into()],
        };
        assert_eq!(r.to_bytes(), b"250-a\r\n250 b\r\n");
    }

    #[test]
    fn unsafe_text_cannot_inject() {
        let r = Reply::new(550, EnhancedCode::new(5, 7, 1), "x\r\n250 ok");
        assert_eq!(r.to_bytes(), b"550 5.7.1 x  250 ok\r\n");
        assert!(!Reply::is_safe_text("a\nb"));
        assert!(Reply::is_safe_text("fine"));
    }

    #[test]
    fn enhanced_code_parse() {
        assert_eq!(
            EnhancedCode::parse("5.7.1"),
            Some(EnhancedCode::new(5, 7, 1))
        );
        assert_eq!(EnhancedCode::parse("3.1.1"), None);
        assert_eq!(EnhancedCode::parse("5.7"), None);
        assert_eq!(EnhancedCode::parse("5.7.1.1"), None);
    }
}
