//! Store-and-forward against real sockets: spool, retries, per-recipient
//! results, bounces, TLS policy, crash recovery and queue admin.

use crate::delivery_support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use delivery_support::{Captured, Sink, SinkConfig, dead_port};
use tokio::sync::broadcast;
use wasmtp::context::Recipient;
use wasmtp::delivery::queue::{
    DeliveryReport, DeliveryStatus, QueueArgs, QueueCommand, queue_command,
};
use wasmtp::delivery::{
    Deliverer, DeliveryConfig, DeliveryMode, Envelope, ForwardConfig, SpoolConfig, TlsPolicy,
};
use wasmtp::protocol::params::BodyType;

fn saf(spool: &Path, upstreams: Vec<SocketAddr>) -> DeliveryConfig {
    DeliveryConfig {
        mode: DeliveryMode::StoreAndForward,
        spool: SpoolConfig {
            dir: spool.to_path_buf(),
            first_retry: Duration::from_millis(50),
            max_retry: Duration::from_millis(200),
            workers: 2,
            ..Default::default()
        },
        forward: ForwardConfig {
            upstreams,
            tls: TlsPolicy::None,
            helo_name: Some("gw.test".into()),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(5),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// An envelope from a trusted client (authenticated or a relay client),
/// whose sender is told of every failure.
fn env(id: &str, sender: &str, rcpts: &[&str]) -> Envelope {
    Envelope {
        trusted: true,
        id: id.into(),
        sender: sender.into(),
        recipients: rcpts
            .iter()
            .map(|a| Recipient {
                address: a.to_string(),
                params: vec![],
            })
            .collect(),
        ..Default::default()
    }
}

fn msg(n: usize) -> Vec<u8> {
    format!("Received: by gw.test; x\r\nSubject: m{n}\r\n\r\n.dot {n}\r\nbody\r\n").into_bytes()
}

async fn wait_report(
    rx: &mut broadcast::Receiver<DeliveryReport>,
    pred: impl Fn(&DeliveryReport) -> bool,
) -> DeliveryReport {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(r)) if pred(&r) => return r,
            Ok(Ok(_)) => {}
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("report channel: {e}"),
            Err(_) => panic!("no matching delivery report in time"),
        }
    }
}

/// Runs a queue command off the runtime thread (it talks to the running
/// queue's control socket synchronously).
async fn admin(c: &DeliveryConfig, json: bool, command: QueueCommand) -> Vec<u8> {
    let c = c.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        queue_command(&c, &QueueArgs { json, command }, &mut out).unwrap();
        out
    })
    .await
    .unwrap()
}

async fn wait_empty(d: &Deliverer) {
    let q = d.queue().unwrap();
    for _ in 0..400 {
        if q.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("queue not empty: {} left", q.len());
}

fn spool_files(spool: &Path) -> usize {
    std::fs::read_dir(spool.join("msg"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn upstream_down_then_up_delivers_everything_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let addr = dead_port().await;
    let d = Deliverer::new(&saf(dir.path(), vec![addr])).await.unwrap();
    let mut rx = d.subscribe_reports().unwrap();
    for i in 0..5 {
        let body = msg(i);
        let r = d
            .deliver(
                &env(&format!("DU{i}"), "a@example.org", &["b@example.net"]),
                &[&body],
            )
            .await;
        assert_eq!(r.code(), 250, "{r}");
        assert!(r.to_string().contains(&format!("queued as DU{i}")));
    }
    wait_report(&mut rx, |r| r.status == DeliveryStatus::Deferred).await;
    assert_eq!(
        spool_files(dir.path()),
        5,
        "all spooled while the upstream is down"
    );
    let sink = Sink::start_on(
        tokio::net::TcpListener::bind(addr).await.unwrap(),
        SinkConfig::default(),
    );
    let msgs = sink.wait_for(|m| m.len() >= 5).await;
    let mut got: Vec<Vec<u8>> = msgs.iter().map(|m| m.data.clone()).collect();
    got.sort();
    let mut want: Vec<Vec<u8>> = (0..5).map(msg).collect();
    want.sort();
    assert_eq!(got, want, "byte-exact");
    wait_empty(&d).await;
    assert_eq!(spool_files(dir.path()), 0);
    assert_eq!(sink.messages().len(), 5, "no duplicates");
}

#[tokio::test]
async fn temporary_failure_then_success() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkConfig {
        data: Arc::new(|_, n| {
            if n == 0 {
                "451 4.3.0 Try later".into()
            } else {
                "250 2.0.0 Ok".into()
            }
        }),
        ..Default::default()
    })
    .await;
    let d = Deliverer::new(&saf(dir.path(), vec![sink.addr]))
        .await
        .unwrap();
    let mut rx = d.subscribe_reports().unwrap();
    let body = msg(1);
    assert_eq!(
        d.deliver(&env("TF", "a@example.org", &["b@example.net"]), &[&body])
            .await
            .code(),
        250
    );
    let first = wait_report(&mut rx, |_| true).await;
    assert_eq!(first.status, DeliveryStatus::Deferred);
    assert_eq!(first.code, 451);
    let ok = wait_report(&mut rx, |r| r.status == DeliveryStatus::Delivered).await;
    assert_eq!(ok.attempts, 2);
    assert_eq!(ok.queue_id, "TF");
    wait_empty(&d).await;
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0].mail_from.starts_with("REFUSED:"));
    assert_eq!(msgs[1].data, body);
}

