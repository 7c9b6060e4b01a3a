//! `mediavault backup` and `mediavault restore`: an encrypted, consistent online snapshot of the
//! store, and a restore that proves the copy is whole before it finishes.
//!
//! A backup file is two plaintext lines and a sealed body:
//!
//! ```text
//! mediavault-backup v1
//! {"created_at":"…","chain_head":{"seq":…,"hash":"…"},"entries":…,"vault_version":"…","crypto_suite":"…"}
//! <nonce, ciphertext of the SQLite database, tag>
//! ```
//!
//! The body is sealed in the vault's suite (AES-256-GCM, or SM4-GCM for `sm`; a header without
//! `crypto_suite` is from before the SM option, and `standard`) under a key derived from the root
//! key (HKDF label `backup-v1`), with both
//! lines as AAD: the header, which names the audit chain head the copy holds, cannot be changed
//! without the file failing to open. The database inside holds the wrapped keyring but not the
//! root key, so a backup needs the root key file that was current when it was made (keep the two
//! apart: the file alone reveals nothing).
//!
//! Only for the SQLite store: a PostgreSQL store is backed up with PostgreSQL's own tools
//! (`pg_dump`, or continuous archiving with point-in-time recovery), and `mediavault audit verify`
//! proves the chain after a restore; both commands refuse and say so ([`refuse_postgres`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::accounts::Credential;
use crate::actor::Actor;
use crate::audit::{AuditWriter, verify_store};
use crate::clock::Clock;
use crate::config::{Config, StoreLocation};
use crate::content::aad as content_aad;
use crate::crypto::{RootKey, SecretBytes};
use crate::identity::users::seed_aad;
use crate::store::Store;
use crate::vault::open_store;
use mediavault_store_sqlite::SqliteStore;

const MAGIC: &[u8] = b"mediavault-backup v1\n";

/// What the plaintext header of a backup says.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupHeader {
    pub created_at: String,
    pub chain_head: ChainHeadInfo,
    /// Audit entries the copy holds (verified when it was made).
    pub entries: u64,
    pub vault_version: String,
    /// The suite the body is sealed in (the store's).
    #[serde(default)]
    pub crypto_suite: crate::crypto::Suite,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainHeadInfo {
    pub seq: i64,
    pub hash: String,
}

/// A file that is removed when dropped, unless kept: the snapshot and half-written outputs never
/// outlive a failure.
struct Scratch(Vec<PathBuf>);

impl Scratch {
    fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for p in &self.0 {
            for q in std::iter::once(p.clone()).chain(mediavault_store_sqlite::files::sidecars(p)) {
                let _ = std::fs::remove_file(q);
            }
        }
    }
}

/// Writes an encrypted snapshot of the configured store to `out` (mode 0600; an existing file is
/// never overwritten) and records a `backup.create` entry with the chain head it holds. Safe while
/// the server runs.
pub async fn backup(config: &Config, out: &Path) -> anyhow::Result<BackupHeader> {
    refuse_postgres(config, "backup")?;
    if out.exists() {
        bail!(
            "{} already exists; a backup never overwrites a file",
            out.display()
        );
    }
    let (root, store, keys) = open_store(config).await?;
    let result = backup_with(config, &root, &store, &keys, out).await;
    store.close().await;
    result
}

