//! Issue 22: two vault nodes on one database, one active. Both are the binary under test (see
//! `tests/support`), started as an operator starts them: one `init`, then `serve` twice with the
//! same configuration but for each node's `[cluster]` section. Everything is set up and checked
//! through the front door: the API (through either node), `/readyz`, `audit verify`.
//!
//! - **Failover under load**: people are added through both nodes; the active node is killed with
//!   SIGKILL; the standby takes over within 20 seconds (the lease is 15 s, renewed every 5 s);
//!   every addition a client was told about is there afterwards; the audit chain verifies as one
//!   chain, through the API and offline; WeChat saw no forced token refresh and no token fetch but
//!   the one the new active node needs.
//! - **A paused node is fenced**: the active node is stopped (SIGSTOP, as a long pause or a cut
//!   network would), the other takes over, and when the paused one wakes up still believing itself
//!   active, nothing it does reaches the store: the chain stays one chain and the people it was asked
//!   to add do not exist; it steps down and forwards from then on.
//! - **A bound tool through the standby**: over TLS with the office's tool CA, a tool bound to its
//!   client certificate checks out and uses its token through the standby with the certificate
//!   (presented to the standby, or passed by a gateway in front of it), and is refused without it
//!   or with the standby's headers forged.
//!
//! The database is the SQLite file of the data dir, which both processes on this machine open;
//! with `MV_TEST_DATABASE_URL` set (a PostgreSQL server) the nodes share that database instead.
#![cfg(feature = "demo")]
// Tests unwrap and panic on purpose: a failure is the message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    Codes, Daemon, WECHAT_APP_ID, WECHAT_APP_SECRET, command, fake_platforms, json_of, run,
    vault_bin,
};

const ADMIN_PASSWORD: &str = "cluster-admin-password-01";

/// Plain HTTP (allowed on loopback), unless a test asks for TLS ([`Tls`]).
const PLAIN_HTTP: &str = "
[tls]
plain_http = true
";

/// Rate limits out of the way of the load.
const RATES: &str = "
[rate_limits]
login_per_minute = 1000000
login_burst = 1000000
general_per_second = 1000000
general_burst = 1000000
";

/// A free loopback port: each node's `cluster.address` names its port before it starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// On PostgreSQL (`MV_TEST_DATABASE_URL` names a server): a database of this test's own on it,
/// and the server's `host:port`. None on SQLite.
fn pg_database(tag: &str) -> Option<(String, String)> {
    let server = std::env::var("MV_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let name = format!("mv_cluster_{tag}_{}", std::process::id());
    let (base, _) = server
        .rsplit_once('/')
        .expect("a URL that names a database");
    let host_port = base.rsplit_once('@').map_or(base, |(_, h)| h).to_owned();
    let url = format!("{base}/{name}");
    let sql = format!("CREATE DATABASE {name}");
    // A thread with a runtime of its own: this is called from inside the test's runtime.
    std::thread::spawn(move || {
        use sqlx::Connection;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        });
    })
    .join()
    .unwrap();
    Some((url, host_port))
}

/// The TLS gateway's address in the TLS cluster ([`Tls`]).
const GATEWAY: &str = "127.0.0.4";

/// TLS for both nodes, as an operator sets it up: `mediavault certs dev` for the nodes' server
/// certificates (each node trusts that CA as `cluster.peer_ca_file`), the office's CA for its
/// tools' client certificates as `tls.client_ca_file`, and a gateway ([`GATEWAY`]) that passes
/// the client certificates it verified in `x-ssl-client-cert`.
struct Tls {
    tool_ca_pem: String,
}

struct Cluster {
    tmp: tempfile::TempDir,
    bin: PathBuf,
    home: PathBuf,
    _fakes: Daemon,
    fake_url: String,
    http: reqwest::Client,
    /// Node name → (configuration file, base URL).
    nodes: Vec<(String, PathBuf, String)>,
    codes: Codes,
    session: String,
    starts: usize,
}