fn rejecting_sink() -> SinkConfig {
    SinkConfig {
        rcpt: Arc::new(|a, _| {
            if a.starts_with("perm") {
                "550 5.1.1 No such user".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn permanent_failure_bounces_once_to_the_sender_never_to_null() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(rejecting_sink()).await;
    let d = Deliverer::new(&saf(dir.path(), vec![sink.addr]))
        .await
        .unwrap();
    let mut rx = d.subscribe_reports().unwrap();
    let body = msg(7);
    assert_eq!(
        d.deliver(
            &env(
                "PB",
                "alice@example.org",
                &["perm@example.net", "ok@example.net"]
            ),
            &[&body]
        )
        .await
        .code(),
        250
    );
    let b = wait_report(&mut rx, |r| {
        r.queue_id == "PB" && r.recipient == "perm@example.net"
    })
    .await;
    assert_eq!(b.status, DeliveryStatus::Bounced);
    assert_eq!(b.code, 550);
    // The bounce itself is delivered to alice.
    wait_report(&mut rx, |r| {
        r.recipient == "alice@example.org" && r.status == DeliveryStatus::Delivered
    })
    .await;
    wait_empty(&d).await;
    let msgs = sink.messages();
    let bounces: Vec<&Captured> = msgs.iter().filter(|m| m.mail_from.is_empty()).collect();
    assert_eq!(bounces.len(), 1, "exactly one bounce");
    let dsn = String::from_utf8_lossy(&bounces[0].data).into_owned();
    assert_eq!(bounces[0].rcpts, vec!["alice@example.org"]);
    assert!(
        dsn.contains("multipart/report; report-type=delivery-status"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Final-Recipient: rfc822; perm@example.net"),
        "{dsn}"
    );
    assert!(dsn.contains("Status: 5.1.1"), "{dsn}");
    assert!(dsn.contains("Subject: m7"), "original header included");
    assert!(
        !dsn.contains("ok@example.net\r\nAction"),
        "delivered recipient not bounced"
    );
    let normal: Vec<&Captured> = msgs
        .iter()
        .filter(|m| m.mail_from == "alice@example.org")
        .collect();
    assert_eq!(normal.len(), 1);
    assert_eq!(normal[0].rcpts, vec!["ok@example.net"]);

    // Null sender: failed, no bounce.
    assert_eq!(
        d.deliver(&env("NB", "", &["perm@example.net"]), &[&body])
            .await
            .code(),
        250
    );
    let r = wait_report(&mut rx, |r| r.queue_id == "NB").await;
    assert_eq!(r.status, DeliveryStatus::Bounced);
    wait_empty(&d).await;
    let bounces = sink
        .messages()
        .iter()
        .filter(|m| m.mail_from.is_empty())
        .count();
    assert_eq!(bounces, 1, "no bounce for the null sender");
}

#[tokio::test]
async fn partial_failure_retries_only_failed_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkConfig {
        rcpt: Arc::new(|a, n| {
            if a.starts_with("flaky") && n == 0 {
                "450 4.2.0 Busy".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Default::default()
    })
    .await;
    let d = Deliverer::new(&saf(dir.path(), vec![sink.addr]))
        .await
        .unwrap();
    let mut rx = d.subscribe_reports().unwrap();
    let body = msg(3);
    assert_eq!(
        d.deliver(
            &env(
                "PR",
                "a@example.org",
                &["one@example.net", "flaky@example.net", "two@example.net"]
            ),
            &[&body]
        )
        .await
        .code(),
        250
    );
    wait_report(&mut rx, |r| {
        r.recipient == "flaky@example.net" && r.status == DeliveryStatus::Delivered
    })
    .await;
    wait_empty(&d).await;
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].rcpts, vec!["one@example.net", "two@example.net"]);
    assert_eq!(
        msgs[1].rcpts,
        vec!["flaky@example.net"],
        "only the failed recipient retried"
    );
    assert_eq!(msgs[1].data, body);
}

#[tokio::test]
async fn required_tls_without_starttls_stays_deferred() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkConfig::default()).await;
    let mut c = saf(dir.path(), vec![sink.addr]);
    c.forward.tls = TlsPolicy::Required;
    let d = Deliverer::new(&c).await.unwrap();
    let mut rx = d.subscribe_reports().unwrap();
    assert_eq!(
        d.deliver(&env("RT", "a@example.org", &["b@example.net"]), &[&msg(1)])
            .await
            .code(),
        250
    );
    for _ in 0..3 {
        let r = wait_report(&mut rx, |_| true).await;
        assert_eq!(r.status, DeliveryStatus::Deferred);
    }
    assert!(
        sink.commands()
            .iter()
            .all(|(_, _, c)| !c.starts_with("MAIL")),
        "never MAIL in plaintext"
    );
    assert!(sink.messages().is_empty());
    assert_eq!(d.queue().unwrap().len(), 1);
    let out = admin(&c, true, QueueCommand::List).await;
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v[0]["id"], "RT");
    assert_eq!(v[0]["state"]["recipients"][0]["status"], "pending");
    assert!(v[0]["state"]["attempts"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn expiry_bounces_with_4_4_7() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkConfig {
        rcpt: Arc::new(|a, _| {
            if a.starts_with("slow") {
                "451 4.2.0 Later".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Default::default()
    })
    .await;
    let mut c = saf(dir.path(), vec![sink.addr]);
    c.spool.max_lifetime = Duration::from_millis(300);
    let d = Deliverer::new(&c).await.unwrap();
    assert_eq!(
        d.deliver(
            &env("EX", "a@example.org", &["slow@example.net"]),
            &[&msg(2)]
        )
        .await
        .code(),
        250
    );
    let msgs = sink
        .wait_for(|m| m.iter().any(|m| m.mail_from.is_empty()))
        .await;
    let dsn = String::from_utf8_lossy(&msgs.iter().find(|m| m.mail_from.is_empty()).unwrap().data)
        .into_owned();
    assert!(dsn.contains("Status: 4.4.7"), "{dsn}");
    assert!(dsn.contains("expired"), "{dsn}");
    wait_empty(&d).await;
}

#[tokio::test]
async fn crash_recovery_resumes_spooled_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = saf(dir.path(), vec![dead_port().await]);
    c.spool.first_retry = Duration::from_secs(3600);
    {
        let d = Deliverer::new(&c).await.unwrap();
        let mut rx = d.subscribe_reports().unwrap();
        for i in 0..3 {
            assert_eq!(
                d.deliver(
                    &env(&format!("CR{i}"), "a@example.org", &["b@example.net"]),
                    &[&msg(i)]
                )
                .await
                .code(),
                250
            );
        }
        for _ in 0..3 {
            wait_report(&mut rx, |r| r.status == DeliveryStatus::Deferred).await;
        }
        // Dropped without delivering (the tasks are aborted, as in a crash).
    }
    // A torn write from the crash: must be ignored and cleaned.
    std::fs::write(
        dir.path().join("tmp").join("TORN"),
        b"WASMTP-SPOOL 1\n{\"id\"",
    )
    .unwrap();
    assert_eq!(spool_files(dir.path()), 3);
    let sink = Sink::start(SinkConfig::default()).await;
    c.forward.upstreams = vec![sink.addr];
    let d = Deliverer::new(&c).await.unwrap();
    let msgs = sink.wait_for(|m| m.len() >= 3).await;
    let mut got: Vec<Vec<u8>> = msgs.iter().map(|m| m.data.clone()).collect();
    got.sort();
    let mut want: Vec<Vec<u8>> = (0..3).map(msg).collect();
    want.sort();
    assert_eq!(got, want);
    wait_empty(&d).await;
    assert!(!dir.path().join("tmp").join("TORN").exists());
}

/// A BODY=BINARYMIME message that DATA would corrupt (bare LF, NUL, lone
/// CR, a line over 1000 octets, no final CRLF).
fn binary_msg() -> Vec<u8> {
    let mut b =
        b"Received: by gw.test; x\r\nSubject: bin\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            .to_vec();
    b.extend_from_slice(b"bare LF\nNUL \0\r\nlone CR\r.\r\n");
    b.extend(std::iter::repeat_n(b'y', 2000));
    b.extend((0..=255u8).cycle().take(10_000));
    b
}

fn binary_env(id: &str) -> Envelope {
    Envelope {
        body: BodyType::BinaryMime,
        ..env(id, "alice@example.org", &["bob@example.net"])
    }
}

#[tokio::test]
async fn binarymime_survives_a_restart_and_goes_with_bdat() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = saf(dir.path(), vec![dead_port().await]);
    c.spool.first_retry = Duration::from_secs(3600);
    let body = binary_msg();
    {
        let d = Deliverer::new(&c).await.unwrap();
        let mut rx = d.subscribe_reports().unwrap();
        assert_eq!(d.deliver(&binary_env("BR"), &[&body]).await.code(), 250);
        wait_report(&mut rx, |r| r.status == DeliveryStatus::Deferred).await;
    }
    // The body type comes back from the spool file.
    let sink = Sink::start(SinkConfig {
        chunking: true,
        binarymime: true,
        ..Default::default()
    })
    .await;
    c.forward.upstreams = vec![sink.addr];
    let d = Deliverer::new(&c).await.unwrap();
    let msgs = sink.wait_for(|m| !m.is_empty()).await;
    assert!(msgs[0].bdat, "sent with BDAT");
    assert!(msgs[0].data == body, "byte-exact");
    assert!(
        msgs[0].mail_line.ends_with(" BODY=BINARYMIME"),
        "{}",
        msgs[0].mail_line
    );
    wait_empty(&d).await;
}

#[tokio::test]
async fn binarymime_bounces_with_5_6_3_when_the_upstream_lacks_it() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkConfig::default()).await;
    let d = Deliverer::new(&saf(dir.path(), vec![sink.addr]))
        .await
        .unwrap();
    let mut rx = d.subscribe_reports().unwrap();
    assert_eq!(
        d.deliver(&binary_env("BB"), &[&binary_msg()]).await.code(),
        250
    );
    let r = wait_report(&mut rx, |r| r.queue_id == "BB").await;
    assert_eq!(r.status, DeliveryStatus::Bounced, "{r:?}");
    assert_eq!(r.code, 554, "{r:?}");
    wait_report(&mut rx, |r| {
        r.recipient == "alice@example.org" && r.status == DeliveryStatus::Delivered
    })
    .await;
    wait_empty(&d).await;
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1, "only the bounce reached the upstream");
    assert!(msgs[0].mail_from.is_empty());
    let dsn = String::from_utf8_lossy(&msgs[0].data).into_owned();
    assert!(
        dsn.contains("Final-Recipient: rfc822; bob@example.net"),
        "{dsn}"
    );
    assert!(dsn.contains("Status: 5.6.3"), "{dsn}");
    assert!(dsn.contains("Subject: bin"), "original header included");
    assert!(
        !sink
            .commands()
            .iter()
            .any(|(_, _, c)| c.starts_with("MAIL FROM:<alice@")),
        "the binary message was never offered"
    );
}

