//! Bearer tokens: 256 bits from the OS generator behind a type prefix, shown once, stored only as
//! HMAC-SHA256 under a key derived from the keyring's MAC master.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{CryptoError, SecretString, random_bytes};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Publishing,
    Client,
    Session,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Publishing => "mvt_",
            TokenKind::Client => "mvc_",
            TokenKind::Session => "mvs_",
        }
    }

    pub fn of(token: &str) -> Option<TokenKind> {
        [TokenKind::Publishing, TokenKind::Client, TokenKind::Session]
            .into_iter()
            .find(|k| token.starts_with(k.prefix()))
    }
}

/// A fresh token of the given kind.
pub fn new_token(kind: TokenKind) -> Result<SecretString, CryptoError> {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    random_bytes(raw.as_mut())?;
    Ok(SecretString::new(format!(
        "{}{}",
        kind.prefix(),
        URL_SAFE_NO_PAD.encode(raw.as_ref())
    )))
}

/// The keyed hash a token is stored and looked up by.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A short prefix is enough to correlate log lines and reveals nothing usable.
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

pub fn hash_token(key: &ring::hmac::Key, token: &str) -> TokenHash {
    TokenHash(super::hmac_parts(key, &[b"token", token.as_bytes()]))
}

/// Whether a string has the shape of a token of this kind (prefix + 43 base64url characters), so
/// garbage is refused before any lookup.
pub fn well_formed(kind: TokenKind, token: &str) -> bool {
    token.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_unique_and_well_formed() {
        let a = new_token(TokenKind::Publishing).unwrap();
        let b = new_token(TokenKind::Publishing).unwrap();
        assert!(a.expose().starts_with("mvt_"));
        assert_ne!(a.expose(), b.expose());
        assert!(well_formed(TokenKind::Publishing, a.expose()));
        assert!(!well_formed(TokenKind::Client, a.expose()));
        assert!(!well_formed(TokenKind::Publishing, "mvt_short"));
        assert_eq!(TokenKind::of(a.expose()), Some(TokenKind::Publishing));
    }
}
