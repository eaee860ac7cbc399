//! `cargo xtask`: the project's task runner.
//!
//! A mail operator needs two commands (`cargo xtask run`, `cargo xtask test`);
//! everything else (`plugins`, `bench`) is what those two are made of. Every
//! task installs what it needs when it is missing, and is quick when it is not.
//!
//! # Layout
//! - [`sh`]: running commands with their output streamed, and the repository root.
//! - [`install`]: Debian packages (apt) and the `wasm32-wasip2` Rust target.
//! - [`plugins`]: builds every plugin workspace into `target/plugins/`.
//! - [`langs`] (owned by the langs work): toolchains and builds of the
//!   JavaScript, Python and C plugins.
//! - [`test`]: `cargo xtask test`, what `.ci/run` runs.
//! - [`run`]: `cargo xtask run`, the gateway with the shipped config.
//! - [`bench`]: `cargo xtask bench`, the side-by-side benchmark (`bench/run.sh`).
//! - [`dist`]: `cargo xtask dist`, the static binary packed with config, plugins and unit.

mod bench;
mod dist;
mod fuzz;
mod install;
mod langs;
mod plugins;
mod pytools;
mod run;
mod sh;
mod test;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options] [-- args]

commands:
  run [--release] [-- ARGS]   install what is missing, build the plugins and the
                              gateway, then run `wasmtp run --config config/gateway.toml ARGS`
  test [--no-lint] [--no-install] [--no-fuzz] [-- ARGS]
                              install everything the tests need, build the plugins,
                              check fmt and clippy, run every test (ARGS go to the
                              test runner: cargo nextest run, or cargo test), then a
                              fuzz smoke (FUZZ_SECONDS per target, default 60) when
                              cargo-fuzz and nightly are installed
  plugins                     build every example plugin and test fixture into
                              target/plugins/ (installs the toolchains first)
  dist [--no-install] [--binary=PATH] [--out=DIR]
                              build the static gateway (x86_64-unknown-linux-musl,
                              mimalloc) and pack it with the config, plugins, systemd
                              unit, WIT and SDKs into target/dist/*.tar.gz (debug
                              info split off into *.debug); --binary packs a gateway
                              built already (nothing is built), --out writes elsewhere
  bench [-- ARGS]             build release, install the peers and run bench/run.sh
                              (writes bench/RESULTS.md); ARGS go to bench/run.sh
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let opts = match Options::parse(rest) {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("xtask: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command.as_str() {
        "run" => opts.only(&["--release"]).and_then(|()| run::run(&opts)),
        "test" => opts
            .only(&["--no-lint", "--no-install", "--no-fuzz"])
            .and_then(|()| test::test(&opts)),
        "plugins" => opts.only(&[]).and_then(|()| plugins::plugins()),
        "bench" => opts.only(&[]).and_then(|()| bench::bench(&opts)),
        "dist" => opts
            .only(&["--binary", "--out", "--no-install"])
            .and_then(|()| dist::dist(&opts)),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("xtask: unknown command `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask {command}: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Flags before `--`, and everything after it (passed on untouched).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Flags given before `--`, e.g. `--release`.
    pub flags: Vec<String>,
    /// Arguments after `--`, for the program the task runs.
    pub passthrough: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut opts = Options::default();
        let mut iter = args.iter();
        for arg in iter.by_ref() {
            if arg == "--" {
                break;
            }
            if !arg.starts_with("--") {
                return Err(format!(
                    "unexpected argument `{arg}` (put program arguments after `--`)"
                ));
            }
            opts.flags.push(arg.clone());
        }
        opts.passthrough.extend(iter.cloned());
        Ok(opts)
    }

    /// Fails when a flag outside `allowed` was given (`--key=value` flags
    /// are allowed by their `--key`).
    fn only(&self, allowed: &[&str]) -> anyhow::Result<()> {
        let name = |f: &String| f.split_once('=').map_or(f.clone(), |(k, _)| k.to_string());
        match self
            .flags
            .iter()
            .find(|f| !allowed.contains(&name(f).as_str()))
        {
            Some(flag) => anyhow::bail!("unknown option `{flag}` for this command"),
            None => Ok(()),
        }
    }

    /// Whether `flag` was given.
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The value of `--key=value` (the last one given).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
    }
}

#[cfg(test)]
mod tests {
    use super::Options;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_and_passthrough_are_split_at_double_dash() {
        let opts = Options::parse(&args(&["--release", "--", "--log-format", "json"])).unwrap();
        assert_eq!(opts.flags, args(&["--release"]));
        assert_eq!(opts.passthrough, args(&["--log-format", "json"]));
        assert!(opts.has("--release"));
        assert!(!opts.has("--no-lint"));
    }

    #[test]
    fn bare_words_before_double_dash_are_refused() {
        assert!(Options::parse(&args(&["release"])).is_err());
    }

    #[test]
    fn key_value_flags_are_allowed_by_key() {
        let opts = Options::parse(&args(&["--out=/tmp/x", "--binary=a=b"])).unwrap();
        assert!(opts.only(&["--out", "--binary"]).is_ok());
        assert!(opts.only(&["--out"]).is_err());
        assert_eq!(opts.value("--out"), Some("/tmp/x"));
        assert_eq!(opts.value("--binary"), Some("a=b"));
        assert_eq!(opts.value("--bin"), None);
    }

    #[test]
    fn unknown_flags_are_refused() {
        let opts = Options::parse(&args(&["--fast"])).unwrap();
        assert!(opts.only(&["--release"]).is_err());
        assert!(opts.only(&["--fast"]).is_ok());
    }
}
