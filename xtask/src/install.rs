//! Installs what the tasks need: Debian packages through apt, and the
//! `wasm32-wasip2` Rust target through rustup. Each check is a file test or
//! one quick command, so a second run costs nothing.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};

use crate::sh;

/// The Rust target plugins are built for.
pub use wasmtp_plugin_kit::toolchain::WASM_TARGET;

/// A program a task needs, the Debian packages that make it do what the
/// tests ask of it, and how to check that it does.
///
/// `packages` lists more than the program's own package where a mode the
/// tests use depends on a package Debian only *recommends* (we install with
/// `--no-install-recommends`): swaks needs `libnet-ssleay-perl` for `--tls`.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// An absolute path, or a program name looked up on `PATH`.
    pub program: &'static str,
    /// The Debian packages to install for it (the first one ships the program).
    pub packages: &'static [&'static str],
    /// Run after installing: the program in the mode the tests use.
    pub check: Option<Check>,
}

/// A command that shows a tool works in the mode the tests drive it in.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Arguments given to the tool's program.
    pub args: &'static [&'static str],
    /// Text the command's output (stdout and stderr) must contain.
    pub expect: &'static str,
    /// What the check is for, in the failure message.
    pub what: &'static str,
}

impl Tool {
    /// Whether the program is already there.
    pub fn present(&self) -> bool {
        sh::on_path(self.program)
    }

    /// Whether the program is there and passes its check; `Err` says what is
    /// wrong and which package to install.
    pub fn preflight(&self) -> Result<()> {
        if !self.present() {
            bail!(
                "{} is missing: apt-get install {}",
                self.program,
                self.packages.join(" ")
            );
        }
        let Some(check) = self.check else {
            return Ok(());
        };
        let out = Command::new(self.program)
            .args(check.args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.program))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        if !text.contains(check.expect) {
            let said: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            bail!(
                "`{} {}` does not show {} (expected \"{}\"); it printed: {}; \
                 install: apt-get install {}",
                self.program,
                check.args.join(" "),
                check.what,
                check.expect,
                said.join(" | "),
                self.packages.join(" ")
            );
        }
        Ok(())
    }
}

/// swaks with the Perl modules its `--tls` needs (only Recommends of the
/// swaks package). The README's quick-start line uses it too.
pub const SWAKS: Tool = Tool {
    program: "/usr/bin/swaks",
    packages: &["swaks", "libnet-ssleay-perl", "libio-socket-ssl-perl"],
    check: Some(Check {
        args: &["--support"],
        expect: "=== TLS supported",
        what: "TLS support (Net::SSLeay)",
    }),
};

/// What the integration tests drive: swaks (with TLS), Postfix's
/// smtp-sink/smtp-source (real peers for forward mode) and python3
/// (smtplib clients over TLS).
pub const TEST_TOOLS: &[Tool] = &[
    SWAKS,
    Tool {
        program: "/usr/sbin/smtp-sink",
        packages: &["postfix"],
        check: None,
    },
    Tool {
        program: "/usr/sbin/smtp-source",
        packages: &["postfix"],
        check: None,
    },
    Tool {
        program: "openssl",
        packages: &["openssl"],
        check: Some(Check {
            args: &["version"],
            expect: "OpenSSL",
            what: "the openssl CLI (DKIM test keys)",
        }),
    },
    Tool {
        program: "python3",
        packages: &["python3", "python3-venv"],
        check: Some(Check {
            args: &[
                "-c",
                "import smtplib, ssl; print('smtplib with', ssl.OPENSSL_VERSION)",
            ],
            expect: "smtplib with",
            what: "smtplib and ssl",
        }),
    },
];

/// Installed only when a test mentions it (see [`optional_test_tools`]).
const OPTIONAL_TEST_TOOLS: &[(&str, Tool)] = &[
    (
        "redis-server",
        Tool {
            program: "/usr/bin/redis-server",
            packages: &["redis-server"],
            check: Some(Check {
                args: &["--version"],
                expect: "Redis server",
                what: "a Redis server",
            }),
        },
    ),
    // The load balancer of the scale-out test (tests/it/core_haproxy.rs):
    // PROXY protocol v2 and SMTP health checks in front of two gateways.
    (
        "haproxy",
        Tool {
            program: "/usr/sbin/haproxy",
            packages: &["haproxy"],
            check: Some(Check {
                args: &["-vv"],
                expect: "HAProxy version",
                what: "HAProxy",
            }),
        },
    ),
    // SpamAssassin's daemon for the spam-scanner plugin's tests, which run
    // it as `spamd --local` on loopback. Only Depends are installed (spamc,
    // sa-compile, SPF/DMARC modules are Recommends the offline scan does
    // not use); Debian 12 ships the daemon in `spamd`, the rules and the
    // Perl modules in `spamassassin`.
    ("spamd", SPAMD),
    ("spamd", SPAMASSASSIN),
];

