//! AUTH against the users of `[auth]`: argon2 PHC hashes, verified off the
//! reactor (`spawn_blocking`), with the same work done for unknown users so
//! timing does not reveal which names exist.

use std::collections::HashMap;
use std::sync::Arc;

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
        Self {
            by_name: Arc::new(by_name),
            dummy: Arc::new(dummy),
        }
    }

    /// True if no users are configured.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether `password` is right for `username`. Runs argon2 on the
    /// blocking pool.
    pub async fn verify(&self, username: &str, password: &str) -> bool {
        let (known, hash) = match self.by_name.get(username) {
            Some(h) => (true, h.clone()),
            None => (false, self.dummy.as_ref().clone()),
        };
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
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

    #[test]
    fn bad_hashes_refused() {
        assert!(check_phc("plaintext").is_err());
        assert!(check_phc("$2b$12$abcdefghijklmnopqrstuv").is_err());
        assert!(check_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ").is_err());
    }
}
