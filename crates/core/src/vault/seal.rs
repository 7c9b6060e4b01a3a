//! Sealed mode: the root key is split among named custodians (`init --key-shares N
//! --key-threshold T`) and kept nowhere; the server starts sealed and opens the store once T
//! custodians have submitted their shares.
//!
//! What is on disk, `<data_dir>/seal.json` (mode 0600, but not secret): the threshold, each
//! custodian's name, share index and SHA-256 check value of the share, and a check value of the
//! root key. A share that does not match its custodian's check value is refused at submission
//! and named; a set that rebuilds anything but the recorded root key fails closed (and the
//! keyring's AEAD tags would refuse it after that).
//!
//! Submissions are held only in this process's memory (zeroized when dropped), expire
//! [`SUBMISSION_TTL_SECONDS`] after the first one, and can be reset. The audit chain's key is in
//! the keyring the shares unlock, so nothing can be chained while sealed: every submission since
//! the process started (accepted or refused, of expired and reset attempts too: who, when, from
//! where, never the share) is held in memory and recorded in the chain the moment the vault
//! opens, before the first request is served. Submissions to a process that stops while still
//! sealed reach only the process log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::audit::{NewEntry, Outcome};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::shares::{self, KeyShare};
use crate::crypto::{RootKey, SecretBytes, SecretString, ct_eq};
use crate::error::{Conflict, Error, Result};
use crate::vault::{OpenError, Vault};

/// How long submitted shares wait for the rest of the quorum, from the first submission.
pub const SUBMISSION_TTL_SECONDS: i64 = 15 * 60;

/// Where sealed mode keeps its check values; its presence is what makes a vault sealed-mode.
pub fn seal_path(config: &Config) -> PathBuf {
    config.data_dir.join("seal.json")
}

/// Whether this vault's root key is held by custodians (the server starts sealed).
pub fn is_sealed_mode(config: &Config) -> bool {
    seal_path(config).exists()
}

/// How `init` splits the root key.
#[derive(Debug, Clone)]
pub struct Split {
    pub threshold: u8,
    /// The custodians, one share each, in order.
    pub custodians: Vec<String>,
}

impl Split {
    /// Checks the numbers and names an operator typed: 2 ≤ T ≤ N ≤ 255, names unique and valid
    /// usernames (they may, but need not, be people in the vault).
    pub fn new(shares: u8, threshold: u8, custodians: Vec<String>) -> Result<Self, String> {
        let custodians = if custodians.is_empty() {
            (1..=shares).map(|i| format!("custodian-{i}")).collect()
        } else {
            custodians
        };
        if custodians.len() != usize::from(shares) {
            return Err(format!(
                "--key-shares {shares} but {} --custodian names",
                custodians.len()
            ));
        }
        if threshold < 2 || threshold > shares {
            return Err(
                "--key-threshold must be at least 2 and at most --key-shares (one holder: use the default root key file)"
                    .into(),
            );
        }
        for (i, name) in custodians.iter().enumerate() {
            crate::identity::Username::parse(name)
                .map_err(|e| format!("--custodian {name:?}: {e}"))?;
            if custodians[..i].contains(name) {
                return Err(format!("--custodian {name:?} is named twice"));
            }
        }
        Ok(Self {
            threshold,
            custodians,
        })
    }
}

/// A share as dealt: shown once to its custodian, kept nowhere.
#[derive(Debug)]
pub struct DealtShare {
    pub custodian: String,
    pub share: SecretString,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SealFile {
    format: u32,
    threshold: u8,
    /// The suite the check value is derived in: the vault's (a file from before the SM option
    /// has none, and is `standard`).
    #[serde(default)]
    suite: crate::crypto::Suite,
    /// Hex of `RootKey::check_value`.
    root_check: String,
    custodians: Vec<CustodianEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CustodianEntry {
    name: String,
    index: u8,
    /// Hex of `KeyShare::check_value`.
    check: String,
}

impl SealFile {
    fn load(path: &Path) -> Result<Self, OpenError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| OpenError::Other(format!("seal file {}: {e}", path.display())))?;
        let file: SealFile = serde_json::from_str(&text)
            .map_err(|e| OpenError::Other(format!("seal file {}: {e}", path.display())))?;
        if file.format != 1 {
            return Err(OpenError::Other(format!(
                "seal file {}: unknown format {}",
                path.display(),
                file.format
            )));
        }
        Ok(file)
    }

