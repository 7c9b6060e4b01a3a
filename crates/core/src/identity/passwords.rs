//! argon2id password hashing, off the async runtime and bounded so a login burst cannot starve it.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::crypto::SecretString;
use crate::error::{Error, Result};

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

impl Default for Passwords {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(2)),
        }
    }
}

/// A hash verified when the user does not exist, so an unknown name costs the same time as a wrong
/// password. Made once per process from a random password nobody knows.
static DUMMY_PHC: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn hash_blocking(password: &[u8]) -> Result<String> {
    PasswordHasher::<argon2::password_hash::phc::PasswordHash>::hash_password(
        &argon2::Argon2::default(),
        password,
    )
    .map(|h| h.to_string())
    .map_err(|e| Error::internal(anyhow::anyhow!("argon2: {e}")))
}

fn dummy_phc() -> &'static str {
    DUMMY_PHC.get_or_init(|| {
        let mut pw = [0u8; 32];
        // A failure here only weakens the timing equalisation, never access.
        let _ = crate::crypto::random_bytes(&mut pw);
        hash_blocking(&pw).unwrap_or_default()
    })
}

/// Letters and digits a person reads off a sheet without doubt (no 0/O, 1/l/I).
const READABLE: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// An initial password for a person added from a roster: 16 readable characters (about 93 bits),
/// shown once with their enrolment.
pub fn generate() -> Result<SecretString> {
    let mut raw = zeroize::Zeroizing::new([0u8; 16]);
    crate::crypto::random_bytes(raw.as_mut())?;
    // 256 is not a multiple of the alphabet's 56 letters, so 32 of them come up 5 times in 256
    // and the rest 4: 92.8 bits instead of 92.9.
    let out: String = raw
        .iter()
        .map(|b| char::from(READABLE[usize::from(*b) % READABLE.len()]))
        .collect();
    Ok(SecretString::new(out))
}

pub fn check_policy(password: &SecretString) -> Result<()> {
    let n = password.expose().chars().count();
    if n < 10 {
        return Err(Error::invalid(
            "password",
            "password must be at least 10 characters",
        ));
    }
    if n > 256 {
        return Err(Error::invalid(
            "password",
            "password must be at most 256 characters",
        ));
    }
    Ok(())
}

impl Passwords {
    pub async fn hash(&self, password: SecretString) -> Result<String> {
        let _permit = self.permits.acquire().await.map_err(Error::internal)?;
        tokio::task::spawn_blocking(move || hash_blocking(password.expose().as_bytes()))
            .await
            .map_err(Error::internal)?
    }

    /// Verifies against `phc`, or against a dummy when `phc` is `None`, returning false then.
    pub async fn verify(&self, password: SecretString, phc: Option<String>) -> Result<bool> {
        let _permit = self.permits.acquire().await.map_err(Error::internal)?;
        tokio::task::spawn_blocking(move || {
            let real = phc.is_some();
            let stored: &str = match &phc {
                Some(p) => p,
                None => dummy_phc(),
            };
            let ok = PasswordVerifier::<str>::verify_password(
                &argon2::Argon2::default(),
                password.expose().as_bytes(),
                stored,
            )
            .is_ok();
            ok && real
        })
        .await
        .map_err(Error::internal)
    }
}
