//! The results convention between plugins and the `Authentication-Results`
//! field (RFC 8601).
//!
//! A plugin that authenticates something leaves its result on the
//! transaction as the note `auth-results.<method>` (`auth-results.spf`,
//! `auth-results.dkim`, `auth-results.dmarc`, or any other method such as
//! `auth-results.arc`), whose value is one or more RFC 8601 `resinfo`
//! strings exactly as they go into the header, separated by `"; "`:
//! `spf=pass smtp.mailfrom=alice@example.org`. The plugin writing the header
//! (this one, at data-post) collects the notes of the methods it knows plus
//! those named in `collect_methods`, and writes one field.

/// Note key prefix of the convention.
pub const NOTE_PREFIX: &str = "auth-results.";

/// Makes untrusted text safe for a header comment or a reply line: control
/// characters become spaces, at most `max` characters.
pub fn clean_text(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    clean.trim().to_string()
}

/// An RFC 8601 / RFC 7208 value: as is when it is a plain token of
/// printable ASCII without specials, else a quoted-string.
pub fn quote_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value.bytes().all(|b| {
            b.is_ascii_graphic() && !b"()<>,;:\\\"[]=".contains(&b) && !b.is_ascii_control()
        });
    if plain {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars().take(256) {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An RFC 7208 9.1 key-value-pair value: a dot-atom as is, anything else
/// (an address: `@` is not atext) as a quoted-string.
pub fn dot_atom_or_quoted(value: &str) -> String {
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    let dot_atom = !value.is_empty()
        && value
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(atext));
    if dot_atom {
        value.to_string()
    } else {
        let quoted = quote_value(value);
        if quoted.starts_with('"') {
            quoted
        } else {
            format!("\"{quoted}\"")
        }
    }
}

/// Skips RFC 5322 comments and white space at the start of `s`.
fn skip_cfws(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('(') {
            let mut depth = 1usize;
            let mut end = rest.len();
            let mut escaped = false;
            for (i, c) in rest.char_indices() {
                if escaped {
                    escaped = false;
                    continue;
                }
                match c {
                    '\\' => escaped = true,
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            s = &rest[end.min(rest.len())..];
        } else {
            return s;
        }
    }
}

/// The authserv-id of an `Authentication-Results` value (RFC 8601 2.2):
/// the first token, before any version, `;` or comment.
pub fn authserv_id(value: &str) -> Option<String> {
    let s = skip_cfws(value);
    let end = s
        .find(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .unwrap_or(s.len());
    let id = s[..end].trim_matches('"');
    (!id.is_empty()).then(|| id.to_ascii_lowercase())
}

/// One `Authentication-Results` value: the authserv-id, then every resinfo
/// (or `none` when there is none).
pub fn header_value(authserv_id: &str, resinfos: &[String]) -> String {
    if resinfos.is_empty() {
        return format!("{authserv_id}; none");
    }
    let mut out = authserv_id.to_string();
    for r in resinfos {
        out.push_str("; ");
        out.push_str(r);
    }
    out
}

/// The value of property `ptype.property` (e.g. `smtp.mailfrom`) in a
/// resinfo string, unquoted.
pub fn property<'a>(resinfo: &'a str, name: &str) -> Option<&'a str> {
    resinfo.split_whitespace().find_map(|tok| {
        let (k, v) = tok.split_once('=')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim_matches('"'))
    })
}

/// The method result of a resinfo (`pass` of `spf=pass ...`).
pub fn result_of<'a>(resinfo: &'a str, method: &str) -> Option<&'a str> {
    let first = resinfo.split_whitespace().next()?;
    let (m, r) = first.split_once('=')?;
    m.eq_ignore_ascii_case(method).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authserv_id_skips_comments_and_version() {
        assert_eq!(
            authserv_id("mx.example.net; spf=pass").as_deref(),
            Some("mx.example.net")
        );
        assert_eq!(
            authserv_id(" (c (nested)) MX.Example.Net 1; none").as_deref(),
            Some("mx.example.net")
        );
        assert_eq!(authserv_id("  ; none"), None);
        assert_eq!(authserv_id("((("), None);
    }

    #[test]
    fn values_are_quoted_when_needed() {
        assert_eq!(quote_value("alice@example.org"), "alice@example.org");
        assert_eq!(quote_value("example.org"), "example.org");
        assert_eq!(quote_value("a \"b\"\r\n"), "\"a \\\"b\\\"  \"");
        assert_eq!(quote_value(""), "\"\"");
    }

    #[test]
    fn received_spf_values() {
        assert_eq!(dot_atom_or_quoted("mail.example.org"), "mail.example.org");
        assert_eq!(dot_atom_or_quoted("a@example.org"), "\"a@example.org\"");
        assert_eq!(dot_atom_or_quoted(""), "\"\"");
    }

    #[test]
    fn properties_are_found() {
        let r = "spf=pass smtp.mailfrom=\"alice@example.org\"";
        assert_eq!(property(r, "smtp.mailfrom"), Some("alice@example.org"));
        assert_eq!(result_of(r, "spf"), Some("pass"));
        assert_eq!(result_of(r, "dkim"), None);
    }
}
