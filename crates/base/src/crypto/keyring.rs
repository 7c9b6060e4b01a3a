//! Key hierarchy: root key file → wrapped keyring (data keys by term, plus the MAC master) →
//! records.
//!
//! The root key only wraps; it never seals a record. That is what lets `keys rotate-root` re-wrap a
//! few rows instead of re-encrypting the store, and lets `keys rotate` add a term while old terms
//! keep opening old records until they are rewrapped.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::suite::{AeadKey, CheckpointKey, MacKey, Suite, TAG_LEN};
use super::{CryptoError, SecretBytes};

const NONCE_LEN: usize = super::suite::NONCE_LEN;
/// Leading byte of every record ciphertext, so a future format can be told apart.
const FORMAT_V1: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// Where a ciphertext belongs. A ciphertext sealed for one place fails to open in any other.
#[derive(Debug, Clone)]
pub struct Aad<'a> {
    pub table: &'static str,
    pub row: &'a str,
    pub field: &'static str,
    pub version: i64,
}

impl Aad<'_> {
    fn bytes(&self, term: u32) -> Vec<u8> {
        // The row's length goes first so that no row text can imitate the fields after it.
        format!(
            "mediavault:v1:{}:{}:{}:{}:term={term}:version={}",
            self.table,
            self.row.len(),
            self.row,
            self.field,
            self.version
        )
        .into_bytes()
    }
}

/// The 256-bit root key, read from a file that only its owner may read (or rebuilt from shares).
///
/// It holds only the raw key; each use derives its key (HKDF of the vault's suite) under its own
/// label, so the file's bytes are never an AEAD key themselves, a backup key can never open a
/// wrapped keyring or the other way round, and one root key serves either suite. The suite is
/// the store's (`init` records it), passed at each use.
pub struct RootKey {
    raw: SecretBytes,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey([REDACTED])")
    }
}

/// HKDF salt of every key derived from the root key.
const ROOT_SALT: &[u8] = b"mediavault root";
/// HKDF label of the key that wraps the keyring.
const WRAP_LABEL: &[u8] = b"keyring-wrap";
/// HKDF label of the key that seals backup files.
const BACKUP_LABEL: &[u8] = b"backup-v1";
/// HKDF label of the public check value.
const CHECK_LABEL: &[u8] = b"check-v1";