    /// Writes a new file (mode 0600), refusing to overwrite one.
    fn create(&self, path: &Path) -> Result<(), OpenError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = serde_json::to_vec_pretty(self).map_err(|e| OpenError::Other(e.to_string()))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| OpenError::Other(format!("seal file {}: {e}", path.display())))?;
        f.write_all(&text)
            .and_then(|_| f.sync_all())
            .map_err(|e| OpenError::Other(format!("seal file {}: {e}", path.display())))
    }

    fn custodian(&self, name: &str) -> Option<&CustodianEntry> {
        self.custodians.iter().find(|c| c.name == name)
    }

    /// Whether `share` is `custodian`'s (its index and check value).
    fn share_is(&self, custodian: &CustodianEntry, share: &KeyShare) -> bool {
        let check = hex::decode(&custodian.check).unwrap_or_default();
        custodian.index == share.index() && share.matches(&check)
    }

    /// [`SealFile::rebuild`], keeping the raw key (a rekey splits it again).
    fn rebuild_raw(&self, shares: &[KeyShare]) -> Result<SecretBytes, Error> {
        let raw = shares::combine(self.threshold, shares).map_err(|_| {
            Error::conflict(
                Conflict::UnsealFailed,
                "the shares do not rebuild this vault's root key",
            )
        })?;
        self.rebuild(shares)?;
        Ok(raw)
    }

    /// Rebuilds the root key from shares already matched to their custodians, and proves it
    /// against the recorded check value.
    fn rebuild(&self, shares: &[KeyShare]) -> Result<RootKey, Error> {
        let refused = || {
            Error::conflict(
                Conflict::UnsealFailed,
                "the submitted shares do not rebuild this vault's root key; every submission was discarded: submit again",
            )
        };
        let raw = shares::combine(self.threshold, shares).map_err(|_| refused())?;
        let root = RootKey::from_secret(&raw).map_err(|_| refused())?;
        let want = hex::decode(&self.root_check).unwrap_or_default();
        let check = root.check_value(self.suite).map_err(|_| refused())?;
        if !ct_eq(&check, &want) {
            return Err(refused());
        }
        Ok(root)
    }
}

/// Makes a root key in memory, splits it and writes the check values. For `Vault::create_with`.
pub(crate) fn deal(
    config: &Config,
    split: &Split,
) -> Result<(RootKey, Vec<DealtShare>), OpenError> {
    let raw = SecretBytes::random(32)?;
    let root = RootKey::from_secret(&raw)?;
    let n = u8::try_from(split.custodians.len())
        .map_err(|_| OpenError::Other("at most 255 custodians".into()))?;
    let dealt = shares::split(&raw, split.threshold, n)?;
    let suite = config.crypto.suite.unwrap_or_default();
    let file = SealFile {
        format: 1,
        threshold: split.threshold,
        suite,
        root_check: hex::encode(root.check_value(suite)?),
        custodians: split
            .custodians
            .iter()
            .zip(&dealt)
            .map(|(name, s)| CustodianEntry {
                name: name.clone(),
                index: s.index(),
                check: hex::encode(s.check_value()),
            })
            .collect(),
    };
    file.create(&seal_path(config))?;
    let out = split
        .custodians
        .iter()
        .zip(&dealt)
        .map(|(name, s)| DealtShare {
            custodian: name.clone(),
            share: s.to_text(),
        })
        .collect();
    Ok((root, out))
}

/// The root key from a quorum of `custodian share` lines on standard input, for the offline
/// commands of a sealed-mode vault (backup, restore, keys rotate, audit verify). Each line is
/// checked as a submission to the server is.
pub(crate) fn root_from_stdin(config: &Config) -> Result<RootKey, OpenError> {
    let file = SealFile::load(&seal_path(config))?;
    let (raw, _) = quorum_from_stdin(&file, usize::from(file.threshold))?;
    Ok(RootKey::from_secret(&raw)?)
}

/// Reads `want` distinct custodians' shares of `file` from standard input, refusing any share
/// that is not its custodian's, and rebuilds and proves the root key. Returns its raw bytes and
/// the custodians, in the order they came.
fn quorum_from_stdin(
    file: &SealFile,
    want: usize,
) -> Result<(SecretBytes, Vec<String>), OpenError> {
    use std::io::BufRead;
    let mut held: Vec<KeyShare> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    while held.len() < want {
        let Some(line) = lines.next() else {
            return Err(OpenError::Other(format!(
                "this vault is sealed-mode: give {want} custodians' shares on standard input, one `CUSTODIAN SHARE` a line ({} given)",
                held.len()
            )));
        };
        let line = SecretString::new(line.map_err(|e| OpenError::Other(e.to_string()))?);
        let Some((name, text)) = line.expose().trim().split_once(char::is_whitespace) else {
            continue;
        };
        let custodian = file
            .custodian(name)
            .ok_or_else(|| OpenError::Other(format!("no custodian named {name:?}")))?;
        let share = KeyShare::parse(text)?;
        if !file.share_is(custodian, &share) {
            return Err(OpenError::Other(format!(
                "that is not {name}'s share: it was mistyped or altered"
            )));
        }
        if names.iter().any(|n| n == name) {
            continue;
        }
        names.push(name.to_owned());
        held.push(share);
    }
    let raw = file
        .rebuild_raw(&held)
        .map_err(|e| OpenError::Other(e.to_string()))?;
    Ok((raw, names))
}