async fn backup_with(
    config: &Config,
    root: &RootKey,
    store: &Store,
    keys: &crate::crypto::Keyring,
    out: &Path,
) -> anyhow::Result<BackupHeader> {
    let clock = Clock::system();
    // The plaintext snapshot lives only inside the private data dir, and only until sealed.
    let snapshot = config
        .data_dir
        .join(format!(".backup-{}.db", std::process::id()));
    let scratch = Scratch(vec![snapshot.clone()]);
    store
        .snapshot_into(&snapshot)
        .await
        .context("taking the snapshot")?;
    let copy = SqliteStore::open_snapshot(&snapshot).await?;
    let report = verify_store(&copy, &keys.mac().audit).await;
    copy.close().await;
    let report = report?;
    if !report.ok {
        bail!(
            "the audit chain does not verify at entry {:?} ({}); run `mediavault audit verify` and resolve that before backing up",
            report.first_bad_seq,
            report.problem.unwrap_or_default()
        );
    }
    let header = BackupHeader {
        created_at: crate::clock::rfc3339(clock.now()),
        chain_head: ChainHeadInfo {
            seq: report.head_seq,
            hash: report.head_hash.clone(),
        },
        entries: report.entries_checked,
        vault_version: env!("CARGO_PKG_VERSION").to_owned(),
        crypto_suite: keys.suite(),
    };
    let db = SecretBytes::new(
        std::fs::read(&snapshot).with_context(|| format!("reading {}", snapshot.display()))?,
    );
    drop(scratch);
    let aad = header_bytes(&header)?;
    let sealed = root.seal_backup(header.crypto_suite, &aad, db.expose())?;
    let tmp = PathBuf::from(format!("{}.partial", out.display()));
    let partial = Scratch(vec![tmp.clone()]);
    write_private(&tmp, &[&aad, &sealed])?;
    let digest = crate::crypto::sha256_hex(&[aad.as_slice(), sealed.as_slice()].concat());
    // Recorded before the file is in place: a backup that was not recorded was not made.
    let audit = AuditWriter::start(store.clone(), keys.mac().audit.clone(), clock);
    audit
        .record(
            Actor::cli_from_env()
                .entry("backup.create", &out.display().to_string())
                .detail("chain_head_seq", header.chain_head.seq)
                .detail("chain_head_hash", header.chain_head.hash.clone())
                .detail("entries", header.entries)
                .detail("sha256", digest)
                .detail("bytes", aad.len() + sealed.len()),
        )
        .await
        .context("the backup.create audit entry cannot be written; no backup was made")?;
    drop(audit);
    std::fs::rename(&tmp, out)
        .with_context(|| format!("moving {} to {}", tmp.display(), out.display()))?;
    partial.keep();
    Ok(header)
}

/// `backup` and `restore` move a SQLite file; on PostgreSQL the database's own tools do it better
/// (a dump is consistent without stopping the vault, and PITR restores to any moment), so both
/// refuse with what to use instead.
fn refuse_postgres(config: &Config, command: &str) -> anyhow::Result<()> {
    if let StoreLocation::Postgres(url) = config.store_location() {
        bail!(
            "`mediavault {command}` is for the SQLite store; this vault's store is the PostgreSQL \
             database {}. Back it up with `pg_dump --format=custom` (consistent while the vault \
             runs) or continuous archiving with point-in-time recovery, keep the root key file \
             apart from it, and after restoring run `mediavault audit verify` before serving \
             (docs/deployment.md, \"Backups\")",
            url.redacted()
        );
    }
    Ok(())
}

fn header_bytes(header: &BackupHeader) -> anyhow::Result<Vec<u8>> {
    let mut aad = MAGIC.to_vec();
    aad.extend_from_slice(&serde_json::to_vec(header)?);
    aad.push(b'\n');
    Ok(aad)
}

