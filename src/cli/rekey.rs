//! `mediavault rekey`: re-splits a sealed-mode vault's root key among new custodians, run on the
//! vault's host like `init` (the server may keep running; the store does not change). A quorum
//! of the current custodians gives their shares on standard input, one `CUSTODIAN SHARE` a line;
//! the new shares are shown once; `rekey verify` takes every new share back and only then
//! switches. Until that, the old shares keep unsealing.

use crate::config::Config;
use crate::vault::seal::{self, Split};

#[derive(Debug, clap::Subcommand)]
pub enum RekeyCommand {
    /// Deal new shares (the current quorum's shares on standard input).
    Start {
        #[arg(long)]
        key_shares: u8,
        #[arg(long)]
        key_threshold: u8,
        /// A new custodian's name, once per share, in order.
        #[arg(long = "custodian")]
        custodians: Vec<String>,
        /// Print the new shares as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every new holder gives their new share back (standard input); then the new split replaces
    /// the old one.
    Verify,
}

pub async fn run(config: &Config, command: RekeyCommand) -> anyhow::Result<()> {
    if !seal::is_sealed_mode(config) {
        anyhow::bail!("this vault's root key is a file, not held by custodians: nothing to rekey");
    }
    match command {
        RekeyCommand::Start {
            key_shares,
            key_threshold,
            custodians,
            json,
        } => {
            let split = Split::new(key_shares, key_threshold, custodians)
                .map_err(|e| anyhow::anyhow!(e))?;
            let dealt = seal::rekey_start(config, &split).await?;
            if json {
                let shares: Vec<_> = dealt
                    .iter()
                    .map(|s| serde_json::json!({"custodian": s.custodian, "share": s.share.expose()}))
                    .collect();
                println!("{}", serde_json::json!({ "shares": shares }));
                return Ok(());
            }
            println!(
                "New key shares, {key_threshold} of {key_shares} (shown once; give each only to its custodian):"
            );
            for s in &dealt {
                println!("  {}: {}", s.custodian, s.share.expose());
            }
            println!(
                "The old shares stay in force until every new holder runs `mediavault rekey verify`."
            );
        }
        RekeyCommand::Verify => {
            let names = seal::rekey_verify(config).await?;
            println!(
                "rekeyed: the new shares of {} are in force; the old shares no longer unseal",
                names.join(", ")
            );
        }
    }
    Ok(())
}
