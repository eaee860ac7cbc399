//! Dialog files (`*.dialog`): parsing, with every error naming the file
//! and line. The format is documented in `docs/DIALOGS.md`.
//!
//! ```text
//! +++                      optional TOML front matter (Front)
//! [config]
//! max_size = 100
//! +++
//! # a comment
//! > EHLO client.example    the client sends a line
//! < 250                    the next reply's code (250, 2xx) and text glob
//! | Subject: hi            message content (after DATA / 354)
//! |< attachment.eml        a file's lines as message content
//! ? header X-Spam: yes     a check on what the plugins left behind
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A parse error: the file, the line (1-based) and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct DialogError {
    /// The dialog file.
    pub path: PathBuf,
    /// The line, 1-based.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// One parsed dialog.
#[derive(Debug)]
pub struct Dialog {
    /// The file it came from.
    pub path: PathBuf,
    /// The front matter (defaults when there is none).
    pub front: Front,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// The front matter: the plugin's config and the session's fixtures.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Front {
    /// The plugin's config table (its `[[plugins]]` entry's `config`).
    #[serde(default)]
    pub config: toml::Table,
    /// Other keys of the plugin's `[[plugins]]` entry (`failure_policy`,
    /// `cpu_ms`, `timeout_ms`, `memory_mb`, `kv` buckets...).
    #[serde(default)]
    pub plugin: toml::Table,
    /// The client.
    #[serde(default)]
    pub client: Client,
    /// Answers of the plugins' `dns` calls.
    #[serde(default)]
    pub dns: Vec<DnsFixture>,
    /// Initial key-value contents: bucket → key → value.
    #[serde(default)]
    pub kv: BTreeMap<String, BTreeMap<String, KvValue>>,
    /// Gateway settings: shortcuts (`hostname`, `local_domains`,
    /// `relay_networks`, `max_message_size`, `max_recipients`) or whole
    /// sections of the gateway config (`[gateway.limits]`).
    #[serde(default)]
    pub gateway: toml::Table,
    /// Config tables of the `--with` plugins, by name (the file stem).
    #[serde(default)]
    pub with: BTreeMap<String, toml::Table>,
}

/// The client of the session.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Client {
    /// Its address (default 192.0.2.1).
    pub ip: IpAddr,
    /// Its port (default 49152).
    pub port: u16,
    /// TLS already active (as after STARTTLS).
    pub tls: bool,
    /// Already authenticated as this user.
    pub auth_user: Option<String>,
    /// A relay client (default: as `[relay] relay_networks` say).
    pub relay: Option<bool>,
    /// Its reverse DNS name (default none).
    pub host: Option<String>,
}

impl Default for Client {
    fn default() -> Self {
        Self {
            ip: IpAddr::from([192, 0, 2, 1]),
            port: 49152,
            tls: false,
            auth_user: None,
            relay: None,
            host: None,
        }
    }
}

/// One DNS answer (`[[dns]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsFixture {
    /// The name asked (for PTR: the `in-addr.arpa`/`ip6.arpa` name or the address).
    pub name: String,
    /// The record type: A, AAAA, MX, TXT, PTR, CNAME, NS.
    #[serde(rename = "type")]
    pub rtype: String,
    /// The records: addresses, names, `"PREF NAME"` for MX, one string per TXT record.
    #[serde(default)]
    pub answer: Vec<String>,
    /// Instead of records: `nxdomain`, `nodata`, `servfail` or `timeout`.
    #[serde(default)]
    pub error: Option<String>,
    /// The answer's TTL (default 300).
    #[serde(default = "default_ttl")]
    pub ttl: u32,
}

fn default_ttl() -> u32 {
    300
}

/// A key-value fixture's value: text, or an integer (stored as its
/// decimal text, as `increment` stores counters).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KvValue {
    /// Text.
    Text(String),
    /// An integer.
    Integer(i64),
}

impl KvValue {
    /// The stored bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Text(t) => t.as_bytes().to_vec(),
            Self::Integer(n) => n.to_string().into_bytes(),
        }
    }
}

/// One step and the line it starts on.
#[derive(Debug, Clone)]
pub struct Step {
    /// The line, 1-based.
    pub line: usize,
    /// What to do.
    pub kind: StepKind,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// `> TEXT`: send a command line.
    Send(String),
    /// `< CODE [GLOB]`: the next reply.
    Expect {
        /// The code or class.
        code: CodePattern,
        /// A glob the reply's text must match.
        text: Option<String>,
    },
    /// `|` lines: message content (sent dot-stuffed, then `.`).
    Content(Vec<Vec<u8>>),
    /// `? ...`: a check.
    Check(Check),
}