/// Creates `path` with mode 0600 (refusing an existing file) and writes `parts`, synced.
fn write_private(path: &Path, parts: &[&[u8]]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    for p in parts {
        f.write_all(p)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    f.sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Splits a backup file into its header (as authenticated) and sealed body. `#[doc(hidden)] pub`
/// only so that the `fuzz/` package can feed it bytes; [`restore`] is its one product caller.
#[doc(hidden)]
pub fn parse(bytes: &[u8]) -> anyhow::Result<(BackupHeader, &[u8], &[u8])> {
    let not_backup = || anyhow::anyhow!("not a mediavault backup file (v1)");
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(not_backup)?;
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(not_backup)?;
    let header: BackupHeader = serde_json::from_slice(&rest[..end]).map_err(|_| not_backup())?;
    let split = MAGIC.len() + end + 1;
    Ok((header, &bytes[..split], &bytes[split..]))
}

/// What a restore found and proved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub header: BackupHeader,
    pub credentials: usize,
    pub seeds: usize,
    pub contents: usize,
}

/// Restores `file` into `dir`, which must be empty or absent: writes the database and a copy of
/// the root key (`dir/root.key`; in sealed mode, of `seal.json`, the shares coming on stdin), then proves the copy whole (the keyring unwraps, the audit
/// chain verifies up to the head named in the header, every credential version, TOTP seed and
/// checkout post opens) and records `backup.restore` in it. On any failure nothing is left in
/// `dir`. `root_key` defaults to the configured root key file.
pub async fn restore(
    config: &Config,
    file: &Path,
    dir: &Path,
    root_key: Option<&Path>,
    seal_file: Option<&Path>,
) -> anyhow::Result<Restored> {
    refuse_postgres(config, "restore")?;
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty; restore only into an empty or new directory",
                dir.display()
            );
        }
    }
    // Sealed mode (and no key file named): a quorum of custodians' shares on standard input
    // opens the backup, and the restored vault is sealed-mode too, under the same split (a rekey
    // keeps the root key, so the shares in force now open backups made before it).
    // After a root-key rotation, a backup made before it needs the split it replaced
    // (`seal_file`, kept as `seal.retired-*.json`) and a quorum of that split's shares.
    let custodians =
        seal_file.is_some() || (root_key.is_none() && crate::vault::seal::is_sealed_mode(config));
    let (root, custody) = if custodians {
        let seal = seal_file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| crate::vault::seal::seal_path(config));
        let seal_text =
            std::fs::read(&seal).with_context(|| format!("reading {}", seal.display()))?;
        (
            crate::vault::seal::root_from_stdin_with(&seal)?,
            SecretBytes::new(seal_text),
        )
    } else {
        let key_path = root_key
            .map(Path::to_path_buf)
            .unwrap_or_else(|| config.root_key_path());
        let root = RootKey::load_file(&key_path)?;
        let key_text = SecretBytes::new(
            std::fs::read(&key_path).with_context(|| format!("reading {}", key_path.display()))?,
        );
        (root, key_text)
    };
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (header, aad, sealed) = parse(&bytes)?;
    let db = root.open_backup(header.crypto_suite, aad, sealed)?;

    let created_dir = !dir.exists();
    if created_dir {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut restored = config.clone();
    restored.data_dir = dir.to_path_buf();
    restored.root_key_file = None;
    let custody_path = if custodians {
        crate::vault::seal::seal_path(&restored)
    } else {
        restored.root_key_path()
    };
    let scratch = Scratch(vec![restored.database_path(), custody_path.clone()]);
    let outcome = async {
        write_private(&custody_path, &[custody.expose()])?;
        write_private(&restored.database_path(), &[db.expose()])?;
        drop(db);
        prove(&restored, &root, &header, file).await
    }
    .await;
    match outcome {
        Ok(r) => {
            scratch.keep();
            Ok(r)
        }
        Err(e) => {
            drop(scratch);
            if created_dir {
                let _ = std::fs::remove_dir(dir);
            }
            Err(e.context(format!("restore failed; {} was left empty", dir.display())))
        }
    }
}

