//! Running commands: echoed, output streamed, failures with the command line.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The repository root (the parent of the `xtask` crate).
pub fn root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir.to_path_buf())
}

/// Cargo's target folder: `$CARGO_TARGET_DIR`, else `target/` in the root.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// The cargo that runs us (`$CARGO`), so nested builds use the same toolchain.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.current_dir(root());
    cmd
}

/// A command started in the repository root.
pub fn cmd(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(root());
    cmd
}

/// The command line as a shell user would type it (for logs and errors).
pub fn display(cmd: &Command) -> String {
    let mut line = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            line.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    line.push_str(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains([' ', '"', '\'']) {
            line.push_str(&format!(" '{}'", arg.replace('\'', r"'\''")));
        } else {
            line.push(' ');
            line.push_str(&arg);
        }
    }
    line
}

/// Runs `cmd` with stdout/stderr streamed; an error names the command.
pub fn run(cmd: &mut Command) -> Result<()> {
    announce(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout when it succeeded (for probes).
pub fn probe(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Prints the command about to run, the way `make` does.
pub fn announce(cmd: &Command) {
    eprintln!("{}", paint("1", &format!("$ {}", display(cmd))));
}

/// Prints a step heading.
pub fn step(title: &str) {
    eprintln!("\n{}", paint("1;34", &format!("==> {title}")));
}

/// Prints an error line (red on a terminal).
pub fn error(text: &str) {
    eprintln!("{}", paint("1;31", text));
}

/// `text` in an ANSI style when stderr is a terminal, plain otherwise (CI logs).
fn paint(style: &str, text: &str) -> String {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        format!("\x1b[{style}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub use wasmtp_plugin_kit::toolchain::on_path;

/// Whether we run as root (apt needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_arguments_with_spaces() {
        let mut cmd = Command::new("echo");
        cmd.arg("a b").arg("plain").arg("it's");
        assert_eq!(display(&cmd), r"echo 'a b' plain 'it'\''s'");
    }

    #[test]
    fn run_reports_the_failing_command() {
        let err = run(Command::new("false").arg("--flag")).unwrap_err();
        assert!(err.to_string().contains("`false --flag` failed"), "{err}");
    }

    #[test]
    fn probe_returns_stdout_only_on_success() {
        assert_eq!(
            probe(Command::new("echo").arg("hi")).as_deref(),
            Some("hi\n")
        );
        assert_eq!(probe(&mut Command::new("false")), None);
    }

    #[test]
    fn on_path_finds_sh() {
        assert!(on_path("sh"));
        assert!(!on_path("surely-no-such-program-here"));
    }

    #[test]
    fn root_holds_the_workspace_manifest() {
        assert!(root().join("Cargo.toml").is_file());
        assert!(root().join("xtask").is_dir());
    }
}
