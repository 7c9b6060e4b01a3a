//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s, one step of skew). totp-rs compares codes in constant
//! time and reports the matched step; the caller persists that step so no code is accepted twice.

use totp_rs::{Builder, Totp};

use crate::crypto::{CryptoError, SecretBytes, SecretString};
use crate::error::{Error, Result, TotpRefusal};
use crate::store::Tx;

pub const ISSUER: &str = "mediavault";
pub const STEP_SECONDS: u64 = 30;

/// 160 random bits, the RFC 4226 recommendation.
pub fn new_seed() -> Result<SecretBytes, CryptoError> {
    SecretBytes::random(20)
}

fn totp(seed: &SecretBytes, account: &str) -> Option<Totp> {
    Builder::new()
        .with_secret(seed.expose().to_vec())
        .with_skew(1)
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .ok()
}

/// Accepts "123456", "123 456" and "123-456": what people type from an authenticator app.
fn normalise(code: &str) -> Option<String> {
    let digits: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The matched time step if `code` is valid at `now_unix` (± one step).
pub fn check(seed: &SecretBytes, code: &str, now_unix: i64) -> Option<i64> {
    let code = normalise(code)?;
    let now = u64::try_from(now_unix).ok()?;
    totp(seed, "check")?
        .check(&code, now)
        .and_then(|s| i64::try_from(s).ok())
}

/// The code for `now_unix`: for tests, the demo, and the platform-login second factor.
pub fn code_at(seed: &SecretBytes, now_unix: i64) -> Option<String> {
    let now = u64::try_from(now_unix).ok()?;
    Some(totp(seed, "code")?.generate(now).to_string())
}

/// Seconds until the code at `now_unix` stops being the current one.
pub fn seconds_left(now_unix: i64) -> u64 {
    STEP_SECONDS - (now_unix.max(0) as u64 % STEP_SECONDS)
}

/// The `otpauth://` enrolment URI, shown once.
pub fn otpauth_uri(seed: &SecretBytes, username: &str) -> Option<SecretString> {
    totp(seed, username)?.to_url().ok().map(SecretString::new)
}

/// Base32 (RFC 4648, no padding), for people who type the seed in by hand.
pub fn seed_base32(seed: &SecretBytes) -> SecretString {
    SecretString::new(totp_rs::Secret::from(seed.expose().to_vec()).to_base32())
}

pub fn seed_from_base32(s: &str) -> Option<SecretBytes> {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let secret = totp_rs::Secret::try_from_base32(cleaned.trim_end_matches('=')).ok()?;
    let bytes = secret.as_ref().to_vec();
    (bytes.len() >= 10).then(|| SecretBytes::new(bytes))
}

/// A QR code of `text` drawn with half-block characters, for enrolment in a terminal.
pub fn qr_terminal(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let dark = |x: i64, y: i64| -> bool {
        x >= 0
            && y >= 0
            && (x as usize) < width
            && (y as usize) < width
            && colors[y as usize * width + x as usize] == qrcode::Color::Dark
    };
    let mut out = String::new();
    let quiet = 2i64;
    let w = width as i64;
    let mut y = -quiet;
    while y < w + quiet {
        for x in -quiet..w + quiet {
            // Light on dark terminals: draw light modules, leave dark ones blank.
            out.push(match (!dark(x, y), !dark(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    Some(out)
}

/// A TOTP code that checked out against a user's seed at one time step. It is spent inside the
/// transaction of the change it authorises, so a change that is not made leaves the code unused
/// and no code authorises two changes.
#[derive(Debug, Clone, Copy)]
#[must_use = "a proof is spent with `spend` inside the change's transaction"]
pub struct TotpProof {
    pub(crate) user_id: i64,
    pub(crate) step: i64,
    pub(crate) now: i64,
}

impl TotpProof {
    /// Accepts the step, atomically: only if newer than the last accepted one and only while the
    /// user is not locked, so neither a replay nor a code racing a lockout gets through.
    pub async fn spend(self, tx: &mut Tx) -> Result<()> {
        if tx
            .user_accept_totp_step(self.user_id, self.step, self.now)
            .await?
        {
            return Ok(());
        }
        // Locked by failures that raced this code, or the step was used meanwhile.
        if let Some(until) = tx.user_locked_until(self.user_id, self.now).await? {
            return Err(Error::UserLocked {
                until: crate::clock::rfc3339_unix(until),
            });
        }
        Err(Error::TotpInvalid(TotpRefusal::Replayed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vector_and_normalising() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", T = 59 → 94287082 (8 digits);
        // the 6-digit code is its last six digits.
        let seed = SecretBytes::new(b"12345678901234567890".to_vec());
        assert_eq!(code_at(&seed, 59).unwrap(), "287082");
        assert_eq!(check(&seed, "287 082", 59), Some(1));
        assert_eq!(check(&seed, "287-082", 59), Some(1));
        assert_eq!(check(&seed, "287082", 59 + 30), Some(1), "one step of skew");
        assert_eq!(check(&seed, "287082", 59 + 95), None);
        assert_eq!(check(&seed, "28708", 59), None);
        assert_eq!(check(&seed, "+87082", 59), None);
    }

    #[test]
    fn base32_round_trip_and_uri() {
        let seed = new_seed().unwrap();
        let b32 = seed_base32(&seed);
        assert_eq!(
            seed_from_base32(b32.expose()).unwrap().expose(),
            seed.expose()
        );
        let uri = otpauth_uri(&seed, "alice").unwrap();
        assert!(uri.expose().starts_with("otpauth://totp/mediavault:alice?"));
        assert!(qr_terminal(uri.expose()).unwrap().contains('█'));
    }
}
