//! The load: a keep-alive load generator, the TOTP checkouts by distinct operators, and the
//! scenarios that run them against the vault under test (and the fake platform as a baseline).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::json;

use super::report::{CpuPerRequest, Interleaved};
use super::sched::Snapshot;
use super::seed::Operator;
use super::{ACCOUNT, APP_ID, BenchArgs, Progress, Scenario, cpu_time, rss_mib, vault_process};
use crate::Clock;
use crate::crypto::{SecretBytes, SecretString};
use crate::identity::totp;
use mediavault_fake_platforms::FakePlatforms;

const DRAFT: &str = r#"{"articles":[{"title":"bench","content":"<p>bench</p>"}]}"#;

fn percentile(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map(|us| f64::from(*us) / 1000.0)
}

type MakeRequest = Arc<dyn Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync>;

/// A draft/add through the vault's proxy with `token`.
fn proxied_draft(base: &str, token: &str) -> MakeRequest {
    let (url, token) = (
        format!("{base}/api/v1/platform/{ACCOUNT}/cgi-bin/draft/add"),
        token.to_owned(),
    );
    Arc::new(move |c, _| {
        c.post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(DRAFT)
    })
}

/// The same draft/add straight to the fake platform, with its own access token.
fn direct_draft(fake_addr: &str, platform_token: &str) -> MakeRequest {
    let url = format!("http://{fake_addr}/cgi-bin/draft/add?access_token={platform_token}");
    Arc::new(move |c, _| {
        c.post(&url)
            .header("content-type", "application/json")
            .body(DRAFT)
    })
}

pub(super) fn load_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// `connections` workers, one keep-alive connection each, send requests back to back for the
/// warm-up and then `duration`; only the latter is counted, and the CPU time the `vault` process
/// and this one spent in it is divided among the requests counted.
#[allow(clippy::too_many_arguments)]
async fn run_load(
    progress: &Progress,
    name: &str,
    vault: u32,
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
    // Both processes' CPU time and their threads' scheduling at the start of the measured part,
    // read when it starts.
    let cpu_from = tokio::spawn(async move {
        tokio::time::sleep_until(tokio::time::Instant::from_std(measure_from)).await;
        (
            cpu_time(vault),
            cpu_time(std::process::id()),
            Snapshot::take(vault),
        )
    });
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
    let (vault_to, bench_to, sched_to) = (
        cpu_time(vault),
        cpu_time(std::process::id()),
        Snapshot::take(vault),
    );
    let (vault_from, bench_from, sched_from) = cpu_from.await?;
    let per_request = |from: Option<Duration>, to: Option<Duration>| {
        let spent = to?.checked_sub(from?)?;
        (!lat.is_empty()).then(|| spent.as_secs_f64() * 1e6 / lat.len() as f64)
    };
    let cpu_us = per_request(vault_from, vault_to)
        .zip(per_request(bench_from, bench_to))
        .map(|(vault, bench)| CpuPerRequest { vault, bench });
    lat.sort_unstable();
    Ok(Scenario {
        name: name.to_owned(),
        per_second: lat.len() as f64 / measured.as_secs_f64().max(1e-9),
        unit: "req/s",
        count: lat.len() as u64,
        errors,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        cpu_us,
        scheduling: sched_from.until(&sched_to),
    })
}