/// Where a rekey's new split waits for its holders' verification; the current `seal.json` stays
/// in force (the old shares keep unsealing) until every new holder has given their share back.
pub fn pending_seal_path(config: &Config) -> PathBuf {
    config.data_dir.join("seal.pending.json")
}

/// `mediavault rekey`: a quorum of the current custodians (on standard input) lets the root key
/// be split anew among `split`'s custodians. The new shares are returned (to show once); the new
/// split is written beside the current one and takes over only when [`rekey_verify`] has every
/// new share back. The root key itself, and so the store, do not change. Audited
/// (`unseal.rekey_start`, with who gave the old shares).
pub async fn rekey_start(config: &Config, split: &Split) -> anyhow::Result<Vec<DealtShare>> {
    let file = SealFile::load(&seal_path(config))?;
    let (raw, old) = quorum_from_stdin(&file, usize::from(file.threshold))?;
    let root = RootKey::from_secret(&raw)?;
    let n = u8::try_from(split.custodians.len())
        .map_err(|_| anyhow::anyhow!("at most 255 custodians"))?;
    let dealt = shares::split(&raw, split.threshold, n)?;
    let pending = SealFile {
        format: 1,
        threshold: split.threshold,
        suite: file.suite,
        root_check: file.root_check.clone(),
        custodians: split
            .custodians
            .iter()
            .zip(&dealt)
            .map(|(name, s)| CustodianEntry {
                name: name.clone(),
                index: s.index(),
                check: hex::encode(s.check_value()),
            })
            .collect(),
    };
    let entry = crate::actor::Actor::cli_from_env()
        .entry("unseal.rekey_start", "root-key")
        .detail("by_custodians", old)
        .detail("threshold", split.threshold)
        .detail("custodians", split.custodians.clone());
    record_with(config, &root, entry).await?;
    // A newer rekey replaces an unverified one: its shares were never in force.
    let path = pending_seal_path(config);
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    pending.create(&path)?;
    Ok(split
        .custodians
        .iter()
        .zip(&dealt)
        .map(|(name, s)| DealtShare {
            custodian: name.clone(),
            share: s.to_text(),
        })
        .collect())
}

/// `mediavault rekey verify`: every new holder gives their new share back (standard input, one
/// `CUSTODIAN SHARE` a line). Only if each matches and they rebuild the same root key does the
/// new split replace the old one (the old shares stop working); otherwise nothing changes.
/// Audited (`unseal.rekey`, with the verifying custodians). Returns them.
pub async fn rekey_verify(config: &Config) -> anyhow::Result<Vec<String>> {
    let path = pending_seal_path(config);
    if !path.exists() {
        anyhow::bail!("no rekey is waiting for verification (run `mediavault rekey` first)");
    }
    let pending = SealFile::load(&path)?;
    let (raw, names) = quorum_from_stdin(&pending, pending.custodians.len())?;
    let root = RootKey::from_secret(&raw)?;
    let current = seal_path(config);
    let previous = config.data_dir.join("seal.previous.json");
    std::fs::copy(&current, &previous)?;
    // The switch, then its record; if the record cannot be written the switch is undone.
    std::fs::rename(&path, &current)?;
    let entry = crate::actor::Actor::cli_from_env()
        .entry("unseal.rekey", "root-key")
        .detail("verified_by", names.clone())
        .detail("threshold", pending.threshold);
    if let Err(e) = record_with(config, &root, entry).await {
        std::fs::rename(&previous, &current)?;
        return Err(e.context("the rekey was not recorded, so it was undone"));
    }
    std::fs::remove_file(&previous)?;
    Ok(names)
}