/// The musl C compiler wrapper: C parts of dependencies (ring, mimalloc)
/// for the static `cargo xtask dist` build.
pub const MUSL_GCC: Tool = Tool {
    program: "/usr/bin/musl-gcc",
    packages: &["musl-tools"],
    check: None,
};

/// SpamAssassin's daemon (`spamd`).
pub const SPAMD: Tool = Tool {
    program: "/usr/sbin/spamd",
    packages: &["spamd", "spamassassin"],
    check: Some(Check {
        args: &["--version"],
        expect: "SpamAssassin Server version",
        what: "SpamAssassin's spamd",
    }),
};

/// SpamAssassin's rules and modules, checked by scanning its built-in lint
/// message offline (`--local`), as spamd does in the tests.
pub const SPAMASSASSIN: Tool = Tool {
    program: "/usr/bin/spamassassin",
    packages: &["spamassassin"],
    check: Some(Check {
        args: &["--local", "--lint", "-D", "check"],
        expect: "dbg: check: is spam?",
        what: "an offline scan with the installed rules",
    }),
};

/// The optional tools whose name appears in a file under `tests/`.
pub fn optional_test_tools(root: &Path) -> Vec<Tool> {
    let mut sources = String::new();
    collect_sources(&root.join("tests"), &mut sources);
    OPTIONAL_TEST_TOOLS
        .iter()
        .filter(|(needle, _)| sources.contains(needle))
        .map(|(_, tool)| *tool)
        .collect()
}

fn collect_sources(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n != "target" && n != "node_modules")
            {
                collect_sources(&path, out);
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "rs" || e == "py" || e == "sh")
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            out.push_str(&text);
        }
    }
}

/// Installs the packages of the tools that are missing or fail their check
/// (one `apt-get install`), then runs every tool's check: a tool that still
/// fails stops here with the package to install, not half an hour later in
/// a test.
pub fn ensure_tools(tools: &[Tool]) -> Result<()> {
    let mut packages: Vec<&str> = tools
        .iter()
        .filter(|t| t.preflight().is_err())
        .flat_map(|t| t.packages.iter().copied())
        .collect();
    packages.sort_unstable();
    packages.dedup();
    if packages.is_empty() {
        eprintln!("tools present and checked: {}", names(tools));
        return Ok(());
    }
    apt_install(&packages)?;
    preflight(tools)
}

/// Runs every tool's check; the error lists each failure.
pub fn preflight(tools: &[Tool]) -> Result<()> {
    let failures: Vec<String> = tools
        .iter()
        .filter_map(|t| t.preflight().err().map(|e| format!("{e:#}")))
        .collect();
    if !failures.is_empty() {
        bail!("preflight failed:\n  {}", failures.join("\n  "));
    }
    eprintln!("preflight ok: {}", names(tools));
    Ok(())
}

fn names(tools: &[Tool]) -> String {
    tools
        .iter()
        .map(|t| t.program.rsplit('/').next().unwrap_or(t.program))
        .collect::<Vec<_>>()
        .join(", ")
}

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// `apt-get install` of `packages`, non-interactively; `apt-get update` runs
/// once per xtask process, before the first install. Postfix is preseeded
/// with "No configuration", so no system mail server is configured or started.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    let sudo = if sh::is_root() {
        None
    } else if sh::on_path("sudo") {
        Some("sudo")
    } else {
        bail!(
            "missing Debian packages: {0}; run as root, or: sudo apt-get install {0}",
            packages.join(" ")
        );
    };
    let apt = |args: &[&str]| {
        let mut cmd = match sudo {
            Some(sudo) => {
                let mut c = sh::cmd(sudo);
                c.arg("env")
                    .arg("DEBIAN_FRONTEND=noninteractive")
                    .arg("apt-get");
                c
            }
            None => {
                let mut c = sh::cmd("apt-get");
                c.env("DEBIAN_FRONTEND", "noninteractive");
                c
            }
        };
        // Wait for the dpkg lock instead of failing while another install runs.
        cmd.args(["-o", "DPkg::Lock::Timeout=600"])
            .args(args)
            .stdin(Stdio::null());
        cmd
    };
    if packages.contains(&"postfix") {
        preseed_postfix(sudo)?;
    }
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        sh::run(&mut apt(&["update", "-q"]))?;
    }
    let postfix_was_there = Path::new("/usr/sbin/postfix").exists();
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend_from_slice(packages);
    sh::run(&mut apt(&args))?;
    if packages.contains(&"postfix") && !postfix_was_there {
        stop_system_postfix();
    }
    Ok(())
}

