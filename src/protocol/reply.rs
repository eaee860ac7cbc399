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

/// One SMTP reply: a code, an optional enhanced code and one or more text
/// lines.
///
/// The fields are private so that every reply goes through a constructor,
/// and every constructor keeps the one rule of the wire: no text line holds
/// CR, LF or NUL, so no reply can inject a line. [`Reply::new`],
/// [`Reply::plain`] and [`Reply::multiline`] replace such characters with
/// spaces (for texts we build, which may quote a client's or an upstream's
/// words); [`Reply::checked`] refuses them (for texts a plugin chose, where
/// the plugin must learn that its verdict is invalid).
///
/// The same type holds the replies we read from an upstream server
/// (`delivery::client` parses them): they have the same shape, a code, the
/// first line's enhanced code and the text lines without code and enhanced
/// code, and the same rule makes them safe to log, relay or quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    enhanced: Option<EnhancedCode>,
    lines: Vec<Cow<'static, str>>,
}

/// A reply text refused by [`Reply::checked`]: it contains CR, LF or NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("reply text contains CR, LF or NUL")]
pub struct UnsafeText;

/// `text` with CR, LF and NUL replaced by spaces (borrowed when it had none).
fn sanitized(text: Cow<'static, str>) -> Cow<'static, str> {
    if Reply::is_safe_text(&text) {
        return text;
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if matches!(c, '\r' | '\n' | '\0') {
                    ' '
                } else {
                    c
                }
            })
            .collect(),
    )
}

impl Reply {
    /// A one-line reply with an enhanced code; CR, LF and NUL in `text`
    /// become spaces.
    pub fn new(code: u16, enhanced: EnhancedCode, text: impl Into<Cow<'static, str>>) -> Self {
        Self::multiline(code, Some(enhanced), [text])
    }

    /// A one-line reply without an enhanced code (greeting, EHLO, 354, 334);
    /// CR, LF and NUL in `text` become spaces.
    pub fn plain(code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        Self::multiline(code, None, [text])
    }

