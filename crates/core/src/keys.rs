//! The keyring in memory, as every service holds it: it seals and opens (through `Deref`), and it
//! learns terms another process (`mediavault keys rotate`) added after this one started.
//!
//! In sealed mode there is no key file to read again after a root-key rotation, so an unsealed
//! server listens for the new key instead ([`Keys::listen_for_root`]): it makes an X25519 key in
//! memory only and publishes its public half as `<data_dir>/seal.handover.recipient`; the
//! rotation (`rekey verify`) encrypts the new root key to it (age) in
//! `<data_dir>/seal.handover.json` before the store is re-wrapped; the server opens it the first
//! time it meets a keyring term its old key cannot unwrap. The private half never leaves the
//! process and opens one file, so a handover left on disk opens for nobody once that server has
//! stopped, and an old root key (or old shares) never leads to the new one.
//!
//! The published recipient carries a MAC under a key derived from the root key the server
//! holds, and the rotation checks it with the root key in force before it encrypts anything to
//! it: someone who can write the data dir but holds no shares cannot put their own key there and
//! be handed the new root key.

use std::path::{Path, PathBuf};

use crate::crypto::age::{self, OneTimeIdentity, Recipient};
use crate::crypto::keyring::term_label;
use crate::crypto::{CryptoError, Keyring, RootKey, SecretBytes, Suite};
use crate::error::{Error, Result};
use crate::store::Store;

/// The public half of a running sealed-mode server's one-time key.
fn handover_recipient_path(data_dir: &Path) -> PathBuf {
    data_dir.join("seal.handover.recipient")
}

/// HKDF label of the key that vouches for the published recipient.
const RECIPIENT_MAC_LABEL: &[u8] = b"handover-recipient-v1";

fn recipient_mac(root: &RootKey, suite: Suite, recipient: &str) -> Result<[u8; 32], CryptoError> {
    Ok(root
        .derive_mac(suite, RECIPIENT_MAC_LABEL)?
        .parts(&[b"mediavault handover recipient", recipient.as_bytes()]))
}

/// A rotated root key, encrypted to that server.
fn handover_path(data_dir: &Path) -> PathBuf {
    data_dir.join("seal.handover.json")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Handover {
    /// Whom it is encrypted to: a server ignores a handover made for another process.
    recipient: String,
    /// The new root key's 32 bytes, as an armored age file.
    age: String,
}

/// Writes `bytes` to `path` with mode 0600, replacing it whole (a temporary file renamed).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// For a sealed-mode root-key rotation: encrypts the new root key to the running server of this
/// data dir, if one listens and the root key in force (`current`) vouches for its recipient.
/// Returns whether it did (the server need not be running: a stale recipient is one nobody can
/// decrypt for any more, which is harmless). A recipient the key does not vouch for is refused
/// and not written to: the running server then needs a restart and unseal with the new shares.
pub(crate) fn offer_root(
    data_dir: &Path,
    current: &RootKey,
    suite: Suite,
    new_root: &SecretBytes,
) -> anyhow::Result<bool> {
    let path = handover_recipient_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let mut lines = text.lines();
    let (Some(recipient_text), Some(mac)) = (lines.next(), lines.next()) else {
        anyhow::bail!(
            "{} is not a running server's recipient (no MAC), so the new root key is not handed to it and nothing changed: remove the file and run `rekey verify` again, then restart and unseal the server with the new shares",
            path.display()
        );
    };
    let vouched = hex::decode(mac.trim()).is_ok_and(|mac| {
        recipient_mac(current, suite, recipient_text.trim())
            .is_ok_and(|want| crate::crypto::ct_eq(&want, &mac))
    });
    if !vouched {
        anyhow::bail!(
            "{} is not vouched for by the root key in force (written by someone who holds no shares?), so the new root key is not handed to it and nothing changed: remove the file and run `rekey verify` again, then restart and unseal the server with the new shares",
            path.display()
        );
    }
    let recipient = Recipient::parse(recipient_text)?;
    let handover = Handover {
        recipient: recipient.to_string(),
        age: age::encrypt_armored(&recipient, new_root.expose())?,
    };
    write_private(&handover_path(data_dir), &serde_json::to_vec(&handover)?)?;
    Ok(true)
}

/// Forgets the one-time key of a server that ran before (a sealed start): nothing listens for it.
pub(crate) fn forget_listener(data_dir: &Path) {
    let _ = std::fs::remove_file(handover_recipient_path(data_dir));
    withdraw_root_offer(data_dir);
}

/// Removes a handover whose rotation did not commit.
pub(crate) fn withdraw_root_offer(data_dir: &Path) {
    let _ = std::fs::remove_file(handover_path(data_dir));
}

/// A sealed-mode server's way to receive a rotated root key (see the module doc).
struct Listener {
    data_dir: PathBuf,
    identity: Option<OneTimeIdentity>,
}

impl Listener {
    /// A fresh one-time key, its public half published with a MAC under `root` (the key this
    /// server holds), so that only a holder of that key can be taken for this server (a
    /// handover to an older one is stale).
    fn renew(&mut self, root: &RootKey, suite: Suite) -> std::io::Result<()> {
        let id = OneTimeIdentity::generate().map_err(std::io::Error::other)?;
        let recipient = id.recipient().to_string();
        let mac = recipient_mac(root, suite, &recipient).map_err(std::io::Error::other)?;
        withdraw_root_offer(&self.data_dir);
        write_private(
            &handover_recipient_path(&self.data_dir),
            format!("{recipient}\n{}\n", hex::encode(mac)).as_bytes(),
        )?;
        self.identity = Some(id);
        Ok(())
    }

    /// The root key handed to this process, if there is one for it.
    fn take(&mut self, suite: Suite) -> Option<RootKey> {
        let path = handover_path(&self.data_dir);
        let text = std::fs::read(&path).ok()?;
        let mine = self.identity.as_ref()?.recipient().to_string();
        let handover: Handover = match serde_json::from_slice(&text) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "root key handover unreadable; ignored");
                return None;
            }
        };
        if handover.recipient != mine {
            tracing::warn!(file = %path.display(), "a root key handover for another server process; ignored");
            return None;
        }
        let identity = self.identity.take()?;
        let opened = age::dearmor(&handover.age)
            .and_then(|file| identity.decrypt(&file))
            .map_err(CryptoError::from)
            .and_then(|raw| RootKey::from_secret(&raw));
        // The one-time key is spent either way; the next one is published under the new key
        // (a handover that does not open leaves nothing to vouch with: restart and unseal).
        match opened {
            Ok(root) => {
                if let Err(e) = self.renew(&root, suite) {
                    tracing::error!(error = %e, "cannot publish this server's next one-time key: a later root-key rotation will need a restart and unseal");
                }
                Some(root)
            }
            Err(e) => {
                let _ = std::fs::remove_file(handover_recipient_path(&self.data_dir));
                tracing::error!(error = %e, "the root key handed to this server does not open");
                None
            }
        }
    }
}

