//! Threshold custody of the root key (sealed mode): the 256-bit root key is split with Shamir's
//! scheme over GF(256) (the `blahaj` crate) into N shares of which any T rebuild it.
//!
//! A share is verifiable on its own: the vault keeps a SHA-256 check value of each custodian's
//! share (a share is 256 bits of uniform randomness, so the digest reveals nothing usable), and a
//! check value of the root key itself. A mistyped or altered share is refused at submission and
//! named; a set that still fails to rebuild the recorded key fails closed.

use super::{CryptoError, SecretBytes, SecretString, Suite, ct_eq};

/// The text form's prefix: names the format so a future one can be told apart.
const PREFIX: &str = "mvshare1-";
/// Domain of a share's check value.
const CHECK_DOMAIN: &[u8] = b"mediavault share check v1";
/// At most this many shares: GF(256) has 255 non-zero points.
pub const MAX_SHARES: u8 = 255;

/// One custodian's share: its point `x` and the 32 bytes of `y`. Zeroized when dropped.
pub struct KeyShare {
    x: u8,
    y: SecretBytes,
}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyShare(#{}, [REDACTED])", self.x)
    }
}

impl KeyShare {
    /// The share's point; distinct for each share of one split.
    pub fn index(&self) -> u8 {
        self.x
    }

    /// What the custodian keeps: `mvshare1-XX-<64 hex digits>`.
    pub fn to_text(&self) -> SecretString {
        SecretString::new(format!(
            "{PREFIX}{:02x}-{}",
            self.x,
            hex::encode(self.y.expose())
        ))
    }

    /// Reads the text form, surrounding whitespace allowed.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
            || text.starts_with("age-encryption.org/")
        {
            return Err(CryptoError::BadShare(
                "it is still encrypted to your age key: give what `age -d -i KEY_FILE SHARE_FILE` prints",
            ));
        }
        let body = text
            .strip_prefix(PREFIX)
            .ok_or(CryptoError::BadShare("it does not start with mvshare1-"))?;
        let (x, y) = body
            .split_once('-')
            .ok_or(CryptoError::BadShare("no index"))?;
        let x = u8::from_str_radix(x, 16).map_err(|_| CryptoError::BadShare("bad index"))?;
        if x == 0 {
            return Err(CryptoError::BadShare("bad index"));
        }
        let y =
            SecretBytes::new(hex::decode(y).map_err(|_| CryptoError::BadShare("not hexadecimal"))?);
        if y.expose().len() != 32 {
            return Err(CryptoError::BadShare("wrong length (cut short or padded?)"));
        }
        Ok(Self { x, y })
    }

    /// The public check value the vault keeps for this share: the suite's hash (SHA-256, or SM3
    /// in the SM suite) of a domain label, the index and the share.
    pub fn check_value(&self, suite: Suite) -> [u8; 32] {
        suite.digest(joined(&[CHECK_DOMAIN, &[self.x], self.y.expose()]).expose())
    }

    /// Whether this is the share whose check value (in `suite`) is `check` (constant time).
    pub fn matches(&self, suite: Suite, check: &[u8]) -> bool {
        ct_eq(&self.check_value(suite), check)
    }
}

/// The parts end to end, in one buffer sized up front (so no copy is left behind by a growth)
/// and zeroized when dropped.
fn joined(parts: &[&[u8]]) -> SecretBytes {
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        v.extend_from_slice(p);
    }
    SecretBytes::new(v)
}

/// Splits a 32-byte secret into `shares` shares, any `threshold` of which rebuild it.
pub fn split(
    secret: &SecretBytes,
    threshold: u8,
    shares: u8,
) -> Result<Vec<KeyShare>, CryptoError> {
    if threshold < 2 || threshold > shares {
        return Err(CryptoError::BadShare(
            "the threshold must be at least 2 and at most the number of shares",
        ));
    }
    let dealt: Vec<blahaj::Share> = blahaj::Sharks(threshold)
        .dealer(secret.expose())
        .take(usize::from(shares))
        .collect();
    dealt
        .iter()
        .map(|s| {
            // `Vec::from(&Share)` is `x || y`; the points are 1..=shares.
            let raw = SecretBytes::new(Vec::from(s));
            match raw.expose().split_first() {
                Some((&x, y)) if x != 0 && y.len() == 32 => Ok(KeyShare {
                    x,
                    y: SecretBytes::new(y.to_vec()),
                }),
                _ => Err(CryptoError::Malformed("share from the dealer")),
            }
        })
        .collect()
}

