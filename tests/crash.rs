//! Issue 21, crash safety. The binary under test (see `tests/support`) runs as a process of its
//! own on a data dir of its own, set up only through its front door (`init`, then the HTTP API),
//! and is treated as a machine would treat it:
//!
//! - **SIGKILL under load**, ten times in one run. Publishing tools on many connections check
//!   accounts out, publish through the proxy on WeChat and Weibo and check in; admins rotate
//!   credentials and add and disable people. At a moment drawn from a seeded generator (the seed
//!   is printed; `MV_CRASH_SEED` repeats it) the server is killed. Then, on what it left on disk:
//!   nothing is half-written (every credential version has its ciphertext and its audit entry,
//!   every token its checkout, every post record its `platform.send` entry, everything that left
//!   for a platform its post record); every change a client was told about is there, with its
//!   audit entry; `audit verify` passes offline. The server starts again on the same data and the
//!   API says the same (`/audit/verify`, the audit export, the records, the tokens).
//! - **A full disk**: the data dir is a small tmpfs, filled up by another file. Changes are refused
//!   with a clear 503 `audit_unavailable` and nothing of them is kept (nothing is sent to a
//!   platform either); once the file is removed the same server takes the same changes again, and
//!   a crash after that still leaves a store that verifies. Mounting needs root (CAP_SYS_ADMIN):
//!   CI runs as root, and so does every machine of this project.
//!
//! What a client was told is the evidence: each answer that said a change happened is kept with
//! its `x-request-id`, which names its entries in the audit log.
#![cfg(feature = "demo")]
// Tests unwrap and panic on purpose: a failure is the message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    Codes, Daemon, WECHAT_APP_ID, WECHAT_APP_SECRET, WEIBO_APP_KEY, WEIBO_APP_SECRET, WEIBO_TOKEN,
    command, copy_tomls, edit, fake_platforms, json_of, repo, run, vault_bin,
};

const ADMIN_PASSWORD: &str = "crash-admin-password-0001";

/// Kills in one run of the SIGKILL test.
const KILLS: usize = 10;
/// Connections of publishing tools, each with operators of its own (a person's TOTP codes must
/// reach the vault in the order of their steps), and of admins.
const TOOL_WORKERS: usize = 12;
const ADMIN_WORKERS: usize = 2;
const PUBLISHERS: usize = 150;
/// Each checkout spends a TOTP step of one operator, and each operator has two at once and then
/// one every 30 s: 300 at the start and 5 a second. Taken as fast as the vault answers, they
/// would be gone before the second kill; at this pace they last a minute.
const CHECKOUTS_PER_SECOND: f64 = 10.0;

/// Checkouts spread evenly over the run, across the server's lives.
struct Pace {
    since: Instant,
    taken: Mutex<f64>,
}

impl Pace {
    fn new() -> Self {
        Pace {
            since: Instant::now(),
            taken: Mutex::new(0.0),
        }
    }

    fn allows(&self, taken: f64) -> bool {
        taken < self.since.elapsed().as_secs_f64() * CHECKOUTS_PER_SECOND
    }

    /// Whether a checkout would be let through now.
    fn ready(&self) -> bool {
        self.allows(*self.taken.lock().unwrap())
    }

    /// Lets one checkout through, if the pace allows it now.
    fn take(&self) -> bool {
        let mut taken = self.taken.lock().unwrap();
        let ok = self.allows(*taken);
        if ok {
            *taken += 1.0;
        }
        ok
    }
}

/// Plain HTTP (allowed on loopback), and rate limits out of the way of the load.
const RATE_AND_TLS: &str = "
[tls]
plain_http = true

[rate_limits]
login_per_minute = 1000000
login_burst = 1000000
checkout_per_minute = 1000000
checkout_burst = 1000000
token_per_second = 1000000
token_burst = 1000000
general_per_second = 1000000
general_burst = 1000000
";

/// splitmix64: the kill moments and the mix of requests follow from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    match std::env::var("MV_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("MV_CRASH_SEED={s:?} is not a number")),
        Err(_) => {
            let now = mediavault::Clock::system().now();
            now.unix_timestamp().unsigned_abs() ^ u64::from(now.nanosecond())
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}

/// A change a client was told had happened.
#[derive(Debug, Clone)]
enum Change {
    Checkout {
        id: String,
        token: String,
        account: String,
    },
    /// A WeChat draft made through the proxy: the vault remembers it under the checkout.
    Draft {
        media_id: String,
    },
    /// A post through the proxy: Weibo's status id or WeChat's publish_id.
    Publish {
        account: String,
        platform_id: String,
    },
    Checkin {
        id: String,
    },
    Rotate {
        account: String,
        version: i64,
    },
    UserCreate {
        username: String,
    },
    UserDisable {
        username: String,
    },
}

impl Change {
    fn kind(&self) -> &'static str {
        match self {
            Change::Checkout { .. } => "checkout",
            Change::Draft { .. } => "draft",
            Change::Publish { account, .. } if account == "wechat-main" => "publish on wechat",
            Change::Publish { .. } => "publish on weibo",
            Change::Checkin { .. } => "check-in",
            Change::Rotate { .. } => "rotation",
            Change::UserCreate { .. } => "user added",
            Change::UserDisable { .. } => "user disabled",
        }
    }
}

#[derive(Debug, Clone)]
struct Ack {
    request_id: String,
    change: Change,
}

