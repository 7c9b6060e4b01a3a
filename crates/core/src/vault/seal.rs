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
use crate::crypto::age::{self, Recipient};
use crate::crypto::shares::{self, KeyShare};
use crate::crypto::{RootKey, SecretBytes, SecretString, Suite, ct_eq};
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

/// How `init` (or a rekey) splits the root key.
#[derive(Debug, Clone)]
pub struct Split {
    pub threshold: u8,
    /// The custodians, one share each, in order.
    pub custodians: Vec<Custodian>,
}

/// One custodian: a name, and optionally their own age key, to which their share is encrypted.
#[derive(Debug, Clone)]
pub struct Custodian {
    pub name: String,
    pub recipient: Option<Recipient>,
}

impl Split {
    /// Checks the numbers and names an operator typed: 2 ≤ T ≤ N ≤ 255, names unique and valid
    /// usernames (they may, but need not, be people in the vault). A custodian is `NAME` or
    /// `NAME=age1…` (their age public key, as `age-keygen` prints it): a malformed key is refused
    /// here, before anything is made.
    pub fn new(shares: u8, threshold: u8, custodians: Vec<String>) -> Result<Self, String> {
        let given = if custodians.is_empty() {
            (1..=shares).map(|i| format!("custodian-{i}")).collect()
        } else {
            custodians
        };
        if given.len() != usize::from(shares) {
            return Err(format!(
                "--key-shares {shares} but {} --custodian names",
                given.len()
            ));
        }
        if threshold < 2 || threshold > shares {
            return Err(
                "--key-threshold must be at least 2 and at most --key-shares (one holder: use the default root key file)"
                    .into(),
            );
        }
        let mut custodians: Vec<Custodian> = Vec::with_capacity(given.len());
        for arg in &given {
            let (name, recipient) = match arg.split_once('=') {
                Some((name, key)) => {
                    let r =
                        Recipient::parse(key).map_err(|e| format!("--custodian {name}=…: {e}"))?;
                    (name, Some(r))
                }
                None => (arg.as_str(), None),
            };
            crate::identity::Username::parse(name)
                .map_err(|e| format!("--custodian {name:?}: {e}"))?;
            if custodians.iter().any(|c| c.name == name) {
                return Err(format!("--custodian {name:?} is named twice"));
            }
            custodians.push(Custodian {
                name: name.to_owned(),
                recipient,
            });
        }
        Ok(Self {
            threshold,
            custodians,
        })
    }

    /// The split in force now (names, age keys, threshold): what a root-key rotation deals to
    /// by default.
    pub fn current(config: &Config) -> Result<Self, OpenError> {
        let file = SealFile::load(&seal_path(config))?;
        let custodians = file
            .custodians
            .iter()
            .map(|c| {
                Ok(Custodian {
                    name: c.name.clone(),
                    recipient: c.recipient.as_deref().map(Recipient::parse).transpose()?,
                })
            })
            .collect::<Result<_, age::AgeError>>()
            .map_err(|e| {
                OpenError::Other(format!("seal file {}: {e}", seal_path(config).display()))
            })?;
        Ok(Self {
            threshold: file.threshold,
            custodians,
        })
    }

    /// A custodian named again without an age key keeps the one the current split gives them,
    /// so a rekey never prints in plain text a share that was encrypted before.
    pub fn keeping_recipients_of(mut self, current: &Split) -> Self {
        for c in &mut self.custodians {
            if c.recipient.is_none() {
                c.recipient = current
                    .custodians
                    .iter()
                    .find(|old| old.name == c.name)
                    .and_then(|old| old.recipient.clone());
            }
        }
        self
    }

    pub fn names(&self) -> Vec<String> {
        self.custodians.iter().map(|c| c.name.clone()).collect()
    }

    /// The custodians whose shares are encrypted to their own key.
    pub fn encrypted_to(&self) -> Vec<String> {
        self.custodians
            .iter()
            .filter(|c| c.recipient.is_some())
            .map(|c| c.name.clone())
            .collect()
    }
}

/// A share as dealt: shown once to its custodian, kept nowhere.
#[derive(Debug)]
pub struct DealtShare {
    pub custodian: String,
    pub share: ShareForm,
}

/// How a dealt share is shown.
#[derive(Debug)]
pub enum ShareForm {
    /// The share's text (`mvshare1-…`), for a custodian who gave no age key.
    Plain(SecretString),
    /// The share's text encrypted to the custodian's age key, as an ASCII-armored age file: only
    /// they can read it (`age -d -i KEY FILE`). Not secret.
    Age { recipient: String, armored: String },
}

