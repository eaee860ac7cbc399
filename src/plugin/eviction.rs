//! Eviction from the compiled-component cache directory.
//!
//! After each load or reload the host removes the least recently used
//! artefacts (oldest mtime first; the cache touches a file at each use)
//! until the directory holds at most `[plugin_host] cache_max_size` octets.
//! The artefacts of the chain just loaded are never removed, nor is
//! anything but `*.cwasm` artefacts and temporary files left behind by a
//! crash (`.*.tmp`, removed once older than an hour). Another gateway
//! sharing the directory loses at most its cached copy: a component it has
//! mapped keeps working, and a restart compiles it again.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Temporary files older than this are a crashed writer's leftovers.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// Sets `file`'s mtime to now (its last use); errors are ignored.
pub(crate) fn touch(file: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(file) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Removes the least recently used `*.cwasm` files of `dir` not named in
/// `keep` until the artefacts total at most `max_bytes` (0: no limit), and
/// stale temporary files. Returns the number of files and octets removed.
pub(crate) fn evict(
    dir: &Path,
    keep: &HashSet<String>,
    max_bytes: u64,
) -> std::io::Result<(usize, u64)> {
    let now = SystemTime::now();
    let mut artefacts = Vec::new();
    let mut total = 0u64;
    let (mut files, mut octets) = (0usize, 0u64);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified().unwrap_or(now);
        if name.starts_with('.') && name.ends_with(".tmp") {
            let age = now.duration_since(modified).unwrap_or_default();
            if age > STALE_TMP && std::fs::remove_file(entry.path()).is_ok() {
                files += 1;
                octets += meta.len();
            }
            continue;
        }
        if !name.ends_with(".cwasm") {
            continue;
        }
        total = total.saturating_add(meta.len());
        if !keep.contains(&name) {
            artefacts.push((modified, meta.len(), entry.path()));
        }
    }
    if max_bytes == 0 {
        return Ok((files, octets));
    }
    artefacts.sort_by_key(|(modified, _, _)| *modified);
    for (_, len, path) in artefacts {
        if total <= max_bytes {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total = total.saturating_sub(len);
            files += 1;
            octets += len;
        }
    }
    Ok((files, octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, len: usize, age_s: u64) {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; len]).unwrap();
        let f = std::fs::File::options().append(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age_s))
            .unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn least_recently_used_go_first_and_the_chain_stays() {
        let d = tempfile::tempdir().unwrap();
        file(d.path(), "old.cwasm", 100, 300);
        file(d.path(), "older-in-use.cwasm", 100, 400);
        file(d.path(), "mid.cwasm", 100, 200);
        file(d.path(), "new.cwasm", 100, 100);
        file(d.path(), "notes.txt", 1000, 500);
        let keep = HashSet::from(["older-in-use.cwasm".to_string()]);
        // 400 octets of artefacts, 250 allowed: the two oldest unused go.
        let (n, octets) = evict(d.path(), &keep, 250).unwrap();
        assert_eq!((n, octets), (2, 200));
        assert_eq!(
            names(d.path()),
            ["new.cwasm", "notes.txt", "older-in-use.cwasm"]
        );
        // The kept ones alone may exceed the limit: they stay.
        let (n, _) = evict(d.path(), &keep, 50).unwrap();
        assert_eq!(n, 1);
        assert_eq!(names(d.path()), ["notes.txt", "older-in-use.cwasm"]);
    }

    #[test]
    fn zero_means_no_limit_but_stale_temporaries_go() {
        let d = tempfile::tempdir().unwrap();
        file(d.path(), "a.cwasm", 100, 10_000);
        file(d.path(), ".a.1.2.tmp", 100, 7200);
        file(d.path(), ".b.1.3.tmp", 100, 10);
        let (n, _) = evict(d.path(), &HashSet::new(), 0).unwrap();
        assert_eq!(n, 1);
        assert_eq!(names(d.path()), [".b.1.3.tmp", "a.cwasm"]);
    }

    #[test]
    fn touch_makes_a_file_recent() {
        let d = tempfile::tempdir().unwrap();
        file(d.path(), "a.cwasm", 10, 10_000);
        file(d.path(), "b.cwasm", 10, 5_000);
        touch(&d.path().join("a.cwasm"));
        evict(d.path(), &HashSet::new(), 10).unwrap();
        assert_eq!(names(d.path()), ["a.cwasm"]);
    }
}