/// Records one entry in the store's audit chain, opening it with `root` (the CLI's way).
async fn record_with(config: &Config, root: &RootKey, entry: NewEntry) -> anyhow::Result<()> {
    let (store, keys) = super::open_store_with(config, root).await?;
    let audit =
        crate::audit::AuditWriter::start(store.clone(), keys.mac().audit.clone(), Clock::system());
    let written = audit.record(entry).await;
    drop(audit);
    store.close().await;
    written?;
    Ok(())
}

/// What an unseal status or submission answers.
#[derive(Debug, Clone, Serialize)]
pub struct UnsealStatus {
    pub sealed: bool,
    pub threshold: u8,
    pub shares: usize,
    /// The custodians whose shares are held now, in the order they came.
    pub submitted: Vec<String>,
    /// When the held shares are discarded (unix seconds), if any are held.
    pub expires_at: Option<i64>,
}

/// Who submitted: the custodian named, and the request's address and id.
#[derive(Debug, Clone)]
pub struct Submitter {
    pub custodian: String,
    pub source_ip: String,
    pub request_id: String,
}

/// A submission, as the audit will record it once the vault opens.
struct Held {
    by: Submitter,
    at: i64,
    outcome: Outcome,
    reason: Option<&'static str>,
}

#[derive(Default)]
struct Pending {
    shares: Vec<(String, KeyShare)>,
    first_at: Option<i64>,
    log: Vec<Held>,
}

/// Called with the opened vault before a submission's answer says so (the server swaps in its
/// full router and starts its background work there).
pub type OnOpen = Box<dyn Fn(Arc<Vault>) -> anyhow::Result<()> + Send + Sync>;

/// The sealed server's one service: takes shares until the quorum opens the vault.
pub struct Unsealer {
    config: Arc<Config>,
    clock: Clock,
    pending: tokio::sync::Mutex<Pending>,
    opened: OnceLock<Arc<Vault>>,
    on_open: OnOpen,
}

impl std::fmt::Debug for Unsealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsealer").finish_non_exhaustive()
    }
}

