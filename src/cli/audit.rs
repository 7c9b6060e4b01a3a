//! `mediavault audit …`: offline verification, checkpoints, exports and retention. These open the
//! store and the root key directly (never `Vault::open`), so they work while the server is down and
//! read nothing but the database and the key file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::audit::chain::{Checkpoint, VerifyReport, anchor_mac};
use crate::audit::export::{self, Format};
use crate::audit::{AuditWriter, parse_time_ms, verify_store_with};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::Keyring;
use crate::store::Store;
use crate::store::audit::{AuditAnchor, AuditFilter};

/// `--format` of `audit export`: the export formats, as the command line spells them.
#[derive(Debug, Clone, Copy)]
pub struct FormatArg(Format);

impl clap::ValueEnum for FormatArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[FormatArg(Format::Jsonl), FormatArg(Format::Csv)]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self.0 {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }))
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify the chain (or an export file); exits non-zero and names the first bad entry.
    Verify {
        /// A checkpoint line from `audit checkpoint`; the chain must still hold that entry.
        #[arg(long)]
        checkpoint: Option<String>,
        /// Verify this JSONL export instead of the database.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print a signed checkpoint of the chain head, to keep outside the vault (`mvcp2:<suite>:…`;
    /// in the SM suite an SM2 signature, whose public key is printed on standard error).
    Checkpoint,
    /// Write the entries with their chain fields to standard output.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: FormatArg,
        /// RFC 3339; entries at or after this time.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339; entries before this time.
        #[arg(long)]
        until: Option<String>,
    },
    /// Delete entries older than a date, after exporting them; never younger than the retention.
    Prune {
        /// RFC 3339; entries before this time are pruned.
        #[arg(long)]
        before: String,
        /// Where the pruned entries are written (JSONL) before anything is deleted.
        #[arg(long)]
        export_file: PathBuf,
    },
}

pub async fn run(config: &Config, cmd: AuditCommand) -> anyhow::Result<()> {
    let (_, store, keys) = crate::vault::open_store(config).await?;
    let result = run_with(config, &store, &keys, cmd).await;
    store.close().await;
    result
}

async fn run_with(
    config: &Config,
    store: &Store,
    keys: &Keyring,
    cmd: AuditCommand,
) -> anyhow::Result<()> {
    let audit_key = &keys.mac().audit;
    match cmd {
        AuditCommand::Verify { checkpoint, file } => {
            let cp = checkpoint
                .map(|l| Checkpoint::parse(&l, &keys.mac().checkpoint))
                .transpose()
                .context("--checkpoint")?;
            let report = match file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    export::verify_jsonl(&text, audit_key, cp.as_ref())
                }
                None => verify_store_with(store, audit_key, cp.as_ref()).await?,
            };
            println!("{}", serde_json::to_string(&report)?);
            fail_if_broken(&report)
        }
        AuditCommand::Checkpoint => {
            let report = verify_store_with(store, audit_key, None).await?;
            fail_if_broken(&report)?;
            let (seq, hash) = head_of(&report)?;
            let cp = Checkpoint {
                seq,
                hash,
                unix: Clock::system().unix(),
            };
            println!("{}", cp.to_line(&keys.mac().checkpoint));
            // The SM suite signs with SM2: its public key lets anyone check the line with any SM2
            // tool (default ID 1234567812345678), without the vault. Standard lines are HMACs
            // only the vault can check. On stderr, so stdout stays the line alone.
            if let Some(public) = keys.mac().checkpoint.public_key_hex() {
                eprintln!(
                    "signed with SM2 (crypto suite sm); the public key that verifies it: {public}"
                );
            }
            Ok(())
        }
        AuditCommand::Export {
            format: FormatArg(format),
            since,
            until,
        } => {
            let filter = AuditFilter {
                since_ms: since.as_deref().map(time_arg("--since")).transpose()?,
                until_ms: until.as_deref().map(time_arg("--until")).transpose()?,
                ..AuditFilter::default()
            };
            // A page at a time, as the API does, up to the head as it is now.
            let through = store.audit_head().await?.seq;
            let mut pages = export::Pages::new(store.clone(), filter, through);
            let mut first = true;
            while let Some(rows) = pages.next_page().await? {
                let text = export::render_page(format, &rows, first);
                std::io::stdout().lock().write_all(text.as_bytes())?;
                first = false;
            }
            if first {
                let text = export::render_page(format, &[], true);
                std::io::stdout().lock().write_all(text.as_bytes())?;
            }
            std::io::stdout().lock().flush()?;
            Ok(())
        }
        AuditCommand::Prune {
            before,
            export_file,
        } => prune(config, store, keys, &before, &export_file).await,
    }
}