/// Rebuilds the secret from `threshold` or more shares with distinct points. Shamir's scheme
/// cannot tell a wrong share itself: the caller checks the result (the root key's check value).
pub fn combine(threshold: u8, shares: &[KeyShare]) -> Result<SecretBytes, CryptoError> {
    let mut parsed = Vec::with_capacity(shares.len());
    for s in shares {
        let raw = joined(&[&[s.x], s.y.expose()]);
        parsed.push(
            blahaj::Share::try_from(raw.expose()).map_err(|_| CryptoError::Malformed("share"))?,
        );
    }
    let secret = blahaj::Sharks(threshold)
        .recover(&parsed)
        .map(SecretBytes::new)
        .map_err(|_| CryptoError::SharesDoNotCombine)?;
    if secret.expose().len() != 32 {
        return Err(CryptoError::SharesDoNotCombine);
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::RootKey;
    use crate::crypto::keyring::new_data_key;

    #[test]
    fn any_threshold_of_the_shares_rebuild_the_key_and_fewer_do_not() {
        let key = new_data_key().unwrap();
        let shares = split(&key, 3, 5).unwrap();
        assert_eq!(shares.len(), 5);
        let again = |idx: &[usize]| -> Vec<KeyShare> {
            idx.iter()
                .map(|&i| KeyShare::parse(shares[i].to_text().expose()).unwrap())
                .collect()
        };
        for set in [[0, 1, 2], [2, 3, 4], [0, 2, 4]] {
            assert_eq!(combine(3, &again(&set)).unwrap().expose(), key.expose());
        }
        assert!(combine(3, &again(&[0, 1])).is_err());
        // Two shares of a 3-of-5 "rebuild" nothing like the key even when forced.
        let forced = combine(2, &again(&[0, 1])).unwrap();
        assert_ne!(forced.expose(), key.expose());
    }

    #[test]
    fn a_tampered_share_is_told_by_its_check_value_and_by_the_root_check() {
        let key = new_data_key().unwrap();
        let root = RootKey::from_secret(&key).unwrap();
        let shares = split(&key, 2, 3).unwrap();
        let text = shares[0].to_text().expose().to_owned();
        let mut chars: Vec<char> = text.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == '0' { '1' } else { '0' };
        let tampered = KeyShare::parse(&chars.into_iter().collect::<String>()).unwrap();
        for suite in Suite::ALL {
            assert!(shares[0].matches(suite, &shares[0].check_value(suite)));
            assert!(!tampered.matches(suite, &shares[0].check_value(suite)));
        }
        assert_ne!(
            shares[0].check_value(Suite::Standard),
            shares[0].check_value(Suite::Sm)
        );
        let wrong = combine(
            2,
            &[
                tampered,
                KeyShare::parse(shares[1].to_text().expose()).unwrap(),
            ],
        )
        .unwrap();
        let rebuilt = RootKey::from_secret(&wrong).unwrap();
        assert_ne!(
            rebuilt.check_value(Suite::Standard).unwrap(),
            root.check_value(Suite::Standard).unwrap()
        );
    }

    #[test]
    fn parse_refuses_what_is_not_a_share() {
        for bad in [
            "",
            "mvshare1-",
            "mvshare1-00-00",
            "mvshare1-01-zz",
            "share-01-00",
            "-----BEGIN AGE ENCRYPTED FILE-----",
        ] {
            assert!(KeyShare::parse(bad).is_err(), "{bad}");
        }
        assert!(split(&new_data_key().unwrap(), 1, 3).is_err());
        assert!(split(&new_data_key().unwrap(), 4, 3).is_err());
    }

    #[test]
    fn debug_hides_the_share() {
        let shares = split(&new_data_key().unwrap(), 2, 2).unwrap();
        let text = shares[0].to_text().expose().to_owned();
        assert!(!format!("{:?}", shares[0]).contains(&text[12..]));
    }
}
