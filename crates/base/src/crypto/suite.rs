//! The two cryptographic suites a vault can be created with, and the primitives each one names.
//!
//! | | `standard` (default) | `sm` (national, GB/T 39786-2021) |
//! |---|---|---|
//! | records, keyring wrap, backups | AES-256-GCM (ring) | SM4-GCM (GB/T 32907, `aes-gcm`'s generic mode) |
//! | audit chain, token hashes, MACs | HMAC-SHA256 (ring) | HMAC-SM3 (GB/T 32905) |
//! | key derivation | HKDF-SHA256 | HKDF-SM3 |
//! | checkpoints | HMAC-SHA256 | SM2 signature (GB/T 32918), with the default ID |
//!
//! A vault's suite is chosen once, at `init`, recorded in its store and never changes: every
//! wrapped key, sealed record, chain hash and token hash depends on it. The SM primitives come
//! from RustCrypto (`sm3`, `sm4`, `sm2`, `aes-gcm`, `hmac`, `hkdf`); the standard ones stay ring's,
//! byte for byte as before the SM option existed, so a vault created earlier opens unchanged.

use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, Payload};
use hmac::{KeyInit, Mac};
use ring::aead::{AES_256_GCM, Aad as RingAad, LessSafeKey, Nonce, UnboundKey};
use ring::{hkdf, hmac as ring_hmac};
use sm2::dsa::signature::{Signer, Verifier};

use super::{CryptoError, SecretBytes, random_bytes};

pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;

/// SM4 in GCM mode with a 96-bit nonce: the same construction as AES-GCM over SM4's 128-bit
/// block (GB/T 36624 names SM4-GCM; RFC 8998 uses it in TLS).
type Sm4Gcm = aes_gcm::AesGcm<sm4::Sm4, U12>;

/// The SM2 user ID of the checkpoint signature: GB/T 35276's default, so any SM2 tool verifies
/// with the public key alone.
pub const SM2_DEFAULT_ID: &str = "1234567812345678";

/// Which primitives a vault uses (see the module table).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    #[default]
    Standard,
    Sm,
}

impl Suite {
    pub const ALL: [Suite; 2] = [Suite::Standard, Suite::Sm];

    pub fn as_str(self) -> &'static str {
        match self {
            Suite::Standard => "standard",
            Suite::Sm => "sm",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The primitives, for people (`/readyz`, the console, `init`).
    pub fn describe(self) -> &'static str {
        match self {
            Suite::Standard => "AES-256-GCM, HMAC-SHA256, HKDF-SHA256",
            Suite::Sm => "SM4-GCM, HMAC-SM3, HKDF-SM3, SM2 signatures",
        }
    }

    /// Length of a data key (keyring term): AES-256 takes 32 bytes, SM4 16.
    pub fn data_key_len(self) -> usize {
        match self {
            Suite::Standard => 32,
            Suite::Sm => 16,
        }
    }

    /// A fresh data key of this suite's length, from the OS generator.
    pub fn new_data_key(self) -> Result<SecretBytes, CryptoError> {
        SecretBytes::random(self.data_key_len())
    }

    /// This suite's hash (SHA-256 or SM3) of `data`, for the public check values it keeps.
    pub fn digest(self, data: &[u8]) -> [u8; 32] {
        match self {
            Suite::Standard => super::sha256(data),
            Suite::Sm => {
                use sm3::Digest;
                sm3::Sm3::digest(data).into()
            }
        }
    }

    /// HKDF (this suite's hash) of `ikm` under `salt`, expanded for `label` into `out`.
    pub(crate) fn kdf(
        self,
        salt: &[u8],
        ikm: &[u8],
        label: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        match self {
            Suite::Standard => {
                struct Len(usize);
                impl hkdf::KeyType for Len {
                    fn len(&self) -> usize {
                        self.0
                    }
                }
                hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
                    .extract(ikm)
                    .expand(&[label], Len(out.len()))
                    .and_then(|okm| okm.fill(out))
                    .map_err(|_| CryptoError::Malformed("hkdf"))
            }
            Suite::Sm => ::hkdf::Hkdf::<sm3::Sm3>::new(Some(salt), ikm)
                .expand(label, out)
                .map_err(|_| CryptoError::Malformed("hkdf")),
        }
    }

    /// An AEAD key of this suite derived from `ikm` for `label`.
    pub(crate) fn derive_aead(
        self,
        salt: &[u8],
        ikm: &[u8],
        label: &[u8],
    ) -> Result<AeadKey, CryptoError> {
        let mut okm = SecretBytes::new(vec![0u8; self.data_key_len()]);
        self.kdf(salt, ikm, label, okm.expose_mut())?;
        AeadKey::new(self, &okm)
    }