fn fail_if_broken(report: &VerifyReport) -> anyhow::Result<()> {
    if report.ok {
        return Ok(());
    }
    bail!(
        "the audit chain is broken at entry {}: {}",
        report.first_bad_seq.unwrap_or_default(),
        report.problem.as_deref().unwrap_or("unknown")
    )
}

fn head_of(report: &VerifyReport) -> anyhow::Result<(i64, [u8; 32])> {
    let hash: [u8; 32] = hex::decode(&report.head_hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .context("head hash")?;
    Ok((report.head_seq, hash))
}

fn time_arg(flag: &'static str) -> impl Fn(&str) -> anyhow::Result<i64> {
    move |s| {
        parse_time_ms(s).with_context(|| {
            format!("{flag}: {s:?} is not an RFC 3339 time (like 2025-01-31T00:00:00Z)")
        })
    }
}

async fn prune(
    config: &Config,
    store: &Store,
    keys: &Keyring,
    before: &str,
    export_file: &Path,
) -> anyhow::Result<()> {
    let audit_key = &keys.mac().audit;
    let before_ms = time_arg("--before")(before)?;
    let clock = Clock::system();
    let now_ms = crate::audit::writer::unix_ms(&clock);
    let floor_ms = now_ms - i64::from(config.audit.retention_days) * 86_400_000;
    if before_ms > floor_ms {
        bail!(
            "--before {before} is inside the retention period of {} days (audit.retention_days); \
             the latest allowed is {}",
            config.audit.retention_days,
            crate::audit::rfc3339_ms(floor_ms)
        );
    }
    // A broken chain is evidence; pruning it would destroy the part that shows what happened.
    let report = verify_store_with(store, audit_key, None).await?;
    fail_if_broken(&report)?;
    let (head_seq, head_hash) = head_of(&report)?;
    // Prune a prefix by seq: everything before the first entry that is not old enough.
    let cut = store
        .audit_first_seq_at(before_ms)
        .await?
        .unwrap_or(head_seq + 1);
    let mut old = Vec::new();
    let mut after = 0;
    'pages: loop {
        let page = store.audit_chunk(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page {
            if r.seq >= cut {
                break 'pages;
            }
            old.push(r);
        }
    }
    let Some(first) = old.first() else {
        println!("no audit entries before {before}; nothing pruned");
        return Ok(());
    };
    let prev_hash = match store.audit_entry(cut).await? {
        Some(next) => next.prev_hash,
        None if cut == head_seq + 1 => head_hash.to_vec(),
        None => bail!("entry {cut} vanished during the prune; nothing was deleted"),
    };
    write_durably(export_file, &export::render(Format::Jsonl, &old))?;
    let mut anchor = AuditAnchor {
        first_seq: cut,
        prev_hash,
        pruned_from_seq: first.seq,
        pruned_before: before_ms,
        pruned_at: now_ms,
        mac: Vec::new(),
    };
    anchor.mac = anchor_mac(audit_key, &anchor).to_vec();
    // The prune and its own entry commit together: an unrecorded prune does not happen.
    let export_sha = crate::crypto::sha256_hex(&std::fs::read(export_file)?);
    let writer = AuditWriter::start(store.clone(), audit_key.clone(), clock);
    let entry = crate::actor::Actor::cli_from_env()
        .entry("audit.prune", "audit_log")
        .detail("pruned_from_seq", first.seq)
        .detail("pruned_to_seq", cut - 1)
        .detail("before", crate::audit::rfc3339_ms(before_ms))
        .detail("export_sha256", export_sha);
    let n = writer
        .commit(entry, move |tx| {
            Box::pin(async move { Ok(tx.audit_prune(&anchor).await?) })
        })
        .await?;
    println!(
        "pruned {n} audit entries ({}..={}); exported to {}",
        first.seq,
        cut - 1,
        export_file.display()
    );
    Ok(())
}

/// Writes a new file and syncs it and its directory, so the export exists before the delete.
/// Mode 0600: the entries are the audit log's, and as private.
fn write_durably(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
