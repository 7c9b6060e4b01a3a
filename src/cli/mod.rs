//! The `mediavault` command line: the clap definitions here, one file per subcommand. A library
//! module rather than part of the binary, so tests can drive a subcommand without a child process.

pub mod admin;
pub mod audit;
pub mod backup;
#[cfg(feature = "demo")]
pub use mediavault_bench as bench;
pub mod bootstrap;
pub mod certs;
#[cfg(feature = "demo")]
pub mod demo;
#[cfg(feature = "demo")]
pub mod fake_platforms;
pub mod init;
pub mod keys;
pub mod policy;
pub mod rekey;
pub mod restore;
pub mod serve;
pub mod totp_code;
pub mod unseal;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::Config;

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
        /// Sealed mode: split the root key into this many shares (one per custodian) instead of
        /// writing a root key file; the server then starts sealed.
        #[arg(long, requires = "key_threshold")]
        key_shares: Option<u8>,
        /// Sealed mode: how many shares unseal the vault (2..=key-shares).
        #[arg(long, requires = "key_shares")]
        key_threshold: Option<u8>,
        /// Sealed mode: a custodian, once per share, in order (default custodian-1, ...):
        /// `NAME`, or `NAME=age1…` to show their share only encrypted to their age key
        /// (`age-keygen`), which they read with `age -d`.
        #[arg(long = "custodian", requires = "key_shares")]
        custodians: Vec<String>,
    },
    /// Sealed mode: split the root key anew among new custodians (a quorum of the current ones
    /// gives their shares on standard input), then have the new holders verify theirs.
    Rekey {
        #[command(subcommand)]
        command: rekey::RekeyCommand,
    },
    /// Submit your key share to a running sealed vault (or show its seal status).
    Unseal(unseal::UnsealArgs),
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
    #[command(after_help = fake_platforms::CONTROL_HELP)]
    FakePlatforms {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: std::net::SocketAddr,
        /// Register a WeChat app: APP_ID:APP_SECRET (repeatable; fake credentials only).
        #[arg(long = "wechat-app", value_name = "ID:SECRET")]
        wechat_apps: Vec<String>,
        /// Register a Weibo app: APP_KEY:APP_SECRET:ACCESS_TOKEN:UID (repeatable).
        #[arg(long = "weibo-app", value_name = "KEY:SECRET:TOKEN:UID")]
        weibo_apps: Vec<String>,
        /// A TOML file of apps ([[wechat]] and [[weibo]] tables; see below).
        #[arg(long = "apps", value_name = "FILE")]
        apps: Option<PathBuf>,
    },
    /// Print the current TOTP code for a base32 secret (demo and scripts).
    TotpCode {
        #[arg(long)]
        secret: String,
    },
    /// Administer a running vault over its API: users, tools, accounts, checkouts, audit.
    Admin(admin::AdminArgs),
    /// The audit log: verify, checkpoint, export, prune.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Write an encrypted, consistent snapshot of the store to FILE (safe while serving).
    Backup {
        /// The backup file to create (mode 0600; never overwritten).
        file: PathBuf,
    },
    /// Restore a backup into an empty data dir, verifying the audit chain and every secret.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The new data dir: must be empty or absent.
        #[arg(long)]
        data_dir: PathBuf,
        /// The root key file that was current when the backup was made (default: the
        /// configured one). It is copied into the new data dir.
        #[arg(long)]
        root_key: Option<PathBuf>,
        /// Sealed mode: the seal file that was in force when the backup was made (default: the
        /// configured data dir's `seal.json`; after `keys rotate-root`, the `seal.retired-*.json`
        /// it kept). The shares on standard input are that split's. It is copied into the new
        /// data dir.
        #[arg(long, conflicts_with = "root_key")]
        seal_file: Option<PathBuf>,
    },
    /// A new vault's second admin, confirmed by the root key holder on the server.
    Bootstrap {
        #[command(subcommand)]
        command: bootstrap::BootstrapCommand,
    },
    /// Access policies.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
}

/// Logging as the configuration says (mediavault-core's telemetry does it).
pub fn init_logging(config: &Config) {
    crate::telemetry::init_logging(config);
}

/// Runs one subcommand. Only the commands that open the store read the configuration file, so
/// `policy check DIR`, `certs dev`, `totp-code` and the demo work without one.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { config, command } = cli;
    let configured = || -> anyhow::Result<Arc<Config>> {
        let config = Arc::new(Config::load(config.as_deref())?);
        init_logging(&config);
        Ok(config)
    };
    match command {
        Command::Policy { command } => policy::run(command, configured),
        Command::Certs { command } => certs::run(command),
        #[cfg(feature = "demo")]
        Command::Demo { port } => {
            init_logging(&Config::default());
            demo::run(port).await
        }
        #[cfg(feature = "demo")]
        Command::FakePlatforms {
            listen,
            wechat_apps,
            weibo_apps,
            apps,
        } => {
            init_logging(&Config::default());
            fake_platforms::run(listen, wechat_apps, weibo_apps, apps).await
        }
        #[cfg(feature = "demo")]
        Command::Bench(args) => bench::run(args).await,
        Command::TotpCode { secret } => totp_code::run(&secret),
        Command::Admin(args) => admin::run(args).await,
        Command::Init {
            admin,
            display_name,
            password_stdin,
            json,
            key_shares,
            key_threshold,
            custodians,
        } => {
            let split = match (key_shares, key_threshold) {
                (Some(n), Some(t)) => Some(
                    crate::vault::seal::Split::new(n, t, custodians)
                        .map_err(|e| anyhow::anyhow!(e))?,
                ),
                _ => None,
            };
            init::run(
                configured()?,
                admin,
                display_name,
                password_stdin,
                json,
                split,
            )
            .await
        }
        Command::Unseal(args) => unseal::run(args).await,
        Command::Rekey { command } => rekey::run(&*configured()?, command).await,
        Command::Serve => serve::run(configured()?).await,
        Command::Keys { command } => {
            let config = configured()?;
            keys::run(&config, command).await
        }
        Command::Audit { command } => {
            let config = configured()?;
            audit::run(&config, command).await
        }
        Command::Bootstrap { command } => bootstrap::run(configured()?, command).await,
        Command::Backup { file } => backup::run(&*configured()?, &file).await,
        Command::Restore {
            file,
            data_dir,
            root_key,
            seal_file,
        } => {
            restore::run(
                &*configured()?,
                &file,
                &data_dir,
                root_key.as_deref(),
                seal_file.as_deref(),
            )
            .await
        }
    }
}
