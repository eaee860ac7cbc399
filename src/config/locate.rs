//! Positions in the config file: byte offsets to `line:column`, an error
//! span to the dotted key path it falls in, and a key path to its span.
//!
//! Both directions walk the span-preserving parse tree of the `toml` crate
//! ([`toml::de::DeTable`]), so every config error can say where it is.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A parsed document kept for position lookups.
pub struct Locator<'a> {
    text: &'a str,
    root: Option<Spanned<DeTable<'a>>>,
}

impl<'a> Locator<'a> {
    /// Parses `text`; lookups degrade gracefully if it does not parse.
    pub fn new(text: &'a str) -> Self {
        let root = DeTable::parse(text).ok();
        Self { text, root }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }

    /// The dotted key path (`listeners[1].address`) the byte offset falls in,
    /// or an empty string at the top level.
    pub fn path_at(&self, offset: usize) -> String {
        let Some(root) = &self.root else {
            return String::new();
        };
        let mut path = Vec::new();
        if find_in_table(root.get_ref(), offset, &mut path) {
            join(&path)
        } else {
            String::new()
        }
    }

    /// The span of the value at `path` (`relay.relay_networks[2]`); if that
    /// key is absent (a default was used), the span of its closest present
    /// ancestor; `None` if nothing of it is in the file.
    pub fn span_of(&self, path: &str) -> Option<Range<usize>> {
        let root = self.root.as_ref()?;
        let mut best: Option<Range<usize>> = None;
        let mut current: &DeValue<'_> = &DeValue::Table(DeTable::default());
        let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
        for segment in split(path) {
            let next = match (&segment, table, current) {
                (Segment::Key(k), Some(t), _) => t
                    .iter()
                    .find(|(key, _)| key.get_ref() == k)
                    .map(|(key, value)| (key.span(), value)),
                (Segment::Index(i), _, DeValue::Array(a)) => {
                    a.get(*i).map(|value| (value.span(), value))
                }
                _ => None,
            };
            let Some((key_span, value)) = next else {
                break;
            };
            // Point at the value when it has a real span, else at the key.
            let span = value.span();
            best = Some(if span.is_empty() { key_span } else { span });
            current = value.get_ref();
            table = current.as_table();
        }
        best
    }
}

enum Segment {
    Key(String),
    Index(usize),
}

fn split(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            out.push(Segment::Key(rest[..open].to_string()));
            rest = &rest[open..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let close = stripped.find(']').unwrap_or(stripped.len());
                if let Ok(i) = stripped[..close].parse() {
                    out.push(Segment::Index(i));
                }
                rest = stripped.get(close + 1..).unwrap_or("");
            }
        } else {
            out.push(Segment::Key(rest.to_string()));
        }
    }
    out
}

fn join(path: &[String]) -> String {
    let mut out = String::new();
    for p in path {
        if p.starts_with('[') || out.is_empty() {
            out.push_str(p);
        } else {
            out.push('.');
            out.push_str(p);
        }
    }
    out
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// Depth-first: the deepest entry whose key or value span holds `offset`.
fn find_in_table(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table.iter() {
        path.push(key.get_ref().to_string());
        if find_in_value(value.get_ref(), offset, path)
            || contains(&key.span(), offset)
            || contains(&value.span(), offset)
        {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(value: &DeValue<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    match value {
        DeValue::Table(t) => find_in_table(t, offset, path),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                path.push(format!("[{i}]"));
                if find_in_value(item.get_ref(), offset, path) || contains(&item.span(), offset) {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[server]\nhostname = \"mx\"\n\n[[listeners]]\naddress = \"a\"\n\n[[listeners]]\naddress = \"b\"\nmode = \"smtp\"\n\n[relay]\nrelay_networks = [\"10.0.0.0/8\", \"bad\"]\n";

    #[test]
    fn line_and_column() {
        let l = Locator::new("ab\ncd\n");
        assert_eq!(l.line_col(0), (1, 1));
        assert_eq!(l.line_col(4), (2, 2));
    }

    #[test]
    fn path_of_an_offset() {
        let l = Locator::new(DOC);
        let at = DOC.find("\"b\"").unwrap();
        assert_eq!(l.path_at(at), "listeners[1].address");
        let at = DOC.find("\"bad\"").unwrap();
        assert_eq!(l.path_at(at), "relay.relay_networks[1]");
        let at = DOC.find("mode").unwrap();
        assert_eq!(l.path_at(at), "listeners[1].mode");
    }

    #[test]
    fn span_of_a_path() {
        let l = Locator::new(DOC);
        let span = l.span_of("relay.relay_networks[1]").unwrap();
        assert_eq!(&DOC[span], "\"bad\"");
        let span = l.span_of("listeners[1].address").unwrap();
        assert_eq!(&DOC[span], "\"b\"");
        // Absent key: falls back to the closest ancestor present.
        let span = l.span_of("server.max_connections").unwrap();
        assert!(DOC[span].contains("mx") || DOC[span].contains("server"));
        assert!(l.span_of("nothing.here").is_none());
    }
}
