//! Issue 14 item 11 through the real binary: with a umask of 000 (the
//! gateway inherits the test process's), the spool and the Maildir are
//! created `0700` and every message and state file `0600`; `wasmtp queue
//! show` and `list` print a header's or an address's control characters as
//! escapes, never raw to the operator's terminal.

use crate::common;
use crate::delivery_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{Gateway, LOCAL};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every entry under `dir`: directories `0700`, files `0600` (the admin
/// socket aside, which is `0600` too).
fn assert_private(dir: &Path) -> usize {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let mut files = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files += assert_private(&p);
        } else {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
            files += 1;
        }
    }
    files
}

fn without_umask() {
    // SAFETY: umask only sets the process's file mode mask; this test
    // process runs one test (nextest) and wants the most permissive mask.
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(0);
    }
}

const HOSTILE: &[u8] = b"From: <c@example.org>\r\nSubject: \x1b[2J\x1b[31mgotcha\x07\r\n\r\nhi\r\n";

#[test]
fn maildir_files_are_private_whatever_the_umask() {
    without_umask();
    let gw = Gateway::start(LOCAL);
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    let r = s.send_mail("a@client.test", &["user@example.test"], HOSTILE);
    assert_eq!(r.code, 250, "{}", r.text);
    s.expect("QUIT", 221);
    let maildir = common::maildir(gw.dir.path());
    assert_eq!(assert_private(&maildir), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_files_are_private_and_queue_show_escapes() {
    without_umask();
    // Nothing listens upstream: the message stays in the spool.
    let dead = delivery_support::dead_port().await;
    let (gw, config, spool) = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let text = format!(
            "[server]\nhostname = \"mx.test\"\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\nmode = \"smtp\"\n\n\
             {LOCAL}relay_networks = [\"127.0.0.1\"]\n\n\
             [delivery]\nmode = \"store-and-forward\"\n\
             [delivery.forward]\nupstreams = [\"{dead}\"]\ntls = \"none\"\nconnect_timeout = \"1s\"\n\
             [delivery.spool]\ndir = {:?}\nfirst_retry = \"1h\"\n",
            spool.display().to_string()
        );
        let gw = Gateway::start_text(dir, &text, 1);
        let mut s = gw.connect();
        s.expect("EHLO client.test", 250);
        let r = s.send_mail("a@client.test", &["user@example.test"], HOSTILE);
        assert_eq!(r.code, 250, "{}", r.text);
        s.expect("QUIT", 221);
        // The first attempt fails and writes the state file.
        gw.wait_log("delivery attempt");
        let config = gw.config_path.clone();
        (gw, config, spool)
    })
    .await
    .unwrap();
    let files = assert_private(&spool);
    assert!(files >= 2, "message and state files: {files}");

    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wasmtp"))
            .args(["queue", "--config"])
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let list = run(&["list"]);
    let id = list.split_whitespace().next().unwrap().to_string();
    let show = run(&["show", &id]);
    assert!(
        !show.contains('\u{1b}') && !show.contains('\u{7}'),
        "{show:?}"
    );
    assert!(
        show.contains("Subject: \\u{1b}[2J\\u{1b}[31mgotcha\\u{7}"),
        "{show}"
    );
    assert!(show.contains("rcpt:      <user@example.test>"), "{show}");
    // JSON keeps the bytes, escaped by JSON itself.
    let json = run(&["show", &id, "--json"]);
    assert!(json.contains("\\u001b[2J"), "{json}");
    drop(gw);
}