impl RootKey {
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::Malformed("root key length"));
        }
        Ok(Self {
            raw: SecretBytes::new(bytes.to_vec()),
        })
    }

    fn derive(&self, suite: Suite, label: &[u8]) -> Result<AeadKey, CryptoError> {
        suite.derive_aead(ROOT_SALT, self.raw.expose(), label)
    }

    /// A value derived from the key that proves a reconstructed key is the right one without
    /// revealing it (sealed mode keeps it beside the shares).
    pub fn check_value(&self, suite: Suite) -> Result<[u8; 32], CryptoError> {
        let mut check = [0u8; 32];
        suite.kdf(ROOT_SALT, self.raw.expose(), CHECK_LABEL, &mut check)?;
        Ok(check)
    }

    /// A MAC key derived from the root key for `label`: vouches for a file beside the store that
    /// only a holder of this key may have written (a sealed server's handover recipient).
    pub fn derive_mac(&self, suite: Suite, label: &[u8]) -> Result<MacKey, CryptoError> {
        suite.derive_mac(ROOT_SALT, self.raw.expose(), label)
    }

    /// The key from its 32 raw bytes (rebuilt from shares in sealed mode).
    pub fn from_secret(raw: &SecretBytes) -> Result<Self, CryptoError> {
        Self::from_bytes(raw.expose())
    }

    /// Creates a new key file with mode 0600; refuses to overwrite an existing one.
    pub fn create_file(path: &Path) -> Result<Self, CryptoError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let raw = SecretBytes::random(32)?;
        let encoded = SecretBytes::new(format!("{}\n", hex::encode(raw.expose())).into_bytes());
        let file_err = |problem: String| CryptoError::KeyFile {
            path: path.display().to_string(),
            problem,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| file_err(format!("cannot create: {e}")))?;
        f.write_all(encoded.expose())
            .and_then(|_| f.sync_all())
            .map_err(|e| file_err(format!("cannot write: {e}")))?;
        Self::from_bytes(raw.expose())
    }

    /// Reads the key file, refusing one that group or others can read or write.
    pub fn load_file(path: &Path) -> Result<Self, CryptoError> {
        use std::os::unix::fs::PermissionsExt;
        let file_err = |problem: String| CryptoError::KeyFile {
            path: path.display().to_string(),
            problem,
        };
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => file_err(
                "missing: run `mediavault init` to create a store, or set root_key_file".into(),
            ),
            _ => file_err(format!("cannot read: {e}")),
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(file_err(format!(
                "permissions {mode:o} let others read it; run `chmod 600 {}`",
                path.display()
            )));
        }
        let text = SecretBytes::new(
            std::fs::read(path).map_err(|e| file_err(format!("cannot read: {e}")))?,
        );
        let trimmed = std::str::from_utf8(text.expose())
            .map(str::trim)
            .map_err(|_| file_err("not a hex key".into()))?;
        let raw = SecretBytes::new(
            hex::decode(trimmed).map_err(|_| file_err("not a 64-digit hex key".into()))?,
        );
        if raw.expose().len() != 32 {
            return Err(file_err("not a 64-digit hex key (256 bits)".into()));
        }
        Self::from_bytes(raw.expose())
    }

    /// Wraps a data key; `label` says which (keyring term or MAC master).
    pub fn wrap(
        &self,
        suite: Suite,
        label: &str,
        key: &SecretBytes,
    ) -> Result<Vec<u8>, CryptoError> {
        self.derive(suite, WRAP_LABEL)?
            .seal(label.as_bytes(), key.expose(), &[])
    }

    pub fn unwrap(
        &self,
        suite: Suite,
        label: &str,
        blob: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        self.derive(suite, WRAP_LABEL)?
            .open(label.as_bytes(), blob, 0)
            .map_err(|_| CryptoError::WrongRootKey)
    }

    /// Seals a backup's body under the backup key; `header` (the file's plaintext header) is
    /// authenticated with it, so neither can be changed or swapped. Output: nonce, ciphertext, tag.
    pub fn seal_backup(
        &self,
        suite: Suite,
        header: &[u8],
        body: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.derive(suite, BACKUP_LABEL)?.seal(header, body, &[])
    }

    /// Opens a backup's body; fails alike for another root key, another header or any change.
    pub fn open_backup(
        &self,
        suite: Suite,
        header: &[u8],
        sealed: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        self.derive(suite, BACKUP_LABEL)?
            .open(header, sealed, 0)
            .map_err(|_| CryptoError::BackupDoesNotOpen)
    }
}

/// Label of a keyring term when wrapped under the root key.
pub fn term_label(term: u32) -> String {
    format!("mediavault:keyring:term={term}")
}
pub const MAC_MASTER_LABEL: &str = "mediavault:mac-master";

/// A fresh 256-bit key (the MAC master, in either suite).
pub fn new_data_key() -> Result<SecretBytes, CryptoError> {
    SecretBytes::random(32)
}

/// Keys derived from the MAC master, which lives in the keyring (not in the root key) so that a
/// root-key rotation leaves token hashes and the audit chain valid.
pub struct MacKeys {
    pub token: MacKey,
    pub audit: MacKey,
    /// Signs checkpoints: HMAC in the standard suite, SM2 in the SM suite.
    pub checkpoint: CheckpointKey,
    /// Pseudonymises login names that match no user before they reach the audit log.
    pub login_name: MacKey,
    /// Vouches, between the nodes of a cluster, for the client address of a forwarded request.
    pub forward: MacKey,
}

/// HKDF salt of the MAC keys.
const MAC_SALT: &[u8] = b"mediavault mac";

impl MacKeys {
    fn derive(suite: Suite, master: &SecretBytes) -> Result<Self, CryptoError> {
        let key = |info: &'static [u8]| suite.derive_mac(MAC_SALT, master.expose(), info);
        Ok(Self {
            token: key(b"token-hash")?,
            audit: key(b"audit-chain")?,
            checkpoint: CheckpointKey::derive(suite, MAC_SALT, master.expose())?,
            login_name: key(b"audit-login-name")?,
            forward: key(b"cluster-forward")?,
        })
    }
}

