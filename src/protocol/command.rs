//! Command lines parsed into a typed [`Command`].
//!
//! We parse commands ourselves instead of wrapping `smtp-proto`'s
//! `Request::parse`: that parser has a fixed 4096-octet line limit, folds
//! every syntax problem into one error type without the reply it deserves,
//! accepts a bare LF as a line end and validates addresses loosely. Here the
//! line reader ([`super::line`]) enforces the configured limits exactly, and
//! every refusal is a [`CommandError`] that maps to one precise reply
//! (`500 5.5.2` for garbage bytes, `501 5.5.4` for bad arguments, and the
//! unrecoverable `BDAT` size case that must close the session).
//!
//! Paths are returned as written (`<...>`) and checked by
//! [`super::address`] once the engine knows whether SMTPUTF8 applies.

use crate::context::Param;

/// One SMTP command with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELO domain`.
    Helo(String),
    /// `EHLO domain`.
    Ehlo(String),
    /// `MAIL FROM:<path> [params]`; `path` as written, brackets included.
    Mail {
        /// The reverse-path text.
        path: String,
        /// ESMTP parameters, keys upper-cased, values as sent.
        params: Vec<Param>,
    },
    /// `RCPT TO:<path> [params]`.
    Rcpt {
        /// The forward-path text.
        path: String,
        /// ESMTP parameters.
        params: Vec<Param>,
    },
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]`.
    Bdat {
        /// Octets of the chunk that follows the command line.
        size: u64,
        /// The last chunk of the message.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
    /// `NOOP [arg]`.
    Noop(String),
    /// `VRFY arg`.
    Vrfy(String),
    /// `EXPN arg`.
    Expn(String),
    /// `HELP [arg]`.
    Help(String),
    /// `STARTTLS`.
    StartTls,
    /// `AUTH mechanism [initial-response]`; mechanism upper-cased.
    Auth {
        /// SASL mechanism name.
        mechanism: String,
        /// Base64 initial response (`=` for an empty one), not decoded.
        initial: Option<String>,
    },
    /// A verb we do not know.
    Unknown {
        /// The verb as sent.
        verb: String,
        /// The rest of the line.
        args: String,
    },
}

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// NUL, CR or invalid UTF-8 in the line: `500 5.5.2`.
    #[error("invalid characters in command")]
    BadBytes,
    /// Arguments do not parse: `501 5.5.4`.
    #[error("syntax error: {0}")]
    Syntax(&'static str),
    /// `BDAT` whose size does not parse (or overflows u64): the chunk
    /// length is unknown, so the stream cannot be resynchronised and the
    /// session must close after `501 5.5.4`.
    #[error("invalid BDAT chunk size")]
    BdatSize,
    /// `BDAT n junk`: the size is known, so the engine skips the chunk and
    /// answers `501 5.5.4`.
    #[error("invalid BDAT arguments")]
    BdatArgs {
        /// The chunk size to skip.
        size: u64,
    },
}

impl Command {
    /// Whether the line starts with `MAIL` or `RCPT`, which get the
    /// extended line limit for their parameters (RFC 5321 4.5.3.1.4; RFC
    /// 1869 allows 512 more octets), or `AUTH` (long initial responses).
    pub fn has_long_line(prefix: &[u8]) -> bool {
        prefix.len() >= 4
            && [&b"MAIL"[..], b"RCPT", b"AUTH"]
                .iter()
                .any(|v| prefix[..4].eq_ignore_ascii_case(v))
    }

    /// Parses one line without its CRLF, accepting the common sloppy
    /// envelope forms (see [`Command::parse_with`]).
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        Self::parse_with(line, false)
    }

    /// Parses one line without its CRLF. Unless `strict_envelopes`, MAIL
    /// and RCPT also accept white space after the colon and an address
    /// without angle brackets (`RCPT TO: user@example.test`), as Postfix
    /// does with `strict_rfc821_envelopes = no`; the path is returned with
    /// its brackets either way.
    pub fn parse_with(line: &[u8], strict_envelopes: bool) -> Result<Command, CommandError> {
        if line.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(CommandError::BadBytes);
        }
        let line = std::str::from_utf8(line).map_err(|_| CommandError::BadBytes)?;
        let line = line.trim_end_matches([' ', '\t']);
        let (verb, args) = match line.split_once(' ') {
            Some((v, a)) => (v, a),
            None => (line, ""),
        };
        let upper = verb.to_ascii_uppercase();
        let cmd = match upper.as_str() {
            "HELO" => Command::Helo(one_arg(args, "HELO requires a domain")?),
            "EHLO" => Command::Ehlo(one_arg(args, "EHLO requires a domain")?),
            "MAIL" => {
                let (path, params) = path_and_params(args, "FROM:", strict_envelopes)?;
                Command::Mail { path, params }
            }
            "RCPT" => {
                let (path, params) = path_and_params(args, "TO:", strict_envelopes)?;
                Command::Rcpt { path, params }
            }
            "DATA" => no_args(args, Command::Data)?,
            "RSET" => no_args(args, Command::Rset)?,
            "QUIT" => no_args(args, Command::Quit)?,
            "STARTTLS" => no_args(args, Command::StartTls)?,
            "NOOP" => Command::Noop(args.to_string()),
            "HELP" => Command::Help(args.to_string()),
            "VRFY" => Command::Vrfy(required(args, "VRFY requires an argument")?),
            "EXPN" => Command::Expn(required(args, "EXPN requires an argument")?),
            "BDAT" => parse_bdat(args)?,
            "AUTH" => parse_auth(args)?,
            _ => Command::Unknown {
                verb: verb.to_string(),
                args: args.to_string(),
            },
        };
        Ok(cmd)
    }
}

fn no_args(args: &str, cmd: Command) -> Result<Command, CommandError> {
    if args.trim().is_empty() {
        Ok(cmd)
    } else {
        Err(CommandError::Syntax("no arguments allowed"))
    }
}

fn required(args: &str, err: &'static str) -> Result<String, CommandError> {
    let a = args.trim();
    if a.is_empty() {
        Err(CommandError::Syntax(err))
    } else {
        Ok(a.to_string())
    }
}

fn one_arg(args: &str, err: &'static str) -> Result<String, CommandError> {
    let a = args.trim();
    if a.is_empty() {
        return Err(CommandError::Syntax(err));
    }
    if a.contains([' ', '\t']) {
        return Err(CommandError::Syntax("too many arguments"));
    }
    Ok(a.to_string())
}

/// `FROM:<path> params` / `TO:<path> params`. Unless `strict`, white space
/// after the colon and a bare address (up to the next space) are accepted.
fn path_and_params(
    args: &str,
    keyword: &str,
    strict: bool,
) -> Result<(String, Vec<Param>), CommandError> {
    let kw = args
        .get(..keyword.len())
        .filter(|k| k.eq_ignore_ascii_case(keyword))
        .ok_or(if keyword == "FROM:" {
            CommandError::Syntax("expected MAIL FROM:<address>")
        } else {
            CommandError::Syntax("expected RCPT TO:<address>")
        })?;
    let rest = &args[kw.len()..];
    if strict && !rest.starts_with('<') {
        return Err(CommandError::Syntax(
            "address must follow the colon, enclosed in <>",
        ));
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    if !rest.starts_with('<') {
        // sloppy form: a bare address up to the next space
        let (addr, tail) = rest.split_at(rest.find([' ', '\t']).unwrap_or(rest.len()));
        if addr.is_empty() || addr.contains(['<', '>']) {
            return Err(CommandError::Syntax("address must be enclosed in <>"));
        }
        let params = parse_params(tail)?;
        return Ok((format!("<{addr}>"), params));
    }
    let end = path_end(rest.as_bytes()).ok_or(CommandError::Syntax("unterminated address"))?;
    let (path, tail) = rest.split_at(end);
    if !tail.is_empty() && !tail.starts_with(' ') {
        return Err(CommandError::Syntax("garbage after address"));
    }
    let params = parse_params(tail)?;
    Ok((path.to_string(), params))
}

/// Index just past the `>` closing a path, honouring quoted local parts.
fn path_end(b: &[u8]) -> Option<usize> {
    let mut quoted = false;
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// `SP esmtp-param *(SP esmtp-param)`; keys upper-cased. Repeated keys are
/// refused (RFC 1869: a parameter may appear once).
pub fn parse_params(s: &str) -> Result<Vec<Param>, CommandError> {
    let mut params: Vec<Param> = Vec::new();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        let kb = key.as_bytes();
        if kb.is_empty()
            || !kb[0].is_ascii_alphanumeric()
            || !kb.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        {
            return Err(CommandError::Syntax("invalid parameter keyword"));
        }
        if let Some(v) = value
            && (v.is_empty()
                || v.chars()
                    .any(|c| c == '=' || (c.is_ascii() && !c.is_ascii_graphic())))
        {
            return Err(CommandError::Syntax("invalid parameter value"));
        }
        let key = key.to_ascii_uppercase();
        if params.iter().any(|p| p.key == key) {
            return Err(CommandError::Syntax("duplicate parameter"));
        }
        params.push(Param {
            key,
            value: value.map(str::to_string),
        });
    }
    Ok(params)
}

/// Decodes RFC 3461 xtext (`+XX` hex escapes); `None` when malformed.
pub fn xtext_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = s.get(i + 1..i + 3)?;
                if !hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
                {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c @ 33..=126 if c != b'=' => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// `BDAT chunk-size [SP "LAST"]`; chunk-size is 1*DIGIT.
fn parse_bdat(args: &str) -> Result<Command, CommandError> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let size_text = words.next().ok_or(CommandError::BdatSize)?;
    if size_text.is_empty() || !size_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::BdatSize);
    }
    let size: u64 = size_text.parse().map_err(|_| CommandError::BdatSize)?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::BdatArgs { size }),
    };
    if words.next().is_some() {
        return Err(CommandError::BdatArgs { size });
    }
    Ok(Command::Bdat { size, last })
}

/// `AUTH mechanism [initial-response]`.
fn parse_auth(args: &str) -> Result<Command, CommandError> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let mechanism = words
        .next()
        .ok_or(CommandError::Syntax("AUTH requires a mechanism"))?
        .to_ascii_uppercase();
    let initial = words.next().map(str::to_string);
    if words.next().is_some() {
        return Err(CommandError::Syntax("too many arguments"));
    }
    Ok(Command::Auth { mechanism, initial })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: &str, value: Option<&str>) -> Param {
        Param {
            key: key.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn strict_envelopes_refuse_sloppy_forms() {
        let strict = |l: &[u8]| Command::parse_with(l, true);
        let bad = CommandError::Syntax("address must follow the colon, enclosed in <>");
        for line in [
            &b"MAIL FROM: <a@b>"[..],
            b"MAIL FROM:a@b",
            b"RCPT TO: user@example.test",
            b"RCPT TO:user@example.test",
        ] {
            assert_eq!(strict(line), Err(bad.clone()), "{line:?}");
        }
        assert_eq!(
            strict(b"RCPT TO:<user@example.test>"),
            Ok(Command::Rcpt {
                path: "<user@example.test>".into(),
                params: vec![]
            })
        );
        // lenient (the default): the same lines are accepted
        assert_eq!(
            Command::parse(b"RCPT TO: user@example.test NOTIFY=NEVER"),
            Ok(Command::Rcpt {
                path: "<user@example.test>".into(),
                params: vec![p("NOTIFY", Some("NEVER"))]
            })
        );
    }

    #[test]
    fn table() {
        use Command::*;
        use CommandError::*;
        let mail = |path: &str, params: Vec<Param>| {
            Ok(Mail {
                path: path.into(),
                params,
            })
        };
        let cases: Vec<(&[u8], Result<Command, CommandError>)> = vec![
            (b"HELO x.example", Ok(Helo("x.example".into()))),
            (b"helo x.example  ", Ok(Helo("x.example".into()))),
            (b"EHLO [127.0.0.1]", Ok(Ehlo("[127.0.0.1]".into()))),
            (b"EHLO", Err(Syntax("EHLO requires a domain"))),
            (b"EHLO a b", Err(Syntax("too many arguments"))),
            (b"MAIL FROM:<a@b.example>", mail("<a@b.example>", vec![])),
            (b"mail from:<>", mail("<>", vec![])),
            (b"MAIL FROM: <a@b>", mail("<a@b>", vec![])),
            (
                b"MAIL FROM:<a@b> SIZE=100 body=8bitmime SMTPUTF8",
                mail(
                    "<a@b>",
                    vec![
                        p("SIZE", Some("100")),
                        p("BODY", Some("8bitmime")),
                        p("SMTPUTF8", None),
                    ],
                ),
            ),
            (
                b"MAIL FROM:<\"a>b\"@c> X",
                mail("<\"a>b\"@c>", vec![p("X", None)]),
            ),
            (
                b"MAIL FROM:<a@b> SIZE=1 SIZE=2",
                Err(Syntax("duplicate parameter")),
            ),
            (
                b"MAIL FROM:<a@b> SIZE=",
                Err(Syntax("invalid parameter value")),
            ),
            (
                b"MAIL FROM:<a@b> =1",
                Err(Syntax("invalid parameter keyword")),
            ),
            (b"MAIL FROM:<a@b>X", Err(Syntax("garbage after address"))),
            (b"MAIL FROM:a@b", mail("<a@b>", vec![])),
            (
                b"MAIL FROM:  a@b SIZE=1",
                mail("<a@b>", vec![p("SIZE", Some("1"))]),
            ),
            (b"MAIL FROM:\t<a@b>", mail("<a@b>", vec![])),
            (b"MAIL FROM:", Err(Syntax("address must be enclosed in <>"))),
            (
                b"MAIL FROM: a<b",
                Err(Syntax("address must be enclosed in <>")),
            ),
            (b"MAIL FROM:<a@b", Err(Syntax("unterminated address"))),
            (
                b"MAIL TO:<a@b>",
                Err(Syntax("expected MAIL FROM:<address>")),
            ),
            (b"MAIL", Err(Syntax("expected MAIL FROM:<address>"))),
            (
                b"RCPT TO:<a@b>",
                Ok(Rcpt {
                    path: "<a@b>".into(),
                    params: vec![],
                }),
            ),
            (
                b"RCPT FROM:<a@b>",
                Err(Syntax("expected RCPT TO:<address>")),
            ),
            (b"DATA", Ok(Data)),
            (b"DATA x", Err(Syntax("no arguments allowed"))),
            (b"RSET", Ok(Rset)),
            (b"QUIT", Ok(Quit)),
            (b"StartTLS", Ok(StartTls)),
            (b"STARTTLS now", Err(Syntax("no arguments allowed"))),
            (b"NOOP", Ok(Noop("".into()))),
            (b"NOOP hello there", Ok(Noop("hello there".into()))),
            (b"HELP", Ok(Help("".into()))),
            (b"VRFY bob", Ok(Vrfy("bob".into()))),
            (b"VRFY", Err(Syntax("VRFY requires an argument"))),
            (b"EXPN list", Ok(Expn("list".into()))),
            (
                b"BDAT 10",
                Ok(Bdat {
                    size: 10,
                    last: false,
                }),
            ),
            (
                b"BDAT 0 LAST",
                Ok(Bdat {
                    size: 0,
                    last: true,
                }),
            ),
            (
                b"bdat 5 last",
                Ok(Bdat {
                    size: 5,
                    last: true,
                }),
            ),
            (
                b"BDAT 18446744073709551615",
                Ok(Bdat {
                    size: u64::MAX,
                    last: false,
                }),
            ),
            (b"BDAT 18446744073709551616 LAST", Err(BdatSize)),
            (b"BDAT 99999999999999999999999999 LAST", Err(BdatSize)),
            (b"BDAT -1", Err(BdatSize)),
            (b"BDAT +1", Err(BdatSize)),
            (b"BDAT", Err(BdatSize)),
            (b"BDAT 10 FIRST", Err(BdatArgs { size: 10 })),
            (b"BDAT 10 LAST x", Err(BdatArgs { size: 10 })),
            (
                b"AUTH plain dGVzdAB0ZXN0AHRlc3Q=",
                Ok(Auth {
                    mechanism: "PLAIN".into(),
                    initial: Some("dGVzdAB0ZXN0AHRlc3Q=".into()),
                }),
            ),
            (
                b"AUTH LOGIN",
                Ok(Auth {
                    mechanism: "LOGIN".into(),
                    initial: None,
                }),
            ),
            (b"AUTH", Err(Syntax("AUTH requires a mechanism"))),
            (
                b"XYZZY plugh",
                Ok(Unknown {
                    verb: "XYZZY".into(),
                    args: "plugh".into(),
                }),
            ),
            (
                b"",
                Ok(Unknown {
                    verb: "".into(),
                    args: "".into(),
                }),
            ),
            (b"NOOP \x00", Err(BadBytes)),
            (b"NOOP \r", Err(BadBytes)),
            (b"NOOP \xff", Err(BadBytes)),
        ];
        for (line, want) in cases {
            assert_eq!(
                Command::parse(line),
                want,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn xtext() {
        assert_eq!(xtext_decode("a+2Bb").as_deref(), Some("a+b"));
        assert_eq!(xtext_decode("<>").as_deref(), Some("<>"));
        assert_eq!(xtext_decode("a+2"), None);
        assert_eq!(xtext_decode("a+zz"), None);
        assert_eq!(xtext_decode("a+2b"), None);
    }

    #[test]
    fn long_line_verbs() {
        assert!(Command::has_long_line(b"MAIL FROM"));
        assert!(Command::has_long_line(b"rcpt"));
        assert!(!Command::has_long_line(b"NOOP"));
        assert!(!Command::has_long_line(b"MA"));
    }
}