#[tokio::test]
async fn admin_flush_and_delete_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkConfig {
        data: Arc::new(|_, n| {
            if n == 0 {
                "451 4.3.0 Later".into()
            } else {
                "250 2.0.0 Ok".into()
            }
        }),
        rcpt: Arc::new(|a, _| {
            if a.starts_with("never") {
                "451 4.2.0 Later".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Default::default()
    })
    .await;
    let mut c = saf(dir.path(), vec![sink.addr]);
    c.spool.first_retry = Duration::from_secs(3600);
    c.spool.max_retry = Duration::from_secs(3600);
    let d = Deliverer::new(&c).await.unwrap();
    let mut rx = d.subscribe_reports().unwrap();
    assert_eq!(
        d.deliver(&env("FL", "a@example.org", &["b@example.net"]), &[&msg(1)])
            .await
            .code(),
        250
    );
    wait_report(&mut rx, |r| {
        r.queue_id == "FL" && r.status == DeliveryStatus::Deferred
    })
    .await;
    assert_eq!(
        d.deliver(
            &env("DEL", "a@example.org", &["never@example.net"]),
            &[&msg(2)]
        )
        .await
        .code(),
        250
    );
    wait_report(&mut rx, |r| {
        r.queue_id == "DEL" && r.status == DeliveryStatus::Deferred
    })
    .await;

    // show (human) works on the live spool.
    let out = admin(&c, false, QueueCommand::Show { id: "DEL".into() }).await;
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("never@example.net") && text.contains("Subject: m2"),
        "{text}"
    );

    // delete through the control socket.
    let out = admin(&c, true, QueueCommand::Delete { id: "DEL".into() }).await;
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["running"], true);
    assert_eq!(v["deleted"], true);
    assert!(!dir.path().join("msg").join("DEL").exists());

    // flush makes FL due now (its retry was an hour away).
    let out = admin(&c, true, QueueCommand::Flush).await;
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["running"], true);
    wait_report(&mut rx, |r| {
        r.queue_id == "FL" && r.status == DeliveryStatus::Delivered
    })
    .await;
    wait_empty(&d).await;
    let out = admin(&c, false, QueueCommand::List).await;
    assert!(String::from_utf8(out).unwrap().contains("-- 0 message(s)"));
}