/// Each custodian's share in the form they get it: encrypted to their age key if they gave one.
/// Done before anything is written, so a failure leaves nothing behind.
fn present(split: &Split, dealt: &[KeyShare]) -> Result<Vec<DealtShare>, OpenError> {
    split
        .custodians
        .iter()
        .zip(dealt)
        .map(|(c, s)| {
            let text = s.to_text();
            let share = match &c.recipient {
                None => ShareForm::Plain(text),
                Some(r) => {
                    // The plaintext is the share's text and a newline: what `age -d` prints is
                    // what `mediavault unseal` reads.
                    let plain = SecretString::new(format!("{}\n", text.expose()));
                    ShareForm::Age {
                        recipient: r.to_string(),
                        armored: age::encrypt_armored(r, plain.expose().as_bytes())
                            .map_err(crate::crypto::CryptoError::from)?,
                    }
                }
            };
            Ok(DealtShare {
                custodian: c.name.clone(),
                share,
            })
        })
        .collect()
}

fn entries(suite: Suite, split: &Split, dealt: &[KeyShare]) -> Vec<CustodianEntry> {
    split
        .custodians
        .iter()
        .zip(dealt)
        .map(|(c, s)| CustodianEntry {
            name: c.name.clone(),
            index: s.index(),
            check: hex::encode(s.check_value(suite)),
            recipient: c.recipient.as_ref().map(Recipient::to_string),
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SealFile {
    format: u32,
    threshold: u8,
    /// The suite the check value is derived in, and the vault's: a file from before the SM
    /// option has none, and is `standard`.
    #[serde(default)]
    suite: Suite,
    /// Hex of `RootKey::check_value`.
    root_check: String,
    custodians: Vec<CustodianEntry>,
    /// A pending root-key rotation only (`seal.pending.json`): the root key in force, wrapped
    /// under the new one, so that the new holders' shares alone can finish the rotation (the
    /// keyring is re-wrapped from the old key to the new one when they have verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_root: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CustodianEntry {
    name: String,
    index: u8,
    /// Hex of `KeyShare::check_value`.
    check: String,
    /// The custodian's age public key, if their share was encrypted to it (not secret; a
    /// root-key rotation deals to it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recipient: Option<String>,
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
        custodian.index == share.index() && share.matches(self.suite, &check)
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
    let out = present(split, &dealt)?;
    let suite = config.crypto.suite.unwrap_or_default();
    let file = SealFile {
        format: 1,
        threshold: split.threshold,
        suite,
        root_check: hex::encode(root.check_value(suite)?),
        custodians: entries(suite, split, &dealt),
        previous_root: None,
    };
    file.create(&seal_path(config))?;
    Ok((root, out))
}

/// The root key from a quorum of `custodian share` lines on standard input, for the offline
/// commands of a sealed-mode vault (backup, restore, keys rotate, audit verify). Each line is
/// checked as a submission to the server is.
pub(crate) fn root_from_stdin(config: &Config) -> Result<RootKey, OpenError> {
    root_from_stdin_with(&seal_path(config))
}

/// [`root_from_stdin`] for the split of another seal file (a retired one, for an older backup).
pub(crate) fn root_from_stdin_with(seal_file: &Path) -> Result<RootKey, OpenError> {
    let file = SealFile::load(seal_file)?;
    if file.previous_root.is_some() {
        return Err(OpenError::Other(format!(
            "{} is a pending rotation's split, not one that was ever in force",
            seal_file.display()
        )));
    }
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

/// Label under which a pending root-key rotation wraps the key in force with the new one.
const PREVIOUS_ROOT_LABEL: &str = "mediavault:seal:previous-root";

/// Whether a rekey keeps the root key (new custodians, new N/T) or makes a new one (a root-key
/// rotation, `keys rotate-root` in sealed mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKeyChange {
    Keep,
    New,
}

/// `mediavault rekey start` (and, with [`RootKeyChange::New`], `keys rotate-root` in sealed
/// mode): a quorum of the current custodians (on standard input) lets the root key, or a new
/// one, be split among `split`'s custodians. The new shares are returned (to show once, each
/// encrypted to its custodian's age key if they gave one); the new split is written beside the
/// current one and takes over only when [`rekey_verify`] has every new share back. Until then
/// nothing else changes: the old shares keep unsealing and the store is not touched. Audited
/// (`unseal.rekey_start`, with who gave the old shares and whether the key is new).
///
/// For a new key, the pending split also carries the key in force wrapped under the new one, so
/// that the new holders' shares alone finish the rotation (whoever holds the new key may read
/// everything anyway).
pub async fn rekey_start(
    config: &Config,
    split: &Split,
    change: RootKeyChange,
) -> anyhow::Result<Vec<DealtShare>> {
    let file = SealFile::load(&seal_path(config))?;
    let (raw, old) = quorum_from_stdin(&file, usize::from(file.threshold))?;
    let root = RootKey::from_secret(&raw)?;
    let n = u8::try_from(split.custodians.len())
        .map_err(|_| anyhow::anyhow!("at most 255 custodians"))?;
    let (dealt, root_check, previous_root) = match change {
        RootKeyChange::Keep => (
            shares::split(&raw, split.threshold, n)?,
            file.root_check.clone(),
            None,
        ),
        RootKeyChange::New => {
            let new_raw = SecretBytes::random(32)?;
            let new_root = RootKey::from_secret(&new_raw)?;
            (
                shares::split(&new_raw, split.threshold, n)?,
                hex::encode(new_root.check_value(file.suite)?),
                Some(hex::encode(new_root.wrap(
                    file.suite,
                    PREVIOUS_ROOT_LABEL,
                    &raw,
                )?)),
            )
        }
    };
    let out = present(split, &dealt)?;
    let pending = SealFile {
        format: 1,
        threshold: split.threshold,
        suite: file.suite,
        root_check,
        custodians: entries(file.suite, split, &dealt),
        previous_root,
    };
    let entry = crate::actor::Actor::cli_from_env()
        .entry("unseal.rekey_start", "root-key")
        .detail("by_custodians", old)
        .detail("threshold", split.threshold)
        .detail("custodians", split.names())
        .detail("encrypted_to", split.encrypted_to())
        .detail("new_root_key", change == RootKeyChange::New);
    record_with(config, &root, entry).await?;
    // A newer rekey replaces an unverified one: its shares were never in force.
    let path = pending_seal_path(config);
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    pending.create(&path)?;
    Ok(out)
}

/// What `rekey verify` switched to.
#[derive(Debug)]
pub struct Verified {
    /// The new holders, who each gave their share back.
    pub custodians: Vec<String>,
    /// A root-key rotation: the store's keyring is now wrapped under the new key.
    pub new_root_key: bool,
    /// After a root-key rotation, where the split it replaced is kept: restoring a backup made
    /// before needs it (`restore --seal-file`) and a quorum of the old shares.
    pub retired_seal: Option<PathBuf>,
    /// After a root-key rotation, whether a running server was handed the new key.
    pub handed_over: bool,
}

/// `mediavault rekey verify`: every new holder gives their new share back (standard input, one
/// `CUSTODIAN SHARE` a line). Only if each matches and they rebuild the pending split's root key
/// does the new split replace the old one (the old shares stop working); otherwise nothing
/// changes. A plain rekey is audited as `unseal.rekey`; a root-key rotation re-wraps the keyring
/// under the new key in one transaction with its `keys.rotate_root` entry first.
pub async fn rekey_verify(config: &Config) -> anyhow::Result<Verified> {
    let path = pending_seal_path(config);
    if !path.exists() {
        anyhow::bail!(
            "no rekey is waiting for verification (run `mediavault rekey start` or `mediavault keys rotate-root` first)"
        );
    }
    let pending = SealFile::load(&path)?;
    let (raw, names) = quorum_from_stdin(&pending, pending.custodians.len())?;
    let root = RootKey::from_secret(&raw)?;
    if pending.previous_root.is_some() {
        return finish_root_rotation(config, &pending, &raw, &root, names).await;
    }
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
    Ok(Verified {
        custodians: names,
        new_root_key: false,
        retired_seal: None,
        handed_over: false,
    })
}

/// The second half of a sealed-mode root-key rotation, once every new holder has verified:
/// re-wraps the keyring and MAC master from the key in force to the new one in one transaction
/// with its audit entry, then puts the new split in force. The split it replaces is kept as
/// `seal.retired-<time>.json` (for restoring older backups). A running server is handed the new
/// key first (see `crate::keys`), so it goes on picking up keyring terms added after this.
///
/// Safe to run again after an interruption: if the store already opens only with the new key
/// (the commit happened, the switch of files did not), it finishes the switch.
async fn finish_root_rotation(
    config: &Config,
    pending: &SealFile,
    new_raw: &SecretBytes,
    new_root: &RootKey,
    names: Vec<String>,
) -> anyhow::Result<Verified> {
    use anyhow::Context;
    let current_path = seal_path(config);
    let current = SealFile::load(&current_path)?;
    if current.root_check == pending.root_check {
        // Interrupted after the new split was put in force: only the pending file is left.
        std::fs::remove_file(pending_seal_path(config))?;
        return Ok(Verified {
            custodians: names,
            new_root_key: true,
            retired_seal: None,
            handed_over: false,
        });
    }
    let wrapped = hex::decode(pending.previous_root.as_deref().unwrap_or_default())
        .context("the pending rotation is damaged")?;
    let old_raw = new_root
        .unwrap(pending.suite, PREVIOUS_ROOT_LABEL, &wrapped)
        .map_err(|_| anyhow::anyhow!("the pending rotation does not open with these shares"))?;
    let old_root = RootKey::from_secret(&old_raw)?;
    let want = hex::decode(&current.root_check).unwrap_or_default();
    if !ct_eq(&old_root.check_value(current.suite)?, &want) {
        anyhow::bail!(
            "the pending rotation was started under another split than the one in force ({}); start it again",
            current_path.display()
        );
    }
    let mut handed_over = false;
    match super::open_store_with(config, &old_root).await {
        Ok((store, keys)) => {
            let done = async {
                let (terms, mac_wrapped) =
                    super::rewrapped_keyring(&store, &old_root, new_root).await?;
                // A running server learns the new key before the store needs it.
                handed_over =
                    crate::keys::offer_root(&config.data_dir, &old_root, keys.suite(), new_raw)?;
                let audit = crate::audit::AuditWriter::start(
                    store.clone(),
                    keys.mac().audit.clone(),
                    Clock::system(),
                );
                let entry = crate::actor::Actor::cli_from_env()
                    .entry("keys.rotate_root", "keyring")
                    .detail("terms", terms.len())
                    .detail("sealed", true)
                    .detail("verified_by", names.clone())
                    .detail("threshold", pending.threshold)
                    .detail(
                        "encrypted_to",
                        pending
                            .custodians
                            .iter()
                            .filter(|c| c.recipient.is_some())
                            .map(|c| c.name.clone())
                            .collect::<Vec<_>>(),
                    )
                    .detail("running_server_told", handed_over);
                let committed = audit
                    .commit(entry, move |tx| {
                        Box::pin(async move {
                            tx.keyring_rewrap(&terms, &mac_wrapped).await?;
                            Ok(())
                        })
                    })
                    .await;
                drop(audit);
                committed?;
                anyhow::Ok(())
            }
            .await;
            store.close().await;
            if let Err(e) = done {
                crate::keys::withdraw_root_offer(&config.data_dir);
                return Err(e.context("the root key was not rotated; the old shares stay in force"));
            }
        }
        Err(OpenError::Crypto(crate::crypto::CryptoError::WrongRootKey)) => {
            // Interrupted after its commit: the store opens with the new key only.
            let (store, _) = super::open_store_with(config, new_root)
                .await
                .context("the store opens with neither the key in force nor the new one")?;
            store.close().await;
        }
        Err(e) => return Err(e.into()),
    }
    let retired = config
        .data_dir
        .join(format!("seal.retired-{}.json", Clock::system().unix()));
    std::fs::copy(&current_path, &retired)?;
    // The new split in force, without the old key it carried while pending.
    let in_force = SealFile {
        previous_root: None,
        ..pending.clone()
    };
    let fresh = config.data_dir.join("seal.json.new");
    let _ = std::fs::remove_file(&fresh);
    in_force
        .create(&fresh)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(std::fs::rename(&fresh, &current_path)?))
        .with_context(|| {
            format!(
                "the store is now under the new root key but {} was not put in force: run `mediavault rekey verify` again",
                current_path.display()
            )
        })?;
    std::fs::remove_file(pending_seal_path(config))?;
    Ok(Verified {
        custodians: names,
        new_root_key: true,
        retired_seal: Some(retired),
        handed_over,
    })
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
        // A server that ran before listened for a rotated root key; this one listens only once
        // it is unsealed.
        crate::keys::forget_listener(&config.data_dir);
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
        // A root-key rotation run beside this server hands it the new key (see `crate::keys`).
        if let Err(e) = vault.keys.listen_for_root(&self.config.data_dir) {
            tracing::warn!(error = %e, "cannot publish this server's one-time key: after a root-key rotation it will need a restart and unseal to pick up new keyring terms");
        }
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
