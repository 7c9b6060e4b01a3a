//! `mediavault bench`: the vault, started from this binary as a process of its own, on plain HTTP
//! at 127.0.0.1 with a temporary data dir (removed on every way out) and rate limits raised; the
//! fake platforms and a keep-alive load generator run in this process. Every judged figure is a
//! ratio to a baseline taken in the same run, since the machines it runs on are shared and noisy.
//! Only in builds with the `demo` feature.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use serde_json::json;

use crate::actor::Actor;
use crate::audit::{NewEntry, Outcome};
use crate::config::Config;
use crate::crypto::{SecretBytes, SecretString};
use crate::identity::totp;
use crate::identity::users::NewUserInput;
use crate::platforms::fake::{FakeConfig, FakePlatforms};
use crate::{Clock, Vault};

const ACCOUNT: &str = "wechat-bench";
const APP_ID: &str = "wxb3e4n5c6h7m8a9r0";
const TOOL: &str = "bench-tool";
const DRAFT: &str = r#"{"articles":[{"title":"bench","content":"<p>bench</p>"}]}"#;

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
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One measured scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    /// Requests (or, for verification, entries) per second.
    pub per_second: f64,
    pub unit: &'static str,
    pub count: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub connections: usize,
    pub duration_seconds: f64,
    pub scenarios: Vec<Scenario>,
    pub ratio_token_to_healthz: f64,
    pub ratio_proxy_to_direct: f64,
    pub startup_ms: f64,
    pub rss_idle_mib: f64,
    pub rss_after_load_mib: f64,
    pub targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub what: &'static str,
    pub goal: String,
    pub measured: String,
    pub met: bool,
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

fn random_word(bytes: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; bytes];
    crate::crypto::random_bytes(&mut b)?;
    Ok(hex::encode(b))
}

fn policy() -> String {
    format!(
        "# Benchmark policy: loopback only, any hour, not exclusive (many operators at once).\n\
         account = \"{ACCOUNT}\"\nexclusive = false\nallowed_networks = [\"127.0.0.0/8\", \"::1/128\"]\n\
         allowed_calls = [\"POST cgi-bin/draft/add\"]\n\n[who]\nroles = [\"publisher\"]\nclients = [\"{TOOL}\"]\n\n\
         [levels.general]\napprovals = 0\n"
    )
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

fn percentile(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map(|us| f64::from(*us) / 1000.0)
}

type MakeRequest = Arc<dyn Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync>;

fn load_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// `connections` workers, one keep-alive connection each, send requests back to back for the
/// warm-up and then `duration`; only the latter is counted.
async fn run_load(
    progress: &Progress,
    name: &str,
    connections: usize,
    duration: Duration,
    expect: u16,
    make: MakeRequest,
) -> anyhow::Result<Scenario> {
    let warm = (duration / 5).min(Duration::from_secs(1));
    let start = Instant::now();
    let measure_from = start + warm;
    let end = measure_from + duration;
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..connections {
        let make = Arc::clone(&make);
        let done = Arc::clone(&done);
        let client = load_client()?;
        workers.spawn(async move {
            let mut lat = Vec::with_capacity(16 * 1024);
            let mut errors = 0u64;
            let mut i = w as u64;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let ok = match make(&client, i).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.bytes().await.is_ok() && status == expect
                    }
                    Err(_) => false,
                };
                i += connections as u64;
                if t >= measure_from {
                    lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    if !ok {
                        errors += 1;
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (lat, errors)
        });
    }
    let ticker = {
        let done = Arc::clone(&done);
        let quiet = progress.quiet;
        let name = name.to_owned();
        tokio::spawn(async move {
            let p = Progress { quiet };
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let el = start.elapsed().as_secs_f64();
                p.line(&format!(
                    "{name}: {:.1}/{:.1} s, {} requests",
                    el,
                    (warm + duration).as_secs_f64(),
                    done.load(Ordering::Relaxed)
                ));
            }
        })
    };
    let mut lat = Vec::new();
    let mut errors = 0;
    while let Some(r) = workers.join_next().await {
        let (l, e) = r?;
        lat.extend(l);
        errors += e;
    }
    ticker.abort();
    let measured = Instant::now().saturating_duration_since(measure_from);
    lat.sort_unstable();
    Ok(Scenario {
        name: name.to_owned(),
        per_second: lat.len() as f64 / measured.as_secs_f64().max(1e-9),
        unit: "req/s",
        count: lat.len() as u64,
        errors,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
    })
}

