//! Secret holders: zeroized on drop, `[REDACTED]` in `Debug`, no `Display`, no `Serialize`.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

#[derive(Clone, Zeroize, ZeroizeOnDrop, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    /// `len` random bytes, filled in place, so they never exist outside the wiped buffer.
    pub fn random(len: usize) -> Result<Self, super::CryptoError> {
        let mut secret = Self(vec![0u8; len]);
        super::random_bytes(secret.expose_mut())?;
        Ok(secret)
    }
    /// For filling a fresh key in place, so the bytes never exist outside the wiped buffer.
    pub(crate) fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[derive(Clone, Zeroize, ZeroizeOnDrop, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: String) -> Self {
        Self(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Secrets arrive in JSON bodies; deserializing straight into the secret type means the plaintext
/// never sits in an ordinary `String` that would not be wiped.
impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let s = SecretString::from("hunter2-marker");
        let b = SecretBytes::new(b"bytes-marker".to_vec());
        let out = format!("{s:?} {b:?} {:?}", Some(&s));
        assert!(!out.contains("marker"), "{out}");
        assert!(out.contains("[REDACTED]"));
    }
}
