//! Issue 12: holes found by attacking the running vault (items 3, 4, 6, 7 and 8). Each test is
//! named for the hole it closes and failed before the fix.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use mediavault::audit::{NewEntry, Outcome};
use mediavault::config::Config;
use mediavault::http::context::ActorKind;
use mediavault::store::audit::{AuditFilter, AuditRow};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use serde_json::{Value, json};

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS client that trusts the test CA and offers exactly one ALPN protocol.
fn tls_config(dir: &Path, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(dir.join("certs/ca.pem")).unwrap();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// Connects and completes the TLS handshake (blocking; run it off the runtime).
fn tls_connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(8)))?;
    sock.set_write_timeout(Some(Duration::from_secs(8)))?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Reads until the server closes the connection and says how long after `since` that was; `None`
/// if it was still open when the socket's 8 s read timeout ran out.
fn wait_closed(tls: &mut Tls, since: Instant) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            // Reset or EOF without close_notify: closed all the same.
            Err(_) => return Some(since.elapsed()),
        }
    }
}

fn addr_of(app: &TestApp) -> SocketAddr {
    app.running.as_ref().unwrap().addr
}

/// Short timeouts and a small connection cap, so the test measures them in seconds.
const SLOTS: usize = 8;

fn slow_client_limits(c: &mut Config) {
    c.limits.header_read_timeout_seconds = 1;
    c.limits.request_timeout_seconds = 1;
    c.limits.idle_timeout_seconds = 2;
    c.limits.max_connections = SLOTS;
}

#[tokio::test]
async fn slow_header_connections_are_closed_and_healthz_stays_up() {
    let app = spawn_with(Options {
        tweak: Some(Box::new(slow_client_limits)),
        ..Default::default()
    })
    .await;
    let addr = addr_of(&app);
    let config = tls_config(app.dir.path(), b"http/1.1");
    let start = Instant::now();

    // Fill every slot with a client that sends half a request head and then nothing.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let mut slow = Vec::new();
    for _ in 0..SLOTS {
        let config = Arc::clone(&config);
        let held = held_tx.clone();
        slow.push(tokio::task::spawn_blocking(move || {
            let mut tls = tls_connect(addr, config).expect("a slow client connects");
            tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .unwrap();
            tls.flush().unwrap();
            let sent = Instant::now();
            held.send(()).unwrap();
            wait_closed(&mut tls, sent)
        }));
    }
    tokio::task::spawn_blocking(move || {
        for _ in 0..SLOTS {
            held_rx.recv().unwrap();
        }
    })
    .await
    .unwrap();

    // One client more than the cap: it is not served until a slow one has been closed.
    let extra = tokio::task::spawn_blocking({
        let config = Arc::clone(&config);
        move || tls_connect(addr, config).map(|_| Instant::now())
    });
    // A health check while every slot is held: it waits for a freed slot, then answers.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let health_after = start.elapsed();

    for s in slow {
        let closed = s
            .await
            .unwrap()
            .expect("the server closes a connection that never finishes its request head");
        assert!(
            closed >= Duration::from_millis(800) && closed < Duration::from_secs(6),
            "closed after {closed:?}; the header read timeout is 1 s"
        );
    }
    let extra_at = extra
        .await
        .unwrap()
        .expect("the extra client is served once a slot frees");
    // No slot can free before the first slow client's 1 s ran out: the cap held.
    assert!(
        extra_at.duration_since(start) >= Duration::from_millis(900),
        "the client past the cap was served after {:?}, before any slot was freed",
        extra_at.duration_since(start)
    );
    assert!(
        health_after >= Duration::from_millis(900) && health_after < Duration::from_secs(8),
        "healthz answered after {health_after:?}"
    );
}