struct Operator {
    name: String,
    seed: SecretBytes,
}

/// Creates `n` publishers through the people service, a few at a time (each hashes a password).
async fn make_operators(
    vault: &Arc<Vault>,
    prefix: &str,
    n: usize,
    progress: &Progress,
) -> anyhow::Result<Vec<Operator>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let vault = Arc::clone(vault);
        let next = Arc::clone(&next);
        let prefix = prefix.to_owned();
        set.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let name = format!("{prefix}{i:04}");
                let e = vault
                    .people()
                    .create(
                        &Actor::system(),
                        NewUserInput {
                            username: name.clone(),
                            display_name: name.clone(),
                            roles: vec!["publisher".into()],
                            password: SecretString::new(format!("bench-{}", random_word(8)?)),
                        },
                        None,
                    )
                    .await
                    .map_err(|e| anyhow!("creating operator {name}: {e}"))?;
                let seed = totp::seed_from_base32(e.totp_secret.expose())
                    .ok_or_else(|| anyhow!("enrolment secret of {name} is not base32"))?;
                out.push(Operator { name, seed });
            }
            anyhow::Ok(out)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        all.extend(r??);
        progress.line(&format!("preparing: {} of {n} operators", all.len()));
    }
    Ok(all)
}

/// One checkout by each operator with its current code, `connections` at a time.
async fn checkouts(
    progress: &Progress,
    base: &str,
    client_key: &str,
    clock: &Clock,
    operators: Arc<Vec<Operator>>,
    connections: usize,
) -> anyhow::Result<(Scenario, Option<String>)> {
    let next = Arc::new(AtomicUsize::new(0));
    // Each connection is opened (one /healthz) before the clock starts, as the other scenarios
    // warm up: the figure is checkouts, not TCP handshakes.
    let mut clients = Vec::new();
    for _ in 0..connections.min(operators.len()).max(1) {
        let client = load_client()?;
        get_ok(&client, &format!("{base}/healthz")).await;
        clients.push(client);
    }
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for client in clients {
        let (ops, next, clock) = (Arc::clone(&operators), Arc::clone(&next), clock.clone());
        let url = format!("{base}/api/v1/checkouts");
        let key = client_key.to_owned();
        set.spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut refusals = Vec::new();
            let mut token = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(op) = ops.get(i) else { break };
                let code = totp::code_at(&op.seed, clock.unix()).unwrap_or_default();
                let body = json!({"account": ACCOUNT, "operator": op.name, "totp": code,
                    "purpose": "benchmark", "level": "general"});
                let t = Instant::now();
                let r = client.post(&url).bearer_auth(&key).json(&body).send().await;
                match r {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        if token.is_none() {
                            token = v["token"].as_str().map(str::to_owned);
                        }
                    }
                    Ok(r) => {
                        errors += 1;
                        let status = r.status().as_u16();
                        let text = r.text().await.unwrap_or_default();
                        refusals.push(format!(
                            "{status} {}",
                            text.chars().take(160).collect::<String>()
                        ));
                    }
                    Err(e) => {
                        errors += 1;
                        refusals.push(e.to_string());
                    }
                }
                lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            (lat, errors, refusals, token)
        });
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut token = None;
    let mut refusals = Vec::new();
    while let Some(r) = set.join_next().await {
        let (l, e, f, t) = r?;
        lat.extend(l);
        errors += e;
        refusals.extend(f);
        token = token.or(t);
        progress.line(&format!(
            "checkouts: {} of {} answered",
            lat.len(),
            operators.len()
        ));
    }
    let elapsed = start.elapsed();
    if let Some(first) = refusals.first() {
        tracing::warn!(refused = refusals.len(), first = %first, "checkouts refused");
    }
    lat.sort_unstable();
    Ok((
        Scenario {
            name: format!("4 TOTP checkouts, {} operators", operators.len()),
            per_second: (lat.len() as u64 - errors) as f64 / elapsed.as_secs_f64().max(1e-9),
            unit: "req/s",
            count: lat.len() as u64,
            errors,
            p50_ms: percentile(&lat, 0.50),
            p99_ms: percentile(&lat, 0.99),
        },
        token,
    ))
}

