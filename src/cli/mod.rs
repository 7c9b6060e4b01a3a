//! The `mediavault` command line: the clap definitions here, one file per subcommand. A library
//! module rather than part of the binary, so tests can drive a subcommand without a child process.

pub mod audit;
#[cfg(feature = "demo")]
pub mod bench;
pub mod certs;
#[cfg(feature = "demo")]
pub mod demo;
#[cfg(feature = "demo")]
pub mod fake_platforms;
pub mod init;
pub mod keys;
pub mod policy;
pub mod serve;
pub mod totp_code;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "mediavault",
    version,
    about = "Hardened credential vault for official new-media accounts"
)]
pub struct Cli {
    /// Configuration file (TOML). Without it the embedded defaults apply.
    #[arg(long, global = true, env = "MEDIAVAULT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the data dir, database, root key, keyring and the first admin.
    Init {
        /// Username of the first admin.
        #[arg(long)]
        admin: String,
        #[arg(long, default_value = "Administrator")]
        display_name: String,
        /// Read the admin password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// Print the TOTP enrolment as JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Serve the API (HTTPS, or plain HTTP on loopback when configured).
    Serve,
    /// Development TLS certificates.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// Keyring and root key rotation.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Try it out: the vault, the fake platforms, seeded data and a walkthrough.
    #[cfg(feature = "demo")]
    Demo {
        /// Port for the vault on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Measure the vault on this machine: a temporary vault on loopback, the fake platforms in
    /// process, and a load generator (see the README).
    #[cfg(feature = "demo")]
    Bench(bench::BenchArgs),
    /// Serve the fake WeChat and Weibo APIs alone (tests, local development).
    #[cfg(feature = "demo")]
    FakePlatforms {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: std::net::SocketAddr,
    },
    /// Print the current TOTP code for a base32 secret (demo and scripts).
    TotpCode {
        #[arg(long)]
        secret: String,
    },
    /// The audit log: verify, checkpoint, export, prune.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Access policies.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
}

pub fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("MEDIAVAULT_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{},sqlx=warn,hyper=warn", config.log.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs one subcommand. Only the commands that open the store read the configuration file, so
/// `policy check`, `certs dev`, `totp-code` and the demo work without one.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { config, command } = cli;
    let configured = || -> anyhow::Result<Arc<Config>> {
        let config = Arc::new(Config::load(config.as_deref())?);
        init_logging(&config);
        Ok(config)
    };
    match command {
        Command::Policy { command } => policy::run(command),
        Command::Certs { command } => certs::run(command),
        #[cfg(feature = "demo")]
        Command::Demo { port } => {
            init_logging(&Config::default());
            demo::run(port).await
        }
        #[cfg(feature = "demo")]
        Command::FakePlatforms { listen } => {
            init_logging(&Config::default());
            fake_platforms::run(listen).await
        }
        #[cfg(feature = "demo")]
        Command::Bench(args) => bench::run(args).await,
        Command::TotpCode { secret } => totp_code::run(&secret),
        Command::Init {
            admin,
            display_name,
            password_stdin,
            json,
        } => init::run(configured()?, admin, display_name, password_stdin, json).await,
        Command::Serve => serve::run(configured()?).await,
        Command::Keys { command } => {
            let config = configured()?;
            keys::run(&config, command).await
        }
        Command::Audit { command } => {
            let config = configured()?;
            audit::run(&config, command).await
        }
    }
}