#[tokio::test]
async fn second_gateway_on_the_same_spool_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = saf(dir.path(), vec![dead_port().await]);
    let _d = Deliverer::new(&c).await.unwrap();
    let e = Deliverer::new(&c).await.unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkConfig::default()).await;
    let d = Arc::new(
        Deliverer::new(&saf(dir.path(), vec![sink.addr]))
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..60 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let body = msg(i);
            d.deliver(
                &env(&format!("G{i}"), "a@example.org", &["b@example.net"]),
                &[&body],
            )
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().code(), 250);
    }
    let msgs = sink.wait_for(|m| m.len() >= 60).await;
    assert_eq!(msgs.len(), 60);
    wait_empty(&d).await;
}

#[tokio::test]
async fn delay_warning_once_to_the_sender_never_to_null() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkConfig {
        rcpt: Arc::new(|a, _| {
            if a.starts_with("slow") {
                "451 4.2.0 Mailbox busy".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Default::default()
    })
    .await;
    let mut c = saf(dir.path(), vec![sink.addr]);
    c.spool.delay_warning_after = Some(Duration::from_millis(150));
    let is_warning = |m: &Captured| m.mail_from.is_empty();
    {
        let d = Deliverer::new(&c).await.unwrap();
        let mut rx = d.subscribe_reports().unwrap();
        let body = msg(3);
        for (id, sender, rcpts) in [
            (
                "DW",
                "alice@example.org",
                &["slow@example.net", "ok@example.net"][..],
            ),
            ("DN", "", &["slow@example.net"][..]),
        ] {
            assert_eq!(
                d.deliver(&env(id, sender, rcpts), &[&body]).await.code(),
                250
            );
        }
        let msgs = sink.wait_for(|m| m.iter().any(is_warning)).await;
        let w = msgs.iter().find(|m| is_warning(m)).unwrap();
        assert_eq!(w.rcpts, vec!["alice@example.org"]);
        let dsn = String::from_utf8_lossy(&w.data).into_owned();
        assert!(
            dsn.contains("multipart/report; report-type=delivery-status"),
            "{dsn}"
        );
        assert!(
            dsn.contains(
                "Final-Recipient: rfc822; slow@example.net\r\nAction: delayed\r\nStatus: 4.2.0\r\nWill-Retry-Until: "
            ),
            "{dsn}"
        );
        assert!(
            dsn.contains("Diagnostic-Code: smtp; 451 4.2.0 Mailbox busy"),
            "{dsn}"
        );
        assert!(dsn.contains("X-Wasmtp-Queue-ID: DW"), "{dsn}");
        assert!(dsn.contains("Subject: m3"), "original header included");
        assert!(!dsn.contains("Action: failed"), "{dsn}");
        assert!(
            !dsn.contains("Final-Recipient: rfc822; ok@example.net"),
            "the delivered recipient is not in the warning: {dsn}"
        );
        // Both messages keep being retried well past the warning.
        for id in ["DW", "DN"] {
            wait_report(&mut rx, |r| {
                r.queue_id == id && r.status == DeliveryStatus::Deferred && r.attempts >= 6
            })
            .await;
        }
        // Dropped: the tasks stop as in a crash; the spool stays.
    }
    // After a restart the warning is remembered (it is in the state file).
    let d = Deliverer::new(&c).await.unwrap();
    let mut rx = d.subscribe_reports().unwrap();
    for id in ["DW", "DN"] {
        wait_report(&mut rx, |r| {
            r.queue_id == id && r.status == DeliveryStatus::Deferred && r.attempts >= 9
        })
        .await;
    }
    let msgs = sink.messages();
    assert_eq!(
        msgs.iter().filter(|m| is_warning(m)).count(),
        1,
        "one warning for alice's message, none for the null sender's: {msgs:?}"
    );
    // Still queued, not bounced: a warning is only a warning.
    assert_eq!(d.queue().unwrap().len(), 2);
    assert!(d.queue().unwrap().delete("DW").await);
    assert!(d.queue().unwrap().delete("DN").await);
    wait_empty(&d).await;
}