/// Tops the log up to `target` entries with chained, signed entries in large transactions.
async fn seed_audit(vault: &Vault, target: u64, progress: &Progress) -> anyhow::Result<u64> {
    const CHUNK: usize = 20_000;
    let head = vault.store.audit_head().await?;
    let have = u64::try_from(head.seq).unwrap_or(0);
    let mut left = target.saturating_sub(have);
    let total = left;
    let template = NewEntry::system("bench.seed", ACCOUNT, Outcome::Success)
        .detail("note", "synthetic entry for the benchmark");
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let entries = vec![template.clone(); n];
        crate::audit::writer::append_bulk(
            &vault.store,
            &vault.keys.mac().audit,
            &vault.clock,
            &entries,
        )
        .await?;
        left -= n as u64;
        progress.line(&format!(
            "seeding the audit log: {} of {total} entries",
            total - left
        ));
    }
    Ok(total)
}

async fn get_ok(client: &reqwest::Client, url: &str) -> bool {
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
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
    crate::http::serve::install_crypto_provider();

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
        policy(),
    )?;
    let config_file = tmp.join("mediavault.toml");
    std::fs::write(
        &config_file,
        config_text(tmp, port, &fake_addr.to_string(), args.connections)?,
    )?;
    let config = Arc::new(Config::load_with_env(Some(&config_file), &[])?);
    crate::cli::init_logging(&config);
    let clock = Clock::system();

    let vault = Arc::new(Vault::create(Arc::clone(&config), clock.clone()).await?);
    let system = Actor::system();
    let input = serde_json::from_value(json!({"id": ACCOUNT, "platform": "wechat",
        "display_name": "基准测试公众号", "credential": {"app_id": APP_ID, "app_secret": app_secret}}))?;
    vault
        .accounts()
        .create(&system, input)
        .await
        .map_err(|e| anyhow!("account: {e}"))?;
    let (_, client_key) = vault
        .clients()
        .create(&system, TOOL, &[ACCOUNT.to_owned()], None)
        .await
        .map_err(|e| anyhow!("client: {e}"))?;
    let auditor_pw = format!("bench-{}", random_word(8)?);
    let auditor = vault
        .people()
        .create(
            &system,
            NewUserInput {
                username: "bench-auditor".into(),
                display_name: "bench auditor".into(),
                roles: vec!["auditor".into()],
                password: SecretString::new(auditor_pw.clone()),
            },
            None,
        )
        .await
        .map_err(|e| anyhow!("auditor: {e}"))?;
    let auditor_seed = totp::seed_from_base32(auditor.totp_secret.expose())
        .ok_or_else(|| anyhow!("auditor secret is not base32"))?;
    let publisher = make_operators(&vault, "bench-publisher-", 1, &progress).await?;
    let operators = Arc::new(make_operators(&vault, "bench-op-", args.operators, &progress).await?);
    // The log to verify in scenario 5, written before the vault starts so the load runs against
    // a store of that size.
    seed_audit(&vault, args.audit_entries, &progress).await?;
    vault.close().await;
    drop(vault);

    // 6b. Start-up: a new process opens the store from disk, serves, first answer.
    progress.line("start-up");
    let probe = load_client()?;
    let base = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    let mut server = vault_process(&config_file, &["serve"])
        // As the packaged systemd unit runs it (see packaging/mediavault.service).
        .env("MALLOC_ARENA_MAX", "2")
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

    let outcome = scenarios(
        args,
        &progress,
        duration,
        &base,
        &fake_addr.to_string(),
        &app_secret,
        pid,
        &config_file,
        &client_key,
        &clock,
        (&auditor_pw, &auditor_seed),
        &publisher,
        operators,
        &fake,
    )
    .await;
    progress.done();
    let _ = server.kill().await;
    let (scenarios, rss_after) = outcome?;
    Ok(report(args, scenarios, startup, rss_idle, rss_after))
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