/// Answers postfix's debconf question before it is asked.
fn preseed_postfix(sudo: Option<&str>) -> Result<()> {
    let mut cmd = match sudo {
        Some(sudo) => {
            let mut c = sh::cmd(sudo);
            c.arg("debconf-set-selections");
            c
        }
        None => sh::cmd("debconf-set-selections"),
    };
    sh::announce(&cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot start debconf-set-selections")?;
    if let Some(stdin) = child.stdin.as_mut() {
        stdin.write_all(
            b"postfix postfix/main_mailer_type select No configuration\n\
              postfix postfix/mailname string localhost\n",
        )?;
    }
    drop(child.stdin.take());
    let status = child.wait()?;
    if !status.success() {
        bail!("debconf-set-selections failed ({status})");
    }
    Ok(())
}

/// With "No configuration" the package starts no daemon; should a system
/// master process be running after our install anyway, stop it (we started it).
fn stop_system_postfix() {
    let pid_file = Path::new("/var/spool/postfix/pid/master.pid");
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return;
    };
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return;
    }
    eprintln!("the postfix install started a system master (pid {pid}); stopping it");
    if sh::run(Command::new("/usr/sbin/postfix").arg("stop")).is_err() {
        eprintln!("warning: could not stop postfix master pid {pid}");
    }
}

/// Makes sure `rustup target add wasm32-wasip2` has been done.
pub fn ensure_wasm_target() -> Result<()> {
    ensure_target(WASM_TARGET)
}

/// Makes sure `rustup target add TARGET` has been done.
pub fn ensure_target(target: &str) -> Result<()> {
    if target_installed(target) {
        eprintln!("rust target {target} present");
        return Ok(());
    }
    if !sh::on_path("rustup") {
        bail!(
            "the Rust target {target} is missing and rustup is not on PATH; \
             install rustup (https://rustup.rs) or add the target to your toolchain"
        );
    }
    sh::run(sh::cmd("rustup").args(["target", "add", target]))
}

fn target_installed(target: &str) -> bool {
    wasmtp_plugin_kit::toolchain::rust_target_installed(target, &sh::root())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_tools_follow_what_tests_mention() {
        let dir = std::env::temp_dir().join(format!("xtask-opt-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tests/sub")).unwrap();
        std::fs::write(dir.join("tests/a.rs"), "fn main() {}").unwrap();
        assert!(optional_test_tools(&dir).is_empty());
        std::fs::write(
            dir.join("tests/sub/b.rs"),
            r#"Command::new("redis-server")"#,
        )
        .unwrap();
        let tools = optional_test_tools(&dir);
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0].packages, ["redis-server"]);
        std::fs::write(dir.join("tests/c.rs"), r#"Command::new("haproxy")"#).unwrap();
        let tools = optional_test_tools(&dir);
        assert_eq!(tools.len(), 2);
        assert_eq!(tools[1].packages, ["haproxy"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn present_tools_need_no_install() {
        let sh_tool = Tool {
            program: "sh",
            packages: &["dash"],
            check: Some(Check {
                args: &["-c", "echo checked"],
                expect: "checked",
                what: "a shell",
            }),
        };
        assert!(sh_tool.present());
        // Nothing is missing, so this must not call apt at all.
        ensure_tools(&[sh_tool]).unwrap();
    }

    #[test]
    fn a_failing_check_names_the_packages() {
        let tool = Tool {
            program: "sh",
            packages: &["dash", "libexample-perl"],
            check: Some(Check {
                args: &["-c", "echo '*** TLS not available: requires Net::SSLeay'"],
                expect: "=== TLS supported",
                what: "TLS support",
            }),
        };
        let err = format!("{:#}", tool.preflight().unwrap_err());
        assert!(err.contains("TLS support"), "{err}");
        assert!(err.contains("requires Net::SSLeay"), "{err}");
        assert!(
            err.contains("apt-get install dash libexample-perl"),
            "{err}"
        );
        let missing = Tool {
            program: "/nonexistent/wasmtp-tool",
            packages: &["wasmtp-tool"],
            check: None,
        };
        let err = format!("{:#}", missing.preflight().unwrap_err());
        assert!(err.contains("apt-get install wasmtp-tool"), "{err}");
    }
}
