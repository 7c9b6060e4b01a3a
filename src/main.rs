//! The `mediavault` command: a thin CLI over the library.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use mediavault::audit::cli::AuditCommand;
use mediavault::config::{Config, LogFormat};
use mediavault::crypto::SecretString;
use mediavault::identity::users::NewUserInput;
use mediavault::{Clock, Vault};

#[derive(Parser)]
#[command(
    name = "mediavault",
    version,
    about = "Hardened credential vault for official new-media accounts"
)]
struct Cli {
    /// Configuration file (TOML). Without it the embedded defaults apply.
    #[arg(long, global = true, env = "MEDIAVAULT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        command: CertsCommand,
    },
    /// Keyring and root key rotation.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Try it out: the vault, the fake platforms, seeded data and a walkthrough.
    Demo {
        /// Port for the vault on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Serve the fake WeChat and Weibo APIs alone (tests, local development).
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
        command: AuditCommand,
    },
    /// Access policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
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

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a keyring term; new secrets are sealed under it. Old terms keep opening old records.
    Rotate {
        /// Also re-seal every stored secret under the new term.
        #[arg(long)]
        rewrap: bool,
    },
    /// Re-wrap the keyring under a new root key; the old key file stops opening the store.
    RotateRoot,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy directory offline.
    Check { dir: PathBuf },
}

fn init_logging(config: &Config) {
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

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Policy {
        command: PolicyCommand::Check { dir },
    } = &cli.command
    {
        let set =
            mediavault::policy::PolicySet::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "{}: {} account policies, all valid",
            dir.display(),
            set.len()
        );
        return Ok(());
    }
    if let Command::Certs {
        command: CertsCommand::Dev { dir, host, force },
    } = &cli.command
    {
        let out = mediavault::certs::write_dev_certs(dir, host, *force)?;
        println!(
            "wrote {} (CA: trust this in clients), {} and {}",
            out.ca.display(),
            out.cert.display(),
            out.key.display()
        );
        return Ok(());
    }
    match &cli.command {
        Command::Demo { port } => {
            init_logging(&Config::default());
            return mediavault::demo::run(*port).await;
        }
        Command::FakePlatforms { listen } => {
            init_logging(&Config::default());
            let fake = mediavault::platforms::fake::FakePlatforms::new(Default::default());
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!(
                "fake WeChat and Weibo APIs on http://{}",
                listener.local_addr()?
            );
            return Ok(fake.serve(listener).await?);
        }
        Command::TotpCode { secret } => {
            let seed = mediavault::identity::totp::seed_from_base32(secret)
                .context("not a base32 TOTP secret")?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            println!(
                "{}",
                mediavault::identity::totp::code_at(&seed, now)
                    .context("cannot compute the code")?
            );
            return Ok(());
        }
        _ => {}
    }
    let config = Arc::new(Config::load(cli.config.as_deref())?);
    init_logging(&config);
    match cli.command {
        Command::Init {
            admin,
            display_name,
            password_stdin,
            json,
        } => init(config, admin, display_name, password_stdin, json).await,
        Command::Serve => serve(config).await,
        Command::Keys {
            command: KeysCommand::Rotate { rewrap },
        } => mediavault::vault::keys::rotate(&config, rewrap).await,
        Command::Keys {
            command: KeysCommand::RotateRoot,
        } => mediavault::vault::keys::rotate_root(&config).await,
        Command::Audit { command } => mediavault::audit::cli::run(&config, command).await,
        Command::Policy { .. }
        | Command::Certs { .. }
        | Command::Demo { .. }
        | Command::FakePlatforms { .. }
        | Command::TotpCode { .. } => Ok(()),
    }
}

fn read_password(from_stdin: bool) -> anyhow::Result<SecretString> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let pw = SecretString::new(line.trim_end_matches(['\r', '\n']).to_owned());
        zeroize::Zeroize::zeroize(&mut line);
        return Ok(pw);
    }
    let first = SecretString::new(rpassword::prompt_password("admin password: ")?);
    let second = SecretString::new(rpassword::prompt_password("again: ")?);
    if first != second {
        bail!("the passwords differ; nothing was created");
    }
    Ok(first)
}

async fn init(
    config: Arc<Config>,
    admin: String,
    display_name: String,
    password_stdin: bool,
    json: bool,
) -> anyhow::Result<()> {
    // Everything the user typed is checked before anything is created on disk.
    mediavault::identity::Username::parse(&admin).map_err(|e| anyhow::anyhow!("--admin: {e}"))?;
    if config.database_path().exists() {
        bail!(
            "a store already exists at {}; init changes nothing",
            config.database_path().display()
        );
    }
    let password = read_password(password_stdin)?;
    mediavault::identity::passwords::check_policy(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let vault = Vault::create(Arc::clone(&config), Clock::system()).await?;
    let enrolment = vault
        .create_user(NewUserInput {
            username: admin.clone(),
            display_name,
            roles: vec!["admin".into()],
            password,
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    vault.store.close().await;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "username": admin,
                "totp_uri": enrolment.totp_uri.expose(),
                "totp_secret": enrolment.totp_secret.expose(),
                "database": config.database_path(),
                "root_key_file": config.root_key_path(),
            })
        );
        return Ok(());
    }
    println!("Created the store at {}", config.database_path().display());
    println!(
        "Root key: {} (mode 0600; back it up offline, it opens everything)",
        config.root_key_path().display()
    );
    println!();
    println!("TOTP enrolment for {admin} (shown once; scan it with an authenticator app):");
    if let Some(qr) = mediavault::identity::totp::qr_terminal(enrolment.totp_uri.expose()) {
        println!("{qr}");
    }
    println!("  {}", enrolment.totp_uri.expose());
    println!("  secret: {}", enrolment.totp_secret.expose());
    Ok(())
}

async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    let running = mediavault::start(Arc::clone(&config), Clock::system())
        .await
        .context("cannot start")?;
    tracing::info!(addr = %running.addr, tls = running.tls, "mediavault serving");
    println!("mediavault serving on {}", running.base_url());
    let vault = Arc::clone(&running.vault);
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        // The same reload tests run in-process through `Running::reload`; it logs each result.
        while hup.recv().await.is_some() {
            mediavault::app::reload(&vault).await;
        }
    });
    let handle = running.handle();
    tokio::spawn(async move {
        mediavault::http::serve::shutdown_signal().await;
        tracing::info!("shutting down");
        handle.graceful_shutdown(Some(mediavault::http::serve::GRACE));
    });
    running.wait().await
}
