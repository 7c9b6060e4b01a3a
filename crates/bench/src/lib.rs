//! mediavault-bench: `mediavault bench`: the vault, started from this binary as a process of its own, on plain HTTP
//! at 127.0.0.1 with a temporary data dir (removed on every way out) and rate limits raised; the
//! fake platforms and a keep-alive load generator run in this process. Every judged figure is a
//! ratio to a baseline taken in the same run, since the machines it runs on are shared and noisy.
//! Only in builds with the `demo` feature.
//!
//! Here: the arguments, the temporary vault and its process, and the order of the run. The store is
//! seeded in `seed`, the load is generated in `load`, and the figures are judged in `report`.

mod load;
mod report;
mod sched;
mod seed;

// The core's modules under the paths the bench names them by.
pub(crate) use mediavault_core::{Clock, Vault, actor, audit, config, crypto, identity};

pub use report::{Report, Scenario, Target, table};
pub use sched::{Scheduling, ThreadGroup};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::config::Config;
use load::{get_ok, load_client};
use mediavault_fake_platforms::{FakeConfig, FakePlatforms};

const ACCOUNT: &str = "wechat-bench";
const APP_ID: &str = "wxb3e4n5c6h7m8a9r0";
const TOOL: &str = "bench-tool";

/// What `mediavault bench` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds each load scenario runs (after a short warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Distinct operators for the TOTP checkout scenario (each uses its current code once).
    #[arg(long, default_value_t = 500)]
    pub operators: usize,
    /// Audit entries in the log before it is verified.
    #[arg(long, default_value_t = 1_000_000)]
    pub audit_entries: u64,
    /// Run the vault under test on PostgreSQL: the URL of an empty database of its own (the
    /// bench creates its schema there and leaves it; drop the database afterwards). Without it,
    /// SQLite in the temporary data dir.
    #[arg(long, value_name = "postgres://…")]
    pub database_url: Option<String>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Removes the temporary data dir when dropped: on success, on error and on ctrl-c alike.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Resident memory of the process `pid`, in MiB (0 where /proc cannot tell).
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (user and system, all threads) the process `pid` has used so far; `None` where
/// /proc cannot tell. The kernel counts it in USER_HZ ticks, fixed at 100 a second in Linux's
/// user-space ABI on every architecture this is built for, so a tick is 10 ms: over a scenario
/// of seconds at a core or so, well under 1 %.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    // Field 3 (the state) is then the first; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime).saturating_mul(10)))
}

fn random_word(bytes: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; bytes];
    crate::crypto::random_bytes(&mut b)?;
    Ok(hex::encode(b))
}

/// Shows what runs, on stderr, while the table waits for the end.
struct Progress {
    quiet: bool,
}

impl Progress {
    fn line(&self, text: &str) {
        if !self.quiet {
            use std::io::Write;
            let mut e = std::io::stderr();
            let _ = write!(e, "\r\x1b[2K{text}");
            let _ = e.flush();
        }
    }

    fn done(&self) {
        self.line("");
    }
}

