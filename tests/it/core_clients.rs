//! Real SMTP clients against the real binary: lettre, Python's smtplib, swaks.

use crate::common;

use std::process::Command;

use common::{Gateway, LOCAL};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

fn message(to: &str, subject: &str) -> Message {
    Message::builder()
        .from("Alice <alice@client.test>".parse::<Mailbox>().unwrap())
        .to(to.parse::<Mailbox>().unwrap())
        .subject(subject)
        .body(String::from("Hello from lettre.\r\n"))
        .unwrap()
}

fn transport(port: u16, tls: bool, auth: bool) -> AsyncSmtpTransport<Tokio1Executor> {
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .hello_name(ClientId::Domain("client.test".into()));
    if tls {
        let params = TlsParameters::builder("localhost".into())
            .dangerous_accept_invalid_certs(true)
            .dangerous_accept_invalid_hostnames(true)
            .build_rustls()
            .unwrap();
        b = b.tls(Tls::Required(params));
    }
    if auth {
        b = b
            .credentials(Credentials::new("alice".into(), "s3cret".into()))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    b.build()
}

#[tokio::test]
async fn lettre_plain_starttls_and_auth() {
    let gw = Gateway::start(&format!("{LOCAL}{}", common::alice_auth(false)));
    let port = gw.smtp().port();

    let r = transport(port, false, false)
        .send(message("bob@example.test", "plain"))
        .await
        .unwrap();
    assert!(r.is_positive());

    transport(port, true, false)
        .send(message("bob@example.test", "starttls"))
        .await
        .unwrap();

    // Authenticated (PLAIN, then LOGIN) over STARTTLS: may relay.
    transport(port, true, true)
        .send(message("carol@remote.test", "auth"))
        .await
        .unwrap();
    let login = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::Required(
            TlsParameters::builder("localhost".into())
                .dangerous_accept_invalid_certs(true)
                .dangerous_accept_invalid_hostnames(true)
                .build_rustls()
                .unwrap(),
        ))
        .credentials(Credentials::new("alice".into(), "s3cret".into()))
        .authentication(vec![Mechanism::Login])
        .build();
    login
        .send(message("dave@remote.test", "login"))
        .await
        .unwrap();

    // Unauthenticated relay is refused.
    let err = transport(port, true, false)
        .send(message("carol@remote.test", "relay"))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");

    let msgs = gw.delivered();
    assert_eq!(msgs.len(), 4);
    let all: Vec<String> = msgs
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert!(
        all.iter()
            .any(|m| m.contains("Subject: plain") && m.contains("with ESMTP id"))
    );
    assert!(
        all.iter()
            .any(|m| m.contains("Subject: starttls") && m.contains("with ESMTPS id"))
    );
    assert!(
        all.iter()
            .any(|m| m.contains("Subject: auth") && m.contains("with ESMTPSA id"))
    );
    assert!(
        all.iter()
            .any(|m| m.contains("Subject: login") && m.contains("with ESMTPSA id"))
    );
}

const PY: &str = r#"
import smtplib, ssl, sys
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", port, local_hostname="py.test") as s:
    s.ehlo()
    assert s.has_extn("starttls"), s.esmtp_features
    s.starttls(context=ctx)
    s.ehlo()
    assert s.has_extn("smtputf8"), s.esmtp_features
    s.login("alice", "s3cret")
    msg = "From: alice@client.test\r\nTo: j\u00f6rg@example.test\r\nSubject: utf8 \u00e9t\u00e9\r\n\r\nGr\u00fc\u00dfe\r\n".encode("utf-8")
    refused = s.sendmail("al\u00efce@client.test", ["j\u00f6rg@example.test"], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert refused == {}, refused
    try:
        s.sendmail("a@client.test", ["x@remote.test"], b"Subject: r\r\n\r\nx\r\n")
    except smtplib.SMTPRecipientsRefused:
        pass
print("python-ok")
"#;

#[test]
fn python_smtplib_starttls_auth_smtputf8() {
    // Authenticated sessions may relay, so the second send is accepted too;
    // the script only checks that nothing raised unexpectedly.
    let gw = Gateway::start(&format!("{LOCAL}{}", common::alice_auth(false)));
    let out = Command::new("python3")
        .arg("-c")
        .arg(PY)
        .arg(gw.smtp().port().to_string())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("python-ok"));
    let msgs = gw.delivered();
    let utf8 = msgs
        .iter()
        .map(|m| String::from_utf8(m.clone()).unwrap())
        .find(|m| m.contains("Subject: utf8"))
        .expect("the SMTPUTF8 message");
    assert!(utf8.contains("with UTF8SMTPSA id"), "{utf8}");
    assert!(utf8.contains("for <j\u{f6}rg@example.test>"), "{utf8}");
    assert!(utf8.contains("Gr\u{fc}\u{df}e"), "{utf8}");
}

#[test]
fn swaks_starttls() {
    if !common::have("swaks") {
        eprintln!(
            "\n\n*** SKIPPED swaks_starttls: swaks is not installed (cargo xtask test installs it) ***\n\n"
        );
        return;
    }
    let gw = Gateway::start(LOCAL);
    let out = Command::new("swaks")
        .args([
            "--to",
            "postmaster@example.test",
            "--from",
            "swaks@client.test",
        ])
        .args(["--server", &gw.smtp().to_string(), "--tls"])
        .args(["--helo", "swaks.test"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = gw.delivered();
    assert_eq!(msgs.len(), 1);
    let text = String::from_utf8_lossy(&msgs[0]);
    assert!(
        text.starts_with("Received: from swaks.test (unknown [127.0.0.1])"),
        "{text}"
    );
    assert!(text.contains("with ESMTPS id"), "{text}");
}
