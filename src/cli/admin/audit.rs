//! `admin audit …`: the audit log through the API: the newest entries, verification on the
//! server, and the export streamed to a file or standard output.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use reqwest::Method;

use super::{Session, cell, done, seg};

#[derive(Debug, clap::Subcommand)]
pub enum AuditApiCommand {
    /// The newest entries, oldest of them first.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
    },
    /// Verify the chain on the server; exits non-zero when it is broken.
    Verify,
    /// Export entries with their chain fields (JSONL re-verifies offline with `audit verify --file`).
    Export {
        #[arg(long, default_value = "jsonl")]
        format: String,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// Write here (created with mode 0600) instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
}

/// Runs one `admin audit` subcommand.
pub(super) async fn run(session: &Session, cmd: AuditApiCommand) -> anyhow::Result<()> {
    let (api, json_out) = (&session.api, session.json_out);
    match cmd {
        AuditApiCommand::Tail { lines } => {
            let lines = lines.clamp(1, 1000);
            let head = api.get("/audit/verify").await?["head_seq"]
                .as_i64()
                .unwrap_or(0);
            let after = (head - i64::from(lines)).max(0);
            let v = api
                .get(&format!("/audit?after_seq={after}&limit={lines}"))
                .await?;
            if json_out {
                return done(true, &v, "");
            }
            for e in v["entries"].as_array().into_iter().flatten() {
                println!(
                    "{:>7}  {}  {}:{}  {}  {}  {}",
                    cell(&e["seq"]),
                    cell(&e["ts"]),
                    cell(&e["actor"]["kind"]),
                    cell(&e["actor"]["id"]),
                    cell(&e["action"]),
                    cell(&e["target"]),
                    cell(&e["outcome"])
                );
            }
            Ok(())
        }
        AuditApiCommand::Verify => {
            let v = api.get("/audit/verify").await?;
            if json_out {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if v["ok"] == true {
                println!(
                    "the audit chain verifies: {} entries, head {} {}",
                    cell(&v["entries_checked"]),
                    cell(&v["head_seq"]),
                    cell(&v["head_hash"])
                );
            }
            if v["ok"] != true {
                bail!(
                    "the audit chain is broken at entry {}",
                    cell(&v["first_bad_seq"])
                );
            }
            Ok(())
        }
        AuditApiCommand::Export {
            format,
            since,
            until,
            output,
        } => {
            let mut q = vec![format!("format={}", seg(&format)?)];
            for (k, v) in [("since", since), ("until", until)] {
                if let Some(v) = v {
                    // RFC 3339 carries `+` and `:`; encode what a query cannot hold as is.
                    let enc: String = v
                        .chars()
                        .map(|c| match c {
                            '+' => "%2B".to_owned(),
                            ':' => "%3A".to_owned(),
                            c if c.is_ascii_alphanumeric()
                                || matches!(c, '-' | '.' | 'T' | 'Z') =>
                            {
                                c.to_string()
                            }
                            _ => String::new(),
                        })
                        .collect();
                    q.push(format!("{k}={enc}"));
                }
            }
            let mut resp = api
                .send(Method::GET, &format!("/audit/export?{}", q.join("&")), None)
                .await?;
            let mut out: Box<dyn Write> = match &output {
                Some(p) => {
                    use std::os::unix::fs::OpenOptionsExt;
                    Box::new(
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(0o600)
                            .open(p)
                            .with_context(|| {
                                format!("cannot create {} (it must not exist yet)", p.display())
                            })?,
                    )
                }
                None => Box::new(std::io::stdout().lock()),
            };
            let mut bytes = 0usize;
            while let Some(chunk) = resp.chunk().await? {
                bytes += chunk.len();
                out.write_all(&chunk)?;
            }
            out.flush()?;
            if let Some(p) = output {
                eprintln!("wrote {bytes} bytes to {}", p.display());
            }
            Ok(())
        }
    }
}
