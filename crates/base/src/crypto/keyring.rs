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

use ring::aead::{AES_256_GCM, Aad as RingAad, LessSafeKey, Nonce, UnboundKey};
use ring::{hkdf, hmac};

use super::{CryptoError, SecretBytes, random_bytes};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
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

/// The 256-bit root key, read from a file that only its owner may read.
pub struct RootKey {
    kek: LessSafeKey,
    /// Seals backup files (`mediavault backup`); derived under its own label, so a backup key
    /// can never open a wrapped keyring or the other way round.
    backup: LessSafeKey,
    check: [u8; 32],
}

/// The HKDF output length of the check value.
struct CheckLen;
impl hkdf::KeyType for CheckLen {
    fn len(&self) -> usize {
        32
    }
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey([REDACTED])")
    }
}

impl RootKey {
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        // The root key wraps through a derived KEK, so the file's bytes are never used as an AEAD
        // key directly and a future second use of the root key cannot collide with this one.
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"mediavault root").extract(bytes);
        let derive = |label: &'static [u8]| {
            prk.expand(&[label], &AES_256_GCM)
                .map(|okm| LessSafeKey::new(UnboundKey::from(okm)))
                .map_err(|_| CryptoError::Malformed("hkdf"))
        };
        // A public check value (sealed mode keeps it beside the shares): tells a wrong
        // reconstruction before the store is touched, and reveals nothing of the key (HKDF).
        let mut check = [0u8; 32];
        prk.expand(&[b"check-v1"], CheckLen)
            .and_then(|okm| okm.fill(&mut check))
            .map_err(|_| CryptoError::Malformed("hkdf"))?;
        Ok(Self {
            kek: derive(b"keyring-wrap")?,
            backup: derive(BACKUP_LABEL)?,
            check,
        })
    }

    /// A value derived from the key that proves a reconstructed key is the right one without
    /// revealing it.
    pub fn check_value(&self) -> [u8; 32] {
        self.check
    }

    /// The key from its 32 raw bytes (rebuilt from shares in sealed mode).
    pub fn from_secret(raw: &SecretBytes) -> Result<Self, CryptoError> {
        if raw.expose().len() != 32 {
            return Err(CryptoError::Malformed("root key length"));
        }
        Self::from_bytes(raw.expose())
    }

    /// Creates a new key file with mode 0600; refuses to overwrite an existing one.
    pub fn create_file(path: &Path) -> Result<Self, CryptoError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut raw = SecretBytes::new(vec![0u8; 32]);
        random_bytes(raw.expose_mut())?;
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
    pub fn wrap(&self, label: &str, key: &SecretBytes) -> Result<Vec<u8>, CryptoError> {
        seal_with(&self.kek, label.as_bytes(), key.expose(), &[])
    }

    pub fn unwrap(&self, label: &str, blob: &[u8]) -> Result<SecretBytes, CryptoError> {
        open_with(&self.kek, label.as_bytes(), blob, 0).map_err(|_| CryptoError::WrongRootKey)
    }

    /// Seals a backup's body under the backup key; `header` (the file's plaintext header) is
    /// authenticated with it, so neither can be changed or swapped. Output: nonce, ciphertext, tag.
    pub fn seal_backup(&self, header: &[u8], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal_with(&self.backup, header, body, &[])
    }

    /// Opens a backup's body; fails alike for another root key, another header or any change.
    pub fn open_backup(&self, header: &[u8], sealed: &[u8]) -> Result<SecretBytes, CryptoError> {
        open_with(&self.backup, header, sealed, 0).map_err(|_| CryptoError::BackupDoesNotOpen)
    }
}

/// Label of a keyring term when wrapped under the root key.
pub fn term_label(term: u32) -> String {
    format!("mediavault:keyring:term={term}")
}
pub const MAC_MASTER_LABEL: &str = "mediavault:mac-master";
/// HKDF label of the key that seals backup files.
const BACKUP_LABEL: &[u8] = b"backup-v1";

/// A fresh 256-bit key.
pub fn new_data_key() -> Result<SecretBytes, CryptoError> {
    let mut k = SecretBytes::new(vec![0u8; 32]);
    random_bytes(k.expose_mut())?;
    Ok(k)
}

/// Keys derived from the MAC master, which lives in the keyring (not in the root key) so that a
/// root-key rotation leaves token hashes and the audit chain valid.
pub struct MacKeys {
    pub token: hmac::Key,
    pub audit: hmac::Key,
    pub checkpoint: hmac::Key,
    /// Pseudonymises login names that match no user before they reach the audit log.
    pub login_name: hmac::Key,
    /// Vouches, between the nodes of a cluster, for the client address of a forwarded request.
    pub forward: hmac::Key,
}