/// A reply code or class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePattern {
    /// Exactly this code.
    Exact(u16),
    /// Any code of this class (2, 4 or 5...).
    Class(u16),
}

impl CodePattern {
    /// Whether `code` matches.
    pub fn matches(self, code: u16) -> bool {
        match self {
            Self::Exact(c) => c == code,
            Self::Class(c) => code / 100 == c,
        }
    }
}

impl std::fmt::Display for CodePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(c) => write!(f, "{c}"),
            Self::Class(c) => write!(f, "{c}xx"),
        }
    }
}

/// A `?` check.
#[derive(Debug, Clone)]
pub enum Check {
    /// `? header NAME: GLOB`.
    Header {
        /// The field name.
        name: String,
        /// A glob one of its values must match.
        glob: String,
    },
    /// `? no-header NAME`.
    NoHeader(String),
    /// `? body GLOB`.
    Body(String),
    /// `? note KEY = GLOB`.
    Note {
        /// The note key.
        key: String,
        /// A glob its value must match.
        glob: String,
    },
    /// `? recipients ADDR, ...`.
    Recipients(Vec<String>),
    /// `? delivered N`.
    Delivered(usize),
}

impl std::fmt::Display for Check {
    /// The check as written in a dialog (without the `?`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Header { name, glob } => write!(f, "header {name}: {glob}"),
            Self::NoHeader(name) => write!(f, "no-header {name}"),
            Self::Body(glob) => write!(f, "body {glob}"),
            Self::Note { key, glob } => write!(f, "note {key} = {glob}"),
            Self::Recipients(list) => write!(f, "recipients {}", list.join(", ")),
            Self::Delivered(n) => write!(f, "delivered {n}"),
        }
    }
}

/// Reads and parses a dialog file.
pub fn load(path: &Path) -> Result<Dialog, DialogError> {
    let text = std::fs::read_to_string(path).map_err(|e| DialogError {
        path: path.to_path_buf(),
        line: 0,
        message: format!("cannot read the dialog: {e}"),
    })?;
    parse(&text, path)
}

/// Parses dialog text; `path` names it in errors and anchors `|<` paths.
pub fn parse(text: &str, path: &Path) -> Result<Dialog, DialogError> {
    let err = |line: usize, message: String| DialogError {
        path: path.to_path_buf(),
        line,
        message,
    };
    let lines: Vec<&str> = text.lines().collect();
    let (front, body_start) = front_matter(&lines, path)?;
    let mut steps: Vec<Step> = Vec::new();
    for (i, raw) in lines.iter().enumerate().skip(body_start) {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let content = match raw.strip_prefix('|') {
            Some(rest) => Some(match rest.strip_prefix('<') {
                Some(file) => include(path, file.trim()).map_err(|m| err(line, m))?,
                None => vec![rest.strip_prefix(' ').unwrap_or(rest).as_bytes().to_vec()],
            }),
            None => None,
        };
        if let Some(more) = content {
            match steps.last_mut() {
                Some(Step {
                    kind: StepKind::Content(block),
                    ..
                }) => block.extend(more),
                _ => steps.push(Step {
                    line,
                    kind: StepKind::Content(more),
                }),
            }
            continue;
        }
        let kind = if let Some(rest) = raw.strip_prefix('>') {
            StepKind::Send(rest.strip_prefix(' ').unwrap_or(rest).to_string())
        } else if let Some(rest) = raw.strip_prefix('<') {
            expect(rest.trim()).map_err(|m| err(line, m))?
        } else if let Some(rest) = raw.strip_prefix('?') {
            StepKind::Check(check(rest.trim()).map_err(|m| err(line, m))?)
        } else {
            return Err(err(
                line,
                format!(
                    "a line must start with `>`, `<`, `|`, `?` or `#`: {:?}",
                    raw.chars().take(60).collect::<String>()
                ),
            ));
        };
        steps.push(Step { line, kind });
    }
    Ok(Dialog {
        path: path.to_path_buf(),
        front,
        steps,
    })
}

