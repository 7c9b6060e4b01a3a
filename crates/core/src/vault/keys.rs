//! `mediavault keys`: keyring and root-key rotation, run against the store while the server may be
//! running (SQLite serialises the writes; a running server learns new terms on SIGHUP or when it
//! meets a record sealed under a term it does not know yet, see `Vault::know_term_of`). Each change commits together with its
//! audit entry (actor `system`, id `cli:<os user>`), through the same writer the server uses.

use std::sync::Arc;

use anyhow::Context;

use crate::accounts::Credential;
use crate::actor::Actor;
use crate::audit::AuditWriter;
use crate::clock::Clock;
use crate::config::Config;
use crate::content::aad as content_aad;
use crate::crypto::keyring::term_label;
use crate::crypto::{Keyring, RootKey};
use crate::identity::users::seed_aad;
use crate::vault::open_store;

/// Adds term n+1. With `rewrap`, every credential version and TOTP seed is re-sealed under it.
pub async fn rotate(config: &Config, rewrap: bool) -> anyhow::Result<()> {
    let (root, store, keys) = open_store(config).await?;
    let clock = Clock::system();
    let audit = AuditWriter::start(store.clone(), keys.mac().audit.clone(), clock.clone());
    let actor = Actor::cli_from_env();
    let term = keys.active_term() + 1;
    let key = keys.suite().new_data_key()?;
    let wrapped = root.wrap(keys.suite(), &term_label(term), &key)?;
    let now = clock.unix();
    audit
        .commit(
            actor.entry("keys.rotate", "keyring").detail("term", term),
            move |tx| {
                Box::pin(async move {
                    tx.keyring_add(term, &wrapped, now).await?;
                    Ok(())
                })
            },
        )
        .await?;
    keys.add_term(term, &key)?;
    println!("keyring term {term} added; new secrets are sealed under it");
    if rewrap {
        let counts = rewrap_all(&audit, &actor, Arc::new(keys), term).await?;
        println!(
            "re-sealed {} secrets under term {term} ({} credential versions, {} TOTP seeds, {} checkout posts)",
            counts.total(),
            counts.credentials,
            counts.seeds,
            counts.contents
        );
    }
    drop(audit);
    store.close().await;
    Ok(())
}

/// What a rewrap re-sealed.
#[derive(Debug, Default, Clone, Copy)]
struct Rewrapped {
    credentials: usize,
    seeds: usize,
    contents: usize,
}

impl Rewrapped {
    fn total(&self) -> usize {
        self.credentials + self.seeds + self.contents
    }
}

/// Re-seals every sealed record (credential versions, TOTP seeds, checkout posts) under the
/// active term, in one transaction with its `keys.rewrap` entry: all or none. The records are
/// read inside that transaction (it holds the write lock), so what a running server wrote a
/// moment before is re-sealed as it is now and nothing it writes meanwhile is lost. A running
/// server that meets the new term reads the keyring again (`Vault::know_term_of`).
async fn rewrap_all(
    audit: &AuditWriter,
    actor: &Actor,
    keys: Arc<Keyring>,
    term: u32,
) -> anyhow::Result<Rewrapped> {
    let counts = audit
        .commit(
            actor.entry("keys.rewrap", "keyring").detail("term", term),
            move |tx| {
                Box::pin(async move {
                    let mut n = Rewrapped::default();
                    for (account, version, sealed) in tx.sealed_credentials().await? {
                        let cred = Credential::open(&keys, &account, version, &sealed)?;
                        let resealed = cred.seal(&keys, &account, version)?;
                        tx.credential_replace_sealed(&account, version, &resealed)
                            .await?;
                        n.credentials += 1;
                    }
                    for (id, username, sealed) in tx.sealed_seeds().await? {
                        let aad = seed_aad(&username);
                        let seed = keys.open(&aad, &sealed)?;
                        tx.user_replace_seed(id, &keys.seal(&aad, seed.expose())?)
                            .await?;
                        n.seeds += 1;
                    }
                    for (checkout, sealed) in tx.sealed_contents().await? {
                        let aad = content_aad(&checkout);
                        let post = keys.open(&aad, &sealed)?;
                        tx.checkout_content_replace_sealed(
                            &checkout,
                            &keys.seal(&aad, post.expose())?,
                        )
                        .await?;
                        n.contents += 1;
                    }
                    tx.note("credentials", n.credentials);
                    tx.note("seeds", n.seeds);
                    tx.note("contents", n.contents);
                    tx.note("secrets", n.total());
                    Ok(n)
                })
            },
        )
        .await
        .context("re-sealing the stored secrets (nothing was changed)")?;
    Ok(counts)
}

/// Sealed mode: `keys rotate-root` is a rekey with a new root key. A quorum of the current
/// custodians (standard input) lets a new key be made and split (`split`: by default the
/// custodians, age keys and threshold in force); the new shares are returned to show once, and
/// nothing else changes until every new holder has verified theirs with `rekey verify`, which
/// re-wraps the keyring under the new key and puts the new split in force (see
/// `seal::rekey_verify`).
pub async fn rotate_root_sealed(
    config: &Config,
    split: &crate::vault::seal::Split,
) -> anyhow::Result<Vec<crate::vault::seal::DealtShare>> {
    use crate::vault::seal;
    seal::rekey_start(config, split, seal::RootKeyChange::New).await
}

/// Generates a new root key and re-wraps the keyring under it in one transaction, then replaces
/// the key file. The new key is written first (as `<key>.new`), so a crash leaves a usable key.
pub async fn rotate_root(config: &Config) -> anyhow::Result<()> {
    if crate::vault::seal::is_sealed_mode(config) {
        anyhow::bail!(
            "this vault is sealed-mode: its root key is rotated with the custodians (`keys rotate-root` deals new shares, `rekey verify` switches)"
        );
    }
    let path = config.root_key_path();
    // Unlocking proves the old key is right before anything changes.
    let (old, store, keys) = open_store(config).await?;
    let new_path = crate::keys::pending_root_path(&path);
    if new_path.exists() {
        anyhow::bail!(
            "{} exists from an interrupted rotation; check which key opens the store, then remove it",
            new_path.display()
        );
    }
    let new = RootKey::create_file(&new_path)?;
    let (terms, mac_wrapped) = crate::vault::rewrapped_keyring(&store, &old, &new).await?;
    let audit = AuditWriter::start(store.clone(), keys.mac().audit.clone(), Clock::system());
    let n = terms.len();
    audit
        .commit(
            Actor::cli_from_env()
                .entry("keys.rotate_root", "keyring")
                .detail("terms", n),
            move |tx| {
                Box::pin(async move {
                    tx.keyring_rewrap(&terms, &mac_wrapped).await?;
                    Ok(())
                })
            },
        )
        .await?;
    drop(audit);
    store.close().await;
    std::fs::rename(&new_path, &path).with_context(|| {
        format!(
            "the store now needs the key in {}; move it to {}",
            new_path.display(),
            path.display()
        )
    })?;
    println!(
        "root key rotated: {} now holds the new key; the old key no longer opens the store",
        path.display()
    );
    Ok(())
}
