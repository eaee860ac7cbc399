//! The Received header we prepend to every accepted message (RFC 5321 4.4,
//! protocol names per RFC 3848 and RFC 6531):
//!
//! ```text
//! Received: from client.example (rdns.example [192.0.2.1])
//!     (using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)
//!     by mx.example (wasmtp) with ESMTPSA id 01jc...
//!     for <user@example.test>; Sun, 22 Nov 2026 02:32:44 +0000
//! ```

use std::net::IpAddr;
use std::time::SystemTime;

use crate::context::{HelloKind, SessionContext};

/// The `with` protocol name: SMTP for HELO; (UTF8)ESMTP plus S for TLS and
/// A for an authenticated session.
pub fn protocol_name(hello: HelloKind, tls: bool, auth: bool, smtputf8: bool) -> String {
    if hello == HelloKind::Helo {
        return "SMTP".into();
    }
    let mut p = String::from(if smtputf8 { "UTF8SMTP" } else { "ESMTP" });
    if tls {
        p.push('S');
    }
    if auth {
        p.push('A');
    }
    p
}

/// An address literal: `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
pub fn address_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("[{v4}]"),
            None => format!("[IPv6:{v6}]"),
        },
    }
}

/// Keeps a client-supplied name from breaking the header's structure
/// (comments, spaces, control characters).
fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .take(255)
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "unknown".into()
    } else {
        cleaned
    }
}

/// The complete header field, folded, ending in CRLF.
pub fn received_header(
    ctx: &SessionContext,
    hostname: &str,
    id: &str,
    smtputf8: bool,
    now: SystemTime,
) -> Vec<u8> {
    let conn = &ctx.conn;
    let helo = if conn.hello_host.is_empty() {
        "unknown".to_string()
    } else {
        sanitize(&conn.hello_host)
    };
    let rdns = conn
        .remote_host
        .as_deref()
        .map_or_else(|| "unknown".to_string(), sanitize);
    let mut h = format!(
        "Received: from {helo} ({rdns} {})\r\n",
        address_literal(conn.remote.ip())
    );
    if let Some(tls) = &conn.tls {
        h.push_str(&format!(
            "\t(using {} with cipher {})\r\n",
            sanitize(&tls.protocol),
            sanitize(&tls.cipher)
        ));
    }
    let with = protocol_name(
        conn.hello,
        conn.tls.is_some(),
        conn.auth_user.is_some(),
        smtputf8,
    );
    h.push_str(&format!("\tby {hostname} (wasmtp) with {with} id {id}"));
    let recipients = ctx
        .txn
        .as_ref()
        .map(|t| t.recipients.as_slice())
        .unwrap_or(&[]);
    if let [only] = recipients {
        let clean = only.address.replace(['\r', '\n', '\0', '<', '>'], "_");
        h.push_str(&format!("\r\n\tfor <{clean}>"));
    }
    h.push_str(&format!("; {}\r\n", crate::date::rfc5322(now)));
    h.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Connection, Recipient, TlsInfo, Transaction};
    use std::time::{Duration, UNIX_EPOCH};

    fn ctx() -> SessionContext {
        let mut conn = Connection::new(
            "s1".into(),
            "192.0.2.1:40000".parse().unwrap(),
            "127.0.0.1:25".parse().unwrap(),
        );
        conn.hello = HelloKind::Ehlo;
        conn.hello_host = "client.example".into();
        SessionContext {
            conn,
            txn: Some(Transaction {
                id: "q1".into(),
                recipients: vec![Recipient {
                    address: "user@example.test".into(),
                    params: vec![],
                }],
                ..Transaction::default()
            }),
            max_message_size: 1000,
        }
    }

    #[test]
    fn plain_header() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let h = received_header(&ctx(), "mx.example", "q1", false, t);
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "Received: from client.example (unknown [192.0.2.1])\r\n\tby mx.example (wasmtp) with ESMTP id q1\r\n\tfor <user@example.test>; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        );
    }

    #[test]
    fn tls_auth_and_hostile_helo() {
        let mut c = ctx();
        c.conn.tls = Some(TlsInfo {
            protocol: "TLSv1.3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
            sni: None,
        });
        c.conn.auth_user = Some("alice".into());
        c.conn.remote_host = Some("rdns.example".into());
        c.conn.hello_host = "evil (x) by y".into();
        c.txn.as_mut().unwrap().recipients.push(Recipient {
            address: "b@example.test".into(),
            params: vec![],
        });
        let h =
            String::from_utf8(received_header(&c, "mx", "q2", true, SystemTime::now())).unwrap();
        assert!(h.starts_with("Received: from evil__x__by_y (rdns.example [192.0.2.1])\r\n"));
        assert!(h.contains("\t(using TLSv1.3 with cipher TLS13_AES_128_GCM_SHA256)\r\n"));
        assert!(h.contains("with UTF8SMTPSA id q2;"));
        assert!(!h.contains("for <"));
        assert!(h.ends_with("+0000\r\n"));
    }

    #[test]
    fn literals() {
        assert_eq!(
            address_literal("2001:db8::1".parse().unwrap()),
            "[IPv6:2001:db8::1]"
        );
        assert_eq!(
            address_literal("::ffff:10.0.0.1".parse().unwrap()),
            "[10.0.0.1]"
        );
        assert_eq!(protocol_name(HelloKind::Helo, true, true, false), "SMTP");
    }
}