impl Unsealer {
    /// Fails if the seal file cannot be read (a sealed start stops there).
    pub fn new(config: Arc<Config>, clock: Clock, on_open: OnOpen) -> Result<Self, OpenError> {
        SealFile::load(&seal_path(&config))?;
        Ok(Self {
            config,
            clock,
            pending: tokio::sync::Mutex::new(Pending::default()),
            opened: OnceLock::new(),
            on_open,
        })
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The vault, once unsealed.
    pub fn vault(&self) -> Option<&Arc<Vault>> {
        self.opened.get()
    }

    fn file(&self) -> Result<SealFile> {
        SealFile::load(&seal_path(&self.config)).map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// Drops held shares whose time is up; they are logged, not chained (see the module doc).
    fn expire(&self, p: &mut Pending) {
        if let Some(first) = p.first_at
            && self.clock.unix() >= first + SUBMISSION_TTL_SECONDS
        {
            tracing::warn!(
                custodians = ?p.shares.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                "unseal shares expired before the quorum; discarded"
            );
            p.shares.clear();
            p.first_at = None;
        }
    }

    fn status_of(&self, file: &SealFile, p: &Pending) -> UnsealStatus {
        UnsealStatus {
            sealed: self.opened.get().is_none(),
            threshold: file.threshold,
            shares: file.custodians.len(),
            submitted: p.shares.iter().map(|(n, _)| n.clone()).collect(),
            expires_at: p.first_at.map(|t| t + SUBMISSION_TTL_SECONDS),
        }
    }

    pub async fn status(&self) -> Result<UnsealStatus> {
        let file = self.file()?;
        let mut p = self.pending.lock().await;
        self.expire(&mut p);
        Ok(self.status_of(&file, &p))
    }

    /// Discards every held share (a custodian typed into the wrong attempt, or the quorum will
    /// not come). The submissions stay in the record that the chain gets at unseal.
    pub async fn reset(&self, by: &Submitter) -> Result<UnsealStatus> {
        if self.opened.get().is_some() {
            return Err(Error::conflict(
                Conflict::NotSealed,
                "the vault is not sealed",
            ));
        }
        let file = self.file()?;
        let mut p = self.pending.lock().await;
        tracing::warn!(by = %by.custodian, source = %by.source_ip, held = p.shares.len(), "unseal shares reset");
        p.shares.clear();
        p.first_at = None;
        Ok(self.status_of(&file, &p))
    }

    /// Takes one custodian's share. Refuses a share that is not that custodian's (mistyped or
    /// altered) without keeping it; once `threshold` shares are held, rebuilds the root key,
    /// proves it, opens the store and records every submission in the audit chain.
    pub async fn submit(&self, by: Submitter, share: SecretString) -> Result<UnsealStatus> {
        if self.opened.get().is_some() {
            return Err(Error::conflict(
                Conflict::NotSealed,
                "the vault is already unsealed",
            ));
        }
        let file = self.file()?;
        let mut p = self.pending.lock().await;
        self.expire(&mut p);
        // Checked again under the lock: the quorum may have opened it meanwhile.
        if self.opened.get().is_some() {
            return Err(Error::conflict(
                Conflict::NotSealed,
                "the vault is already unsealed",
            ));
        }
        let now = self.clock.unix();
        let refuse = |p: &mut Pending, reason: &'static str, err: Error| {
            tracing::warn!(custodian = %by.custodian, source = %by.source_ip, reason, "unseal share refused");
            p.log.push(Held {
                by: by.clone(),
                at: now,
                outcome: Outcome::Denied,
                reason: Some(reason),
            });
            Err(err)
        };
        let Some(custodian) = file.custodian(&by.custodian) else {
            return refuse(
                &mut p,
                "unknown_custodian",
                Error::invalid(
                    "custodian",
                    format!("no custodian is named {:?}", by.custodian),
                ),
            );
        };
        let parsed = match KeyShare::parse(share.expose()) {
            Ok(s) => s,
            Err(e) => return refuse(&mut p, "malformed", Error::invalid("share", e.to_string())),
        };
        if !file.share_is(custodian, &parsed) {
            return refuse(
                &mut p,
                "not_the_custodians_share",
                Error::invalid(
                    "share",
                    format!(
                        "this is not {}'s share: it was mistyped or altered; it was not kept",
                        by.custodian
                    ),
                ),
            );
        }
        if p.shares.iter().any(|(n, _)| *n == by.custodian) {
            return Err(Error::conflict(
                Conflict::AlreadyExists,
                format!("{} has already submitted a share", by.custodian),
            ));
        }
        tracing::info!(custodian = %by.custodian, source = %by.source_ip, "unseal share accepted");
        p.shares.push((by.custodian.clone(), parsed));
        p.first_at.get_or_insert(now);
        p.log.push(Held {
            by,
            at: now,
            outcome: Outcome::Success,
            reason: None,
        });
        if p.shares.len() < usize::from(file.threshold) {
            return Ok(self.status_of(&file, &p));
        }
        // The quorum: whatever happens next, these shares are used once.
        let taken = std::mem::take(&mut p.shares);
        p.first_at = None;
        let shares: Vec<KeyShare> = taken.into_iter().map(|(_, s)| s).collect();
        let root = match file.rebuild(&shares) {
            Ok(root) => root,
            Err(e) => {
                tracing::error!("unseal: the quorum's shares do not rebuild the root key");
                return Err(e);
            }
        };
        let vault = Vault::open_with_root(Arc::clone(&self.config), self.clock.clone(), root)
            .await
            .map_err(|e| match e {
                OpenError::Crypto(_) => Error::conflict(
                    Conflict::UnsealFailed,
                    "the rebuilt root key does not open this store's keyring",
                ),
                other => Error::Unavailable(format!("the store cannot be opened: {other}")),
            })?;
        let vault = Arc::new(vault);
        // Every submission of the attempt, and the unseal, enter the chain before anyone is
        // told the vault is open; if they cannot, it stays sealed.
        let log = std::mem::take(&mut p.log);
        let names: Vec<String> = log
            .iter()
            .filter(|h| h.outcome == Outcome::Success)
            .map(|h| h.by.custodian.clone())
            .collect();
        for h in log {
            let mut entry = NewEntry::system("unseal.submit", &h.by.custodian, h.outcome);
            entry.actor_id = format!("custodian:{}", h.by.custodian);
            entry.source_ip = h.by.source_ip;
            entry.request_id = h.by.request_id;
            entry.detail.insert("submitted_at".into(), h.at.into());
            if let Some(r) = h.reason {
                entry.detail.insert("reason".into(), r.into());
            }
            if let Err(e) = vault.record_request(entry).await {
                vault.close().await;
                return Err(e);
            }
        }
        let entry = NewEntry::system("vault.unseal", "root-key", Outcome::Success)
            .detail("custodians", names)
            .detail("threshold", file.threshold);
        if let Err(e) = vault.record_request(entry).await {
            vault.close().await;
            return Err(e);
        }
        if let Err(e) = (self.on_open)(Arc::clone(&vault)) {
            vault.close().await;
            return Err(Error::internal(e));
        }
        let _ = self.opened.set(vault);
        tracing::info!("vault unsealed");
        Ok(self.status_of(&file, &p))
    }
}
