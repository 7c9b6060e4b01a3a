//! `mediavault keys`: keyring and root-key rotation, run against the store while the server may be
//! running (SQLite serialises the writes; a running server learns new terms on SIGHUP or when it
//! meets a record sealed under a term it does not know yet). Each change commits together with its
//! audit entry (actor `system`, id `cli:<os user>`), through the same writer the server uses.

use std::path::PathBuf;

use anyhow::Context;

use crate::accounts::Credential;
use crate::actor::Actor;
use crate::audit::AuditWriter;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::RootKey;
use crate::crypto::keyring::{MAC_MASTER_LABEL, new_data_key, term_label};
use crate::identity::users::seed_aad;
use crate::store::keyring::MAC_MASTER_KEY;
use crate::vault::open_store;

/// Adds term n+1. With `rewrap`, every credential version and TOTP seed is re-sealed under it.
pub async fn rotate(config: &Config, rewrap: bool) -> anyhow::Result<()> {
    let (root, store, keys) = open_store(config).await?;
    let clock = Clock::system();
    let audit = AuditWriter::start(store.clone(), keys.mac().audit.clone(), clock.clone());
    let actor = Actor::cli_from_env();
    let term = keys.active_term() + 1;
    let key = new_data_key()?;
    let wrapped = root.wrap(&term_label(term), &key)?;
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
        // Sealed outside, written in one transaction with its entry: all re-sealed, or none.
        let mut creds = Vec::new();
        for (account, version, sealed) in store.credential_all_sealed().await? {
            let cred = Credential::open(&keys, &account, version, &sealed)
                .with_context(|| format!("opening {account} v{version}"))?;
            let resealed = cred.seal(&keys, &account, version)?;
            creds.push((account, version, resealed));
        }
        let mut seeds = Vec::new();
        for user in store.users_list().await? {
            let aad = seed_aad(&user.username);
            let seed = keys.open(&aad, &user.totp_seed)?;
            seeds.push((user.id, keys.seal(&aad, seed.expose())?));
        }
        let n = creds.len() + seeds.len();
        audit
            .commit(
                actor
                    .entry("keys.rewrap", "keyring")
                    .detail("term", term)
                    .detail("secrets", n),
                move |tx| {
                    Box::pin(async move {
                        for (account, version, sealed) in &creds {
                            tx.credential_replace_sealed(account, *version, sealed)
                                .await?;
                        }
                        for (id, sealed) in &seeds {
                            tx.user_replace_seed(*id, sealed).await?;
                        }
                        Ok(())
                    })
                },
            )
            .await?;
        println!("re-sealed {n} secrets under term {term}");
    }
    drop(audit);
    store.close().await;
    Ok(())
}

/// Generates a new root key and re-wraps the keyring under it in one transaction, then replaces
/// the key file. The new key is written first (as `<key>.new`), so a crash leaves a usable key.
pub async fn rotate_root(config: &Config) -> anyhow::Result<()> {
    let path = config.root_key_path();
    // Unlocking proves the old key is right before anything changes.
    let (old, store, keys) = open_store(config).await?;
    let new_path = PathBuf::from(format!("{}.new", path.display()));
    if new_path.exists() {
        anyhow::bail!(
            "{} exists from an interrupted rotation; check which key opens the store, then remove it",
            new_path.display()
        );
    }
    let new = RootKey::create_file(&new_path)?;
    let mut terms = Vec::new();
    for (term, wrapped) in store.keyring_terms().await? {
        let key = old.unwrap(&term_label(term), &wrapped)?;
        terms.push((term, new.wrap(&term_label(term), &key)?));
    }
    let mac_wrapped = store
        .meta_get(MAC_MASTER_KEY)
        .await?
        .context("store has no MAC master")?;
    let mac = old.unwrap(MAC_MASTER_LABEL, &mac_wrapped)?;
    let mac_wrapped = new.wrap(MAC_MASTER_LABEL, &mac)?;
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