    /// An HMAC key of this suite derived from `ikm` for `label`.
    pub(crate) fn derive_mac(
        self,
        salt: &[u8],
        ikm: &[u8],
        label: &[u8],
    ) -> Result<MacKey, CryptoError> {
        let mut okm = SecretBytes::new(vec![0u8; 32]);
        self.kdf(salt, ikm, label, okm.expose_mut())?;
        Ok(MacKey::new(self, okm.expose()))
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An AEAD key: AES-256-GCM (ring) or SM4-GCM.
// A vault holds a handful of these for its life (one per keyring term), never in bulk: the
// variants' size difference costs nothing, and boxing would add a pointer chase to every open.
#[allow(clippy::large_enum_variant)]
pub(crate) enum AeadKey {
    Aes(LessSafeKey),
    Sm4(Sm4Gcm),
}

impl AeadKey {
    pub(crate) fn new(suite: Suite, key: &SecretBytes) -> Result<Self, CryptoError> {
        if key.expose().len() != suite.data_key_len() {
            return Err(CryptoError::Malformed("data key length"));
        }
        match suite {
            Suite::Standard => UnboundKey::new(&AES_256_GCM, key.expose())
                .map(|k| AeadKey::Aes(LessSafeKey::new(k)))
                .map_err(|_| CryptoError::Malformed("data key length")),
            Suite::Sm => <Sm4Gcm as KeyInit>::new_from_slice(key.expose())
                .map(AeadKey::Sm4)
                .map_err(|_| CryptoError::Malformed("data key length")),
        }
    }

    /// `header || nonce || ciphertext || tag`; the header is authenticated as part of the AAD.
    pub(crate) fn seal(
        &self,
        aad: &[u8],
        plaintext: &[u8],
        header: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let mut full_aad = header.to_vec();
        full_aad.extend_from_slice(aad);
        let mut out = Vec::with_capacity(header.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(header);
        out.extend_from_slice(&nonce);
        match self {
            AeadKey::Aes(key) => {
                let mut body = plaintext.to_vec();
                let sealed = key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    RingAad::from(full_aad),
                    &mut body,
                );
                if sealed.is_err() {
                    zeroize::Zeroize::zeroize(&mut body);
                    return Err(CryptoError::Malformed("seal"));
                }
                out.extend_from_slice(&body);
                zeroize::Zeroize::zeroize(&mut body);
            }
            AeadKey::Sm4(key) => {
                let body = key
                    .encrypt(
                        &nonce.into(),
                        Payload {
                            msg: plaintext,
                            aad: &full_aad,
                        },
                    )
                    .map_err(|_| CryptoError::Malformed("seal"))?;
                out.extend_from_slice(&body);
            }
        }
        Ok(out)
    }

    /// Opens what [`Self::seal`] made with `header_len` bytes of header; any change fails.
    pub(crate) fn open(
        &self,
        aad: &[u8],
        blob: &[u8],
        header_len: usize,
    ) -> Result<SecretBytes, CryptoError> {
        if blob.len() < header_len + NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed("too short"));
        }
        let (header, rest) = blob.split_at(header_len);
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(nonce);
        let mut full_aad = header.to_vec();
        full_aad.extend_from_slice(aad);
        match self {
            AeadKey::Aes(key) => {
                let mut buf = SecretBytes::new(ct.to_vec());
                let len = key
                    .open_in_place(
                        Nonce::assume_unique_for_key(n),
                        RingAad::from(full_aad),
                        buf.expose_mut(),
                    )
                    .map_err(|_| CryptoError::Open(String::new()))?
                    .len();
                Ok(SecretBytes::new(buf.expose()[..len].to_vec()))
            }
            AeadKey::Sm4(key) => key
                .decrypt(
                    &n.into(),
                    Payload {
                        msg: ct,
                        aad: &full_aad,
                    },
                )
                .map(SecretBytes::new)
                .map_err(|_| CryptoError::Open(String::new())),
        }
    }
}

/// A MAC key: HMAC-SHA256 (ring) or HMAC-SM3. Cloning shares no state that a use changes.
#[derive(Clone)]
pub enum MacKey {
    Sha256(ring_hmac::Key),
    Sm3(Box<hmac::Hmac<sm3::Sm3>>),
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacKey({}, [REDACTED])", self.suite())
    }
}