pub struct Keys {
    keyring: Keyring,
    store: Store,
    /// Read again when a new term appears (`keys rotate-root` may have replaced it).
    root_key_file: PathBuf,
    /// Held while the keyring is read again from the store (see [`Keys::know_term_of`]).
    refresh: tokio::sync::Mutex<()>,
    /// Sealed mode: the root key rebuilt at unseal (there is no file to read again), replaced
    /// when a root-key rotation hands this server the new one.
    held_root: std::sync::RwLock<Option<RootKey>>,
    /// Sealed mode, serving: where a rotated root key is received (see the module doc).
    listener: std::sync::Mutex<Option<Listener>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

impl std::ops::Deref for Keys {
    type Target = Keyring;

    fn deref(&self) -> &Keyring {
        &self.keyring
    }
}

impl Keys {
    pub fn new(keyring: Keyring, store: Store, root_key_file: PathBuf) -> Self {
        Self {
            keyring,
            store,
            root_key_file,
            refresh: tokio::sync::Mutex::new(()),
            held_root: std::sync::RwLock::new(None),
            listener: std::sync::Mutex::new(None),
        }
    }

    /// Keeps the root key in memory (sealed mode), for picking up new terms.
    pub fn holding(self, root: Option<RootKey>) -> Self {
        if let Ok(mut held) = self.held_root.write() {
            *held = root;
        }
        self
    }

    /// Sealed mode, for a serving process: publishes a one-time key to which a root-key rotation
    /// run beside it encrypts the new root key (see the module doc). Without it, such a rotation
    /// leaves this process unable to unwrap keyring terms added after it until a restart.
    pub fn listen_for_root(&self, data_dir: &Path) -> std::io::Result<()> {
        let mut listener = Listener {
            data_dir: data_dir.to_path_buf(),
            identity: None,
        };
        let held = self
            .held_root
            .read()
            .map_err(|_| std::io::Error::other("the held root key's lock is poisoned"))?;
        let Some(root) = held.as_ref() else {
            // A key-file vault re-reads its file after a rotation; nothing to listen for.
            return Ok(());
        };
        listener.renew(root, self.keyring.suite())?;
        drop(held);
        if let Ok(mut slot) = self.listener.lock() {
            *slot = Some(listener);
        }
        Ok(())
    }

    /// The root key handed to this process by a sealed-mode root-key rotation, if any.
    fn take_handover(&self) -> Option<RootKey> {
        self.listener
            .lock()
            .ok()
            .and_then(|mut l| l.as_mut().and_then(|l| l.take(self.keyring.suite())))
    }

