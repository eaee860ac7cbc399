//! AUTH against the users of `[auth]`: argon2 PHC hashes, verified off the
//! reactor (`spawn_blocking`), with the same work done for unknown users so
//! timing does not reveal which names exist.
//!
//! Verifications go through a bounded pool: a semaphore with one permit per
//! core, taken before the blocking task is spawned, so a flood of AUTH
//! attempts queues here instead of filling tokio's blocking pool (shared
//! with the spool's fsyncs and file I/O) with argon2 work.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::config::AuthConfig;

/// Checks that `s` is an argon2 PHC string (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`).
pub fn check_phc(s: &str) -> Result<(), String> {
    let hash = PasswordHash::new(s).map_err(|e| format!("invalid argon2 PHC hash: {e}"))?;
    match hash.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => {}
        other => {
            return Err(format!(
                "unsupported hash algorithm {other:?} (use argon2id)"
            ));
        }
    }
    if hash.hash.is_none() || hash.salt.is_none() {
        return Err("invalid argon2 PHC hash: salt or hash missing".into());
    }
    argon2::Params::try_from(&hash).map_err(|e| format!("invalid argon2 parameters: {e}"))?;
    Ok(())
}

/// Hashes a password into an argon2id PHC string with a random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| anyhow::anyhow!("random salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    Ok(hash.to_string())
}

/// The configured users, shared by every session.
#[derive(Debug, Clone)]
pub struct Users {
    by_name: Arc<HashMap<String, String>>,
    /// Verified when the user is unknown, so both paths cost the same.
    dummy: Arc<String>,
    /// One permit per verification running at once.
    slots: Arc<Semaphore>,
    /// The permits `slots` started with.
    slot_count: usize,
    /// Verifications running now, and the most seen at once.
    running: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Users {
    /// Users from `[auth]` (hashes were validated when the config loaded).
    pub fn new(config: &AuthConfig) -> Self {
        let by_name = config
            .users
            .iter()
            .map(|u| (u.username.clone(), u.password_hash.0.clone()))
            .collect();
        let dummy = config.users.first().map_or_else(
            || hash_password("dummy password").unwrap_or_default(),
            |u| u.password_hash.0.clone(),
        );
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            by_name: Arc::new(by_name),
            dummy: Arc::new(dummy),
            slots: Arc::new(Semaphore::new(cores)),
            slot_count: cores,
            running: Arc::new((AtomicUsize::new(0), AtomicUsize::new(0))),
        }
    }

    /// The same users with at most `n` (at least 1) verifications at once.
    pub fn with_verify_slots(mut self, n: usize) -> Self {
        let n = n.max(1);
        self.slots = Arc::new(Semaphore::new(n));
        self.slot_count = n;
        self
    }

    /// How many verifications may run at once.
    pub fn verify_slots(&self) -> usize {
        self.slot_count
    }

    /// The most verifications seen running at once.
    pub fn peak_verifications(&self) -> usize {
        self.running.1.load(Ordering::Relaxed)
    }

    /// True if no users are configured.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether `password` is right for `username`. Runs argon2 on the
    /// blocking pool, at most [`Users::verify_slots`] at once.
    pub async fn verify(&self, username: &str, password: &str) -> bool {
        let Ok(_permit) = self.slots.clone().acquire_owned().await else {
            return false;
        };
        let (known, hash) = match self.by_name.get(username) {
            Some(h) => (true, h.clone()),
            None => (false, self.dummy.as_ref().clone()),
        };
        let password = password.to_string();
        let running = self.running.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let now = running.0.fetch_add(1, Ordering::Relaxed) + 1;
            running.1.fetch_max(now, Ordering::Relaxed);
            let ok = PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false);
            running.0.fetch_sub(1, Ordering::Relaxed);
            ok
        })
        .await
        .unwrap_or(false);
        known && ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthUser, PasswordHash as CfgHash};

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        check_phc(&h).unwrap();
        let config = AuthConfig {
            users: vec![AuthUser {
                username: "alice".into(),
                password_hash: CfgHash(h),
            }],
            ..AuthConfig::default()
        };
        let users = Users::new(&config);
        assert!(users.verify("alice", "s3cret").await);
        assert!(!users.verify("alice", "wrong").await);
        assert!(!users.verify("bob", "s3cret").await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn verifications_bounded_by_the_pool() {
        let config = AuthConfig {
            users: vec![AuthUser {
                username: "alice".into(),
                password_hash: CfgHash(hash_password("s3cret").unwrap()),
            }],
            ..AuthConfig::default()
        };
        let users = Users::new(&config);
        assert_eq!(
            users.verify_slots(),
            std::thread::available_parallelism().map_or(1, usize::from)
        );
        let users = users.with_verify_slots(1);
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let u = users.clone();
                tokio::spawn(async move { u.verify("alice", &format!("wrong{i}")).await })
            })
            .collect();
        for t in tasks {
            assert!(!t.await.unwrap());
        }
        assert_eq!(users.peak_verifications(), 1);
    }

    #[test]
    fn bad_hashes_refused() {
        assert!(check_phc("plaintext").is_err());
        assert!(check_phc("$2b$12$abcdefghijklmnopqrstuv").is_err());
        assert!(check_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ").is_err());
    }
}
