//! SASL decoding for AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN.
//!
//! Only decoding lives here; whether the credentials are right is the
//! driver's decision on `Event::Auth`. Nothing here logs or echoes a
//! password, and [`Credentials`]' `Debug` redacts it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::replies;
use super::reply::Reply;

/// A supported mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616 PLAIN.
    Plain,
    /// The LOGIN mechanism (username and password in two steps).
    Login,
}

impl Mechanism {
    /// Parses an upper-cased mechanism name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Self::Plain),
            "LOGIN" => Some(Self::Login),
            _ => None,
        }
    }

    /// The name as in the EHLO AUTH line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
        }
    }
}

/// The LOGIN challenge `Username:`.
pub const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
/// The LOGIN challenge `Password:`.
pub const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// Decoded credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Authorization identity (PLAIN only; often empty).
    pub authzid: String,
    /// Authentication identity.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Decodes one base64 client response; `=` is an empty response
/// (RFC 4954 4). Errors are `501 5.5.2`.
pub fn decode_response(text: &[u8]) -> Result<Vec<u8>, Reply> {
    if text == b"=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(text).map_err(|_| replies::bad_base64())
}

/// `authzid NUL authcid NUL passwd` (RFC 4616 2), all UTF-8, authcid and
/// passwd non-empty.
pub fn parse_plain(msg: &[u8]) -> Result<Credentials, Reply> {
    let mut parts = msg.split(|&b| b == 0);
    let (Some(z), Some(u), Some(p), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(replies::bad_auth_response());
    };
    if u.is_empty() || p.is_empty() {
        return Err(replies::bad_auth_response());
    }
    Ok(Credentials {
        authzid: utf8(z)?,
        username: utf8(u)?,
        password: utf8(p)?,
    })
}

/// A decoded LOGIN field (username or password) as UTF-8 without NUL.
pub fn utf8(bytes: &[u8]) -> Result<String, Reply> {
    if bytes.contains(&0) {
        return Err(replies::bad_auth_response());
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| replies::bad_auth_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_table() {
        let c = |z: &str, u: &str, p: &str| Credentials {
            authzid: z.into(),
            username: u.into(),
            password: p.into(),
        };
        let cases: &[(&[u8], Result<Credentials, u16>)] = &[
            (b"\0user\0pass", Ok(c("", "user", "pass"))),
            (b"admin\0user\0pass", Ok(c("admin", "user", "pass"))),
            (b"user\0pass", Err(501)),
            (b"\0\0pass", Err(501)),
            (b"\0user\0", Err(501)),
            (b"\0u\0p\0x", Err(501)),
            (b"\0u\xff\0p", Err(501)),
        ];
        for (msg, want) in cases {
            assert_eq!(parse_plain(msg).map_err(|r| r.code()), *want, "{msg:?}");
        }
    }

    #[test]
    fn base64_and_redaction() {
        assert_eq!(decode_response(b"=").unwrap(), b"");
        assert_eq!(decode_response(b"dXNlcg==").unwrap(), b"user");
        assert_eq!(decode_response(b"!!").map_err(|r| r.code()), Err(501));
        let creds = Credentials {
            authzid: String::new(),
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