#[allow(clippy::too_many_arguments)]
async fn scenarios(
    args: &BenchArgs,
    progress: &Progress,
    duration: Duration,
    base: &str,
    fake_addr: &str,
    app_secret: &str,
    pid: u32,
    config_file: &Path,
    client_key: &SecretString,
    clock: &Clock,
    auditor: (&str, &SecretBytes),
    publisher: &[Operator],
    operators: Arc<Vec<Operator>>,
    fake: &FakePlatforms,
) -> anyhow::Result<(Vec<Scenario>, f64)> {
    let conns = args.connections;
    let http = load_client()?;
    let mut out = Vec::new();

    // A token for scenarios 2 and 3, checked out by its own publisher.
    let op = publisher.first().ok_or_else(|| anyhow!("no publisher"))?;
    let code = totp::code_at(&op.seed, clock.unix()).unwrap_or_default();
    let r = http
        .post(format!("{base}/api/v1/checkouts"))
        .bearer_auth(client_key.expose())
        .json(
            &json!({"account": ACCOUNT, "operator": op.name, "totp": code,
            "purpose": "benchmark", "level": "general", "ttl_seconds": 3600}),
        )
        .send()
        .await?;
    let status = r.status();
    let v: serde_json::Value = r.json().await?;
    let token = v["token"]
        .as_str()
        .ok_or_else(|| anyhow!("checkout for the benchmark refused: {status} {v}"))?
        .to_owned();

    // 1. Baseline.
    let url = format!("{base}/healthz");
    out.push(
        run_load(
            progress,
            "1 GET /healthz (baseline)",
            conns,
            duration,
            200,
            Arc::new(move |c, _| c.get(&url)),
        )
        .await?,
    );
    // 2. Token introspection: authentication, policy, durable audit entry.
    let (url, t) = (format!("{base}/api/v1/token"), token.clone());
    out.push(
        run_load(
            progress,
            "2 GET /api/v1/token",
            conns,
            duration,
            200,
            Arc::new(move |c, _| c.get(&url).bearer_auth(&t)),
        )
        .await?,
    );
    // 3. A proxied draft/add, then the same call straight to the fake as its baseline.
    let (url, t) = (
        format!("{base}/api/v1/platform/{ACCOUNT}/cgi-bin/draft/add"),
        token.clone(),
    );
    out.push(
        run_load(
            progress,
            "3 proxied POST draft/add",
            conns,
            duration,
            200,
            Arc::new(move |c, _| {
                c.post(&url)
                    .bearer_auth(&t)
                    .header("content-type", "application/json")
                    .body(DRAFT)
            }),
        )
        .await?,
    );
    let v: serde_json::Value = http
        .post(format!("http://{fake_addr}/cgi-bin/stable_token"))
        .json(&json!({"grant_type": "client_credential", "appid": APP_ID, "secret": app_secret, "force_refresh": false}))
        .send()
        .await?
        .json()
        .await?;
    let platform_token = v["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("the fake gave no access token: {v}"))?
        .to_owned();
    let url = format!("http://{fake_addr}/cgi-bin/draft/add?access_token={platform_token}");
    out.push(
        run_load(
            progress,
            "3b POST draft/add straight to the fake",
            conns,
            duration,
            200,
            Arc::new(move |c, _| {
                c.post(&url)
                    .header("content-type", "application/json")
                    .body(DRAFT)
            }),
        )
        .await?,
    );
    fake.clear_calls();
    // 4. TOTP checkouts by distinct operators.
    let (s, _) = checkouts(progress, base, client_key.expose(), clock, operators, conns).await?;
    out.push(s);
    let rss_after = rss_mib(pid);

    // 5. Audit verification over the seeded log, through the API and the CLI.
    let code = totp::code_at(auditor.1, clock.unix()).unwrap_or_default();
    let v: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "bench-auditor", "password": auditor.0, "totp": code}))
        .send()
        .await?
        .json()
        .await?;
    let session = v["session_token"]
        .as_str()
        .ok_or_else(|| anyhow!("auditor login refused: {v}"))?
        .to_owned();
    progress.line("5 GET /api/v1/audit/verify");
    let t = Instant::now();
    let r = http
        .get(format!("{base}/api/v1/audit/verify"))
        .bearer_auth(&session)
        .send()
        .await?;
    let status = r.status();
    let v: serde_json::Value = r.json().await?;
    let el = t.elapsed();
    let checked = v["entries_checked"].as_u64().unwrap_or(0);
    if !status.is_success() || v["ok"] != json!(true) {
        bail!("audit verification through the API failed: {status} {v}");
    }
    out.push(Scenario {
        name: format!("5 GET /api/v1/audit/verify, {checked} entries"),
        per_second: checked as f64 / el.as_secs_f64().max(1e-9),
        unit: "entries/s",
        count: checked,
        errors: 0,
        p50_ms: Some(el.as_secs_f64() * 1000.0),
        p99_ms: None,
    });
    progress.line("5b mediavault audit verify");
    let t = Instant::now();
    let run = vault_process(config_file, &["audit", "verify"])
        .output()
        .await
        .context("running mediavault audit verify")?;
    let el = t.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap_or_default();
    if !run.status.success() || v["ok"] != json!(true) {
        bail!(
            "mediavault audit verify failed ({}): {}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let checked = v["entries_checked"].as_u64().unwrap_or(0);
    out.push(Scenario {
        name: format!("5b mediavault audit verify, {checked} entries"),
        per_second: checked as f64 / el.as_secs_f64().max(1e-9),
        unit: "entries/s",
        count: checked,
        errors: 0,
        p50_ms: Some(el.as_secs_f64() * 1000.0),
        p99_ms: None,
    });
    Ok((out, rss_after))
}

fn report(
    args: &BenchArgs,
    scenarios: Vec<Scenario>,
    startup: Duration,
    rss_idle: f64,
    rss_after: f64,
) -> Report {
    let rate = |prefix: &str| {
        scenarios
            .iter()
            .find(|s| s.name.starts_with(prefix))
            .map_or(0.0, |s| s.per_second)
    };
    let p99 = scenarios
        .iter()
        .find(|s| s.name.starts_with("2 "))
        .and_then(|s| s.p99_ms)
        .unwrap_or(f64::INFINITY);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let r2 = ratio(rate("2 "), rate("1 "));
    let r3 = ratio(rate("3 "), rate("3b "));
    let startup_ms = startup.as_secs_f64() * 1000.0;
    let t = |what, goal: &str, measured: String, met| Target {
        what,
        goal: goal.to_owned(),
        measured,
        met,
    };
    let targets = vec![
        t(
            "token introspection / healthz",
            ">= 0.50",
            format!("{r2:.2}"),
            r2 >= 0.5,
        ),
        t(
            "token introspection p99",
            "< 10 ms",
            format!("{p99:.1} ms"),
            p99 < 10.0,
        ),
        t(
            "proxied / direct draft/add",
            ">= 0.40",
            format!("{r3:.2}"),
            r3 >= 0.4,
        ),
        t(
            "TOTP checkouts",
            ">= 2000/s",
            format!("{:.0}/s", rate("4 ")),
            rate("4 ") >= 2000.0,
        ),
        t(
            "audit verify (API)",
            ">= 1,000,000 entries/s",
            format!("{:.0}/s", rate("5 ")),
            rate("5 ") >= 1e6,
        ),
        t(
            "audit verify (CLI)",
            ">= 1,000,000 entries/s",
            format!("{:.0}/s", rate("5b ")),
            rate("5b ") >= 1e6,
        ),
        t(
            "resident memory after load",
            "< 40 MiB",
            format!("{rss_after:.1} MiB"),
            rss_after < 40.0,
        ),
        t(
            "start-up to first answer",
            "< 200 ms",
            format!("{startup_ms:.1} ms"),
            startup_ms < 200.0,
        ),
    ];
    Report {
        connections: args.connections,
        duration_seconds: args.duration,
        scenarios,
        ratio_token_to_healthz: r2,
        ratio_proxy_to_direct: r3,
        startup_ms,
        rss_idle_mib: rss_idle,
        rss_after_load_mib: rss_after,
        targets,
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// The readable form of a report.
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "mediavault bench: {} connections, {:.1} s per load scenario, plain HTTP on loopback\n\n",
        r.connections, r.duration_seconds
    );
    s.push_str(&format!(
        "{:<46} {:>12} {:>10} {:>10} {:>9} {:>8}\n",
        "scenario", "rate", "p50 ms", "p99 ms", "count", "errors"
    ));
    for sc in &r.scenarios {
        let rate = format!("{:.0} {}", sc.per_second, sc.unit.trim_end_matches("/s"));
        s.push_str(&format!(
            "{:<46} {:>12} {:>10} {:>10} {:>9} {:>8}\n",
            sc.name,
            rate,
            ms(sc.p50_ms),
            ms(sc.p99_ms),
            sc.count,
            sc.errors
        ));
    }
    s.push_str("(rates are per second; for 5 and 5b p50 is the whole run's time, 5b including the process start)\n\n");
    s.push_str(&format!(
        "start-up {:.1} ms (process start to first answer); resident memory of the vault process {:.1} MiB idle, {:.1} MiB after load\n\n",
        r.startup_ms, r.rss_idle_mib, r.rss_after_load_mib
    ));
    s.push_str(&format!(
        "{:<32} {:>24} {:>14}  met\n",
        "target", "goal", "measured"
    ));
    for t in &r.targets {
        s.push_str(&format!(
            "{:<32} {:>24} {:>14}  {}\n",
            t.what,
            t.goal,
            t.measured,
            if t.met { "yes" } else { "NO" }
        ));
    }
    s
}