/// An HTTP/2 frame: 24-bit length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let app = spawn_with(Options {
        tweak: Some(Box::new(slow_client_limits)),
        ..Default::default()
    })
    .await;
    let addr = addr_of(&app);

    // HTTP/1.1: one whole request, then silence. hyper starts the header timer as soon as a
    // connection goes idle, so it closes after the 1 s header read timeout.
    let config = tls_config(app.dir.path(), b"http/1.1");
    let h1 = tokio::task::spawn_blocking(move || {
        let mut tls = tls_connect(addr, config).unwrap();
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !contains(&got, br#"{"status":"ok"}"#) {
            let n = tls.read(&mut buf).expect("a response");
            assert!(n > 0, "closed before answering");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"));
        wait_closed(&mut tls, Instant::now())
    });

    // HTTP/2 has no header timer: an idle connection is the idle timeout's (2 s) to close.
    let config = tls_config(app.dir.path(), b"h2");
    let h2 = tokio::task::spawn_blocking(move || {
        let mut tls = tls_connect(addr, config).unwrap();
        // HPACK: :method GET, :scheme https (static table), :path and :authority as literals.
        let mut block = vec![0x82, 0x87, 0x04, 8];
        block.extend_from_slice(b"/healthz");
        block.extend_from_slice(&[0x01, 9]);
        block.extend_from_slice(b"localhost");
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(h2_frame(0x4, 0, 0, &[]));
        out.extend(h2_frame(0x1, 0x5, 1, &block));
        tls.write_all(&out).unwrap();
        loop {
            let mut head = [0u8; 9];
            tls.read_exact(&mut head).expect("a frame");
            let len =
                (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            tls.read_exact(&mut payload).unwrap();
            let (kind, flags) = (head[3], head[4]);
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            match kind {
                0x4 if flags & 0x1 == 0 => tls.write_all(&h2_frame(0x4, 0x1, 0, &[])).unwrap(),
                0x3 | 0x7 => panic!("the server refused the HTTP/2 request (frame type {kind})"),
                0x0 | 0x1 if stream == 1 && flags & 0x1 != 0 => break,
                _ => {}
            }
        }
        wait_closed(&mut tls, Instant::now())
    });

    let h1 = h1
        .await
        .unwrap()
        .expect("an idle HTTP/1.1 connection is closed");
    assert!(
        h1 >= Duration::from_millis(800) && h1 < Duration::from_secs(6),
        "HTTP/1.1 closed after {h1:?}"
    );
    let h2 = h2
        .await
        .unwrap()
        .expect("an idle HTTP/2 connection is closed");
    assert!(
        h2 >= Duration::from_millis(1800) && h2 < Duration::from_secs(7),
        "HTTP/2 closed after {h2:?}; the idle timeout is 2 s"
    );
}

async fn status_of(app: &TestApp, method: reqwest::Method, path: &str) -> u16 {
    app.client
        .request(method, app.url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Sends up to `tries` requests; whether one of them was refused with 429.
async fn refused_within(app: &TestApp, method: reqwest::Method, path: &str, tries: usize) -> bool {
    for _ in 0..tries {
        if status_of(app, method.clone(), path).await == 429 {
            return true;
        }
    }
    false
}

/// The store and keys as a second process (the CLI) sees them: the vault's parts stay private.
async fn side_door(
    app: &TestApp,
) -> (
    mediavault::store::Store,
    mediavault::crypto::Keyring,
    mediavault::audit::AuditWriter,
) {
    let (_, store, keys) = mediavault::vault::open_store(&app.config).await.unwrap();
    let writer = mediavault::audit::AuditWriter::start(
        store.clone(),
        keys.mac().audit.clone(),
        app.clock.clone(),
    );
    (store, keys, writer)
}

async fn all_rows(app: &TestApp) -> Vec<AuditRow> {
    let (store, _, _) = side_door(app).await;
    let mut out = Vec::new();
    let mut filter = AuditFilter {
        limit: 1000,
        ..Default::default()
    };
    loop {
        let page = store.audit_query(&filter).await.unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        filter.after_seq = last.seq;
        out.extend(page);
    }
}

#[tokio::test]
async fn unknown_routes_are_rate_limited_and_paths_capped() {
    let app = spawn_with(Options {
        tweak: Some(Box::new(|c: &mut Config| {
            c.rate_limits.general_per_second = 1;
            c.rate_limits.general_burst = 5;
        })),
        ..Default::default()
    })
    .await;
    let long = format!("/{}", "a".repeat(60_000));
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(status_of(&app, reqwest::Method::GET, &long).await);
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        refused >= 4,
        "unknown routes are rate limited: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 404 || *s == 429),
        "{statuses:?}"
    );

    // Every other way around the tiers is limited by the same per-address budget.
    let get = reqwest::Method::GET;
    let api_unknown = format!("/api/v1/nope{long}");
    assert!(refused_within(&app, get.clone(), &api_unknown, 4).await);
    assert!(refused_within(&app, reqwest::Method::DELETE, "/api/v1/audit", 4).await);
    assert!(refused_within(&app, reqwest::Method::PUT, "/api/v1/auth/login", 4).await);
    assert!(refused_within(&app, get.clone(), "/readyz", 4).await);
    // Liveness stays exempt: it touches nothing and a probe must see the process alive.
    for _ in 0..10 {
        assert_eq!(status_of(&app, get.clone(), "/healthz").await, 200);
    }

    let rows = all_rows(&app).await;
    assert!(
        rows.len() >= 10,
        "every request, refused or not, is audited"
    );
    let max = 512 + "…".len();
    for r in &rows {
        let path = r.http_path.as_deref().unwrap_or("");
        assert!(
            path.len() <= max,
            "http.path of entry {} is {} bytes",
            r.seq,
            path.len()
        );
        assert!(
            r.target.len() <= max,
            "target of entry {} is {} bytes",
            r.seq,
            r.target.len()
        );
        assert!(r.detail.len() <= 4096, "detail of entry {}", r.seq);
    }
    let capped = rows
        .iter()
        .find(|r| {
            r.http_path
                .as_deref()
                .is_some_and(|p| p.starts_with("/aaa"))
        })
        .expect("an entry for the long path");
    assert!(capped.http_path.as_deref().unwrap().ends_with('…'));
    assert!(capped.target.ends_with('…'));
    let detail: Value = serde_json::from_str(&capped.detail).unwrap();
    assert_eq!(detail["truncated"]["http.path"], long.len(), "{detail}");
    assert_eq!(detail["truncated"]["target"], long.len(), "{detail}");
}

#[tokio::test]
async fn audit_export_is_streamed_in_pages() {
    let app = spawn_app().await;
    // Enough entries for several pages of 1000.
    let (store, keys, writer) = side_door(&app).await;
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..2500 {
        let writer = writer.clone();
        writes.spawn(async move {
            writer
                .record_event(
                    NewEntry::system("test.bulk", "bulk", Outcome::Success).detail("i", i),
                )
                .await
                .unwrap();
        });
    }
    while let Some(r) = writes.join_next().await {
        r.unwrap();
    }
    let s = app.login(&app.admin.clone()).await;
    let head = store.audit_head().await.unwrap().seq;

    let mut r = app
        .client
        .get(app.url("/api/v1/audit/export?format=jsonl"))
        .bearer_auth(&s)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("content-length").is_none(),
        "a streamed body has no length up front: {:?}",
        r.headers()
    );
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    let mut text = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = r.chunk().await.unwrap() {
        chunks += 1;
        text.extend_from_slice(&chunk);
    }
    assert!(chunks >= 3, "one chunk per page at least: {chunks}");
    let text = String::from_utf8(text).unwrap();

    // The export is the log as of the request: entry 1 to the head, each exactly once, in order.
    let seqs: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
    let report = mediavault::audit::export::verify_jsonl(&text, &keys.mac().audit, None);
    assert!(report.ok, "{report:?}");

    // What was sent is recorded once the stream ends: the count and the digest of the bytes.
    let sent = all_rows(&app)
        .await
        .into_iter()
        .find(|r| r.action == "audit.export.sent")
        .expect("the finished export is audited");
    let detail: Value = serde_json::from_str(&sent.detail).unwrap();
    assert_eq!(detail["entries"], head);
    assert_eq!(
        detail["sha256"],
        mediavault::crypto::sha256_hex(text.as_bytes())
    );
    assert_eq!(sent.actor_id, "admin");
}

#[tokio::test]
async fn bearer_rate_limit_is_keyed_on_normalised_token() {
    let app = spawn_with(Options {
        tweak: Some(Box::new(|c: &mut Config| {
            c.rate_limits.token_per_second = 1;
            c.rate_limits.token_burst = 3;
        })),
        ..Default::default()
    })
    .await;
    let call = |auth: &'static str| {
        let req = app
            .client
            .get(app.url("/api/v1/token"))
            .header("authorization", auth);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for _ in 0..3 {
        assert_eq!(call("Bearer mvt_stolen_token").await, 401);
    }
    // The same credential, spelled differently, is the same bucket.
    for spelling in [
        "bearer mvt_stolen_token",
        "BEARER    mvt_stolen_token",
        "Bearer\tmvt_stolen_token   ",
    ] {
        assert_eq!(call(spelling).await, 429, "{spelling:?} got a fresh bucket");
    }
    // Another token still has its own.
    assert_eq!(call("Bearer mvt_another_token").await, 401);
}

/// A small CSV reader (RFC 4180 quoting) that keeps any stray character in the cell.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cell.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cell.push(c);
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut cell)),
            '\n' => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            _ => cell.push(c),
        }
    }
    rows
}