/// A path and its baseline again, side by side: alternating slices of each (of a second, or the
/// scenario's duration if shorter; as many as make up that duration, at least two; the first of
/// each pair taking turns), so that both see the same machine. On a shared machine either rate
/// moves by a fifth or more within a minute, and the scenarios above run a path and its baseline
/// up to a minute apart; their ratio moved with that.
#[allow(clippy::too_many_arguments)]
async fn interleaved(
    progress: &Progress,
    what: &'static str,
    vault: u32,
    connections: usize,
    duration: Duration,
    (path_name, path): (&str, &MakeRequest),
    (baseline_name, baseline): (&str, &MakeRequest),
) -> anyhow::Result<Interleaved> {
    let slice = duration.min(Duration::from_secs(1));
    let slices = ((duration.as_secs_f64() / slice.as_secs_f64().max(1e-3)).round() as usize).max(2);
    let mut sum = Interleaved {
        what,
        slices,
        slice_seconds: slice.as_secs_f64(),
        path_count: 0,
        path_seconds: 0.0,
        baseline_count: 0,
        baseline_seconds: 0.0,
        errors: 0,
        slice_ratios: Vec::with_capacity(slices),
        path_cpu_us: None,
        baseline_cpu_us: None,
    };
    // CPU time in all: (vault µs, load µs), None once a slice could not tell.
    let mut path_cpu = Some((0.0, 0.0));
    let mut baseline_cpu = Some((0.0, 0.0));
    let add = |sum: Option<(f64, f64)>, s: &Scenario| {
        let (v, b) = sum?;
        let c = s.cpu_us?;
        Some((v + c.vault * s.count as f64, b + c.bench * s.count as f64))
    };
    for i in 0..slices {
        let label = |name: &str| format!("{name}, slice {} of {slices} beside its baseline", i + 1);
        let run = |name: String, make: &MakeRequest| {
            let make = Arc::clone(make);
            async move { run_load(progress, &name, vault, connections, slice, 200, make).await }
        };
        let (p, b) = if i % 2 == 0 {
            let b = run(label(baseline_name), baseline).await?;
            (run(label(path_name), path).await?, b)
        } else {
            let p = run(label(path_name), path).await?;
            (p, run(label(baseline_name), baseline).await?)
        };
        let seconds = |s: &Scenario| {
            if s.per_second > 0.0 {
                s.count as f64 / s.per_second
            } else {
                0.0
            }
        };
        sum.path_count += p.count;
        sum.path_seconds += seconds(&p);
        sum.baseline_count += b.count;
        sum.baseline_seconds += seconds(&b);
        sum.errors += p.errors + b.errors;
        path_cpu = add(path_cpu, &p);
        baseline_cpu = add(baseline_cpu, &b);
        if b.per_second > 0.0 {
            sum.slice_ratios.push(p.per_second / b.per_second);
        }
    }
    let per_request = |total: Option<(f64, f64)>, count: u64| {
        let (vault, bench) = total?;
        (count > 0).then(|| CpuPerRequest {
            vault: vault / count as f64,
            bench: bench / count as f64,
        })
    };
    sum.path_cpu_us = per_request(path_cpu, sum.path_count);
    sum.baseline_cpu_us = per_request(baseline_cpu, sum.baseline_count);
    Ok(sum)
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
            cpu_us: None,
            scheduling: None,
        },
        token,
    ))
}

