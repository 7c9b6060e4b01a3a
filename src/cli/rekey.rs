//! `mediavault rekey`: re-splits a sealed-mode vault's root key among new custodians, run on the
//! vault's host like `init` (the server may keep running; the store does not change). A quorum
//! of the current custodians gives their shares on standard input, one `CUSTODIAN SHARE` a line;
//! the new shares are shown once (each encrypted to its custodian's age key if given); `rekey
//! verify` takes every new share back and only then switches. Until that, the old shares keep
//! unsealing. `keys rotate-root` in sealed mode is the same with a new root key, and is finished
//! by the same `rekey verify`.

use serde_json::{Value, json};

use crate::config::Config;
use crate::vault::seal::{self, DealtShare, ShareForm, Split};

#[derive(Debug, clap::Subcommand)]
pub enum RekeyCommand {
    /// Deal new shares (the current quorum's shares on standard input).
    Start {
        #[arg(long)]
        key_shares: u8,
        #[arg(long)]
        key_threshold: u8,
        /// A new custodian, once per share, in order: `NAME`, or `NAME=age1…` to encrypt their
        /// share to their age key (`age-keygen`). A custodian of the current split named again
        /// without a key keeps the age key they had.
        #[arg(long = "custodian")]
        custodians: Vec<String>,
        /// Print the new shares as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every new holder gives their new share back (standard input); then the new split replaces
    /// the old one (after `keys rotate-root`: the store is re-wrapped under the new root key).
    Verify,
}

/// The shares as `--json` prints them: `{custodian, share}`, or for a custodian with an age key
/// `{custodian, recipient, age}` (the armored age file; the share itself is never printed).
pub(crate) fn shares_json(dealt: &[DealtShare]) -> Value {
    dealt
        .iter()
        .map(|s| match &s.share {
            ShareForm::Plain(text) => json!({"custodian": s.custodian, "share": text.expose()}),
            ShareForm::Age { recipient, armored } => {
                json!({"custodian": s.custodian, "recipient": recipient, "age": armored})
            }
        })
        .collect()
}

/// The shares as the terminal shows them, each once.
pub(crate) fn print_shares(dealt: &[DealtShare]) {
    for s in dealt {
        match &s.share {
            ShareForm::Plain(text) => println!("  {}: {}", s.custodian, text.expose()),
            ShareForm::Age { recipient, armored } => {
                println!(
                    "  {name}: encrypted to {recipient}; save the lines below as {name}.share.age \
                     for {name}, who reads it with `age -d -i KEY_FILE {name}.share.age`:",
                    name = s.custodian
                );
                print!("{armored}");
            }
        }
    }
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
                .map_err(|e| anyhow::anyhow!(e))?
                .keeping_recipients_of(&Split::current(config)?);
            let dealt = seal::rekey_start(config, &split, seal::RootKeyChange::Keep).await?;
            if json {
                println!("{}", json!({ "shares": shares_json(&dealt) }));
                return Ok(());
            }
            println!(
                "New key shares, {key_threshold} of {key_shares} (shown once; give each only to its custodian):"
            );
            print_shares(&dealt);
            println!(
                "The old shares stay in force until every new holder runs `mediavault rekey verify`."
            );
        }
        RekeyCommand::Verify => {
            let done = seal::rekey_verify(config).await?;
            let names = done.custodians.join(", ");
            if !done.new_root_key {
                println!(
                    "rekeyed: the new shares of {names} are in force; the old shares no longer unseal"
                );
                return Ok(());
            }
            println!(
                "root key rotated: the store's keyring is wrapped under the new key, whose shares ({names}) are in force; the old shares no longer unseal"
            );
            if done.handed_over {
                println!(
                    "the running server was handed the new key (it keeps serving, and picks up keyring terms added from now on)"
                );
            }
            if let Some(retired) = &done.retired_seal {
                println!(
                    "backups made before this rotation open only with a quorum of the OLD shares and the split they belong to, kept as {} (`mediavault restore FILE --data-dir DIR --seal-file {}`); keep both, or make a new backup now",
                    retired.display(),
                    retired.display()
                );
            }
        }
    }
    Ok(())
}