const FORMULA: &str = "=HYPERLINK(\"http://evil.test/\",\"open\")";

#[tokio::test]
async fn csv_export_neutralises_formulas() {
    let app = spawn_app().await;
    // A login attempt under a formula name.
    let (st, _) = app
        .post(
            "",
            "/api/v1/auth/login",
            json!({"username": FORMULA, "password": "x", "totp": "000000"}),
        )
        .await;
    assert_eq!(st, 401);
    // Entries written before this fix hold attempted names as typed, and other fields can start
    // with a formula trigger or carry control characters.
    let mut old = NewEntry::system(
        "auth.login",
        "+SUM(1,2)\u{7}\r\nsecond line",
        Outcome::Denied,
    );
    old.actor_kind = ActorKind::Anonymous;
    old.actor_id = FORMULA.into();
    old.source_ip = "-2+3".into();
    old.request_id = "@SUM(1,2)".into();
    old.action = "\tauth.login".into();
    let (_, keys, writer) = side_door(&app).await;
    writer.record_event(old).await.unwrap();

    let s = app.login(&app.admin.clone()).await;
    let fetch = |format: &'static str| {
        let req = app
            .client
            .get(app.url(&format!("/api/v1/audit/export?format={format}")))
            .bearer_auth(&s);
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let csv = fetch("csv").await;
    let rows = parse_csv(&csv);
    assert!(rows.len() >= 3, "{csv}");
    let width = rows[0].len();
    for row in &rows {
        assert_eq!(row.len(), width, "every row has every column: {row:?}");
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a spreadsheet would run {cell:?}"
            );
            assert!(
                !cell.chars().any(char::is_control),
                "control character in {cell:?}"
            );
        }
    }
    let flat: Vec<&String> = rows.iter().flatten().collect();
    assert!(flat.contains(&&format!("'{FORMULA}")), "{csv}");
    assert!(flat.contains(&&"'-2+3".to_owned()), "{csv}");

    // The JSONL export keeps every field exactly as hashed, and re-verifies.
    let jsonl = fetch("jsonl").await;
    assert!(jsonl.contains(&serde_json::to_string(FORMULA).unwrap()));
    let report = mediavault::audit::export::verify_jsonl(&jsonl, &keys.mac().audit, None);
    assert!(report.ok, "{report:?}");
}