/// The unwrapped keyring, held in memory for the life of the process.
pub struct Keyring {
    suite: Suite,
    terms: RwLock<BTreeMap<u32, AeadKey>>,
    active: AtomicU32,
    mac: MacKeys,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("suite", &self.suite)
            .field("active_term", &self.active_term())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    pub fn new(
        suite: Suite,
        terms: Vec<(u32, SecretBytes)>,
        mac_master: &SecretBytes,
    ) -> Result<Self, CryptoError> {
        let active = terms.iter().map(|(t, _)| *t).max().unwrap_or(0);
        let mut map = BTreeMap::new();
        for (term, key) in terms {
            map.insert(term, AeadKey::new(suite, &key)?);
        }
        Ok(Self {
            suite,
            terms: RwLock::new(map),
            active: AtomicU32::new(active),
            mac: MacKeys::derive(suite, mac_master)?,
        })
    }

    /// The suite every key of this keyring belongs to.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    pub fn mac(&self) -> &MacKeys {
        &self.mac
    }

    pub fn active_term(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    pub fn has_term(&self, term: u32) -> bool {
        self.terms
            .read()
            .map(|t| t.contains_key(&term))
            .unwrap_or(false)
    }

    /// Adds a term learned after start (another process ran `keys rotate`); the newest term seals.
    pub fn add_term(&self, term: u32, key: &SecretBytes) -> Result<(), CryptoError> {
        let k = AeadKey::new(self.suite, key)?;
        if let Ok(mut t) = self.terms.write() {
            t.insert(term, k);
        }
        self.active.fetch_max(term, Ordering::AcqRel);
        Ok(())
    }

    pub fn seal(&self, aad: &Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let term = self.active_term();
        let terms = self
            .terms
            .read()
            .map_err(|_| CryptoError::UnknownTerm(term))?;
        let key = terms.get(&term).ok_or(CryptoError::UnknownTerm(term))?;
        let mut header = Vec::with_capacity(5);
        header.push(FORMAT_V1);
        header.extend_from_slice(&term.to_be_bytes());
        key.seal(&aad.bytes(term), plaintext, &header)
    }

    pub fn open(&self, aad: &Aad<'_>, blob: &[u8]) -> Result<SecretBytes, CryptoError> {
        let term = Self::term_of(blob)?;
        let terms = self
            .terms
            .read()
            .map_err(|_| CryptoError::UnknownTerm(term))?;
        let key = terms.get(&term).ok_or(CryptoError::UnknownTerm(term))?;
        key.open(&aad.bytes(term), blob, 5).map_err(|_| {
            CryptoError::Open(format!(
                "{}.{} of {} v{}",
                aad.table, aad.field, aad.row, aad.version
            ))
        })
    }

    /// The term a ciphertext was sealed under, read from its header.
    pub fn term_of(blob: &[u8]) -> Result<u32, CryptoError> {
        if blob.len() < HEADER_LEN + TAG_LEN {
            return Err(CryptoError::Malformed("too short"));
        }
        if blob[0] != FORMAT_V1 {
            return Err(CryptoError::Malformed("unknown format"));
        }
        let mut t = [0u8; 4];
        t.copy_from_slice(&blob[1..5]);
        Ok(u32::from_be_bytes(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(suite: Suite) -> Keyring {
        Keyring::new(
            suite,
            vec![(1, suite.new_data_key().unwrap())],
            &new_data_key().unwrap(),
        )
        .unwrap()
    }

    fn aad<'a>(row: &'a str, field: &'static str, version: i64) -> Aad<'a> {
        Aad {
            table: "credential_versions",
            row,
            field,
            version,
        }
    }

    #[test]
    fn sealed_record_opens_only_in_its_place() {
        for suite in Suite::ALL {
            let k = ring(suite);
            let ct = k.seal(&aad("wechat", "secret", 1), b"s3cret").unwrap();
            assert_eq!(
                k.open(&aad("wechat", "secret", 1), &ct).unwrap().expose(),
                b"s3cret"
            );
            for wrong in [
                aad("weibo", "secret", 1),
                aad("wechat", "seed", 1),
                aad("wechat", "secret", 2),
            ] {
                let err = k.open(&wrong, &ct).unwrap_err();
                assert!(matches!(err, CryptoError::Open(_)), "{suite}: {err}");
            }
            let mut flipped = ct.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            assert!(k.open(&aad("wechat", "secret", 1), &flipped).is_err());
            assert!(k.open(&aad("wechat", "secret", 1), &ct[..10]).is_err());
        }
    }

    #[test]
    fn a_record_of_one_suite_does_not_open_in_the_other() {
        let key = Suite::Sm.new_data_key().unwrap();
        let sm = Keyring::new(Suite::Sm, vec![(1, key)], &new_data_key().unwrap()).unwrap();
        let standard = ring(Suite::Standard);
        let ct = sm.seal(&aad("a", "f", 1), b"x").unwrap();
        assert!(standard.open(&aad("a", "f", 1), &ct).is_err());
        assert_eq!(sm.suite(), Suite::Sm);
    }

    #[test]
    fn old_terms_open_after_adding_a_term() {
        for suite in Suite::ALL {
            let k = ring(suite);
            let old = k.seal(&aad("a", "f", 1), b"old").unwrap();
            k.add_term(2, &suite.new_data_key().unwrap()).unwrap();
            let new = k.seal(&aad("a", "f", 1), b"new").unwrap();
            assert_eq!(Keyring::term_of(&old).unwrap(), 1);
            assert_eq!(Keyring::term_of(&new).unwrap(), 2);
            assert_eq!(k.open(&aad("a", "f", 1), &old).unwrap().expose(), b"old");
        }
    }

    #[test]
    fn root_key_file_permissions_and_wrong_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("root.key");
        let root = RootKey::create_file(&p).unwrap();
        assert!(RootKey::create_file(&p).is_err(), "must not overwrite");
        let other = RootKey::create_file(&dir.path().join("other.key")).unwrap();
        for suite in Suite::ALL {
            let dk = suite.new_data_key().unwrap();
            let wrapped = root.wrap(suite, &term_label(1), &dk).unwrap();
            let again = RootKey::load_file(&p).unwrap();
            assert_eq!(
                again
                    .unwrap(suite, &term_label(1), &wrapped)
                    .unwrap()
                    .expose(),
                dk.expose()
            );
            assert!(matches!(
                other.unwrap(suite, &term_label(1), &wrapped),
                Err(CryptoError::WrongRootKey)
            ));
        }
        // Wrapped in one suite, it does not unwrap in the other.
        let wrapped = root
            .wrap(Suite::Sm, &term_label(1), &new_data_key().unwrap())
            .unwrap();
        assert!(
            root.unwrap(Suite::Standard, &term_label(1), &wrapped)
                .is_err()
        );
        assert_ne!(
            root.check_value(Suite::Sm).unwrap(),
            root.check_value(Suite::Standard).unwrap()
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = RootKey::load_file(&p).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        let err = RootKey::load_file(&dir.path().join("nope.key"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }

    /// Vaults made before the SM option wrapped their keyring with ring's HKDF-SHA256 and
    /// AES-256-GCM directly; the standard suite must open what they wrapped.
    #[test]
    fn the_standard_suite_opens_what_earlier_versions_wrapped() {
        use ring::aead::{AES_256_GCM, Aad as RingAad, LessSafeKey, Nonce, UnboundKey};
        use ring::hkdf;
        let raw = [5u8; 32];
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"mediavault root").extract(&raw);
        let kek = LessSafeKey::new(UnboundKey::from(
            prk.expand(&[b"keyring-wrap"], &AES_256_GCM).unwrap(),
        ));
        let label = term_label(1);
        let mut body = b"0123456789abcdef0123456789abcdef".to_vec();
        kek.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([1; 12]),
            RingAad::from(label.as_bytes()),
            &mut body,
        )
        .unwrap();
        let blob = [[1u8; 12].as_slice(), &body].concat();
        let root = RootKey::from_bytes(&raw).unwrap();
        assert_eq!(
            root.unwrap(Suite::Standard, &label, &blob)
                .unwrap()
                .expose(),
            b"0123456789abcdef0123456789abcdef"
        );
        let mut check = [0u8; 32];
        struct Len;
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                32
            }
        }
        prk.expand(&[b"check-v1"], Len)
            .unwrap()
            .fill(&mut check)
            .unwrap();
        assert_eq!(root.check_value(Suite::Standard).unwrap(), check);
    }

    #[test]
    fn backup_seals_open_only_with_the_same_root_and_header() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootKey::create_file(&dir.path().join("root.key")).unwrap();
        let other = RootKey::create_file(&dir.path().join("other.key")).unwrap();
        for suite in Suite::ALL {
            let sealed = root.seal_backup(suite, b"header", b"database").unwrap();
            assert_eq!(
                root.open_backup(suite, b"header", &sealed)
                    .unwrap()
                    .expose(),
                b"database"
            );
            assert!(root.open_backup(suite, b"other header", &sealed).is_err());
            assert!(other.open_backup(suite, b"header", &sealed).is_err());
            // The backup key is not the keyring-wrapping key.
            assert!(root.unwrap(suite, "header", &sealed).is_err());
        }
    }
}
