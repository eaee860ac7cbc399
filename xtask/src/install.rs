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
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// A program a task needs, and the Debian package that ships it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// An absolute path, or a program name looked up on `PATH`.
    pub program: &'static str,
    /// The Debian package that provides it.
    pub package: &'static str,
}

impl Tool {
    /// Whether the program is already there.
    pub fn present(&self) -> bool {
        sh::on_path(self.program)
    }
}

/// What the integration tests drive: swaks, Postfix's smtp-sink/smtp-source
/// (real peers for forward mode) and python3 (smtplib clients).
pub const TEST_TOOLS: &[Tool] = &[
    Tool {
        program: "/usr/bin/swaks",
        package: "swaks",
    },
    Tool {
        program: "/usr/sbin/smtp-sink",
        package: "postfix",
    },
    Tool {
        program: "/usr/sbin/smtp-source",
        package: "postfix",
    },
    Tool {
        program: "python3",
        package: "python3",
    },
];

/// Installed only when a test mentions it (see [`optional_test_tools`]).
const OPTIONAL_TEST_TOOLS: &[(&str, Tool)] = &[(
    "redis-server",
    Tool {
        program: "/usr/bin/redis-server",
        package: "redis-server",
    },
)];

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

/// Installs the packages of the tools that are missing (one `apt-get install`).
pub fn ensure_tools(tools: &[Tool]) -> Result<()> {
    let mut packages: Vec<&str> = tools
        .iter()
        .filter(|t| !t.present())
        .map(|t| t.package)
        .collect();
    packages.dedup();
    if packages.is_empty() {
        eprintln!("tools present: {}", names(tools));
        return Ok(());
    }
    apt_install(&packages)?;
    if let Some(missing) = tools.iter().find(|t| !t.present()) {
        bail!(
            "{} is still missing after installing {}",
            missing.program,
            missing.package
        );
    }
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
    if wasm_target_installed() {
        eprintln!("rust target {WASM_TARGET} present");
        return Ok(());
    }
    if !sh::on_path("rustup") {
        bail!(
            "the Rust target {WASM_TARGET} is missing and rustup is not on PATH; \
             install rustup (https://rustup.rs) or add the target to your toolchain"
        );
    }
    sh::run(sh::cmd("rustup").args(["target", "add", WASM_TARGET]))
}

fn wasm_target_installed() -> bool {
    // The target's standard library lives in the sysroot of the rustc in use.
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Some(libdir) =
        sh::probe(Command::new(rustc).args(["--print", "target-libdir", "--target", WASM_TARGET]))
    else {
        return false;
    };
    let libdir = Path::new(libdir.trim());
    std::fs::read_dir(libdir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
        .unwrap_or(false)
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
        assert_eq!(tools[0].package, "redis-server");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn present_tools_need_no_install() {
        let sh_tool = Tool {
            program: "sh",
            package: "dash",
        };
        assert!(sh_tool.present());
        // Nothing is missing, so this must not call apt at all.
        ensure_tools(&[sh_tool]).unwrap();
    }
}
