//! Project tasks (`cargo xtask ...`).

mod langs;

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("langs") => {
            let out = args
                .get(1)
                .map(PathBuf::from)
                .unwrap_or_else(|| langs::root().join("target/plugins"));
            langs::build_all(&out)
        }
        _ => anyhow::bail!("usage: cargo xtask langs [OUT_DIR]"),
    }
}
