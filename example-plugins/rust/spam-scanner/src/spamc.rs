//! The spamc/spamd protocol (SpamAssassin's `spamd/PROTOCOL`), client side:
//! the request text and the parse of the reply to `SYMBOLS`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest reply accepted from spamd (a `SYMBOLS` reply is a few hundred octets).
const MAX_REPLY: u64 = 64 * 1024;

/// spamd's verdict on one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether spamd calls it spam (score at or above its threshold).
    pub spam: bool,
    /// The message's score.
    pub score: f64,
    /// spamd's threshold (`required_score`).
    pub threshold: f64,
    /// The names of the rules that hit.
    pub symbols: Vec<String>,
}

/// The `SYMBOLS` request for `message`.
pub fn request(message: &[u8], user: Option<&str>) -> Vec<u8> {
    let mut out = format!("SYMBOLS SPAMC/1.5\r\nContent-length: {}\r\n", message.len());
    if let Some(user) = user {
        out.push_str(&format!("User: {user}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(message);
    out
}

/// Parses spamd's reply to `SYMBOLS`:
///
/// ```text
/// SPAMD/1.1 0 EX_OK
/// Content-length: 68
/// Spam: True ; 1003.3 / 5.0
///
/// GTUBE,MISSING_DATE,...
/// ```
pub fn parse_reply(reply: &[u8]) -> Result<Verdict, String> {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default();
    let mut parts = status.split_whitespace();
    let (Some(proto), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("bad status line {status:?}"));
    };
    if !proto.starts_with("SPAMD/") {
        return Err(format!("not a spamd reply: {status:?}"));
    }
    if code != "0" {
        return Err(format!("spamd error: {}", status.trim()));
    }
    let spam_line = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("Spam"))
        .map(|(_, v)| v.trim())
        .ok_or("no Spam header in the reply")?;
    // "True ; 1003.3 / 5.0"
    let (flag, scores) = spam_line
        .split_once(';')
        .ok_or_else(|| format!("bad Spam header {spam_line:?}"))?;
    let spam = match flag.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" => true,
        "false" | "no" => false,
        other => return Err(format!("bad Spam flag {other:?}")),
    };
    let (score, threshold) = scores
        .split_once('/')
        .ok_or_else(|| format!("bad Spam header {spam_line:?}"))?;
    let number = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| format!("bad score {s:?}"))
    };
    let symbols = body
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .filter(|s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .map(str::to_string)
        .collect();
    Ok(Verdict {
        spam,
        score: number(score)?,
        threshold: number(threshold)?,
        symbols,
    })
}

/// Sends `message` to spamd at `addr` and returns its verdict.
pub fn check(
    addr: SocketAddr,
    message: &[u8],
    user: Option<&str>,
    timeout: Duration,
) -> Result<Verdict, String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .or_else(|_| TcpStream::connect(addr))
        .map_err(|e| format!("cannot connect to spamd at {addr}: {e}"))?;
    // Not every platform has socket timeouts; the plugin's own time limit
    // bounds the wait where they are missing.
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    stream
        .write_all(&request(message, user))
        .and_then(|()| stream.flush())
        .map_err(|e| format!("cannot send to spamd at {addr}: {e}"))?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    (&mut stream)
        .take(MAX_REPLY)
        .read_to_end(&mut reply)
        .map_err(|e| format!("cannot read spamd's reply: {e}"))?;
    if reply.is_empty() {
        return Err(format!("spamd at {addr} closed without a reply"));
    }
    parse_reply(&reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_spam_reply() {
        let v = parse_reply(b"SPAMD/1.1 0 EX_OK\r\nContent-length: 21\r\nSpam: True ; 1003.3 / 5.0\r\n\r\nGTUBE,MISSING_DATE").unwrap();
        assert!(v.spam);
        assert_eq!(v.score, 1003.3);
        assert_eq!(v.threshold, 5.0);
        assert_eq!(v.symbols, ["GTUBE", "MISSING_DATE"]);
    }

    #[test]
    fn refuses_errors_and_garbage() {
        assert!(parse_reply(b"SPAMD/1.0 76 Bad header line: x\r\n").is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_reply(b"SPAMD/1.1 0 EX_OK\r\nSpam: maybe ; 1 / 5\r\n\r\n").is_err());
        assert!(parse_reply(b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; NaN / 5\r\n\r\n").is_err());
    }

    #[test]
    fn request_carries_the_length() {
        let r = request(b"Subject: x\r\n\r\nhi\r\n", None);
        assert!(r.starts_with(b"SYMBOLS SPAMC/1.5\r\nContent-length: 18\r\n\r\nSubject"));
    }
}