impl MacKey {
    pub fn new(suite: Suite, key: &[u8]) -> Self {
        match suite {
            Suite::Standard => MacKey::Sha256(ring_hmac::Key::new(ring_hmac::HMAC_SHA256, key)),
            Suite::Sm => {
                // HMAC takes a key of any length (a long one is hashed first): `new_from_slice`
                // of `Hmac` never fails, so this cannot fire. (A fallback key would be worse than
                // a panic: a MAC anyone could compute.)
                #[allow(clippy::expect_used)]
                let mac = <hmac::Hmac<sm3::Sm3> as KeyInit>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                MacKey::Sm3(Box::new(mac))
            }
        }
    }

    pub fn suite(&self) -> Suite {
        match self {
            MacKey::Sha256(_) => Suite::Standard,
            MacKey::Sm3(_) => Suite::Sm,
        }
    }

    /// The MAC over `parts`, each preceded by its length (big-endian u64), so that ("ab","c")
    /// and ("a","bc") differ.
    pub fn parts(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut out = [0u8; 32];
        match self {
            MacKey::Sha256(key) => {
                let mut ctx = ring_hmac::Context::with_key(key);
                for part in parts {
                    ctx.update(&(part.len() as u64).to_be_bytes());
                    ctx.update(part);
                }
                out.copy_from_slice(ctx.sign().as_ref());
            }
            MacKey::Sm3(key) => {
                let mut ctx = (**key).clone();
                for part in parts {
                    ctx.update(&(part.len() as u64).to_be_bytes());
                    ctx.update(part);
                }
                out.copy_from_slice(&ctx.finalize().into_bytes());
            }
        }
        out
    }
}

/// What signs audit checkpoints: the standard suite's HMAC key, or the SM suite's SM2 key pair
/// (whose public half lets anyone outside the vault verify a checkpoint).
#[derive(Clone)]
pub enum CheckpointKey {
    Hmac(MacKey),
    Sm2(Box<sm2::dsa::SigningKey>),
}

impl fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckpointKey({}, [REDACTED])", self.suite())
    }
}

impl CheckpointKey {
    /// Derived from the MAC master: no new key to store, and the same on every node.
    pub(crate) fn derive(suite: Suite, salt: &[u8], master: &[u8]) -> Result<Self, CryptoError> {
        match suite {
            Suite::Standard => Ok(CheckpointKey::Hmac(suite.derive_mac(
                salt,
                master,
                b"audit-checkpoint",
            )?)),
            Suite::Sm => {
                // A scalar must be in [1, n-1]; a derived 256-bit value falls outside with
                // probability about 2^-32, so a counter tries the next label then.
                for counter in 0u8..=255 {
                    let mut okm = SecretBytes::new(vec![0u8; 32]);
                    let label = [b"audit-checkpoint-sm2:".as_slice(), &[counter]].concat();
                    suite.kdf(salt, master, &label, okm.expose_mut())?;
                    if let Ok(key) = sm2::dsa::SigningKey::from_slice(SM2_DEFAULT_ID, okm.expose())
                    {
                        return Ok(CheckpointKey::Sm2(Box::new(key)));
                    }
                }
                Err(CryptoError::Malformed("sm2 key derivation"))
            }
        }
    }

    pub fn suite(&self) -> Suite {
        match self {
            CheckpointKey::Hmac(k) => k.suite(),
            CheckpointKey::Sm2(_) => Suite::Sm,
        }
    }

    /// The signature (HMAC tag, or SM2 `r || s`) over `parts`, encoded as [`MacKey::parts`].
    pub fn sign(&self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            CheckpointKey::Hmac(k) => k.parts(parts).to_vec(),
            CheckpointKey::Sm2(k) => {
                let sig: sm2::dsa::Signature = k.sign(&length_prefixed(parts));
                sig.to_bytes().to_vec()
            }
        }
    }

    pub fn verify(&self, parts: &[&[u8]], signature: &[u8]) -> bool {
        match self {
            CheckpointKey::Hmac(k) => super::ct_eq(&k.parts(parts), signature),
            CheckpointKey::Sm2(k) => {
                verify_sm2(&k.verifying_key().to_sec1_bytes(), parts, signature)
            }
        }
    }

    /// The SM2 public key (SEC1 uncompressed, hex) that verifies this vault's checkpoints; none
    /// for an HMAC key, which only the vault can check.
    pub fn public_key_hex(&self) -> Option<String> {
        match self {
            CheckpointKey::Hmac(_) => None,
            CheckpointKey::Sm2(k) => Some(hex::encode(k.verifying_key().to_sec1_bytes())),
        }
    }
}

