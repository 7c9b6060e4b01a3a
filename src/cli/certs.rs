//! `mediavault certs dev`: a development CA and a server certificate for localhost.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Write a development CA and a server certificate for localhost.
    Dev {
        #[arg(long, default_value = "certs/dev")]
        dir: PathBuf,
        /// Extra host names or addresses for the server certificate.
        #[arg(long)]
        host: Vec<String>,
        #[arg(long)]
        force: bool,
    },
}

pub fn run(command: CertsCommand) -> anyhow::Result<()> {
    let CertsCommand::Dev { dir, host, force } = command;
    let out = crate::certs::write_dev_certs(&dir, &host, force)?;
    println!(
        "wrote {} (CA: trust this in clients), {} and {}",
        out.ca.display(),
        out.cert.display(),
        out.key.display()
    );
    Ok(())
}