/// Runs the benchmark until it ends or ctrl-c; the data dir goes either way.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.connections == 0 || !args.duration.is_finite() || args.duration <= 0.0 {
        bail!("--connections and --duration must be positive");
    }
    let tmp = TempDir(std::env::temp_dir().join(format!("mediavault-bench-{}", random_word(6)?)));
    let result = tokio::select! {
        r = bench(&args, &tmp.0) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    drop(tmp);
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

async fn bench(args: &BenchArgs, tmp: &Path) -> anyhow::Result<Report> {
    let progress = Progress { quiet: false };
    let duration = Duration::from_secs_f64(args.duration);
    mediavault_http::serve::install_crypto_provider();

    progress.line("preparing: fake platforms, data dir, policies");
    let fake = FakePlatforms::new(FakeConfig::default());
    let fake_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let fake_addr = fake_listener.local_addr()?;
    tokio::spawn(fake.clone().serve(fake_listener));
    let app_secret = random_word(16)?;
    fake.add_wechat_app(APP_ID, &app_secret);

    // One configuration file for both sides: this process prepares the data dir with it, and the
    // vault under test is started from it as a process of its own, so that its resident memory
    // and start-up are its own (not the load generator's or the fakes').
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.port()
    };
    std::fs::create_dir_all(tmp.join("policies").join("playbooks"))?;
    std::fs::write(
        tmp.join("policies").join(format!("{ACCOUNT}.toml")),
        seed::policy(),
    )?;
    let config_file = tmp.join("mediavault.toml");
    std::fs::write(
        &config_file,
        config_text(
            tmp,
            port,
            &fake_addr.to_string(),
            args.connections,
            args.database_url.as_deref(),
        )?,
    )?;
    let config = Arc::new(Config::load_with_env(Some(&config_file), &[])?);
    mediavault_core::telemetry::init_logging(&config);
    let clock = Clock::system();

    let vault = Arc::new(Vault::create(Arc::clone(&config), clock.clone()).await?);
    let seeded = seed::populate(&vault, args, &app_secret, &progress).await?;
    vault.close().await;
    drop(vault);

    // 6b. Start-up: a new process opens the store from disk, serves, first answer.
    progress.line("start-up");
    let probe = load_client()?;
    let base = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    // No allocator setting in the environment: the binary chooses its allocator itself.
    let mut server = vault_process(&config_file, &["serve"])
        .env_remove("MALLOC_ARENA_MAX")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the vault under test")?;
    while !get_ok(&probe, &format!("{base}/healthz")).await {
        if let Some(status) = server.try_wait()? {
            bail!("the vault under test exited at start-up: {status}");
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("the vault did not answer /healthz within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let startup = t0.elapsed();
    let pid = server
        .id()
        .ok_or_else(|| anyhow!("the vault under test has no process id"))?;
    let rss_idle = rss_mib(pid);

    let outcome = load::scenarios(
        args,
        &progress,
        duration,
        &base,
        &fake_addr.to_string(),
        &app_secret,
        pid,
        &config_file,
        &seeded.client_key,
        &clock,
        (&seeded.auditor_password, &seeded.auditor_seed),
        &seeded.publisher,
        seeded.operators,
        &fake,
    )
    .await;
    progress.done();
    let _ = server.kill().await;
    let (scenarios, side_by_side, rss_after) = outcome?;
    Ok(report::build(
        args,
        scenarios,
        side_by_side,
        startup,
        rss_idle,
        rss_after,
    ))
}

/// This binary with the benchmark's configuration file, and without any `MEDIAVAULT_*` setting
/// of the caller's environment (the file alone describes the vault under test).
fn vault_process(config_file: &Path, args: &[&str]) -> tokio::process::Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("mediavault"));
    let mut cmd = tokio::process::Command::new(exe);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MEDIAVAULT_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("--config")
        .arg(config_file)
        .args(args)
        .stdin(std::process::Stdio::null());
    cmd
}

/// The vault under test: plain HTTP on loopback, the fakes as its platforms, limits raised.
fn config_text(
    tmp: &Path,
    port: u16,
    fake_addr: &str,
    connections: usize,
    database_url: Option<&str>,
) -> anyhow::Result<String> {
    let defaults = Config::default();
    let path = |p: PathBuf| toml::Value::String(p.to_string_lossy().into_owned());
    let int = |v: u64| toml::Value::Integer(i64::try_from(v).unwrap_or(i64::MAX));
    let mut root = toml::Table::new();
    root.insert("data_dir".into(), path(tmp.join("data")));
    root.insert("policies_dir".into(), path(tmp.join("policies")));
    root.insert("listen".into(), format!("127.0.0.1:{port}").into());
    let mut table = |name: &str, pairs: Vec<(&str, toml::Value)>| {
        let t: toml::Table = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        root.insert(name.to_owned(), toml::Value::Table(t));
    };
    table("tls", vec![("plain_http", true.into())]);
    if let Some(url) = database_url {
        table("database", vec![("url", url.into())]);
    }
    table(
        "platforms",
        vec![
            ("wechat_base_url", format!("http://{fake_addr}").into()),
            ("weibo_base_url", format!("http://{fake_addr}").into()),
        ],
    );
    table(
        "limits",
        vec![
            ("request_timeout_seconds", int(600)),
            (
                "idle_timeout_seconds",
                int(defaults.limits.idle_timeout_seconds.max(601)),
            ),
            (
                "max_connections",
                int(defaults.limits.max_connections.max(connections * 2 + 16) as u64),
            ),
        ],
    );
    let raised = [
        "login_per_minute",
        "login_burst",
        "checkout_per_minute",
        "checkout_burst",
        "token_per_second",
        "token_burst",
        "general_per_second",
        "general_burst",
    ];
    table(
        "rate_limits",
        raised.iter().map(|k| (*k, int(10_000_000))).collect(),
    );
    table("log", vec![("level", "warn".into())]);
    Ok(toml::to_string(&root)?)
}