/// Verifies an SM2 signature (`r || s`) over `parts` with a public key (SEC1 bytes) alone.
pub fn verify_sm2(public_key: &[u8], parts: &[&[u8]], signature: &[u8]) -> bool {
    let Ok(vk) = sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DEFAULT_ID, public_key) else {
        return false;
    };
    let Ok(sig) = sm2::dsa::Signature::from_slice(signature) else {
        return false;
    };
    vk.verify(&length_prefixed(parts), &sig).is_ok()
}

fn length_prefixed(parts: &[&[u8]]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for part in parts {
        msg.extend_from_slice(&(part.len() as u64).to_be_bytes());
        msg.extend_from_slice(part);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm3_and_sm4_match_the_standards_test_vectors() {
        // GB/T 32905-2016 example 1: SM3("abc").
        use sm3::Digest;
        assert_eq!(
            hex::encode(sm3::Sm3::digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        // GB/T 32907-2016 example 1: one SM4 block.
        use sm4::cipher::{BlockCipherEncrypt, KeyInit as _};
        let key = hex::decode("0123456789abcdeffedcba9876543210").unwrap();
        let cipher = sm4::Sm4::new_from_slice(&key).unwrap();
        let mut block = sm4::cipher::Array::try_from(key.as_slice()).unwrap();
        cipher.encrypt_block(&mut block);
        assert_eq!(hex::encode(block), "681edf34d206965e86b3e94f536e4246");
    }

    #[test]
    fn each_suites_aead_opens_only_what_it_sealed_unchanged() {
        for suite in Suite::ALL {
            let key = AeadKey::new(suite, &suite.new_data_key().unwrap()).unwrap();
            let other = AeadKey::new(suite, &suite.new_data_key().unwrap()).unwrap();
            let ct = key.seal(b"place", b"secret", b"H").unwrap();
            assert_eq!(key.open(b"place", &ct, 1).unwrap().expose(), b"secret");
            assert!(key.open(b"other place", &ct, 1).is_err(), "{suite}");
            assert!(other.open(b"place", &ct, 1).is_err(), "{suite}");
            let mut flipped = ct.clone();
            flipped[0] ^= 1;
            assert!(key.open(b"place", &flipped, 1).is_err(), "{suite}");
            assert!(key.open(b"place", &ct[..20], 1).is_err(), "{suite}");
        }
        // A key of the other suite's length is refused, not truncated or padded.
        assert!(AeadKey::new(Suite::Sm, &Suite::Standard.new_data_key().unwrap()).is_err());
        assert!(AeadKey::new(Suite::Standard, &Suite::Sm.new_data_key().unwrap()).is_err());
    }

    #[test]
    fn the_suites_macs_differ_and_hmac_sm3_is_keyed() {
        let a = MacKey::new(Suite::Standard, &[7; 32]).parts(&[b"x"]);
        let b = MacKey::new(Suite::Sm, &[7; 32]).parts(&[b"x"]);
        let c = MacKey::new(Suite::Sm, &[8; 32]).parts(&[b"x"]);
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert_eq!(b, MacKey::new(Suite::Sm, &[7; 32]).parts(&[b"x"]));
        assert_ne!(
            MacKey::new(Suite::Sm, &[7; 32]).parts(&[b"ab", b"c"]),
            MacKey::new(Suite::Sm, &[7; 32]).parts(&[b"a", b"bc"])
        );
    }

    #[test]
    fn an_sm2_checkpoint_signature_verifies_with_the_public_key_alone() {
        let key = CheckpointKey::derive(Suite::Sm, b"salt", &[9; 32]).unwrap();
        let again = CheckpointKey::derive(Suite::Sm, b"salt", &[9; 32]).unwrap();
        assert_eq!(
            key.public_key_hex(),
            again.public_key_hex(),
            "deterministic"
        );
        let sig = key.sign(&[b"head", b"42"]);
        assert!(key.verify(&[b"head", b"42"], &sig));
        assert!(!key.verify(&[b"head", b"43"], &sig));
        let public = hex::decode(key.public_key_hex().unwrap()).unwrap();
        assert!(verify_sm2(&public, &[b"head", b"42"], &sig));
        let other = CheckpointKey::derive(Suite::Sm, b"salt", &[8; 32]).unwrap();
        assert!(!other.verify(&[b"head", b"42"], &sig));
        assert!(!verify_sm2(b"not a key", &[b"head"], &sig));
        assert!(!verify_sm2(&public, &[b"head", b"42"], b"short"));
        let hmac = CheckpointKey::derive(Suite::Standard, b"salt", &[9; 32]).unwrap();
        assert!(hmac.public_key_hex().is_none());
        assert!(hmac.verify(&[b"head"], &hmac.sign(&[b"head"])));
    }
}
