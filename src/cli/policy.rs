//! `mediavault policy check DIR`: validates access policies offline, naming file and line.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy directory offline.
    Check { dir: PathBuf },
}

pub fn run(command: PolicyCommand) -> anyhow::Result<()> {
    let PolicyCommand::Check { dir } = command;
    let set = crate::policy::PolicySet::load_dir(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{}: {} account policies, all valid",
        dir.display(),
        set.len()
    );
    Ok(())
}
