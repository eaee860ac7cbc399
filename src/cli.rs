//! The `wasmtp` command line (clap).
//!
//! ```text
//! wasmtp run --config PATH [--log-format text|json]
//! wasmtp check-config --config PATH
//! wasmtp reload --config PATH     (asks the running gateway to reload its config)
//! wasmtp hash-password            (password on stdin, PHC string on stdout)
//! wasmtp queue --config PATH list|show ID|flush|delete ID [--json]
//! wasmtp plugin test PLUGIN.wasm DIALOG... [--with OTHER.wasm]...
//!                                 (runs dialog files against a plugin offline,
//!                                  docs/DIALOGS.md)
//! wasmtp plugin inspect PLUGIN.wasm [--config FILE]
//!                                 (version, imports, exports, hooks, compile time)
//! wasmtp plugin new NAME --lang rust|js|python|c [--dir PATH]
//!                                 (a standalone plugin project: src/kit.rs)
//! wasmtp plugin build [DIR] [--cache-dir DIR]
//!                                 (runs its manifest's build, checks the component links)
//! ```

pub mod plugin;

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

/// An SMTP gateway whose policy lives in sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "wasmtp", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve SMTP as configured until SIGTERM/SIGINT (SIGHUP reloads the config).
    Run {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Log format; overrides `[log] format`.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Validate a config file and load every plugin as `run` would
    /// (compile, link, `init` with its config): prints "ok", or each error
    /// (a config error with its key and line:column; a plugin's with its
    /// name and path) and exits 1.
    CheckConfig {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ask the gateway running with this config to reload it (through its
    /// control socket, `[server] control_socket`): prints each setting
    /// changed, those needing a restart and the new chain, or the exact
    /// error and exits 1 (the running config and chain stay).
    Reload {
        /// The config file the gateway runs with.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Read a password from stdin and print its argon2id PHC hash for `[auth]`.
    HashPassword,
    /// Inspect and manage the store-and-forward spool (see `src/queue/admin.rs`).
    Queue {
        /// The config file (its `[delivery]` section locates the spool).
        #[arg(long, short)]
        config: PathBuf,
        /// The queue command.
        #[command(flatten)]
        args: crate::delivery::queue::QueueArgs,
    },
    /// Plugin authoring: new and build a plugin project, test a plugin offline, inspect a component.
    Plugin {
        /// The plugin command.
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    dispatch(Cli::parse())
}

/// Runs a parsed command line.
pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run { config, log_format } => run(&config, log_format),
        Command::CheckConfig { config } => check_config(&config),
        Command::Reload { config } => reload(&config),
        Command::HashPassword => hash_password(),
        Command::Queue { config, args } => queue(&config, &args),
        Command::Plugin { command } => plugin::dispatch(command),
    }
}

fn run(path: &std::path::Path, log_format: Option<LogFormat>) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wasmtp: {e}");
            return ExitCode::FAILURE;
        }
    };
    crate::logging::init(log_format.unwrap_or(config.log.format), &config.log.filter);
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(crate::server::run_with_signals(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("wasmtp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if !config.plugins.is_empty() {
        // Warnings (e.g. a cache directory it cannot use) only; the
        // failures are printed below.
        crate::logging::init(LogFormat::Text, "warn");
        let Some(runtime) = runtime() else {
            return ExitCode::FAILURE;
        };
        // No [kv] store is opened: a running gateway may hold it.
        let services = crate::plugin::HostServices::new(&config.dns);
        let checked = runtime.block_on(crate::plugin::PluginHost::check(
            &config.plugin_host,
            &config.plugins,
            services,
        ));
        let problems = match checked {
            Ok(p) => p,
            Err(e) => {
                eprintln!("wasmtp: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        if !problems.is_empty() {
            for p in &problems {
                eprintln!(
                    "{}: plugin {:?} ({}): {}",
                    path.display(),
                    p.name,
                    p.path.display(),
                    p.error
                );
            }
            return ExitCode::FAILURE;
        }
    }
    println!("ok");
    ExitCode::SUCCESS
}

fn reload(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let socket = &config.server.control_socket;
    if socket.as_os_str().is_empty() {
        eprintln!("wasmtp: [server] control_socket is empty: no control socket to reload through");
        return ExitCode::FAILURE;
    }
    match crate::control::request_reload(socket) {
        Ok(report) => {
            for line in &report.applied {
                println!("changed: {line}");
            }
            for line in &report.restart {
                println!("needs a restart (not applied): {line}");
            }
            if report.applied.is_empty() {
                println!("no setting changed");
            }
            println!("ok: plugin chain reloaded ({})", report.plugins.join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wasmtp: reload failed, the running config and chain stay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn queue(path: &std::path::Path, args: &crate::delivery::queue::QueueArgs) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wasmtp: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    match crate::delivery::queue::queue_command(&config.delivery, args, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasmtp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The multi-threaded tokio runtime of `run` and `check-config`; `None`
/// (after saying why on stderr) if it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .inspect_err(|e| eprintln!("wasmtp: cannot start the runtime: {e}"))
        .ok()
}

fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("wasmtp: reading the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("wasmtp: empty password (write it to stdin)");
        return ExitCode::FAILURE;
    }
    match crate::auth::hash_password(password) {
        Ok(hash) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wasmtp: {e:#}");
            ExitCode::FAILURE
        }
    }
}
