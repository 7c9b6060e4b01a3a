//! The keyring in memory, as every service holds it: it seals and opens (through `Deref`), and it
//! learns terms another process (`mediavault keys rotate`) added after this one started.

use std::path::PathBuf;

use crate::crypto::keyring::term_label;
use crate::crypto::{CryptoError, Keyring, RootKey};
use crate::error::{Error, Result};
use crate::store::Store;

pub struct Keys {
    keyring: Keyring,
    store: Store,
    /// Read again when a new term appears (`keys rotate-root` may have replaced it).
    root_key_file: PathBuf,
    /// Held while the keyring is read again from the store (see [`Keys::know_term_of`]).
    refresh: tokio::sync::Mutex<()>,
    /// Sealed mode: the root key rebuilt at unseal (there is no file to read again).
    held_root: Option<RootKey>,
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
            held_root: None,
        }
    }

    /// Keeps the root key in memory (sealed mode), for picking up new terms.
    pub fn holding(mut self, root: Option<RootKey>) -> Self {
        self.held_root = root;
        self
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
        if let Some(root) = &self.held_root {
            let mut added = 0;
            for (term, wrapped) in &unknown {
                let key = root.unwrap(self.keyring.suite(), &term_label(*term), wrapped)?;
                self.keyring.add_term(*term, &key)?;
                tracing::info!(term, "keyring term added by another process picked up");
                added += 1;
            }
            return Ok(added);
        }
        let path = self.root_key_file.clone();
        let mut first_problem = None;
        for candidate in [path.clone(), pending_root_path(&path)] {
            let unwrapped = RootKey::load_file(&candidate).and_then(|root| {
                unknown
                    .iter()
                    .map(|(term, wrapped)| {
                        let key = root.unwrap(self.keyring.suite(), &term_label(*term), wrapped)?;
                        Ok((*term, key))
                    })
                    .collect::<Result<Vec<_>, CryptoError>>()
            });
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

/// Where `keys rotate-root` writes the new root key before the store is re-wrapped under it; it
/// replaces the key file once the change is committed.
pub fn pending_root_path(key_file: &std::path::Path) -> PathBuf {
    PathBuf::from(format!("{}.new", key_file.display()))
}