impl MacKeys {
    fn derive(master: &SecretBytes) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"mediavault mac").extract(master.expose());
        let key = |info: &'static [u8]| {
            // Expanding 32 bytes of HMAC key cannot fail: the length limit is 255 * 32.
            prk.expand(&[info], hmac::HMAC_SHA256)
                .map(hmac::Key::from)
                .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, master.expose()))
        };
        Self {
            token: key(b"token-hash"),
            audit: key(b"audit-chain"),
            checkpoint: key(b"audit-checkpoint"),
            login_name: key(b"audit-login-name"),
            forward: key(b"cluster-forward"),
        }
    }
}

/// The unwrapped keyring, held in memory for the life of the process.
pub struct Keyring {
    terms: RwLock<BTreeMap<u32, LessSafeKey>>,
    active: AtomicU32,
    mac: MacKeys,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("active_term", &self.active_term())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    pub fn new(
        terms: Vec<(u32, SecretBytes)>,
        mac_master: &SecretBytes,
    ) -> Result<Self, CryptoError> {
        let active = terms.iter().map(|(t, _)| *t).max().unwrap_or(0);
        let mut map = BTreeMap::new();
        for (term, key) in terms {
            map.insert(term, aes_key(&key)?);
        }
        Ok(Self {
            terms: RwLock::new(map),
            active: AtomicU32::new(active),
            mac: MacKeys::derive(mac_master),
        })
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
        let k = aes_key(key)?;
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
        seal_with(key, &aad.bytes(term), plaintext, &header)
    }

    pub fn open(&self, aad: &Aad<'_>, blob: &[u8]) -> Result<SecretBytes, CryptoError> {
        let term = Self::term_of(blob)?;
        let terms = self
            .terms
            .read()
            .map_err(|_| CryptoError::UnknownTerm(term))?;
        let key = terms.get(&term).ok_or(CryptoError::UnknownTerm(term))?;
        open_with(key, &aad.bytes(term), blob, 5).map_err(|_| {
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

fn aes_key(key: &SecretBytes) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, key.expose())
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Malformed("data key length"))
}

/// `header || nonce || ciphertext || tag`; the header is authenticated as part of the AAD.
fn seal_with(
    key: &LessSafeKey,
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
    Ok(out)
}

fn open_with(
    key: &LessSafeKey,
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
    let mut buf = ct.to_vec();
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(n),
            RingAad::from(full_aad),
            &mut buf,
        )
        .map_err(|_| CryptoError::Open(String::new()))?
        .len();
    buf.truncate(len);
    Ok(SecretBytes::new(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::new(vec![(1, new_data_key().unwrap())], &new_data_key().unwrap()).unwrap()
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
        let k = ring();
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
            assert!(matches!(err, CryptoError::Open(_)), "{err}");
        }
        let mut flipped = ct.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(k.open(&aad("wechat", "secret", 1), &flipped).is_err());
        assert!(k.open(&aad("wechat", "secret", 1), &ct[..10]).is_err());
    }

    #[test]
    fn old_terms_open_after_adding_a_term() {
        let k = ring();
        let old = k.seal(&aad("a", "f", 1), b"old").unwrap();
        k.add_term(2, &new_data_key().unwrap()).unwrap();
        let new = k.seal(&aad("a", "f", 1), b"new").unwrap();
        assert_eq!(Keyring::term_of(&old).unwrap(), 1);
        assert_eq!(Keyring::term_of(&new).unwrap(), 2);
        assert_eq!(k.open(&aad("a", "f", 1), &old).unwrap().expose(), b"old");
    }

    #[test]
    fn root_key_file_permissions_and_wrong_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("root.key");
        let root = RootKey::create_file(&p).unwrap();
        assert!(RootKey::create_file(&p).is_err(), "must not overwrite");
        let dk = new_data_key().unwrap();
        let wrapped = root.wrap(&term_label(1), &dk).unwrap();
        let again = RootKey::load_file(&p).unwrap();
        assert_eq!(
            again.unwrap(&term_label(1), &wrapped).unwrap().expose(),
            dk.expose()
        );
        let other = RootKey::create_file(&dir.path().join("other.key")).unwrap();
        assert!(matches!(
            other.unwrap(&term_label(1), &wrapped),
            Err(CryptoError::WrongRootKey)
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = RootKey::load_file(&p).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        let err = RootKey::load_file(&dir.path().join("nope.key"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn backup_seals_open_only_with_the_same_root_and_header() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootKey::create_file(&dir.path().join("root.key")).unwrap();
        let other = RootKey::create_file(&dir.path().join("other.key")).unwrap();
        let sealed = root.seal_backup(b"header", b"database").unwrap();
        assert_eq!(
            root.open_backup(b"header", &sealed).unwrap().expose(),
            b"database"
        );
        assert!(root.open_backup(b"other header", &sealed).is_err());
        assert!(other.open_backup(b"header", &sealed).is_err());
        // The backup key is not the keyring-wrapping key.
        assert!(root.unwrap("header", &sealed).is_err());
    }
}