/// An HTTP answer, or none (the connection died: the server was killed).
enum Answer {
    Got(u16, String, Value),
    Lost,
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn send(rb: reqwest::RequestBuilder) -> Answer {
    let Ok(r) = rb.send().await else {
        return Answer::Lost;
    };
    let (status, rid) = (r.status().as_u16(), header(&r, "x-request-id"));
    let Ok(text) = r.text().await else {
        return Answer::Lost;
    };
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer::Got(status, rid, v)
}

/// The vault's files, configuration and people, set up through the front door.
struct World {
    /// Unmounted before the temporary directory goes (fields drop in order).
    _mount: Option<Tmpfs>,
    tmp: tempfile::TempDir,
    bin: PathBuf,
    home: PathBuf,
    config: PathBuf,
    data: PathBuf,
    fakes: Daemon,
    fake_url: String,
    http: reqwest::Client,
    codes: Arc<Mutex<Codes>>,
    publishers: Vec<String>,
    session: String,
    client_key: String,
    serial: Arc<AtomicU64>,
    pace: Arc<Pace>,
    starts: usize,
}

impl World {
    /// The fakes, the policies (the shipped ones, shared instead of exclusive, at any hour and
    /// without the Weibo posting budget, which a load of many posts an hour would spend),
    /// the configuration, `init`, a first start; then through the API: the admin signs in (which
    /// opens a five-minute step-up window for every admin change that follows), `publishers`
    /// people are imported, the three accounts and the publishing tool `cms` are added.
    async fn new(
        tmp: tempfile::TempDir,
        mount: Option<Tmpfs>,
        publishers: usize,
    ) -> (Self, Daemon, String) {
        let dir = tmp.path().to_path_buf();
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let (fakes, fake_url) = fake_platforms(&dir, &home).await;
        let policies = dir.join("policies");
        copy_tomls(&repo().join("policies"), &policies);
        copy_tomls(
            &repo().join("policies/playbooks"),
            &policies.join("playbooks"),
        );
        for name in ["wechat-main.toml", "weibo-main.toml"] {
            let p = policies.join(name);
            let text = std::fs::read_to_string(&p).unwrap();
            let text = edit(&text, "exclusive = true", "exclusive = false", name);
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with("allowed_hours") && !l.starts_with("max_posts_per_"))
                .collect();
            std::fs::write(&p, kept.join("\n") + "\n").unwrap();
        }
        let data = dir.join("data");
        let config = dir.join("mediavault.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\npolicies_dir = \"{}\"\n{RATE_AND_TLS}\n\
                 [platforms]\nwechat_base_url = \"{fake_url}\"\nweibo_base_url = \"{fake_url}\"\n\n\
                 [log]\nlevel = \"warn\"\n",
                data.display(),
                policies.display()
            ),
        )
        .unwrap();
        let mut world = World {
            _mount: mount,
            tmp,
            bin: vault_bin(),
            home,
            config,
            data,
            fakes,
            fake_url,
            http: http_client(),
            codes: Arc::new(Mutex::new(Codes::default())),
            publishers: (1..=publishers).map(|i| format!("pub{i:03}")).collect(),
            session: String::new(),
            client_key: String::new(),
            serial: Arc::new(AtomicU64::new(0)),
            pace: Arc::new(Pace::new()),
            starts: 0,
        };
        let out = run(
            world.cli(&["init", "--admin", "admin", "--password-stdin", "--json"]),
            &format!("{ADMIN_PASSWORD}\n"),
        )
        .await;
        let init: Value = serde_json::from_str(&out).unwrap();
        world
            .codes
            .lock()
            .unwrap()
            .enrol("admin", init["totp_secret"].as_str().unwrap());
        let (vault, url) = world.serve().await;