/// The front matter between a `+++` line (the first line, or the first
/// after leading comments and blank lines) and the next `+++` line, and
/// the index of the first line after it.
fn front_matter(lines: &[&str], path: &Path) -> Result<(Front, usize), DialogError> {
    let Some(open) = lines.iter().position(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    }) else {
        return Ok((Front::default(), 0));
    };
    if lines[open].trim_end() != "+++" {
        return Ok((Front::default(), 0));
    }
    let first = open + 1;
    let Some(len) = lines[first..].iter().position(|l| l.trim_end() == "+++") else {
        return Err(DialogError {
            path: path.to_path_buf(),
            line: first,
            message: "front matter opened with `+++` is never closed by a `+++` line".into(),
        });
    };
    let toml_text = lines[first..first + len].join("\n");
    let front: Front = toml::from_str(&toml_text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let line = toml_text[..offset.min(toml_text.len())]
            .matches('\n')
            .count()
            + first
            + 1;
        DialogError {
            path: path.to_path_buf(),
            line,
            message: format!("front matter: {}", e.message().trim()),
        }
    })?;
    Ok((front, first + len + 1))
}

/// `< CODE [GLOB]`.
fn expect(rest: &str) -> Result<StepKind, String> {
    let (code, text) = match rest.split_once(' ') {
        Some((c, t)) => (c, Some(t.trim().to_string()).filter(|t| !t.is_empty())),
        None => (rest, None),
    };
    let bad = || format!("`<` wants a reply code (250) or class (2xx), not {code:?}");
    let code = match code.as_bytes() {
        [c @ b'2'..=b'5', b'x' | b'X', b'x' | b'X'] => CodePattern::Class(u16::from(c - b'0')),
        [b'2'..=b'5', b'0'..=b'9', b'0'..=b'9'] => {
            CodePattern::Exact(code.parse().map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    };
    Ok(StepKind::Expect { code, text })
}

/// `? KIND ARGS`.
fn check(rest: &str) -> Result<Check, String> {
    let (kind, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let args = args.trim();
    let need = |what: &str| format!("`? {kind}` wants {what}");
    match kind {
        "header" => {
            let (name, glob) = args.split_once(':').ok_or_else(|| need("`NAME: GLOB`"))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(need("`NAME: GLOB`"));
            }
            Ok(Check::Header {
                name: name.to_string(),
                glob: glob.trim().to_string(),
            })
        }
        "no-header" if !args.is_empty() => Ok(Check::NoHeader(args.to_string())),
        "no-header" => Err(need("a header name")),
        "body" => Ok(Check::Body(args.to_string())),
        "note" => {
            let (key, glob) = args.split_once('=').ok_or_else(|| need("`KEY = GLOB`"))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(need("`KEY = GLOB`"));
            }
            Ok(Check::Note {
                key: key.to_string(),
                glob: glob.trim().to_string(),
            })
        }
        "recipients" => Ok(Check::Recipients(
            args.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| a.trim_start_matches('<').trim_end_matches('>').to_string())
                .collect(),
        )),
        "delivered" => args
            .parse()
            .map(Check::Delivered)
            .map_err(|_| need("a number")),
        other => Err(format!(
            "unknown check `? {other}` (header, no-header, body, note, recipients, delivered)"
        )),
    }
}

/// The lines of a file included with `|<` (path relative to the dialog).
fn include(dialog: &Path, file: &str) -> Result<Vec<Vec<u8>>, String> {
    if file.is_empty() {
        return Err("`|<` wants a file path".into());
    }
    let path = dialog.parent().unwrap_or(Path::new("")).join(file);
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    Ok(bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Dialog, DialogError> {
        parse(text, Path::new("t.dialog"))
    }

    #[test]
    fn steps_and_blocks() {
        let d = p("+++\n[config]\na = 1\n+++\n# c\n> EHLO x\n< 250\n> DATA\n< 354\n| A: b\n|\n|  x\n< 2xx *queued*\n? header A: b\n")
            .unwrap();
        assert_eq!(
            d.front.config.get("a").and_then(|v| v.as_integer()),
            Some(1)
        );
        assert_eq!(d.steps.len(), 7);
        assert_eq!(d.steps[0].line, 6);
        match &d.steps[4].kind {
            StepKind::Content(lines) => {
                assert_eq!(lines, &[b"A: b".to_vec(), Vec::new(), b" x".to_vec()])
            }
            k => panic!("{k:?}"),
        }
        match &d.steps[5].kind {
            StepKind::Expect { code, text } => {
                assert_eq!(*code, CodePattern::Class(2));
                assert_eq!(text.as_deref(), Some("*queued*"));
            }
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn errors_name_the_line() {
        let e = p("> EHLO x\n< 25\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("t.dialog:2: "), "{e}");
        let e = p("> EHLO x\nbogus\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = p("+++\n[client]\nip = 3\n+++\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = p("+++\nx = 1\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = p("? frob x\n").unwrap_err();
        assert!(e.message.contains("unknown check"), "{e}");
    }
}
