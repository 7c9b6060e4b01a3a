//! Bearer tokens: 256 bits from the OS generator behind a type prefix, shown once, stored only as
//! the suite's HMAC (SHA-256 or SM3) under a key derived from the keyring's MAC master.

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

pub fn hash_token(key: &super::MacKey, token: &str) -> TokenHash {
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

    /// The properties the `tokens` fuzz target checks: the shape checks never panic, accept exactly
    /// a kind's prefix and 43 base64url characters, and a blob's term and opening fail cleanly.
    mod props {
        use proptest::prelude::*;

        use super::*;
        use crate::crypto::{Aad, Keyring, SecretBytes, Suite};

        fn kind() -> impl Strategy<Value = TokenKind> {
            prop::sample::select(vec![
                TokenKind::Publishing,
                TokenKind::Client,
                TokenKind::Session,
            ])
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_text_is_checked_without_panic(kind in kind(), text in "\\PC{0,80}") {
                if well_formed(kind, &text) {
                    prop_assert_eq!(TokenKind::of(&text), Some(kind));
                    prop_assert_eq!(text.len(), kind.prefix().len() + 43);
                }
            }

            #[test]
            fn the_token_shape_is_accepted(kind in kind(), body in "[A-Za-z0-9_-]{43}") {
                let token = format!("{}{body}", kind.prefix());
                prop_assert!(well_formed(kind, &token));
                prop_assert_eq!(TokenKind::of(&token), Some(kind));
            }

            #[test]
            fn a_near_token_is_refused(kind in kind(), body in "[A-Za-z0-9_-]{0,42}|[A-Za-z0-9_-]{44,50}|[A-Za-z0-9_-]{0,20}[+/=. ][A-Za-z0-9_-]{22}") {
                let token = format!("{}{body}", kind.prefix());
                prop_assert!(!well_formed(kind, &token));
            }

            #[test]
            fn a_blob_nobody_sealed_does_not_open(blob in prop::collection::vec(any::<u8>(), 0..80), key in any::<[u8; 32]>()) {
                let term = Keyring::term_of(&blob);
                let keyring = Keyring::new(
                    Suite::Standard,
                    vec![(term.as_ref().copied().unwrap_or(1), SecretBytes::new(key.to_vec()))],
                    &SecretBytes::new(vec![1; 32]),
                ).unwrap();
                let aad = Aad { table: "t", row: "r", field: "f", version: 1 };
                prop_assert!(keyring.open(&aad, &blob).is_err());
            }
        }
    }
}