        let code = world.codes.lock().unwrap().code_now("admin").unwrap();
        let (st, v) = json_of(
            world
                .http
                .post(format!("{url}/api/v1/auth/login"))
                .json(&json!({"username": "admin", "password": ADMIN_PASSWORD, "totp": code}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        world.session = v["session_token"].as_str().unwrap().to_owned();

        let roster: Vec<Value> = world
            .publishers
            .iter()
            .map(|p| {
                json!({"username": p, "display_name": format!("发布员 {p}"),
                       "department": "办公室", "roles": ["publisher"]})
            })
            .collect();
        // Every person's initial password is hashed with argon2id, two at a time.
        let (st, v) = json_of(
            world
                .http
                .post(format!("{url}/api/v1/users/import"))
                .bearer_auth(&world.session)
                .timeout(Duration::from_secs(180))
                .json(&json!({"users": roster}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        for p in v["created"].as_array().unwrap() {
            world.codes.lock().unwrap().enrol(
                p["username"].as_str().unwrap(),
                p["totp_secret"].as_str().unwrap(),
            );
        }
        for (id, platform, credential) in [
            (
                "wechat-main",
                "wechat",
                json!({"app_id": WECHAT_APP_ID, "app_secret": WECHAT_APP_SECRET}),
            ),
            (
                "weibo-main",
                "weibo",
                json!({"app_key": WEIBO_APP_KEY, "app_secret": WEIBO_APP_SECRET,
                       "access_token": WEIBO_TOKEN}),
            ),
            (
                "portal",
                "generic",
                json!({"username": "portal-admin", "password": "portal-password-0"}),
            ),
        ] {
            let (st, v) = world
                .admin_post(
                    &url,
                    "/accounts",
                    json!({"id": id, "platform": platform, "display_name": id,
                           "credential": credential}),
                )
                .await;
            assert_eq!(st, 201, "{v}");
        }
        let (st, v) = world
            .admin_post(
                &url,
                "/clients",
                json!({"name": "cms", "accounts": ["wechat-main", "weibo-main"]}),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        world.client_key = v["client_key"].as_str().unwrap().to_owned();
        // The pace starts with the load, not with the setup.
        world.pace = Arc::new(Pace::new());
        (world, vault, url)
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// A command of the binary under test with this vault's configuration.
    fn cli(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = command(&self.bin, self.dir(), &self.home);
        c.arg("--config").arg(&self.config).args(args);
        c
    }

    /// `serve`, ready once it says where it serves (it has bound its port and opened the store).
    async fn serve(&mut self) -> (Daemon, String) {
        self.starts += 1;
        let log = self.dir().join(format!("vault-{}.log", self.starts));
        let (vault, url) =
            Daemon::start(self.cli(&["serve"]), "vault", log, "mediavault serving on ").await;
        // It names itself `localhost`; the policies admit loopback, so take the address it bound.
        let url = url.replace("://localhost:", "://127.0.0.1:");
        (vault, url)
    }

    async fn admin_post(&self, url: &str, path: &str, body: Value) -> (u16, Value) {
        json_of(
            self.http
                .post(format!("{url}/api/v1{path}"))
                .bearer_auth(&self.session)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn admin_get(&self, url: &str, path: &str) -> (u16, Value) {
        json_of(
            self.http
                .get(format!("{url}/api/v1{path}"))
                .bearer_auth(&self.session)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// What the load's connections share while the server at `url` lives.
    fn load(&self, url: &str, seed: u64) -> Arc<Load> {
        Arc::new(Load {
            url: url.to_owned(),
            seed,
            client_key: self.client_key.clone(),
            session: self.session.clone(),
            codes: Arc::clone(&self.codes),
            publishers: self.publishers.clone(),
            serial: Arc::clone(&self.serial),
            pace: Arc::clone(&self.pace),
            stop: AtomicBool::new(false),
        })
    }

    /// `audit verify`, offline on the data dir, as the root key holder runs it on the server.
    async fn offline_verify(&self) -> Value {
        let out = run(self.cli(&["audit", "verify"]), "").await;
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["ok"], true, "audit verify, offline: {report}");
        report
    }

    /// The API's verification and its export of the whole log, by request id.
    async fn audit_by_request(&self, url: &str) -> HashMap<String, Vec<Value>> {
        let (st, v) = self.admin_get(url, "/audit/verify").await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["ok"], true, "GET /audit/verify: {v}");
        let r = self
            .http
            .get(format!("{url}/api/v1/audit/export?format=jsonl"))
            .bearer_auth(&self.session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let mut by_request: HashMap<String, Vec<Value>> = HashMap::new();
        for line in text.lines() {
            let e: Value = serde_json::from_str(line).unwrap();
            let rid = e["request_id"].as_str().unwrap_or_default().to_owned();
            by_request.entry(rid).or_default().push(e);
        }
        by_request
    }

    /// What left for the platforms, as the fakes saw it.
    async fn published(&self) -> Value {
        let (st, v) = json_of(
            self.http
                .get(format!("{}/_fake/published", self.fake_url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        v
    }
}

/// A tmpfs of `size` mounted at a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("mediavault-full-disk-test")
            .arg(at)
            .output()
            .unwrap_or_else(|e| panic!("mount: {e}"));
        assert!(
            out.status.success(),
            "the full-disk test mounts a {size} tmpfs as the vault's data dir, which needs root \
             (CAP_SYS_ADMIN), as CI and this project's machines have: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the vault may still be on its way out.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// What the load's connections share for one life of the server.
struct Load {
    url: String,
    seed: u64,
    client_key: String,
    session: String,
    codes: Arc<Mutex<Codes>>,
    publishers: Vec<String>,
    serial: Arc<AtomicU64>,
    pace: Arc<Pace>,
    stop: AtomicBool,
}

/// The requests of the load, each as a tool or an admin sends it.
impl Load {
    fn checkout(
        &self,
        http: &reqwest::Client,
        account: &str,
        operator: &str,
        code: &str,
    ) -> reqwest::RequestBuilder {
        http.post(format!("{}/api/v1/checkouts", self.url))
            .bearer_auth(&self.client_key)
            .json(
                &json!({"account": account, "operator": operator, "totp": code,
                          "purpose": "日常信息发布", "level": "general"}),
            )
    }

    fn weibo_share(
        &self,
        http: &reqwest::Client,
        token: &str,
        text: &str,
    ) -> reqwest::RequestBuilder {
        http.post(format!(
            "{}/api/v1/platform/weibo-main/2/statuses/share.json",
            self.url
        ))
        .bearer_auth(token)
        .form(&[("status", text)])
    }

    fn checkin(&self, http: &reqwest::Client, id: &str, token: &str) -> reqwest::RequestBuilder {
        http.post(format!("{}/api/v1/checkouts/{id}/checkin", self.url))
            .bearer_auth(token)
    }

    /// Weibo: to the same values (the platform knows only those); the portal: a new password.
    fn rotate(&self, http: &reqwest::Client, account: &str, n: u64) -> reqwest::RequestBuilder {
        let credential = if account == "weibo-main" {
            json!({"app_key": WEIBO_APP_KEY, "app_secret": WEIBO_APP_SECRET,
                   "access_token": WEIBO_TOKEN})
        } else {
            json!({"username": "portal-admin", "password": format!("portal-password-{n}")})
        };
        http.post(format!("{}/api/v1/accounts/{account}/rotate", self.url))
            .bearer_auth(&self.session)
            .json(&json!({"credential": credential, "reason": "定期轮换"}))
    }

    fn add_user(&self, http: &reqwest::Client, username: &str) -> reqwest::RequestBuilder {
        http.post(format!("{}/api/v1/users", self.url))
            .bearer_auth(&self.session)
            .json(&json!({"username": username, "display_name": "临时人员",
                          "roles": ["publisher"], "password": "temp-password-0001"}))
    }

    fn disable_user(&self, http: &reqwest::Client, username: &str) -> reqwest::RequestBuilder {
        http.post(format!("{}/api/v1/users/{username}/disable", self.url))
            .bearer_auth(&self.session)
    }
}

/// What one connection saw: the changes it was told about, and any answer no correct vault gives
/// to these requests.
#[derive(Default)]
struct Report {
    acks: Vec<Ack>,
    surprises: Vec<String>,
    /// It ended on a request that got no answer: the kill cut it off.
    cut: bool,
}

impl Report {
    fn ack(&mut self, request_id: String, change: Change) {
        self.acks.push(Ack { request_id, change });
    }
}

/// A checkout a tool holds.
struct Held {
    id: String,
    token: String,
    account: &'static str,
    publishes: u32,
    /// The last WeChat draft this checkout made.
    draft: Option<String>,
}

/// A publishing tool on one connection: checks out (with the codes of its own operators), posts
/// through the proxy (Weibo: a status; WeChat: a draft, then its publish) and checks in.
/// Whatever it holds when the server dies stays checked out, and its token must still work.
async fn tool_worker(load: Arc<Load>, me: usize, mut rng: Rng) -> Report {
    let http = http_client();
    let url = load.url.as_str();
    let ops: Vec<String> = load
        .publishers
        .iter()
        .enumerate()
        .filter(|(i, _)| i % TOOL_WORKERS == me)
        .map(|(_, p)| p.clone())
        .collect();
    let mut rep = Report::default();
    let mut held: Option<Held> = None;
    while !load.stop.load(Ordering::SeqCst) {
        let Some(mut h) = held.take() else {
            let start = rng.below(ops.len() as u64) as usize;
            let got = load.pace.take().then(|| {
                let mut codes = load.codes.lock().unwrap();
                (0..ops.len()).find_map(|k| {
                    let op = &ops[(start + k) % ops.len()];
                    codes.code_now(op).map(|c| (op.clone(), c))
                })
            });
            let Some((operator, code)) = got.flatten() else {
                // Every operator of this tool has used this step and the next (the clock must
                // move), or the run's pace says wait.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let account = if rng.below(2) == 0 {
                "weibo-main"
            } else {
                "wechat-main"
            };
            match send(load.checkout(&http, account, &operator, &code)).await {
                Answer::Got(201, rid, v) => {
                    let id = v["checkout_id"].as_str().unwrap().to_owned();
                    let token = v["token"].as_str().unwrap().to_owned();
                    rep.ack(
                        rid,
                        Change::Checkout {
                            id: id.clone(),
                            token: token.clone(),
                            account: account.to_owned(),
                        },
                    );
                    held = Some(Held {
                        id,
                        token,
                        account,
                        publishes: 0,
                        draft: None,
                    });
                }
                Answer::Got(st, _, v) => rep.surprises.push(format!("checkout: {st} {v}")),
                Answer::Lost => {
                    rep.cut = true;
                    break;
                }
            }
            continue;
        };
        // A checkout's post goes out once per account. After it the tool checks in when the
        // pace lets it check out again; until then it reads the Weibo timeline or makes more
        // WeChat drafts. Before it, WeChat takes one or more drafts, then publishes the last.
        let step = match (h.account, h.publishes > 0) {
            (_, true) if load.pace.ready() => "checkin",
            ("weibo-main", true) => "timeline",
            ("weibo-main", false) => "share",
            (_, false) if h.draft.is_some() && rng.below(2) == 0 => "submit",
            _ => "draft",
        };
        let n = load.serial.fetch_add(1, Ordering::SeqCst);
        let text = format!("崩溃测试 {} 第{n}条：今日信息发布", load.seed);
        let proxy = format!("{url}/api/v1/platform/{}", h.account);
        let request = match step {
            "checkin" => load.checkin(&http, &h.id, &h.token),
            "timeline" => http
                .get(format!("{proxy}/2/statuses/user_timeline.json?count=5"))
                .bearer_auth(&h.token),
            "share" => load.weibo_share(&http, &h.token, &text),
            "submit" => http
                .post(format!("{proxy}/cgi-bin/freepublish/submit"))
                .bearer_auth(&h.token)
                .json(&json!({"media_id": h.draft})),
            _ => {
                let article = json!({"title": format!("信息发布 {n}"), "author": "办公室",
                                     "content": format!("<p>{text}</p>")});
                http.post(format!("{proxy}/cgi-bin/draft/add"))
                    .bearer_auth(&h.token)
                    .json(&json!({"articles": [article]}))
            }
        };
        let (rid, v) = match send(request).await {
            Answer::Got(200, rid, v) => (rid, v),
            Answer::Got(st, _, v) => {
                rep.surprises
                    .push(format!("{step} on {}: {st} {v}", h.account));
                held = Some(h);
                continue;
            }
            Answer::Lost => {
                rep.cut = true;
                break;
            }
        };
        let id = |field: &str| v[field].as_str().map(str::to_owned);
        match (step, id("idstr"), id("publish_id"), id("media_id")) {
            ("checkin", ..) => {
                rep.ack(rid, Change::Checkin { id: h.id });
                continue;
            }
            ("timeline", ..) if v["statuses"].is_array() => {}
            ("share", Some(platform_id), ..) | ("submit", _, Some(platform_id), _) => {
                rep.ack(
                    rid,
                    Change::Publish {
                        account: h.account.to_owned(),
                        platform_id,
                    },
                );
                h.publishes += 1;
            }
            ("draft", _, _, Some(media_id)) => {
                rep.ack(
                    rid,
                    Change::Draft {
                        media_id: media_id.clone(),
                    },
                );
                h.draft = Some(media_id);
            }
            _ => rep.surprises.push(format!(
                "{step} on {}: an answer without its id: {v}",
                h.account
            )),
        }
        held = Some(h);
    }
    rep
}

/// An admin on one connection, inside the step-up window of the sign-in: rotates the Weibo
/// credential (to the same values: the platform knows only those) and the portal's password,
/// adds people and disables them.
async fn admin_worker(load: Arc<Load>, mut rng: Rng) -> Report {
    let http = http_client();
    let mut rep = Report::default();
    while !load.stop.load(Ordering::SeqCst) {
        let n = load.serial.fetch_add(1, Ordering::SeqCst);
        let pick = rng.below(10);
        if pick < 6 {
            let account = if pick < 3 { "weibo-main" } else { "portal" };
            match send(load.rotate(&http, account, n)).await {
                Answer::Got(200, rid, v) => rep.ack(
                    rid,
                    Change::Rotate {
                        account: account.to_owned(),
                        version: v["credential_version"].as_i64().unwrap(),
                    },
                ),
                Answer::Got(st, _, v) => rep.surprises.push(format!("rotate {account}: {st} {v}")),
                Answer::Lost => {
                    rep.cut = true;
                    break;
                }
            }
            continue;
        }
        let username = format!("temp{n}");
        match send(load.add_user(&http, &username)).await {
            Answer::Got(201, rid, _) => rep.ack(
                rid,
                Change::UserCreate {
                    username: username.clone(),
                },
            ),
            Answer::Got(st, _, v) => {
                rep.surprises.push(format!("user {username}: {st} {v}"));
                continue;
            }
            Answer::Lost => {
                rep.cut = true;
                break;
            }
        }
        match send(load.disable_user(&http, &username)).await {
            Answer::Got(200, rid, _) => rep.ack(rid, Change::UserDisable { username }),
            Answer::Got(st, _, v) => rep.surprises.push(format!("disable {username}: {st} {v}")),
            Answer::Lost => {
                rep.cut = true;
                break;
            }
        }
    }
    rep
}

/// (id, account, status, live_sha256, status_id, publish_id)
type PostRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// Every row of a query.
async fn all<T>(db: &sqlx::SqlitePool, sql: &'static str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    sqlx::query_as(sql).fetch_all(db).await.unwrap()
}

/// The database as the killed server left it, opened from a copy (the database and its WAL, as
/// a restart would find them), so the server's own recovery on restart is left untouched.
struct Image {
    /// (seq, action, target, outcome, detail)
    audit: Vec<(i64, String, String, String, Value)>,
    /// (account, version, length of the ciphertext)
    versions: Vec<(String, i64, i64)>,
    /// (account, current version)
    accounts: Vec<(String, i64)>,
    /// (id, status, has a token hash, issued_at and expires_at both set)
    checkouts: Vec<(String, String, bool, bool)>,
    posts: Vec<PostRow>,
    /// (kind, platform id)
    media: Vec<(String, String)>,
    /// (username, disabled)
    users: Vec<(String, bool)>,
    integrity: String,
}

impl Image {
    async fn read(data: &Path, scratch: &Path) -> Self {
        let _ = std::fs::remove_dir_all(scratch);
        std::fs::create_dir_all(scratch).unwrap();
        for name in ["mediavault.db", "mediavault.db-wal"] {
            let from = data.join(name);
            if from.exists() {
                std::fs::copy(&from, scratch.join(name)).unwrap();
            }
        }
        let opts =
            sqlx::sqlite::SqliteConnectOptions::new().filename(scratch.join("mediavault.db"));
        // Without sqlx's reaper task, whose spin once hung this test (`pool_options` says why).
        let db = mediavault_store::pool_options::<sqlx::Sqlite>()
            .max_connections(1)
            .connect_with(opts)
            .await
            .unwrap();
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&db)
            .await
            .unwrap();
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT seq, action, target, outcome, detail FROM audit_log ORDER BY seq",
        )
        .fetch_all(&db)
        .await
        .unwrap();
        let audit = rows
            .into_iter()
            .map(|(s, a, t, o, d)| (s, a, t, o, serde_json::from_str(&d).unwrap()))
            .collect();
        let image = Image {
            audit,
            versions: all(
                &db,
                "SELECT account_id, version, length(sealed) FROM credential_versions",
            )
            .await,
            accounts: all(&db, "SELECT id, current_version FROM accounts").await,
            checkouts: all(
                &db,
                "SELECT id, status, token_hash IS NOT NULL, \
                 issued_at IS NOT NULL AND expires_at IS NOT NULL FROM checkouts",
            )
            .await,
            posts: all(
                &db,
                "SELECT id, account_id, status, live_sha256, status_id, publish_id FROM posts",
            )
            .await,
            media: all(&db, "SELECT kind, platform_id FROM checkout_media").await,
            users: all(&db, "SELECT username, disabled FROM users").await,
            integrity,
        };
        db.close().await;
        image
    }

    /// Whether the log has a successful `action` on `target` (any target when None) whose
    /// detail has `key` = `value` (when given).
    fn logged(&self, action: &str, target: Option<&str>, key: Option<(&str, &Value)>) -> bool {
        self.audit.iter().any(|(_, a, t, o, d)| {
            a == action
                && o == "success"
                && target.is_none_or(|x| x == t)
                && key.is_none_or(|(k, v)| &d[k] == v)
        })
    }

    /// Everything half-written, and every acknowledged change that is missing.
    fn problems(&self, acks: &[Ack], published: &Value) -> Vec<String> {
        let mut bad = Vec::new();
        if self.integrity != "ok" {
            bad.push(format!("PRAGMA integrity_check: {}", self.integrity));
        }
        if let (Some(first), Some(last)) = (self.audit.first(), self.audit.last()) {
            let n = i64::try_from(self.audit.len()).unwrap();
            if last.0 - first.0 + 1 != n {
                bad.push(format!(
                    "audit seqs {}..{} hold {n} entries",
                    first.0, last.0
                ));
            }
        }
        for (account, version, len) in &self.versions {
            // AES-256-GCM: a 12-byte nonce and a 16-byte tag around the sealed fields.
            if *len <= 28 {
                bad.push(format!("{account} v{version}: a ciphertext of {len} bytes"));
            }
            let v = json!(version);
            if !(*version == 1 && self.logged("account.create", Some(account), None)
                || self.logged(
                    "account.rotate",
                    Some(account),
                    Some(("credential_version", &v)),
                ))
            {
                bad.push(format!("{account} v{version} without its audit entry"));
            }
        }
        for (account, current) in &self.accounts {
            if !self
                .versions
                .iter()
                .any(|(a, v, _)| a == account && v == current)
            {
                bad.push(format!(
                    "{account}: current version {current} is not stored"
                ));
            }
        }
        for (id, status, token, times) in &self.checkouts {
            if *token
                && (!times
                    || !["active", "checked_in", "expired", "revoked"].contains(&status.as_str()))
            {
                bad.push(format!("a token on {id} ({status}) that was never issued"));
            }
            if !self.logged("checkout.create", None, Some(("checkout_id", &json!(id)))) {
                bad.push(format!("checkout {id} without its checkout.create entry"));
            }
            if status == "checked_in" && !self.logged("checkout.checkin", Some(id), None) {
                bad.push(format!("checkout {id} checked in without its entry"));
            }
        }
        for (id, _, status, _, _, _) in &self.posts {
            if !self
                .audit
                .iter()
                .any(|(_, a, _, _, d)| a == "platform.send" && d["post_id"] == *id)
            {
                bad.push(format!("post {id} without its platform.send entry"));
            }
            if status != "sending"
                && !self.logged("post.update", Some(id), Some(("status", &json!(status))))
            {
                bad.push(format!(
                    "post {id} is {status} without its post.update entry"
                ));
            }
        }
        for (kind, platform_id) in &self.media {
            if !self.logged(
                "platform.call",
                None,
                Some(("platform_id", &json!(platform_id))),
            ) {
                bad.push(format!(
                    "{kind} {platform_id} without its platform.call entry"
                ));
            }
        }
        for (username, disabled) in &self.users {
            if !self.logged("user.create", Some(username), None) {
                bad.push(format!("user {username} without its user.create entry"));
            }
            if *disabled && !self.logged("user.disable", Some(username), None) {
                bad.push(format!("user {username} disabled without its entry"));
            }
        }
        // What reached a platform was recorded before it left.
        let live: HashSet<(&str, &str)> = self
            .posts
            .iter()
            .map(|(_, account, _, live, _, _)| (account.as_str(), live.as_str()))
            .collect();
        for s in published["weibo"].as_array().unwrap() {
            let text = s["text"].as_str().unwrap();
            if !live.contains(&("weibo-main", sha256_hex(text.as_bytes()).as_str())) {
                bad.push(format!("on Weibo without a post record: {text}"));
            }
        }
        for a in published["wechat"].as_array().unwrap() {
            let content = a["articles"][0]["content"].as_str().unwrap();
            if !live.contains(&("wechat-main", sha256_hex(content.as_bytes()).as_str())) {
                bad.push(format!("on WeChat without a post record: {content}"));
            }
        }
        for ack in acks {
            let there = match &ack.change {
                Change::Checkout { id, .. } => self.checkouts.iter().any(|c| &c.0 == id),
                Change::Draft { media_id } => self
                    .media
                    .iter()
                    .any(|(k, m)| k == "draft" && m == media_id),
                Change::Publish {
                    account,
                    platform_id,
                } => self
                    .posts
                    .iter()
                    .any(|(_, a, status, _, status_id, publish_id)| {
                        a == account
                            && status != "sending"
                            && (status_id.as_ref() == Some(platform_id)
                                || publish_id.as_ref() == Some(platform_id))
                    }),
                Change::Checkin { id } => self
                    .checkouts
                    .iter()
                    .any(|c| &c.0 == id && c.1 == "checked_in"),
                Change::Rotate { account, version } => self
                    .versions
                    .iter()
                    .any(|(a, v, _)| a == account && v == version),
                Change::UserCreate { username } => self.users.iter().any(|u| &u.0 == username),
                Change::UserDisable { username } => {
                    self.users.iter().any(|u| &u.0 == username && u.1)
                }
            };
            if !there {
                bad.push(format!("acknowledged but not on disk: {ack:?}"));
            }
        }
        bad
    }
}

/// The audit entries of each acknowledged change, by the request id its answer carried.
fn unaudited(acks: &[Ack], log: &HashMap<String, Vec<Value>>) -> Vec<String> {
    let mut bad = Vec::new();
    for ack in acks {
        let entries = log
            .get(&ack.request_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let has = |action: &str, f: &dyn Fn(&Value) -> bool| {
            entries
                .iter()
                .any(|e| e["action"] == action && e["outcome"] == "success" && f(e))
        };
        let ok = match &ack.change {
            Change::Checkout { id, .. } => {
                has("checkout.create", &|e| e["detail"]["checkout_id"] == *id)
            }
            Change::Draft { media_id } => has("platform.call", &|e| {
                e["detail"]["media_kind"] == "draft" && e["detail"]["platform_id"] == *media_id
            }),
            // The answer moved a post record on; the record was written with the send entry.
            Change::Publish { platform_id, .. } => entries
                .iter()
                .filter(|e| {
                    e["action"] == "post.update"
                        && (e["detail"]["status_id"] == *platform_id
                            || e["detail"]["publish_id"] == *platform_id)
                })
                .any(|u| has("platform.send", &|e| e["detail"]["post_id"] == u["target"])),
            Change::Checkin { id } => has("checkout.checkin", &|e| e["target"] == *id),
            Change::Rotate { account, version } => has("account.rotate", &|e| {
                e["target"] == *account && e["detail"]["credential_version"] == *version
            }),
            Change::UserCreate { username } => has("user.create", &|e| e["target"] == *username),
            Change::UserDisable { username } => has("user.disable", &|e| e["target"] == *username),
        };
        if !ok {
            bad.push(format!(
                "acknowledged without its audit entry: {ack:?}; entries of its request: {entries:?}"
            ));
        }
    }
    bad
}

/// Each acknowledged change as the API shows it after a restart: the checkout and whether its
/// token still works, the post record, the credential version, the person.
async fn missing_from_api(
    world: &World,
    url: &str,
    acks: &[Ack],
    log: &HashMap<String, Vec<Value>>,
) -> Vec<String> {
    let checked_in: HashSet<&str> = acks
        .iter()
        .filter_map(|a| match &a.change {
            Change::Checkin { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let mut bad = Vec::new();
    for ack in acks {
        let wrong = match &ack.change {
            Change::Checkout { id, token, account } => {
                let (st, v) = world.admin_get(url, &format!("/checkouts/{id}")).await;
                let status = v["status"].as_str().unwrap_or_default();
                let (tst, tv) = json_of(
                    world
                        .http
                        .get(format!("{url}/api/v1/token"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                if st != 200 || v["account"] != *account {
                    Some(format!("GET /checkouts/{id}: {st} {v}"))
                } else if checked_in.contains(id.as_str()) && (status != "checked_in" || tst != 401)
                {
                    Some(format!(
                        "checked in, but {status} and its token answers {tst} {tv}"
                    ))
                } else if status == "active" && (tst != 200 || tv["checkout_id"] != *id) {
                    Some(format!("active, but its token answers {tst} {tv}"))
                } else if !["active", "checked_in"].contains(&status) {
                    Some(format!("{status}: {v}"))
                } else {
                    None
                }
            }
            // Drafts are not in the API's views: the crash image and the audit log show them.
            Change::Draft { .. } => None,
            Change::Publish {
                account,
                platform_id,
            } => {
                let post = log.get(&ack.request_id).and_then(|entries| {
                    entries
                        .iter()
                        .find(|e| e["action"] == "platform.send")
                        .and_then(|e| e["detail"]["post_id"].as_str())
                });
                match post {
                    None => Some("no platform.send entry names its post".to_owned()),
                    Some(post) => {
                        let (st, v) = world.admin_get(url, &format!("/posts/{post}")).await;
                        // WeChat's publish is asynchronous: `submitted` until someone asks.
                        let (field, statuses) = if account == "weibo-main" {
                            ("status_id", &["published"][..])
                        } else {
                            ("publish_id", &["submitted", "published"][..])
                        };
                        let status = v["status"].as_str().unwrap_or_default();
                        (st != 200 || v[field] != *platform_id || !statuses.contains(&status))
                            .then(|| format!("GET /posts/{post}: {st} {v}"))
                    }
                }
            }
            Change::Checkin { .. } => None,
            Change::Rotate { account, version } => {
                let (st, v) = world
                    .admin_get(url, &format!("/accounts/{account}/versions"))
                    .await;
                let listed = v
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x["version"] == *version));
                (st != 200 || !listed).then(|| format!("versions of {account}: {st} {v}"))
            }
            Change::UserCreate { username } => {
                let (st, v) = world.admin_get(url, &format!("/users/{username}")).await;
                (st != 200).then(|| format!("GET /users/{username}: {st} {v}"))
            }
            Change::UserDisable { username } => {
                let (st, v) = world.admin_get(url, &format!("/users/{username}")).await;
                (st != 200 || v["disabled"] != true)
                    .then(|| format!("GET /users/{username}: {st} {v}"))
            }
        };
        if let Some(w) = wrong {
            bad.push(format!("{ack:?}: {w}"));
        }
    }
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_sigkills_under_load_leave_nothing_half_written_and_lose_nothing_acknowledged() {
    let started = Instant::now();
    let seed = seed();
    eprintln!("crash test seed {seed} (MV_CRASH_SEED={seed} repeats the kill moments and the mix)");
    let mut rng = Rng(seed);
    let tmp = tempfile::Builder::new()
        .prefix("mv-crash-")
        .tempdir()
        .unwrap();
    let (mut world, mut vault, mut url) = World::new(tmp, None, PUBLISHERS).await;
    let setup = started.elapsed();
    let scratch = world.dir().join("image");
    let mut all: Vec<Ack> = Vec::new();
    let mut last_log = HashMap::new();
    for kill in 1..=KILLS {
        let load = world.load(&url, seed);
        let mut workers = Vec::new();
        for me in 0..TOOL_WORKERS {
            workers.push(tokio::spawn(tool_worker(
                Arc::clone(&load),
                me,
                Rng(rng.next()),
            )));
        }
        for _ in 0..ADMIN_WORKERS {
            workers.push(tokio::spawn(admin_worker(
                Arc::clone(&load),
                Rng(rng.next()),
            )));
        }
        // The moment: anywhere from the first requests to two seconds into the load.
        let delay = Duration::from_millis(20 + rng.below(2000));
        tokio::time::sleep(delay).await;
        let status = vault.kill().await;
        load.stop.store(true, Ordering::SeqCst);
        // Killed, not ended by itself.
        assert_eq!(status.signal(), Some(9), "kill {kill}: {status}");
        let mut acks = Vec::new();
        let mut surprises = Vec::new();
        let mut cut = 0;
        for w in workers {
            let rep = w.await.unwrap();
            acks.extend(rep.acks);
            surprises.extend(rep.surprises);
            cut += usize::from(rep.cut);
        }
        assert!(
            surprises.is_empty(),
            "kill {kill}: answers no vault should give:\n{}",
            surprises.join("\n")
        );
        all.extend(acks.iter().cloned());

        // What the killed server left on disk.
        let image = Image::read(&world.data, &scratch).await;
        let bad = image.problems(&all, &world.published().await);
        assert!(
            bad.is_empty(),
            "kill {kill} (seed {seed}): {}",
            bad.join("\n")
        );
        let report = world.offline_verify().await;
        assert_eq!(report["entries_checked"], image.audit.len(), "{report}");

        // The same data, served again.
        (vault, url) = world.serve().await;
        let log = world.audit_by_request(&url).await;
        let bad = unaudited(&all, &log);
        assert!(
            bad.is_empty(),
            "kill {kill} (seed {seed}): {}",
            bad.join("\n")
        );
        let bad = missing_from_api(&world, &url, &acks, &log).await;
        assert!(
            bad.is_empty(),
            "kill {kill} (seed {seed}): {}",
            bad.join("\n")
        );
        eprintln!(
            "kill {kill}: {status} after {} ms of load, {cut} requests cut off; {} changes \
             acknowledged ({} so far), {} audit entries, all there after the restart",
            delay.as_millis(),
            acks.len(),
            all.len(),
            image.audit.len()
        );
        last_log = log;
    }
    // Once more, everything acknowledged in the whole run, through the last server.
    let bad = missing_from_api(&world, &url, &all, &last_log).await;
    assert!(
        bad.is_empty(),
        "after the last restart (seed {seed}): {}",
        bad.join("\n")
    );
    // A run that acknowledged no change of some kind would show nothing about it.
    let mut kinds: HashMap<&str, usize> = HashMap::new();
    for a in &all {
        *kinds.entry(a.change.kind()).or_default() += 1;
    }
    for kind in [
        "checkout",
        "draft",
        "publish on wechat",
        "publish on weibo",
        "check-in",
        "rotation",
        "user added",
        "user disabled",
    ] {
        assert!(
            kinds.contains_key(kind),
            "no {kind} was acknowledged in the whole run: {kinds:?}"
        );
    }
    vault.assert_running();
    world.fakes.assert_running();
    let mut counts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    counts.sort();
    eprintln!(
        "{KILLS} kills with {}: {} acknowledged changes checked ({}), setup {:.1} s, {:.1} s in all",
        world.bin.display(),
        all.len(),
        counts.join(", "),
        setup.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Fills the file system that holds `dir` with one file, to its last byte; returns the file.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 1 << 16];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            // ENOSPC
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    path
}

/// A refusal as a client must get it on a full disk: at once, a 503 problem whose code says the
/// audit log cannot be written, naming its request.
async fn assert_refused(what: &str, rb: reqwest::RequestBuilder) -> String {
    let asked = Instant::now();
    let r = rb.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = r.status().as_u16();
    let (content_type, rid) = (header(&r, "content-type"), header(&r, "x-request-id"));
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(status, 503, "{what} on a full disk: {v}");
    assert_eq!(content_type, "application/problem+json", "{what}");
    assert_eq!(v["code"], "audit_unavailable", "{what}: {v}");
    assert_eq!(v["request_id"], rid.as_str(), "{what}: {v}");
    assert!(!rid.is_empty(), "{what}: no request id");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{what}: refused only after {:?}",
        asked.elapsed()
    );
    rid
}

/// What a change answered once there is room again: the status it must have, and its answer.
async fn assert_done(what: &str, want: u16, rb: reqwest::RequestBuilder) -> (String, Value) {
    match send(rb).await {
        Answer::Got(st, rid, v) if st == want => (rid, v),
        Answer::Got(st, _, v) => panic!("{what}, with room again: {st} {v}"),
        Answer::Lost => panic!("{what}, with room again: no answer"),
    }
}

/// A Weibo checkout by `operator` that must be issued, as the change it acknowledges.
async fn checked_out(world: &World, load: &Load, http: &reqwest::Client, operator: &str) -> Ack {
    let code = world.codes.lock().unwrap().code_now(operator).unwrap();
    let (rid, v) = assert_done(
        "a checkout",
        201,
        load.checkout(http, "weibo-main", operator, &code),
    )
    .await;
    Ack {
        request_id: rid,
        change: Change::Checkout {
            id: v["checkout_id"].as_str().unwrap().to_owned(),
            token: v["token"].as_str().unwrap().to_owned(),
            account: "weibo-main".into(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_changes_clearly_corrupts_nothing_and_recovers_when_space_returns() {
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("mv-full-")
        .tempdir()
        .unwrap();
    let mount = Tmpfs::mount(&tmp.path().join("data"), "32m");
    let (mut world, mut vault, url) = World::new(tmp, Some(mount), 2).await;
    let load = world.load(&url, 0);
    let http = http_client();

    // Before the disk fills: a Weibo checkout the tool holds, to publish with later.
    let first = checked_out(&world, &load, &http, "pub001").await;
    let Change::Checkout {
        id: held, token, ..
    } = first.change.clone()
    else {
        unreachable!()
    };
    let mut acks = vec![first];
    let (st, versions) = world.admin_get(&url, "/accounts/portal/versions").await;
    assert_eq!(st, 200, "{versions}");
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");

    // Another file takes the last byte of the vault's file system.
    let filler = fill(&world.data);
    let probe = world.data.join("probe");
    let full = std::fs::write(&probe, [0u8; 4096]).unwrap_err();
    assert_eq!(full.raw_os_error(), Some(28), "the disk is full: {full}");
    let _ = std::fs::remove_file(&probe);

    // Every change is refused, clearly and at once, and so is every read: nothing is answered
    // that the audit log does not hold (fail closed). The process stays up, and says so.
    const TEXT: &str = "满盘测试：磁盘满时不得发出的微博";
    let code = world.codes.lock().unwrap().code_now("pub002").unwrap();
    let refused = vec![
        assert_refused("a rotation", load.rotate(&http, "portal", 1)).await,
        assert_refused("a new user", load.add_user(&http, "fulldisk1")).await,
        assert_refused(
            "a checkout",
            load.checkout(&http, "weibo-main", "pub002", &code),
        )
        .await,
        assert_refused("a post", load.weibo_share(&http, &token, TEXT)).await,
        assert_refused("a check-in", load.checkin(&http, &held, &token)).await,
        assert_refused(
            "a read",
            http.get(format!("{url}/api/v1/accounts"))
                .bearer_auth(&world.session),
        )
        .await,
    ];
    let r = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    vault.assert_running();
    // The post was not recorded, so it never left.
    let published = world.published().await;
    assert!(
        !published["weibo"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["text"] == TEXT),
        "{published}"
    );

    // Room again: the same server takes the same changes, without a restart. Each of them is
    // new: the refused rotation left no version behind, the refused user no row, the refused
    // check-in left the token alive, the refused post was never sent.
    std::fs::remove_file(&filler).unwrap();
    let (rid, v) = assert_done("a rotation", 200, load.rotate(&http, "portal", 2)).await;
    assert_eq!(v["credential_version"], 2, "{v}");
    acks.push(Ack {
        request_id: rid,
        change: Change::Rotate {
            account: "portal".into(),
            version: 2,
        },
    });
    let (rid, _) = assert_done("a new user", 201, load.add_user(&http, "fulldisk1")).await;
    acks.push(Ack {
        request_id: rid,
        change: Change::UserCreate {
            username: "fulldisk1".into(),
        },
    });
    acks.push(checked_out(&world, &load, &http, "pub002").await);
    let (rid, v) = assert_done("a post", 200, load.weibo_share(&http, &token, TEXT)).await;
    acks.push(Ack {
        request_id: rid,
        change: Change::Publish {
            account: "weibo-main".into(),
            platform_id: v["idstr"].as_str().unwrap().to_owned(),
        },
    });
    let (rid, _) = assert_done("a check-in", 200, load.checkin(&http, &held, &token)).await;
    acks.push(Ack {
        request_id: rid,
        change: Change::Checkin { id: held.clone() },
    });
    let (st, v) = world.admin_get(&url, "/accounts").await;
    assert_eq!(st, 200, "{v}");
    let published = world.published().await;
    let sent = published["weibo"].as_array().unwrap();
    assert_eq!(
        sent.iter().filter(|s| s["text"] == TEXT).count(),
        1,
        "{published}"
    );

    // The log verifies, holds every answered change and nothing of the refused requests.
    let log = world.audit_by_request(&url).await;
    let bad = unaudited(&acks, &log);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    for rid in &refused {
        assert!(
            !log.contains_key(rid),
            "a refused request in the log: {:?}",
            log[rid]
        );
    }
    let bad = missing_from_api(&world, &url, &acks, &log).await;
    assert!(bad.is_empty(), "{}", bad.join("\n"));

    // And what the full disk left on it survives a crash: killed, checked on disk, served again.
    vault.kill().await;
    let image = Image::read(&world.data, &world.dir().join("image")).await;
    let bad = image.problems(&acks, &world.published().await);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    world.offline_verify().await;
    let (vault, url) = world.serve().await;
    let log = world.audit_by_request(&url).await;
    let bad = unaudited(&acks, &log);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let bad = missing_from_api(&world, &url, &acks, &log).await;
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    drop(vault);
    eprintln!(
        "a full disk with {}: {} requests refused, {} changes after space returned, {:.1} s",
        world.bin.display(),
        refused.len(),
        acks.len() - 1,
        started.elapsed().as_secs_f64()
    );
}