#[tokio::test]
async fn unknown_login_name_is_recorded_as_digest() {
    let app = spawn_app().await;
    // A password typed into the username field, and a well-formed name nobody has.
    let typed = "Tr0ub4dor&3 typed in the wrong box";
    let plausible = "hunter2secret";
    let app = &app;
    let attempt = |name: &'static str, password: &'static str| {
        let body = json!({"username": name, "password": password, "totp": "000000"});
        async move { app.post("", "/api/v1/auth/login", body).await.0 }
    };
    assert_eq!(attempt(typed, "x").await, 401);
    assert_eq!(attempt(typed, "x").await, 401);
    assert_eq!(attempt(plausible, "x").await, 401);
    // A known user with a wrong password is still named.
    assert_eq!(attempt("admin", "wrong password").await, 401);

    let logins: Vec<AuditRow> = all_rows(app)
        .await
        .into_iter()
        .filter(|r| r.action == "auth.login")
        .collect();
    let ids: Vec<&str> = logins.iter().map(|r| r.actor_id.as_str()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    for id in &ids[..3] {
        let hex = id
            .strip_prefix("unknown:")
            .unwrap_or_else(|| panic!("{id:?}"));
        assert!(
            hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id:?}"
        );
    }
    assert_eq!(
        ids[0], ids[1],
        "one name, one digest: repeated attempts still correlate"
    );
    assert_ne!(ids[0], ids[2]);
    assert_eq!(ids[3], "admin");

    // Nowhere in the store, WAL included.
    for (path, bytes) in stored_bytes(&app.config).await {
        for name in [typed, plausible] {
            assert!(
                !contains(&bytes, name.as_bytes()),
                "{name:?} is stored in {}",
                path.display()
            );
        }
    }
}