impl Cluster {
    /// Both nodes' configurations; on PostgreSQL, each node reaches the database at the URL
    /// `database(node)` gives for the test's database URL.
    async fn new(tag: &str, database: impl Fn(usize, &str) -> String) -> Self {
        Self::with(tag, database, None).await
    }

    async fn with(tag: &str, database: impl Fn(usize, &str) -> String, tls: Option<Tls>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let (fakes, fake_url) = fake_platforms(&dir, &home).await;
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(30));
        let (scheme, tls_section, peer_ca) = match &tls {
            None => ("http", PLAIN_HTTP.to_owned(), String::new()),
            Some(tls) => {
                let certs = dir.join("certs");
                let mut c = command(&vault_bin(), &dir, &home);
                c.args(["certs", "dev", "--dir"]).arg(&certs);
                run(c, "").await;
                let tool_ca = dir.join("tool-ca.pem");
                std::fs::write(&tool_ca, &tls.tool_ca_pem).unwrap();
                let ca = std::fs::read(certs.join("ca.pem")).unwrap();
                http = http.add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
                (
                    "https",
                    // And a gateway on 127.0.0.4 that passes the certificates it verified.
                    format!(
                        "\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n\
                         \n[gateway]\naddresses = [\"{GATEWAY}/32\"]\nclient_cert_header = \"x-ssl-client-cert\"\n",
                        certs.join("server.pem").display(),
                        certs.join("server-key.pem").display(),
                        tool_ca.display()
                    ),
                    format!("peer_ca_file = \"{}\"\n", certs.join("ca.pem").display()),
                )
            }
        };
        let data = dir.join("data");
        let pg = pg_database(tag);
        let mut nodes = Vec::new();
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            let database = match &pg {
                Some((url, _)) => format!("\n[database]\nurl = \"{}\"\n", database(i, url)),
                None => String::new(),
            };
            let port = free_port();
            let url = format!("{scheme}://127.0.0.1:{port}");
            let config = dir.join(format!("node-{name}.toml"));
            std::fs::write(
                &config,
                format!(
                    "data_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\npolicies_dir = \"{}\"\n{tls_section}{RATES}\n\
                     [platforms]\nwechat_base_url = \"{fake_url}\"\nweibo_base_url = \"{fake_url}\"\n\n\
                     [log]\nlevel = \"info\"\n\n[cluster]\nnode = \"{name}\"\naddress = \"{url}\"\n{peer_ca}{database}",
                    data.display(),
                    dir.join("policies").display(),
                ),
            )
            .unwrap();
            nodes.push((name.to_owned(), config, url));
        }
        Cluster {
            tmp,
            bin: vault_bin(),
            home,
            _fakes: fakes,
            fake_url,
            http: http.build().unwrap(),
            nodes,
            codes: Codes::default(),
            session: String::new(),
            starts: 0,
        }
    }

    fn url(&self, node: usize) -> &str {
        &self.nodes[node].2
    }

    fn cli(&self, node: usize, args: &[&str]) -> tokio::process::Command {
        let mut c = command(&self.bin, self.tmp.path(), &self.home);
        c.arg("--config").arg(&self.nodes[node].1).args(args);
        c
    }

    async fn serve(&mut self, node: usize) -> Daemon {
        self.starts += 1;
        let log = self
            .tmp
            .path()
            .join(format!("node-{}-{}.log", self.nodes[node].0, self.starts));
        let (daemon, _) = Daemon::start(
            self.cli(node, &["serve"]),
            "vault node",
            log,
            "mediavault serving on ",
        )
        .await;
        daemon
    }

    /// Polls `/readyz` of `node` until `want` holds, at most `within`; returns the answer and the
    /// time it took.
    async fn readyz_until(
        &self,
        node: usize,
        within: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> (Value, Duration) {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < within {
            if let Ok(r) = self
                .http
                .get(format!("{}/readyz", self.url(node)))
                .send()
                .await
            {
                last = r.json().await.unwrap_or(Value::Null);
                if want(&last) {
                    return (last, start.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "node {} did not reach the expected state within {within:?}; last /readyz: {last}",
            self.nodes[node].0
        );
    }

    /// `init` on node A's configuration, then both nodes: A takes the free lease at once, B finds
    /// it taken and becomes A's standby (and serves, knowing the leader).
    async fn init_and_start(&mut self) -> (Daemon, Daemon) {
        let out = run(
            self.cli(
                0,
                &["init", "--admin", "admin", "--password-stdin", "--json"],
            ),
            &format!("{ADMIN_PASSWORD}\n"),
        )
        .await;
        let init: Value = serde_json::from_str(&out).unwrap();
        self.codes
            .enrol("admin", init["totp_secret"].as_str().unwrap());
        std::fs::create_dir_all(self.tmp.path().join("policies")).unwrap();
        let a = self.serve(0).await;
        let (ready_a, _) = self
            .readyz_until(0, Duration::from_secs(10), |v| is_role(v, "active"))
            .await;
        assert_eq!(
            (ready_a["node"].as_str(), ready_a["status"].as_str()),
            (Some("a"), Some("ready"))
        );
        let b = self.serve(1).await;
        let (ready_b, _) = self
            .readyz_until(1, Duration::from_secs(10), |v| {
                is_role(v, "standby") && v["leader"]["node"] == "a"
            })
            .await;
        assert_eq!(ready_b["leader"]["address"], self.url(0), "{ready_b}");
        assert_eq!(
            ready_b["status"], "ready",
            "a standby that knows the leader serves: {ready_b}"
        );
        (a, b)
    }

    /// The admin signs in through `node` with `http`; the session is kept for what follows.
    async fn sign_in(&mut self, http: &reqwest::Client, node: usize) {
        let code = self.codes.code_now("admin").unwrap();
        let (st, v) = json_of(
            http.post(format!("{}/api/v1/auth/login", self.url(node)))
                .json(&json!({"username": "admin", "password": ADMIN_PASSWORD, "totp": code}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 200, "login through node {node}: {v}");
        self.session = v["session_token"].as_str().unwrap().to_owned();
    }

    async fn add_person(&self, node: usize, username: &str) -> (u16, Value) {
        self.admin_post(
            node,
            "/users",
            json!({"username": username, "display_name": username,
                   "roles": ["publisher"], "password": "initial-password-0001"}),
        )
        .await
    }

    async fn admin_post(&self, node: usize, path: &str, body: Value) -> (u16, Value) {
        self.admin_post_with(&self.http, node, path, body).await
    }

    async fn admin_post_with(
        &self,
        http: &reqwest::Client,
        node: usize,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        match http
            .post(format!("{}/api/v1{path}", self.url(node)))
            .bearer_auth(&self.session)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => json_of(r).await,
            // No answer (a node killed or not yet up): the load counts it as a failure.
            Err(e) => (0, Value::String(format!("{e:?}"))),
        }
    }

    async fn admin_get(&self, node: usize, path: &str) -> (u16, Value) {
        json_of(
            self.http
                .get(format!("{}/api/v1{path}", self.url(node)))
                .bearer_auth(&self.session)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The chain through the API of `node`: it verifies; returns how many entries it holds.
    async fn verified_entries(&self, node: usize) -> u64 {
        let (st, v) = self.admin_get(node, "/audit/verify").await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["ok"], true, "GET /audit/verify through node {node}: {v}");
        v["entries_checked"].as_u64().unwrap()
    }

    /// The WeChat token requests the fake platforms saw: (stable, stable with force_refresh).
    async fn wechat_token_fetches(&self) -> (usize, usize) {
        let calls: Vec<Value> = self
            .http
            .get(format!("{}/_fake/calls", self.fake_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stable: Vec<&Value> = calls
            .iter()
            .filter(|c| c["path"] == "/cgi-bin/stable_token")
            .collect();
        let forced = stable
            .iter()
            .filter(|c| {
                serde_json::from_str::<Value>(c["body"].as_str().unwrap_or("{}"))
                    .is_ok_and(|b| b["force_refresh"] == true)
            })
            .count();
        (stable.len(), forced)
    }

    async fn user_exists(&self, node: usize, username: &str) -> bool {
        let (st, v) = self.admin_get(node, &format!("/users/{username}")).await;
        match st {
            200 => true,
            404 => false,
            _ => panic!("GET /users/{username}: {st} {v}"),
        }
    }
}

/// People added by `workers` connections, alternating between the nodes, until `stop`.
struct Load {
    acked: Mutex<Vec<String>>,
    failed: AtomicU64,
    stop: AtomicBool,
    serial: AtomicU64,
}

async fn add_people(cluster: Arc<Cluster>, load: Arc<Load>, worker: u64) {
    while !load.stop.load(Ordering::SeqCst) {
        let n = load.serial.fetch_add(1, Ordering::SeqCst);
        let username = format!("p{worker}x{n}");
        let node = usize::try_from(n % 2).unwrap();
        let (st, _) = cluster
            .admin_post(
                node,
                "/users",
                json!({"username": username, "display_name": username,
                       "roles": ["publisher"], "password": "initial-password-0001"}),
            )
            .await;
        if st == 201 {
            load.acked.lock().unwrap().push(username);
        } else {
            load.failed.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A TCP relay between one node and the database: the test cuts it to partition that node from
/// the database (every relayed connection is dropped, new ones are refused) and mends it again.
struct Relay {
    addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    _accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn to(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (c, l) = (Arc::clone(&cut), Arc::clone(&live));
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let target = target.clone();
                l.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Relay {
            addr,
            cut,
            live,
            _accept: accept,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for t in self.live.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn mend(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn is_role(v: &Value, role: &str) -> bool {
    v["role"] == role
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standby_takes_over_without_forking_the_chain_or_losing_an_acknowledged_change() {
    let mut cluster = Cluster::new("failover", |_, url| url.to_owned()).await;
    let (mut a, mut b) = cluster.init_and_start().await;

    // The admin signs in through the standby, from another loopback address than the nodes use
    // to reach each other: forwarded, answered by A, which records the admin's own address.
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    cluster.sign_in(&elsewhere, 1).await;
    // The console through the standby: its sign-in form, the form posted back with its cookie,
    // and the home page with the session cookie A set, all through B.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = no_redirects
        .get(format!("{}/console/login", cluster.url(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let cookie_value = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no {name} cookie"))
    };
    let nonce = cookie_value(&page, "__Host-mv_login");
    let code = cluster.codes.code_now("admin").unwrap();
    let signed_in = no_redirects
        .post(format!("{}/console/login", cluster.url(1)))
        .header("cookie", format!("__Host-mv_login={nonce}"))
        .form(&[
            ("csrf", nonce.as_str()),
            ("next", "/console"),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("totp", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed_in.status(),
        303,
        "console sign-in through the standby"
    );
    let session = cookie_value(&signed_in, "__Host-mv_session");
    let home = no_redirects
        .get(format!("{}/console", cluster.url(1)))
        .header("cookie", format!("__Host-mv_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("admin"));

    // A WeChat account (its credential is checked with one stable-token fetch), added through B.
    let (st, v) = cluster
        .admin_post(
            1,
            "/accounts",
            json!({"id": "wechat-main", "platform": "wechat", "display_name": "政务微信",
                   "credential": {"app_id": WECHAT_APP_ID, "app_secret": WECHAT_APP_SECRET}}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    // The login's audit entry names the client's own address, vouched for by B.
    let (st, entries) = cluster
        .admin_get(0, "/audit?action=auth.login&limit=5")
        .await;
    assert_eq!(st, 200, "{entries}");
    let login = &entries["entries"][0];
    assert_eq!(login["source_ip"], "127.0.0.2", "{login}");

    // Load through both nodes, then A dies.
    let cluster = Arc::new(cluster);
    let load = Arc::new(Load {
        acked: Mutex::new(Vec::new()),
        failed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        serial: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(add_people(Arc::clone(&cluster), Arc::clone(&load), w)))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_kill = load.acked.lock().unwrap().len();
    assert!(
        before_kill > 0,
        "no change was acknowledged before the kill"
    );
    let failed_before = load.failed.load(Ordering::SeqCst);
    let (fetches_before, forced_before) = cluster.wechat_token_fetches().await;
    a.assert_running();
    let killed_at = Instant::now();
    let status = a.kill().await;
    assert!(!status.success());
    // Until its lease runs out B still forwards to A, which is gone: B answers itself, under an
    // id of its own that its log names too.
    let r = cluster
        .http
        .get(format!("{}/api/v1/accounts", cluster.url(1)))
        .send()
        .await
        .unwrap();
    let header_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (st, v) = json_of(r).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (502, Some("standby_forward_failed")),
        "{v}"
    );
    assert_eq!(v["request_id"], header_id.as_str(), "{v}");
    assert_eq!(header_id.len(), 32, "{v}");
    let log = b.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("forwarding to the active node failed") && l.contains(&header_id)),
        "{log}"
    );
    let (ready_b, _) = cluster
        .readyz_until(1, Duration::from_secs(25), |v| is_role(v, "active"))
        .await;
    let takeover = killed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let failed_during = load.failed.load(Ordering::SeqCst) - failed_before;
    let acked: Vec<String> = load.acked.lock().unwrap().clone();
    assert!(
        acked.len() > before_kill,
        "B took no change after the takeover"
    );
    assert!(
        takeover < Duration::from_secs(20),
        "takeover took {takeover:?}"
    );
    // Every acknowledged change is there, with its entry, on one chain.
    for user in &acked {
        assert!(
            cluster.user_exists(1, user).await,
            "{user} was acknowledged and is gone"
        );
    }
    let entries = cluster.verified_entries(1).await;
    let out = run(cluster.cli(1, &["audit", "verify"]), "").await;
    let offline: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(offline["ok"], true, "audit verify, offline: {offline}");
    // WeChat: no forced refresh ever; the new active node fetched at most the one token it needs
    // (a plain stable-token fetch returns the token A held, cancelling nothing).
    let (fetches_after, forced_after) = cluster.wechat_token_fetches().await;
    assert_eq!((forced_before, forced_after), (0, 0));
    assert!(
        fetches_after - fetches_before <= 1,
        "{} token fetches after the takeover",
        fetches_after - fetches_before
    );
    eprintln!(
        "failover: term {}, takeover {:.1} s after SIGKILL, {} requests failed during it, {} changes acknowledged ({} before the kill), {} audit entries, chain verified",
        ready_b["term"],
        takeover.as_secs_f64(),
        failed_during,
        acked.len(),
        before_kill,
        entries
    );

    // A paused node is fenced. A comes back as a standby; B is paused past its lease; A takes over.
    let mut cluster = Arc::into_inner(cluster).unwrap();
    let mut a = cluster.serve(0).await;
    cluster
        .readyz_until(0, Duration::from_secs(10), |v| is_role(v, "standby"))
        .await;
    b.signal("STOP");
    let (ready_a, took) = cluster
        .readyz_until(0, Duration::from_secs(25), |v| is_role(v, "active"))
        .await;
    eprintln!(
        "A took over from the paused B in {:.1} s (term {})",
        took.as_secs_f64(),
        ready_a["term"]
    );
    let (st, v) = cluster
        .admin_post(
            0,
            "/users",
            json!({"username": "afterpause", "display_name": "after the pause",
                   "roles": ["publisher"], "password": "initial-password-0001"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    // B is asked for changes while still paused (the kernel queues the connections), then wakes
    // up believing it is active: either it answers them itself and the store refuses them (its
    // lease is gone), or it has stepped down first and forwards them to A. Never do two writers
    // append to the chain.
    // New connections: B, once awake, closes the ones idle since before its pause.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let cluster = Arc::new(cluster);
    let asks: Vec<_> = (0..20)
        .map(|i| {
            let cluster = Arc::clone(&cluster);
            let fresh = fresh.clone();
            tokio::spawn(async move {
                let username = format!("fromb{i}");
                let (st, v) = cluster
                    .admin_post_with(
                        &fresh,
                        1,
                        "/users",
                        json!({"username": username, "display_name": username,
                               "roles": ["publisher"], "password": "initial-password-0001"}),
                    )
                    .await;
                (username, st, v)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.signal("CONT");
    let mut refused = 0;
    let mut forwarded = Vec::new();
    for ask in asks {
        let (username, st, v) = ask.await.unwrap();
        match st {
            201 => forwarded.push(username),
            // Refused by the store (B still thought itself active), or by B as a standby.
            503 => {
                assert!(
                    v["code"] == "audit_unavailable" || v["code"] == "standby",
                    "{v}"
                );
                refused += 1;
                assert!(
                    !cluster.user_exists(0, &username).await,
                    "{username} was refused yet exists"
                );
            }
            _ => panic!("B answered {st}: {v}"),
        }
    }
    let cluster = Arc::into_inner(cluster).unwrap();
    cluster
        .readyz_until(1, Duration::from_secs(10), |v| {
            is_role(v, "standby") && v["leader"]["node"] == "a"
        })
        .await;
    for user in &forwarded {
        assert!(cluster.user_exists(1, user).await);
    }
    cluster.verified_entries(0).await;
    let out = run(cluster.cli(0, &["audit", "verify"]), "").await;
    let offline: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(offline["ok"], true, "audit verify, offline: {offline}");
    eprintln!(
        "after the pause B refused {refused} changes itself and forwarded {} to A",
        forwarded.len()
    );
    a.assert_running();
    b.assert_running();
}

/// The active node loses its database (the relay between them is cut): it cannot renew, steps
/// down once its lease could have run out, and refuses changes; the standby takes over. When the
/// network comes back, the old node rejoins as a standby and forwards. PostgreSQL only: on SQLite
/// both nodes open one file on one machine, and nothing stands between a node and its database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_active_node_cut_off_from_the_database_steps_down_and_refuses_changes() {
    let Some(server) = std::env::var("MV_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("PostgreSQL only: set MV_TEST_DATABASE_URL (.ci/run does) to run this test");
        return;
    };
    let (base, _) = server.rsplit_once('/').unwrap();
    let host_port = base.rsplit_once('@').map_or(base, |(_, h)| h).to_owned();
    let relay = Relay::to(host_port.clone()).await;
    let relayed = relay.addr.to_string();
    let mut cluster = Cluster::new("partition", |node, url| {
        if node == 0 {
            url.replace(&host_port, &relayed)
        } else {
            url.to_owned()
        }
    })
    .await;
    let (mut a, mut b) = cluster.init_and_start().await;
    let http = cluster.http.clone();
    cluster.sign_in(&http, 0).await;
    let (st, v) = cluster.add_person(0, "beforecut").await;
    assert_eq!(st, 201, "{v}");

    relay.cut();
    let cut_at = Instant::now();
    // A cannot reach the database: nothing it is asked to change happens.
    let (st, v) = cluster.add_person(0, "duringcut").await;
    assert_eq!(st, 503, "{v}");
    let (_, stepped) = cluster
        .readyz_until(0, Duration::from_secs(25), |v| is_role(v, "standby"))
        .await;
    let (ready_b, _) = cluster
        .readyz_until(1, Duration::from_secs(25), |v| is_role(v, "active"))
        .await;
    let took_over = cut_at.elapsed();
    eprintln!(
        "partition: A stepped down {:.1} s after the cut, B active (term {}) {:.1} s after it",
        stepped.as_secs_f64(),
        ready_b["term"],
        took_over.as_secs_f64()
    );
    assert!(took_over < Duration::from_secs(20), "{took_over:?}");
    let (st, v) = cluster.add_person(0, "afterstepdown").await;
    assert_eq!(st, 503, "A, cut off, must refuse: {v}");
    let (st, v) = cluster.add_person(1, "onb").await;
    assert_eq!(st, 201, "{v}");

    // The network comes back: A rejoins as B's standby and forwards.
    relay.mend();
    cluster
        .readyz_until(0, Duration::from_secs(15), |v| {
            is_role(v, "standby") && v["leader"]["node"] == "b"
        })
        .await;
    let (st, v) = cluster.add_person(0, "throughaagain").await;
    assert_eq!(st, 201, "{v}");
    for (user, there) in [
        ("beforecut", true),
        ("duringcut", false),
        ("afterstepdown", false),
        ("onb", true),
        ("throughaagain", true),
    ] {
        assert_eq!(cluster.user_exists(1, user).await, there, "{user}");
    }
    cluster.verified_entries(0).await;
    a.assert_running();
    b.assert_running();
}

/// A tool bound to a client certificate works through the standby as through the active node:
/// the standby verifies the certificate in its own handshake and vouches for it to the active
/// node under the nodes' MAC; without the certificate, or with headers a client forged itself,
/// the tool is refused. The audit entry of a forwarded request names the certificate and the
/// client's own address.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bound_tool_works_through_the_standby_with_its_certificate_and_not_without() {
    let office_ca = support::tool_ca("office tool CA");
    let (cert_pem, cert_der, key_pem) = support::tool_cert(&office_ca, "cms-prod");
    let mut cluster = Cluster::with(
        "mtls",
        |_, url| url.to_owned(),
        Some(Tls {
            tool_ca_pem: office_ca.pem(),
        }),
    )
    .await;
    let policies = cluster.tmp.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("wx.toml"),
        "account = \"wx\"\nexclusive = false\n[who]\nroles = [\"admin\"]\nclients = [\"cms\"]\n\
         [levels.general]\napprovals = 0\n",
    )
    .unwrap();
    let (mut a, mut b) = cluster.init_and_start().await;
    let http = cluster.http.clone();
    // Everything below goes through the standby, B.
    cluster.sign_in(&http, 1).await;
    let (st, v) = cluster
        .admin_post(
            1,
            "/accounts",
            json!({"id": "wx", "platform": "wechat", "display_name": "政务微信",
                   "credential": {"app_id": WECHAT_APP_ID, "app_secret": WECHAT_APP_SECRET}}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, cms) = cluster
        .admin_post(
            1,
            "/clients",
            json!({"name": "cms", "accounts": ["wx"], "certificate": cert_pem}),
        )
        .await;
    assert_eq!(st, 201, "{cms}");
    let cms_key = cms["client_key"].as_str().unwrap().to_owned();
    let fingerprint = hex::encode(ring::digest::digest(&ring::digest::SHA256, &cert_der));
    assert_eq!(cms["certificate"]["sha256"], fingerprint.as_str(), "{cms}");

    let ca = std::fs::read(cluster.tmp.path().join("certs/ca.pem")).unwrap();
    let trusting = || {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .local_address(std::net::IpAddr::from([127, 0, 0, 3]))
    };
    let with_cert = trusting()
        .identity(reqwest::Identity::from_pem(format!("{cert_pem}{key_pem}").as_bytes()).unwrap())
        .build()
        .unwrap();
    let without = trusting().build().unwrap();
    let totp = cluster.codes.code("admin").await;
    let urls = [cluster.url(0).to_owned(), cluster.url(1).to_owned()];
    let send =
        |client: &reqwest::Client, node: usize, bearer: &str, path: &str, body: Option<Value>| {
            let url = format!("{}/api/v1{path}", urls[node]);
            let req = match body {
                Some(b) => client.post(url).json(&b),
                None => client.get(url),
            };
            let req = req.bearer_auth(bearer);
            async move { json_of(req.send().await.unwrap()).await }
        };

    // With its certificate, through the standby: the checkout goes through and its token works.
    let checkout = json!({"account": "wx", "operator": "admin",
                          "totp": totp,
                          "purpose": "发布通知", "level": "general"});
    let (st, v) = send(&with_cert, 1, &cms_key, "/checkouts", Some(checkout)).await;
    assert_eq!(st, 201, "through the standby, with the certificate: {v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let (st, v) = send(&with_cert, 1, &token, "/token", None).await;
    assert_eq!(st, 200, "{v}");

    // Without it, through either node: refused.
    for node in [1, 0] {
        let (st, v) = send(&without, node, &token, "/token", None).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (401, Some("client_certificate_required")),
            "node {node}: {v}"
        );
        // The standby's log names what it forwarded under the id the active node gave it.
        if node == 1 {
            let id = v["request_id"].as_str().unwrap();
            let log = b.log_text();
            assert!(
                log.lines()
                    .any(|l| l.contains("forwarded to the active node")
                        && l.contains(id)
                        && l.contains("status=401")),
                "{log}"
            );
        }
    }
    // A client that forges the standby's headers straight to the active node, claiming the
    // certificate it does not hold: the headers are ignored, and the tool refused.
    let forged = without
        .get(format!("{}/api/v1/token", cluster.url(0)))
        .bearer_auth(&token)
        .header("x-mediavault-forwarded-for", "127.0.0.3")
        .header("x-mediavault-forwarded-cert", hex::encode(&cert_der))
        .header("x-mediavault-forwarded-mac", "00".repeat(32))
        .send()
        .await
        .unwrap();
    let (st, v) = json_of(forged).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("client_certificate_required")),
        "{v}"
    );

    // Through a gateway in front of the standby: the standby takes the client's address and the
    // certificate the gateway passes, and vouches for those, not for the gateway.
    let gateway = trusting()
        .local_address(GATEWAY.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let via_gateway = gateway
        .get(format!("{}/api/v1/token", cluster.url(1)))
        .bearer_auth(&token)
        .header("x-forwarded-for", "10.9.8.7")
        .header("x-ssl-client-cert", cert_pem.trim().replace('\n', " "))
        .send()
        .await
        .unwrap();
    let (st, v) = json_of(via_gateway).await;
    assert_eq!(st, 200, "through the gateway and the standby: {v}");

    // The active node recorded the forwarded requests with the client's own address and the
    // certificate the standby vouched for; the refusals name no certificate.
    let (st, page) = cluster.admin_get(1, "/audit?limit=100").await;
    assert_eq!(st, 200, "{page}");
    let token_uses: Vec<&Value> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["http"]["path"] == "/api/v1/token")
        .collect();
    let with: Vec<&&Value> = token_uses
        .iter()
        .filter(|e| e["detail"]["client_cert"]["sha256"] == fingerprint.as_str())
        .collect();
    assert_eq!(with.len(), 2, "{page}");
    assert!(with.iter().all(|e| e["outcome"] == "success"), "{page}");
    let mut addresses: Vec<&str> = with
        .iter()
        .map(|e| e["source_ip"].as_str().unwrap())
        .collect();
    addresses.sort_unstable();
    assert_eq!(addresses, ["10.9.8.7", "127.0.0.3"], "{page}");
    assert!(
        with[0]["detail"]["client_cert"]["subject"]
            .as_str()
            .unwrap()
            .contains("CN=cms-prod"),
        "{page}"
    );
    let refused = token_uses
        .iter()
        .filter(|e| {
            e["outcome"] == "denied"
                && e["detail"]["code"] == "client_certificate_required"
                && e["detail"]["client_cert"].is_null()
        })
        .count();
    assert_eq!(refused, 3, "{page}");
    a.assert_running();
    b.assert_running();
}
