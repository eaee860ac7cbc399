//! Helpers to build verdicts and replies.

use crate::{Reply, Verdict};

impl Reply {
    /// A reply with only text: the host fills in the code for the verdict.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            code: None,
            enhanced: None,
            lines: vec![text.into()],
        }
    }

    /// A reply with an enhanced status code (`"5.7.1"`) and one text line.
    pub fn with_status(enhanced: &str, text: impl Into<String>) -> Self {
        Self {
            code: None,
            enhanced: Some(enhanced.to_string()),
            lines: vec![text.into()],
        }
    }

    /// A complete reply: code, enhanced code and one text line.
    pub fn full(code: u16, enhanced: &str, text: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            enhanced: Some(enhanced.to_string()),
            lines: vec![text.into()],
        }
    }
}

impl Verdict {
    /// Permanent refusal (5xx, default code chosen by the host for the hook).
    pub fn deny(enhanced: &str, text: impl Into<String>) -> Self {
        Verdict::Deny(Reply::with_status(enhanced, text))
    }

    /// Temporary refusal (4xx).
    pub fn deny_soft(enhanced: &str, text: impl Into<String>) -> Self {
        Verdict::DenySoft(Reply::with_status(enhanced, text))
    }

    /// Permanent refusal, then the gateway closes the connection.
    pub fn deny_disconnect(enhanced: &str, text: impl Into<String>) -> Self {
        Verdict::DenyDisconnect(Reply::with_status(enhanced, text))
    }

    /// Temporary refusal, then the gateway closes the connection.
    pub fn deny_soft_disconnect(enhanced: &str, text: impl Into<String>) -> Self {
        Verdict::DenySoftDisconnect(Reply::with_status(enhanced, text))
    }

    /// The plugin's own reply, sent as given (any class 2xx..5xx).
    pub fn done(code: u16, enhanced: &str, text: impl Into<String>) -> Self {
        Verdict::Done(Reply::full(code, enhanced, text))
    }
}