/// A file's permission bits in octal, as `ls -l` users read them.
fn mode(p: &Path) -> String {
    let m = std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode();
    format!("{:o}", m & 0o777)
}

fn set_mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

#[tokio::test]
async fn files_are_created_private_even_in_open_data_dir() {
    let mut app = spawn_with(Options {
        tweak: Some(Box::new(|c: &mut Config| {
            std::fs::create_dir_all(&c.data_dir).unwrap();
            set_mode(&c.data_dir, 0o755);
        })),
        ..Default::default()
    })
    .await;
    let data = app.config.data_dir.clone();

    // Two entries old enough to prune, chained under the vault's key, before any request.
    seed_old_entries(&app, 2).await;
    app.login(&app.admin.clone()).await;

    assert_eq!(mode(&data), "700", "data dir");
    // On PostgreSQL the data dir holds the root key alone; the database's files are the server's
    // (its own data directory, 0700, owned by its user), so their modes are not the vault's.
    let files: &[&str] = if on_postgres() {
        &["root.key"]
    } else {
        &[
            "mediavault.db",
            "mediavault.db-wal",
            "mediavault.db-shm",
            "root.key",
        ]
    };
    for f in files {
        assert_eq!(mode(&data.join(f)), "600", "{f}");
    }

    // The file of pruned entries.
    let pruned = app.dir.path().join("pruned.jsonl");
    mediavault::cli::audit::run(
        &app.config,
        mediavault::cli::audit::AuditCommand::Prune {
            before: mediavault::audit::rfc3339_ms((app.clock.unix() - 300 * 86_400) * 1000),
            export_file: pruned.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read_to_string(&pruned).unwrap().lines().count(), 2);
    assert_eq!(mode(&pruned), "600", "pruned entries");

    // A loosened data dir or database stops the vault at start, naming the path and the fix.
    app.stop().await;
    let refused = |what: &'static str| {
        let (config, clock) = (Arc::clone(&app.config), app.clock.clone());
        async move {
            match mediavault::start(config, clock).await {
                Ok(_) => panic!("started with a {what} others can read"),
                Err(e) => format!("{e:#}"),
            }
        }
    };
    set_mode(&data, 0o755);
    let err = refused("data dir").await;
    assert!(err.contains(&data.display().to_string()), "{err}");
    assert!(err.contains("chmod 700"), "{err}");
    set_mode(&data, 0o700);
    // SQLite only: a loosened database file (PostgreSQL keeps its files itself).
    if !on_postgres() {
        let db_path = app.db_path();
        set_mode(&db_path, 0o644);
        let err = refused("database").await;
        assert!(err.contains(&db_path.display().to_string()), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        set_mode(&db_path, 0o600);
    }
    app.restart().await;
    assert_eq!(app.get("", "/healthz").await.0, 200);
}