pub(super) async fn get_ok(client: &reqwest::Client, url: &str) -> bool {
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn scenarios(
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
) -> anyhow::Result<(Vec<Scenario>, Vec<Interleaved>, f64)> {
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
    let healthz: MakeRequest = Arc::new(move |c, _| c.get(&url));
    out.push(
        run_load(
            progress,
            "1 GET /healthz (baseline)",
            pid,
            conns,
            duration,
            200,
            Arc::clone(&healthz),
        )
        .await?,
    );
    // 2. Token introspection: authentication, policy, durable audit entry.
    let (url, t) = (format!("{base}/api/v1/token"), token.clone());
    let introspect: MakeRequest = Arc::new(move |c, _| c.get(&url).bearer_auth(&t));
    out.push(
        run_load(
            progress,
            "2 GET /api/v1/token",
            pid,
            conns,
            duration,
            200,
            Arc::clone(&introspect),
        )
        .await?,
    );
    // 3. A proxied draft/add, then the same call straight to the fake as its baseline.
    out.push(
        run_load(
            progress,
            "3 proxied POST draft/add",
            pid,
            conns,
            duration,
            200,
            proxied_draft(base, &token),
        )
        .await?,
    );
    let proxied = proxied_draft(base, &token);
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
    out.push(
        run_load(
            progress,
            "3b POST draft/add straight to the fake",
            pid,
            conns,
            duration,
            200,
            direct_draft(fake_addr, &platform_token),
        )
        .await?,
    );
    // 1-3b again for the two ratios, each path beside its baseline in alternating slices.
    let side_by_side = vec![
        interleaved(
            progress,
            "token introspection / healthz",
            pid,
            conns,
            duration,
            ("2 GET /api/v1/token", &introspect),
            ("1 GET /healthz", &healthz),
        )
        .await?,
        interleaved(
            progress,
            "proxied / direct draft/add",
            pid,
            conns,
            duration,
            ("3 proxied POST draft/add", &proxied),
            (
                "3b POST draft/add straight to the fake",
                &direct_draft(fake_addr, &platform_token),
            ),
        )
        .await?,
    ];
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
        cpu_us: None,
        scheduling: None,
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
        cpu_us: None,
        scheduling: None,
    });
    // 6. The audit review's filtered views on the seeded log, through the API and the console.
    out.extend(audit_filters(progress, &http, base, &session, args.operators, clock).await?);

    // 7. Light load, as a tool sees it: the fake answers each call after 50 ms, as a real
    // platform does, and a proxied draft/add is set beside the same call straight to the fake,
    // at 1 and 8 connections. What the proxy adds is the difference of the two.
    fake.set_response_delay(PLATFORM_DELAY);
    for conns in [1, 8] {
        out.push(
            run_load(
                progress,
                &format!("7 proxied draft/add, {conns} conn, platform 50 ms"),
                pid,
                conns,
                duration,
                200,
                proxied_draft(base, &token),
            )
            .await?,
        );
        out.push(
            run_load(
                progress,
                &format!("7b direct draft/add, {conns} conn, platform 50 ms"),
                pid,
                conns,
                duration,
                200,
                direct_draft(fake_addr, &platform_token),
            )
            .await?,
        );
    }
    fake.set_response_delay(Duration::ZERO);
    Ok((out, side_by_side, rss_after))
}

/// How long the fake platform takes to answer in scenario 7.
const PLATFORM_DELAY: Duration = Duration::from_millis(50);

/// Queries of each filtered view (one auditor paging: one at a time).
const FILTER_QUERIES: usize = 100;