/// Opens the restored store and checks everything a server will need of it.
async fn prove(
    config: &Config,
    root: &RootKey,
    header: &BackupHeader,
    file: &Path,
) -> anyhow::Result<Restored> {
    let (store, keys) = crate::vault::open_store_with(config, root).await?;
    let result = async {
        let report = verify_store(&store, &keys.mac().audit).await?;
        if !report.ok {
            bail!(
                "the audit chain does not verify at entry {:?}: {}",
                report.first_bad_seq,
                report.problem.unwrap_or_default()
            );
        }
        let head = ChainHeadInfo {
            seq: report.head_seq,
            hash: report.head_hash,
        };
        if head != header.chain_head {
            bail!(
                "the restored chain ends at entry {} but the backup header names entry {}",
                head.seq,
                header.chain_head.seq
            );
        }
        let records = store.sealed_records().await?;
        for (account, version, sealed) in &records.credentials {
            Credential::open(&keys, account, *version, sealed)
                .with_context(|| format!("credential {account} v{version} does not open"))?;
        }
        for (username, sealed) in &records.seeds {
            keys.open(&seed_aad(username), sealed)
                .with_context(|| format!("the TOTP seed of {username} does not open"))?;
        }
        for (checkout, sealed) in &records.contents {
            keys.open(&content_aad(checkout), sealed)
                .with_context(|| format!("the post of checkout {checkout} does not open"))?;
        }
        let restored = Restored {
            header: header.clone(),
            credentials: records.credentials.len(),
            seeds: records.seeds.len(),
            contents: records.contents.len(),
        };
        let audit = AuditWriter::start(store.clone(), keys.mac().audit.clone(), Clock::system());
        audit
            .record(
                Actor::cli_from_env()
                    .entry("backup.restore", &file.display().to_string())
                    .detail("chain_head_seq", header.chain_head.seq)
                    .detail("chain_head_hash", header.chain_head.hash.clone())
                    .detail("backup_created_at", header.created_at.clone())
                    .detail(
                        "secrets_opened",
                        restored.credentials + restored.seeds + restored.contents,
                    ),
            )
            .await
            .context("the backup.restore audit entry cannot be written")?;
        drop(audit);
        Ok(restored)
    }
    .await;
    store.close().await;
    result
}

#[cfg(test)]
mod tests {
    /// The properties of the `backup_header` fuzz target (README, "Fuzzing"), on stable.
    mod props {
        use proptest::prelude::*;

        use super::super::*;

        fn header() -> impl Strategy<Value = BackupHeader> {
            (
                "\\PC{0,30}",
                any::<i64>(),
                "[0-9a-f]{0,64}|\\PC{0,8}",
                any::<u64>(),
                "\\PC{0,8}",
            )
                .prop_map(|(created_at, seq, hash, entries, vault_version)| {
                    BackupHeader {
                        created_at,
                        chain_head: ChainHeadInfo { seq, hash },
                        entries,
                        vault_version,
                        crypto_suite: crate::crypto::Suite::Standard,
                    }
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn written_files_parse_and_open(h in header(), body in prop::collection::vec(any::<u8>(), 0..64)) {
                let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
                let root = RootKey::create_file(&dir.path().join("root.key")).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let aad = header_bytes(&h).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let sealed = root.seal_backup(h.crypto_suite, &aad, &body).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let file = [aad.as_slice(), sealed.as_slice()].concat();
                let (back, aad2, sealed2) = parse(&file).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(serde_json::to_vec(&back).ok(), serde_json::to_vec(&h).ok());
                prop_assert_eq!(aad2, aad.as_slice());
                let opened = root.open_backup(back.crypto_suite, aad2, sealed2).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(opened.expose(), body.as_slice());
                // One flipped byte anywhere: refused, or it no longer opens.
                for i in [0, aad.len() / 2, aad.len(), file.len() - 1] {
                    let mut bad = file.clone();
                    bad[i] ^= 0x20;
                    if let Ok((_, a, s)) = parse(&bad) {
                        prop_assert!(root.open_backup(h.crypto_suite, a, s).is_err());
                    }
                }
            }

            #[test]
            fn any_bytes_split_or_are_refused(
                head in prop_oneof![Just(MAGIC.to_vec()), prop::collection::vec(any::<u8>(), 0..24)],
                line in "\\PC{0,80}|\\{\"created_at\":\"x\",\"chain_head\":\\{\"seq\":1,\"hash\":\"h\"\\},\"entries\":1,\"vault_version\":\"0\"\\}",
                rest in prop::collection::vec(any::<u8>(), 0..40),
            ) {
                let file = [head.as_slice(), line.as_bytes(), b"\n", rest.as_slice()].concat();
                match parse(&file) {
                    Ok((_, aad, sealed)) => {
                        prop_assert_eq!([aad, sealed].concat(), file.clone());
                        prop_assert!(aad.starts_with(MAGIC) && aad.ends_with(b"\n"));
                    }
                    Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
                }
            }
        }
    }
}
