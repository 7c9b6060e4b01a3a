//! `mediavault policy check [DIR]`: validates access policies and incident playbooks offline,
//! naming file and line. Without DIR it checks the configured `policies_dir` (and playbooks dir).

use std::path::PathBuf;

use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate the access policies and playbooks (default: the configured directories).
    Check { dir: Option<PathBuf> },
}

/// `config` is read only when no directory is given.
pub fn run(
    command: PolicyCommand,
    config: impl FnOnce() -> anyhow::Result<std::sync::Arc<Config>>,
) -> anyhow::Result<()> {
    let PolicyCommand::Check { dir } = command;
    let (dir, playbooks) = match dir {
        Some(d) => (d.clone(), d.join("playbooks")),
        None => {
            let config = config()?;
            (config.policies_dir.clone(), config.playbooks_path())
        }
    };
    let set = crate::policy::PolicySet::load_dir(&dir)?;
    println!(
        "{}: {} account policies, all valid",
        dir.display(),
        set.len()
    );
    if playbooks.is_dir() {
        let books = crate::policy::PlaybookSet::load_dir(&playbooks)?;
        println!(
            "{}: {} playbooks, all valid",
            playbooks.display(),
            books.len()
        );
    } else {
        println!("{}: no playbooks directory", playbooks.display());
    }
    Ok(())
}