    /// Makes sure the keyring knows the term `sealed` was sealed under, before it is opened.
    ///
    /// Another process (`mediavault keys rotate`, with or without `--rewrap`) may have added a
    /// term after this server started and re-sealed records under it. Meeting such a record, the
    /// server reads the keyring from the store again and retries, so rotation is safe at any
    /// time. Concurrent requests meeting the same new term read the store once.
    pub async fn know_term_of(&self, sealed: &[u8]) -> Result<()> {
        // A malformed ciphertext is reported by `open`, with its place.
        let Ok(term) = Keyring::term_of(sealed) else {
            return Ok(());
        };
        if self.keyring.has_term(term) {
            return Ok(());
        }
        let _one_at_a_time = self.refresh.lock().await;
        if self.keyring.has_term(term) {
            return Ok(());
        }
        self.refresh_keyring().await?;
        if self.keyring.has_term(term) {
            Ok(())
        } else {
            Err(CryptoError::UnknownTerm(term).into())
        }
    }

    /// Picks up keyring terms added by another process (`mediavault keys rotate`): reads the
    /// wrapped terms from the store and unwraps the new ones with the root key file, read again
    /// because `keys rotate-root` may have replaced it since the start. While a root rotation is
    /// between its commit and the rename of its key file, the store opens only with
    /// `<key>.new`, which is tried second. Returns how many terms were added.
    pub async fn refresh_keyring(&self) -> Result<usize> {
        let unknown: Vec<(u32, Vec<u8>)> = self
            .store
            .keyring_terms()
            .await?
            .into_iter()
            .filter(|(term, _)| !self.keyring.has_term(*term))
            .collect();
        if unknown.is_empty() {
            return Ok(0);
        }
        let suite = self.keyring.suite();
        // Sealed mode: the root key held since unseal, or the one a rotation handed over.
        let with_held = {
            let held = self.held_root.read().map_err(|_| {
                Error::internal(anyhow::anyhow!("the held root key's lock is poisoned"))
            })?;
            held.as_ref()
                .map(|root| unwrap_terms(suite, root, &unknown))
        };
        if let Some(unwrapped) = with_held {
            let unwrapped = match unwrapped {
                Ok(keys) => keys,
                Err(first) => match self.take_handover() {
                    Some(new_root) => {
                        let keys = unwrap_terms(suite, &new_root, &unknown)?;
                        tracing::info!(
                            "the root key was rotated: this server now holds the new one"
                        );
                        if let Ok(mut held) = self.held_root.write() {
                            *held = Some(new_root);
                        }
                        keys
                    }
                    None => {
                        tracing::error!(
                            "the store has keyring terms that the root key this server was \
                             unsealed with cannot unwrap, and no rotated key was handed to it: \
                             restart it and unseal it with the shares now in force. Records \
                             sealed under the old terms still open."
                        );
                        return Err(first.into());
                    }
                },
            };
            for (term, key) in &unwrapped {
                self.keyring.add_term(*term, key)?;
                tracing::info!(term, "keyring term added by another process picked up");
            }
            return Ok(unwrapped.len());
        }
        let path = self.root_key_file.clone();
        let mut first_problem = None;
        for candidate in [path.clone(), pending_root_path(&path)] {
            let unwrapped = RootKey::load_file(&candidate)
                .and_then(|root| unwrap_terms(suite, &root, &unknown));
            match unwrapped {
                Ok(terms) => {
                    for (term, key) in &terms {
                        self.keyring.add_term(*term, key)?;
                        tracing::info!(term, "keyring term added by another process picked up");
                    }
                    return Ok(terms.len());
                }
                Err(e) => {
                    first_problem.get_or_insert(e);
                }
            }
        }
        let terms: Vec<u32> = unknown.iter().map(|(t, _)| *t).collect();
        let cause = first_problem.map(|e| e.to_string()).unwrap_or_default();
        tracing::error!(
            ?terms,
            key_file = %path.display(),
            error = %cause,
            "the store has keyring terms this server cannot unwrap: the root key file no longer \
             matches the store. If `mediavault keys rotate-root` ran, put the key it wrote in \
             place of this file (it keeps the old one nowhere); otherwise restore the key file \
             that belongs to this store. Records sealed under the old terms still open."
        );
        Err(Error::internal(anyhow::anyhow!(
            "keyring terms {terms:?} cannot be unwrapped with {}: {cause}",
            path.display()
        )))
    }
}

/// Unwraps every one of `unknown` with `root` in `suite`, or fails on the first it cannot.
fn unwrap_terms(
    suite: Suite,
    root: &RootKey,
    unknown: &[(u32, Vec<u8>)],
) -> std::result::Result<Vec<(u32, SecretBytes)>, CryptoError> {
    unknown
        .iter()
        .map(|(term, wrapped)| Ok((*term, root.unwrap(suite, &term_label(*term), wrapped)?)))
        .collect()
}

/// Where `keys rotate-root` writes the new root key before the store is re-wrapped under it; it
/// replaces the key file once the change is committed.
pub fn pending_root_path(key_file: &std::path::Path) -> PathBuf {
    PathBuf::from(format!("{}.new", key_file.display()))
}
