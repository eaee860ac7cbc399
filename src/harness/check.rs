//! What the plugins left behind, and the `?` checks on it: globs over
//! headers, the body, notes and recipients of the last ended transaction.

use std::sync::Mutex;

use crate::context::{Notes, SessionContext};
use crate::message::Message;
use crate::plugin::TransactionEnd;
use crate::session::TransactionObserver;

use super::dialog::Check;

/// A transaction as it ended.
#[derive(Debug, Clone)]
pub(super) struct Ended {
    /// Why it ended.
    pub end: TransactionEnd,
    /// Its notes.
    pub txn_notes: Notes,
    /// The connection's notes at that time.
    pub conn_notes: Notes,
    /// Its recipients, in order.
    pub recipients: Vec<String>,
    /// The message as the plugins left it (header section and body; the
    /// gateway's Received header is added at delivery, not here).
    pub message: Option<Vec<u8>>,
}

/// Records every ended transaction of a session.
#[derive(Debug, Default)]
pub(super) struct Recorder {
    ended: Mutex<Vec<Ended>>,
}

impl Recorder {
    /// The last ended transaction, if any.
    pub(super) fn last(&self) -> Option<Ended> {
        self.lock().last().cloned()
    }

    /// Transactions ended by an accepted message.
    pub(super) fn delivered(&self) -> usize {
        self.lock()
            .iter()
            .filter(|e| e.end == TransactionEnd::Delivered)
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Ended>> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TransactionObserver for Recorder {
    fn transaction_ended(&self, ctx: &SessionContext, end: TransactionEnd) {
        let Some(txn) = &ctx.txn else {
            return;
        };
        let ended = Ended {
            end,
            txn_notes: txn.notes.clone(),
            conn_notes: ctx.conn.notes.clone(),
            recipients: txn.recipients.iter().map(|r| r.address.clone()).collect(),
            message: txn.message.as_ref().map(|m| m.to_bytes().into_owned()),
        };
        self.lock().push(ended);
    }
}

/// Whether `text` matches `glob` as a whole: `*` is any run of characters
/// (newlines included), everything else is literal.
pub(super) fn glob(glob: &str, text: &str) -> bool {
    let mut parts = glob.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Evaluates `check`: `Ok(())`, or what was found instead.
pub(super) fn evaluate(check: &Check, recorder: &Recorder) -> Result<(), String> {
    if let Check::Delivered(n) = check {
        let got = recorder.delivered();
        return match got == *n {
            true => Ok(()),
            false => Err(format!("{got} delivered")),
        };
    }
    let Some(ended) = recorder.last() else {
        return Err("no transaction has ended yet".into());
    };
    let message = || {
        ended
            .message
            .as_deref()
            .map(|m| Message::parse(m.to_vec()))
            .ok_or_else(|| "the transaction ended before any message content".to_string())
    };
    match check {
        Check::Header { name, glob: g } => {
            let values = message()?.header_values(name);
            if values.iter().any(|v| glob(g, v)) {
                return Ok(());
            }
            match values.is_empty() {
                true => Err(format!("no {name} header")),
                false => Err(format!("{name}: {}", values.join(" | "))),
            }
        }
        Check::NoHeader(name) => {
            let values = message()?.header_values(name);
            match values.first() {
                None => Ok(()),
                Some(v) => Err(format!("{name}: {v}")),
            }
        }
        Check::Body(g) => {
            let body = String::from_utf8_lossy(message()?.body()).replace("\r\n", "\n");
            match glob(g, &body) {
                true => Ok(()),
                false => Err(format!("body {:?}", shorten(&body))),
            }
        }
        Check::Note { key, glob: g } => {
            let value = ended
                .txn_notes
                .get(key)
                .or_else(|| ended.conn_notes.get(key));
            match value {
                Some(v) if glob(g, v) => Ok(()),
                Some(v) => Err(format!("{key} = {v}")),
                None => Err(format!("no note {key}")),
            }
        }
        Check::Recipients(want) => match ended.recipients == *want {
            true => Ok(()),
            false => Err(format!("recipients {}", ended.recipients.join(", "))),
        },
        Check::Delivered(_) => Ok(()),
    }
}

/// At most 200 characters of `text`, for a FAIL line.
fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(200).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("abc", "abc"));
        assert!(!glob("abc", "abcd"));
        assert!(glob("*", ""));
        assert!(glob("a*", "abc"));
        assert!(glob("*c", "abc"));
        assert!(glob("*b*", "abc"));
        assert!(glob("a*b*c", "a-b-c"));
        assert!(!glob("a*b*c", "a-c"));
        assert!(glob("*x*", "line\nwith x\n"));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("", ""));
        assert!(!glob("", "x"));
    }
}