    /// A reply of one or more lines (none gives one empty line); CR, LF and
    /// NUL in a line become spaces. The code is clamped to 200..=599.
    pub fn multiline<T: Into<Cow<'static, str>>>(
        code: u16,
        enhanced: Option<EnhancedCode>,
        lines: impl IntoIterator<Item = T>,
    ) -> Self {
        let mut lines: Vec<Cow<'static, str>> =
            lines.into_iter().map(|l| sanitized(l.into())).collect();
        if lines.is_empty() {
            lines.push(Cow::Borrowed(""));
        }
        Self {
            code: code.clamp(200, 599),
            enhanced,
            lines,
        }
    }

    /// Like [`Reply::multiline`], but refuses a line with CR, LF or NUL
    /// instead of repairing it (a plugin's reply: see `plugin::verdict`).
    pub fn checked<T: Into<Cow<'static, str>>>(
        code: u16,
        enhanced: Option<EnhancedCode>,
        lines: impl IntoIterator<Item = T>,
    ) -> Result<Self, UnsafeText> {
        let lines: Vec<Cow<'static, str>> = lines.into_iter().map(Into::into).collect();
        if !lines.iter().all(|l| Self::is_safe_text(l)) {
            return Err(UnsafeText);
        }
        Ok(Self::multiline(code, enhanced, lines))
    }

    /// The three-digit reply code (200..=599).
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The enhanced status code, written at the start of every line.
    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    /// The text lines (at least one), without code or enhanced code; none
    /// contains CR, LF or NUL.
    pub fn lines(&self) -> &[Cow<'static, str>] {
        &self.lines
    }

    /// First digit of the code: 2, 3, 4 or 5.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        matches!(self.class(), 2 | 3)
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

    /// The enhanced code, or `class.0.0` when there is none.
    pub fn enhanced_or_default(&self) -> EnhancedCode {
        self.enhanced.unwrap_or(EnhancedCode::new(
            u8::try_from(self.class().clamp(2, 5)).unwrap_or(5),
            0,
            0,
        ))
    }

    /// True when a text is safe to put in a reply line: no CR, LF or NUL.
    pub fn is_safe_text(text: &str) -> bool {
        !text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
    }

    /// Appends the wire form (`250-...\r\n250 ...\r\n`) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{sep}", self.code).as_bytes());
            if let Some(esc) = self.enhanced {
                out.extend_from_slice(format!("{esc} ").as_bytes());
            }
            out.extend_from_slice(line.as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line() {
        let ok = Reply::new(250, EnhancedCode::new(2, 0, 0), "Ok");
        assert_eq!(ok.to_bytes(), b"250 2.0.0 Ok\r\n");
        let r = Reply::multiline(250, None, ["a", "b"]);
        assert_eq!(r.to_bytes(), b"250-a\r\n250 b\r\n");
        assert_eq!(r.lines(), ["a", "b"]);
        assert_eq!(r.to_string(), "250-a\r\n250 b");
    }

    #[test]
    fn enhanced_code_on_every_line() {
        let r = Reply::multiline(550, Some(EnhancedCode::new(5, 7, 1)), ["no", "really"]);
        assert_eq!(r.to_bytes(), b"550-5.7.1 no\r\n550 5.7.1 really\r\n");
        assert_eq!(r.enhanced(), Some(EnhancedCode::new(5, 7, 1)));
        assert_eq!(r.one_line(), "550 5.7.1 no really");
        let plain = Reply::plain(451, "later");
        assert_eq!(plain.enhanced(), None);
        assert_eq!(plain.enhanced_or_default(), EnhancedCode::new(4, 0, 0));
    }

    #[test]
    fn no_lines_is_one_empty_line_and_code_is_clamped() {
        let r = Reply::multiline(220, None, Vec::<String>::new());
        assert_eq!(r.to_bytes(), b"220 \r\n");
        assert_eq!(Reply::plain(99, "x").code(), 200);
        assert_eq!(Reply::plain(700, "x").code(), 599);
    }

    #[test]
    fn unsafe_text_is_sanitized() {
        let r = Reply::new(550, EnhancedCode::new(5, 7, 1), "x\r\n250 ok");
        assert_eq!(r.to_bytes(), b"550 5.7.1 x  250 ok\r\n");
        let r = Reply::plain(250, "a\0b");
        assert_eq!(r.lines(), ["a b"]);
        let r = Reply::multiline(250, None, ["fine", "bad\nline"]);
        assert_eq!(r.to_bytes(), b"250-fine\r\n250 bad line\r\n");
        assert!(!Reply::is_safe_text("a\nb"));
        assert!(!Reply::is_safe_text("a\rb"));
        assert!(!Reply::is_safe_text("a\0b"));
        assert!(Reply::is_safe_text("fine"));
    }

    #[test]
    fn unsafe_text_is_refused_by_checked() {
        for bad in ["a\rb", "a\nb", "a\0b"] {
            let r = Reply::checked(550, None, ["ok", bad]);
            assert_eq!(r, Err(UnsafeText), "{bad:?}");
        }
        assert_eq!(UnsafeText.to_string(), "reply text contains CR, LF or NUL");
        let r = Reply::checked(550, Some(EnhancedCode::new(5, 7, 1)), ["a", "b"]);
        assert_eq!(
            r.map(|r| r.to_bytes()),
            Ok(b"550-5.7.1 a\r\n550 5.7.1 b\r\n".to_vec())
        );
    }

    #[test]
    fn classes() {
        let r = Reply::plain(451, "x");
        assert!(r.is_transient() && !r.is_permanent() && !r.is_success() && !r.is_positive());
        assert!(Reply::plain(354, "go").is_positive());
        assert!(Reply::plain(550, "no").is_permanent());
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