/// The audit review's filtered views on the seeded log (scenario 6), newest first, a page of 50:
/// by person, action, account, outcome and time range (each value drawn in turn from what the
/// seeding wrote), a person's second page, and the console's page filtered by person.
async fn audit_filters(
    progress: &Progress,
    http: &reqwest::Client,
    base: &str,
    session: &str,
    people: usize,
    clock: &Clock,
) -> anyhow::Result<Vec<Scenario>> {
    use super::seed::{ACTIONS, SEEDED_ACCOUNTS, SEEDED_SPAN_MS, seeded_account, seeded_person};
    const DAY_MS: i64 = 86_400_000;
    let now_ms = clock.unix().saturating_mul(1000);
    let start_ms = now_ms - SEEDED_SPAN_MS;
    let time = |ms: i64| crate::audit::rfc3339_ms(ms);
    let outcomes = ["denied", "error", "rate_limited"];
    let days = usize::try_from(SEEDED_SPAN_MS / DAY_MS).unwrap_or(1).max(1);
    // Each view's name, and its query string for the i-th query.
    type View = (&'static str, Box<dyn Fn(usize) -> String>);
    let kinds: Vec<View> = vec![
        (
            "6a audit filter: person",
            Box::new(move |i| format!("actor={}", seeded_person(i % people.max(1)))),
        ),
        (
            "6b audit filter: action",
            Box::new(|i| format!("action={}", ACTIONS[i % ACTIONS.len()])),
        ),
        (
            "6c audit filter: account",
            Box::new(|i| format!("account={}", seeded_account(i % SEEDED_ACCOUNTS))),
        ),
        (
            "6d audit filter: outcome",
            Box::new(move |i| format!("outcome={}", outcomes[i % outcomes.len()])),
        ),
        (
            "6e audit filter: a day",
            Box::new(move |i| {
                let from = start_ms + DAY_MS * ((i * 37) % days) as i64;
                format!("since={}&until={}", time(from), time(from + DAY_MS))
            }),
        ),
        (
            "6f audit filter: person, a week",
            Box::new(move |i| {
                let from = start_ms + DAY_MS * ((i * 37) % days.saturating_sub(7).max(1)) as i64;
                format!(
                    "actor={}&since={}&until={}",
                    seeded_person(i % people.max(1)),
                    time(from),
                    time(from + 7 * DAY_MS)
                )
            }),
        ),
    ];
    let mut out = Vec::new();
    for (name, query) in &kinds {
        let mut lat = Vec::with_capacity(FILTER_QUERIES);
        let mut errors = 0;
        let started = Instant::now();
        for i in 0..FILTER_QUERIES {
            progress.line(&format!("{name}: {i} of {FILTER_QUERIES}"));
            let url = format!("{base}/api/v1/audit?order=desc&limit=50&{}", query(i));
            let t = Instant::now();
            let ok = match http.get(&url).bearer_auth(session).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            errors += u64::from(!ok);
        }
        out.push(filter_scenario(name, lat, errors, started.elapsed()));
    }
    // A person's second page: where the first one ended.
    let mut lat = Vec::with_capacity(FILTER_QUERIES);
    let mut errors = 0;
    let started = Instant::now();
    for i in 0..FILTER_QUERIES {
        progress.line(&format!(
            "6g audit filter: person, page 2: {i} of {FILTER_QUERIES}"
        ));
        let first = format!(
            "{base}/api/v1/audit?order=desc&limit=50&actor={}",
            seeded_person(i % people.max(1))
        );
        let v: serde_json::Value = http
            .get(&first)
            .bearer_auth(session)
            .send()
            .await?
            .json()
            .await?;
        let Some(before) = v["next_before_seq"].as_i64() else {
            // A person with fewer entries than a page (a small `--audit-entries` spread over
            // many operators) has no second page to ask for; a full page without a cursor is
            // the vault's fault.
            let full = v["entries"].as_array().is_some_and(|e| e.len() >= 50);
            errors += u64::from(full);
            continue;
        };
        let t = Instant::now();
        let ok = match http
            .get(format!("{first}&before_seq={before}"))
            .bearer_auth(session)
            .send()
            .await
        {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        };
        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
        errors += u64::from(!ok);
    }
    out.push(filter_scenario(
        "6g audit filter: person, page 2",
        lat,
        errors,
        started.elapsed(),
    ));
    // The console's audit page filtered by person: the same query, the chain's state (the
    // entries since the last walk) and the charts, rendered. Its first view walks the whole
    // chain, so it is taken before the clock starts.
    let cookie = format!("{}={session}", "__Host-mv_session");
    let page = |i: usize| {
        http.get(format!(
            "{base}/console/audit?actor={}",
            seeded_person(i % people.max(1))
        ))
        .header("cookie", &cookie)
    };
    progress.line("6h console audit page: the first view walks the whole chain");
    let first = page(0).send().await?;
    if !first.status().is_success() {
        bail!("the console's audit page answered {}", first.status());
    }
    let mut lat = Vec::with_capacity(FILTER_QUERIES);
    let mut errors = 0;
    let started = Instant::now();
    for i in 0..FILTER_QUERIES {
        progress.line(&format!(
            "6h console audit page, by person: {i} of {FILTER_QUERIES}"
        ));
        let t = Instant::now();
        let ok = match page(i).send().await {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        };
        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
        errors += u64::from(!ok);
    }
    out.push(filter_scenario(
        "6h console audit page, by person",
        lat,
        errors,
        started.elapsed(),
    ));
    Ok(out)
}

fn filter_scenario(name: &str, mut lat: Vec<u32>, errors: u64, took: Duration) -> Scenario {
    lat.sort_unstable();
    Scenario {
        name: name.to_owned(),
        per_second: lat.len() as f64 / took.as_secs_f64().max(1e-9),
        unit: "req/s",
        count: lat.len() as u64,
        errors,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        cpu_us: None,
        scheduling: None,
    }
}
