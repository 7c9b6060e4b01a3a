//! Issue 11: the web console. Plain HTTP-client tests (headers, CSRF, secrets, roles) and one
//! story in real headless Chromium over WebDriver.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

const SECRET: &str = "Rotated-AppSecret-7f3c9e1d5b2a";

/// The account's policy, with `extra` top-level lines.
fn policy_with(account: &str, extra: &str) -> String {
    format!(
        "{extra}account = \"{account}\"\nexclusive = true\nallowed_calls = [\"POST cgi-bin/draft/add\"]\n[who]\nroles = [\"publisher\"]\nclients = [\"cms\"]\n[levels.general]\napprovals = 0\n[levels.major]\napprovals = 1\n"
    )
}

/// A playbook that stays inside the vault (no platform call, no notification channel).
const PLAYBOOK: &str = r#"
id = "console-drill"
title = "控制台演练 / Console drill"
description = "演练用预案。A drill playbook."

[[steps]]
kind = "auto"
action = "freeze_account"
title = "冻结账号 / Freeze the account"

[[steps]]
kind = "auto"
action = "seal_checkpoint"
title = "封存审计检查点 / Seal an audit checkpoint"

[[steps]]
kind = "manual"
title = "核实账号情况 / Check the account"
owner_role = "admin"
due_minutes = 30

[[steps]]
kind = "manual"
title = "事后复盘 / Review"
owner_role = "auditor"
due_minutes = 240
"#;

/// The post a major checkout carries: untrusted HTML with a script, a handler and hidden text.
fn post_content() -> Value {
    use base64::Engine;
    json!({
        "title": "2026年重点项目清单",
        "author": "综合处",
        "digest": "省发改委发布重点项目清单",
        "body": "<p>省发改委发布重点项目清单。</p><img src=\"cid:fig1.png\" onerror=\"alert(1)\"><script>alert('x')</script><p style=\"display:none\">隐藏文字</p><p>&lt;b&gt;不是标签&lt;/b&gt;</p>",
        "text": "【重点项目】省发改委发布2026年重点项目清单。",
        "images": [{"name": "fig1.png", "role": "inline", "content_type": "image/png",
                    "data_base64": base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nfigure")}],
        "targets": ["wx"],
    })
}

/// A user created through the API with a department (处室).
async fn create_user_in(
    app: &TestApp,
    session: &str,
    username: &str,
    roles: &[&str],
    department: &str,
) -> TestUser {
    let code = app.code(&app.admin);
    let r = app
        .post(session, "/api/v1/users", json!({"username": username, "display_name": username, "roles": roles, "password": PASSWORD, "department": department, "totp": code}))
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    let uri = r.1["totp_uri"].as_str().unwrap();
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    TestUser {
        username: username.into(),
        password: PASSWORD.into(),
        seed: std::sync::Arc::new(mediavault::identity::totp::seed_from_base32(secret).unwrap()),
    }
}

/// An app with account `wx`, a publishing tool `cms`, the `console-drill` playbook, and users:
/// admin, bob (approver), carol (publisher, 综合处), dave (auditor).
struct World {
    app: TestApp,
    admin_s: String,
    bob: TestUser,
    carol: TestUser,
    dave: TestUser,
    client_key: String,
}

async fn world() -> World {
    world_with("").await
}

/// The world with `extra` top-level lines in the account's policy.
async fn world_with(extra: &str) -> World {
    let app = spawn_with(Options {
        policies: Some(vec![("wx.toml", policy_with("wx", extra))]),
        tweak: Some(Box::new(|c| {
            // The walks sign people in and out a dozen times within seconds, and each sign-in
            // counts against the login tier (burst 10, then one every 3 s of real time): with
            // the defaults a fast run met a 429 (the PostgreSQL phase of a CI run, when visits
            // of the login page counted too). The tier has tests of its own (checkout.rs,
            // `login_burst_is_rate_limited_per_address`, and
            // `sign_in_attempts_through_the_api_and_the_console_share_one_budget` here); these
            // test the console.
            c.rate_limits.login_per_minute = 10_000;
            c.rate_limits.login_burst = 10_000;
            let dir = c.policies_dir.with_file_name("playbooks");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("console-drill.toml"), PLAYBOOK).unwrap();
            c.playbooks_dir = Some(dir);
        })),
        ..Default::default()
    })
    .await;
    let admin_s = app.login(&app.admin.clone()).await;
    let bob = app.create_user(&admin_s, "bob", &["approver"]).await;
    let carol = create_user_in(&app, &admin_s, "carol", &["publisher"], "综合处").await;
    let dave = app.create_user(&admin_s, "dave", &["auditor"]).await;
    let r = app
        .post(&admin_s, "/api/v1/accounts", json!({"id": "wx", "platform": "wechat", "display_name": "吉林省发展和改革委员会", "credential": {"app_id": "wx1", "app_secret": "first-secret"}}))
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    let r = app.create_client(&admin_s, "cms", &["wx"]).await;
    assert_eq!(r.0, 201, "{}", r.1);
    World {
        client_key: r.1["client_key"].as_str().unwrap().to_owned(),
        app,
        admin_s,
        bob,
        carol,
        dave,
    }
}

impl World {
    /// Carol's tool asks for a major checkout carrying the post; it waits for an approver.
    async fn major_checkout(&self) -> String {
        let code = self.app.code(&self.carol);
        let (st, v) = self
            .app
            .post(&self.client_key, "/api/v1/checkouts", json!({"account": "wx", "operator": "carol", "totp": code, "purpose": "发布重大政策解读：2026 年重点项目清单", "level": "major", "content": post_content()}))
            .await;
        assert_eq!(st, 202, "{v}");
        v["checkout_id"].as_str().unwrap().to_owned()
    }

    /// An incident opened through the API (the console's own opening is tested in the browser).
    async fn incident(&self) -> String {
        let (st, v) = self
            .app
            .post(
                &self.admin_s,
                "/api/v1/incidents",
                json!({"account": "wx", "playbook": "console-drill", "summary": "测试 test"}),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        v["incident_id"].as_str().unwrap().to_owned()
    }

    async fn version(&self) -> i64 {
        let r = self.app.get(&self.admin_s, "/api/v1/accounts/wx").await;
        r.1["credential_version"].as_i64().unwrap()
    }
}

/// A browser-like HTTP client: keeps cookies, does not follow redirects.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn csrf(&self) -> String {
        field_value(&self.body, "csrf").expect("a csrf field on the page")
    }
}

fn field_value(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')?;
    Some(body[start..start + end].to_owned())
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self::from(app, std::net::IpAddr::from([127, 0, 0, 1]))
    }

    /// A browser on another machine of the office: its connections come from `address`.
    fn from(app: &TestApp, address: std::net::IpAddr) -> Self {
        let ca = std::fs::read(app.dir.path().join("certs/ca.pem")).unwrap();
        let http = reqwest::Client::builder()
            .local_address(address)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Browser {
            http,
            base: app.base.clone(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, r: reqwest::Response) -> Page {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (kv, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
        Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.take(r).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.take(r).await
    }

    async fn login(&mut self, app: &TestApp, user: &TestUser) -> Page {
        let page = self.get("/console/login").await;
        assert_eq!(page.status, 200);
        let csrf = page.csrf();
        let code = app.code(user);
        let r = self
            .post(
                "/console/login",
                &[
                    ("csrf", &csrf),
                    ("username", &user.username),
                    ("password", &user.password),
                    ("totp", &code),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "login of {}: {}", user.username, r.body);
        assert!(self.cookies.contains_key("__Host-mv_session"));
        r
    }
}

async fn audit_entries(app: &TestApp, session: &str, query: &str) -> Vec<Value> {
    let r = app.get(session, &format!("/api/v1/audit?{query}")).await;
    assert_eq!(r.0, 200, "{}", r.1);
    r.1["entries"].as_array().unwrap().clone()
}

/// The login tier counts an address's sign-in attempts through the API and the console together
/// (switching doors buys none), showing the form is not an attempt, and the console's refusal is
/// the sign-in form again saying how long to wait, with 429 and `Retry-After`, recorded like
/// any other answer.
#[tokio::test]
async fn sign_in_attempts_through_the_api_and_the_console_share_one_budget() {
    let app = spawn_with_login_burst(4).await;
    let wrong = json!({"username": "admin", "password": "wrong password!", "totp": "000000"});
    let api_attempt = || async {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .json(&wrong)
            .send()
            .await
            .unwrap()
    };
    // Attempts 1 and 2: through the API.
    let admin_s = app.login(&app.admin.clone()).await;
    assert_eq!(api_attempt().await.status(), 401);
    let mut b = Browser::new(&app);
    for _ in 0..6 {
        assert_eq!(b.get("/console/login").await.status, 200);
    }
    // Each answer's form carries a fresh CSRF nonce (and cookie) for the next attempt, and the
    // page to go on to after signing in, in its address as well as in its fields.
    let first = b.get("/console/login?lang=en&next=/console/audit").await;
    let action = "/console/login?next=%2Fconsole%2Faudit";
    assert!(
        first.body.contains(&format!("action=\"{action}\"")),
        "{}",
        first.body
    );
    assert_eq!(
        field_value(&first.body, "next").as_deref(),
        Some("/console/audit")
    );
    let mut csrf = first.csrf();
    let attempt = async |b: &mut Browser, csrf: &str| {
        let form = [
            ("csrf", csrf),
            ("next", "/console/audit"),
            ("username", "admin"),
            ("password", "wrong password!"),
            ("totp", "000000"),
        ];
        b.post(action, &form).await
    };
    // Attempts 3 and 4: through the console.
    for _ in 0..2 {
        let p = attempt(&mut b, &csrf).await;
        assert_eq!(p.status, 401, "{}", p.body);
        assert!(
            p.body
                .contains("The username, password or TOTP code is wrong")
        );
        csrf = p.csrf();
    }
    let refused = attempt(&mut b, &csrf).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_console_headers("refused POST /console/login", &refused);
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    assert!(
        refused
            .body
            .contains(&format!("Too many attempts; try again in {wait} seconds.")),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("name=\"username\""), "the form again");
    // Refused before its body was read, the form shown again still goes on to the same page.
    assert_eq!(
        field_value(&refused.body, "next").as_deref(),
        Some("/console/audit")
    );
    assert!(refused.body.contains(&format!("action=\"{action}\"")));
    // The API's door is shut for this address too, and so is the console's with the right code.
    let r = api_attempt().await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "rate_limited");
    let admin = app.admin.clone();
    let code = app.code(&admin);
    let csrf = b.get("/console/login").await.csrf();
    let p = b
        .post(
            "/console/login",
            &[
                ("csrf", csrf.as_str()),
                ("username", admin.username.as_str()),
                ("password", admin.password.as_str()),
                ("totp", code.as_str()),
            ],
        )
        .await;
    assert_eq!(p.status, 429, "{}", p.body);
    assert!(!b.cookies.contains_key("__Host-mv_session"));
    // Every refusal is in the log, from both doors.
    let limited = audit_entries(&app, &admin_s, "outcome=rate_limited").await;
    let paths: Vec<&str> = limited
        .iter()
        .filter_map(|e| e["http"]["path"].as_str())
        .collect();
    assert_eq!(
        paths.iter().filter(|p| **p == "/console/login").count(),
        2,
        "{paths:?}"
    );
    assert_eq!(
        paths.iter().filter(|p| **p == "/api/v1/auth/login").count(),
        1,
        "{paths:?}"
    );
}

fn assert_console_headers(path: &str, p: &Page) {
    let h = |n: &str| {
        p.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = h("content-security-policy");
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "{path}: CSP {csp:?}"
    );
    assert!(csp.contains("default-src 'none'"), "{path}: CSP {csp:?}");
    assert!(!csp.contains("unsafe-inline"), "{path}: CSP {csp:?}");
    assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
    assert_eq!(h("referrer-policy"), "no-referrer", "{path}");
    assert_eq!(h("cache-control"), "no-store", "{path}");
}

#[tokio::test]
async fn every_console_response_carries_the_security_headers() {
    let w = world().await;
    let mut b = Browser::new(&w.app);
    let mut seen = Vec::new();
    // Before sign-in: the login page, a redirect to it, an asset, a missing page.
    for path in [
        "/console/login",
        "/console",
        "/console/admin/accounts",
        "/console/assets/console.css",
        "/console/assets/console.js",
        "/console/nothing-here",
    ] {
        let p = b.get(path).await;
        assert_console_headers(path, &p);
        seen.push((path.to_owned(), p.status));
    }
    let login = b.login(&w.app, &w.app.admin.clone()).await;
    assert_console_headers("POST /console/login", &login);
    let checkout = w.major_checkout().await;
    let incident = w.incident().await;
    let dynamic = [
        format!("/console/approvals/{checkout}"),
        format!("/console/incidents/{incident}"),
        format!("/console/incidents/{incident}/report?format=md"),
        format!("/console/incidents/{incident}/report?format=json"),
    ];
    for path in [
        "/console/incidents",
        "/console/incidents?status=open",
        "/console/incidents/new",
        "/console/incidents/in_nope",
        "/console/posts",
    ]
    .iter()
    .copied()
    .chain(dynamic.iter().map(String::as_str))
    {
        let p = b.get(path).await;
        assert_console_headers(path, &p);
        seen.push((path.to_owned(), p.status));
    }
    for path in [
        "/console",
        "/console/admin/accounts",
        "/console/admin/accounts/wx",
        "/console/admin/accounts/nope",
        "/console/admin/users",
        "/console/admin/clients",
        "/console/admin/policies",
        "/console/approvals",
        "/console/audit",
        "/console/audit/entry/1",
        "/console/audit/export?format=csv",
        "/console/nothing-here",
    ] {
        let p = b.get(path).await;
        assert_console_headers(path, &p);
        seen.push((path.to_owned(), p.status));
    }
    let p = b.get("/console/admin/accounts/wx").await;
    let csrf = p.csrf();
    // A refused action and an error page carry them too.
    let p = b
        .post(
            "/console/admin/accounts/wx/rotate",
            &[
                ("csrf", &csrf),
                ("reason", "r"),
                ("totp", "000000"),
                ("app_id", "x"),
                ("app_secret", "y"),
            ],
        )
        .await;
    assert_console_headers("rotate with a wrong code", &p);
    assert_eq!(p.status, 401);
    assert!(p.body.contains("动态验证码不正确"), "{}", p.body);
    // Bad paths and filters are pages too.
    let p = b.get("/console/audit/entry/abc").await;
    assert_eq!(p.status, 404);
    assert!(p.body.contains("未找到"));
    let p = b.get("/console/audit?since=yesterday").await;
    assert_eq!(p.status, 400);
    assert!(
        p.body.contains("输入有误") && p.body.contains("since must be an RFC 3339 time"),
        "{}",
        p.body
    );
    // Page views are audited through the same middleware as the API, under the service's action.
    let views = audit_entries(&w.app, &w.admin_s, "action=user.list&actor=admin").await;
    assert!(
        views
            .iter()
            .any(|e| e["http"]["path"] == "/console/admin/users"
                && e["outcome"] == "success"
                && e["http"]["status"] == 200),
        "{views:?}"
    );
    let statuses: HashMap<_, _> = seen.into_iter().collect();
    for path in dynamic.iter().map(String::as_str).chain([
        "/console/incidents",
        "/console/incidents/new",
        "/console/posts",
    ]) {
        assert_eq!(statuses[path], 200, "{path}");
    }
    assert_eq!(statuses["/console/incidents/in_nope"], 404);
    assert_eq!(statuses["/console/login"], 200);
    assert_eq!(statuses["/console/nothing-here"], 404);
    assert_eq!(statuses["/console/audit"], 200);
    assert_eq!(statuses["/console/admin/accounts/nope"], 404);
}

#[tokio::test]
async fn forms_without_this_sessions_csrf_token_are_refused_and_change_nothing() {
    let w = world().await;
    let mut mine = Browser::new(&w.app);
    let mut other = Browser::new(&w.app);
    mine.login(&w.app, &w.app.admin.clone()).await;
    other.login(&w.app, &w.app.admin.clone()).await;
    let others_token = other.get("/console/admin/accounts/wx").await.csrf();
    let my_token = mine.get("/console/admin/accounts/wx").await.csrf();
    assert_ne!(my_token, others_token, "each session has its own token");

    let before = w.version().await;
    for csrf in [None, Some(others_token.as_str()), Some("00"), Some("")] {
        let code = w.app.code(&w.app.admin);
        let mut form = vec![
            ("reason", "scheduled"),
            ("totp", code.as_str()),
            ("app_id", "wx1"),
            ("app_secret", "csrf-attempt-secret"),
        ];
        if let Some(c) = csrf {
            form.push(("csrf", c));
        }
        let p = mine.post("/console/admin/accounts/wx/rotate", &form).await;
        assert_eq!(p.status, 403, "csrf {csrf:?}: {}", p.body);
        assert!(p.body.contains("表单校验失败"), "{}", p.body);
        // The same for a user's creation and a tool's revocation.
        let p = mine
            .post(
                "/console/admin/users",
                &[
                    ("csrf", csrf.unwrap_or_default()),
                    ("username", "mallory"),
                    ("display_name", "m"),
                    ("password", PASSWORD),
                    ("role_admin", "1"),
                ],
            )
            .await;
        assert_eq!(p.status, 403);
    }
    assert_eq!(w.version().await, before, "nothing was rotated");
    let users = w.app.get(&w.admin_s, "/api/v1/users").await.1;
    assert!(
        !users.to_string().contains("mallory"),
        "no user was created"
    );
    // The code sent with a refused form is still unspent: the same session's token works.
    let code = w.app.code(&w.app.admin);
    let p = mine
        .post(
            "/console/admin/accounts/wx/rotate",
            &[
                ("csrf", &my_token),
                ("reason", "scheduled"),
                ("totp", &code),
                ("app_id", "wx1"),
                ("app_secret", "fine"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(w.version().await, before + 1);
    // Every refusal is in the audit log.
    let refused = audit_entries(&w.app, &w.admin_s, "action=console.csrf").await;
    assert_eq!(refused.len(), 8, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|e| e["outcome"] == "denied" && e["actor"]["id"] == "admin")
    );
    // The login form has its own token.
    let mut fresh = Browser::new(&w.app);
    let code = w.app.code(&w.app.admin);
    let p = fresh
        .post(
            "/console/login",
            &[
                ("username", "admin"),
                ("password", PASSWORD),
                ("totp", &code),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(!fresh.cookies.contains_key("__Host-mv_session"));

    // The new forms: opening an incident (and its confirmation page), a checklist step, a close
    // signature, confirming a role grant, approving; another session's token changes nothing.
    let checkout = w.major_checkout().await;
    let incident = w.incident().await;
    let code = w.app.code(&w.app.admin);
    let code = code.as_str();
    let open = [
        ("account", "wx"),
        ("playbook", "console-drill"),
        ("summary", "csrf"),
    ];
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/console/incidents/confirm".into(), open.to_vec()),
        ("/console/incidents".into(), open.to_vec()),
        (
            format!("/console/incidents/{incident}/steps/3"),
            vec![("note", "csrf")],
        ),
        (
            format!("/console/incidents/{incident}/close"),
            vec![("review", "csrf"), ("totp", code)],
        ),
        (
            "/console/admin/users/bob/confirm".into(),
            vec![("role", "admin"), ("totp", code)],
        ),
        (
            format!("/console/approvals/{checkout}"),
            vec![("decision", "approve"), ("totp", code)],
        ),
    ];
    for (path, fields) in &forms {
        for csrf in [others_token.as_str(), ""] {
            let mut form = fields.clone();
            form.push(("csrf", csrf));
            let p = mine.post(path, &form).await;
            assert_eq!(p.status, 403, "{path}: {}", p.body);
            assert!(p.body.contains("表单校验失败"), "{path}");
        }
    }
    let list = w.app.get(&w.admin_s, "/api/v1/incidents").await.1;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "no incident was opened: {list}"
    );
    let inc = w
        .app
        .get(&w.admin_s, &format!("/api/v1/incidents/{incident}"))
        .await
        .1;
    assert_eq!(inc["steps"][2]["status"], "pending", "{inc}");
    assert_eq!(inc["close_signatures"].as_array().unwrap().len(), 0);
    let co = w
        .app
        .get(&w.admin_s, &format!("/api/v1/checkouts/{checkout}"))
        .await
        .1;
    assert_eq!(co["approvals"].as_array().unwrap().len(), 0, "{co}");
    let refused = audit_entries(&w.app, &w.admin_s, "action=console.csrf").await;
    // 8 refused above, 1 refused login, then two per new form.
    assert_eq!(refused.len(), 9 + 2 * forms.len(), "{refused:?}");
}

#[tokio::test]
async fn the_rotated_secret_never_appears_in_a_page_redirect_log_or_audit_record() {
    let w = world().await;
    let mut b = Browser::new(&w.app);
    b.login(&w.app, &w.app.admin.clone()).await;
    let mut seen: Vec<String> = Vec::new();
    let p = b.get("/console/admin/accounts/wx").await;
    let csrf = p.csrf();
    seen.push(p.body);
    // A failed attempt (wrong code) renders an error page; it must not echo the secret either.
    let p = b
        .post(
            "/console/admin/accounts/wx/rotate",
            &[
                ("csrf", &csrf),
                ("reason", "leak check"),
                ("totp", "123456"),
                ("app_id", "wx1"),
                ("app_secret", SECRET),
            ],
        )
        .await;
    assert_eq!(p.status, 401);
    seen.push(format!("{:?}", p.headers));
    seen.push(p.body);
    // A form the parser refuses (a version that is not a number) says nothing of its fields.
    let p = b
        .post(
            "/console/admin/accounts/wx/rollback",
            &[
                ("csrf", &csrf),
                ("reason", SECRET),
                ("totp", "1"),
                ("version", SECRET),
            ],
        )
        .await;
    assert_eq!(p.status, 400);
    seen.push(p.body);
    let code = w.app.code(&w.app.admin);
    let p = b
        .post(
            "/console/admin/accounts/wx/rotate",
            &[
                ("csrf", &csrf),
                ("reason", "quarterly rotation"),
                ("totp", &code),
                ("app_id", "wx1"),
                ("app_secret", SECRET),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let location = p.location().to_owned();
    assert!(location.starts_with("/console/admin/accounts/wx?done=rotated"));
    seen.push(format!("{:?}", p.headers));
    seen.push(p.body);
    let p = b.get(&location).await;
    assert!(p.body.contains("凭据已更换"), "{}", p.body);
    assert!(p.body.contains("v2"));
    seen.push(p.body);
    for path in [
        "/console",
        "/console/admin/accounts",
        "/console/audit",
        "/console/audit?action=account.rotate",
        "/console/audit/export?format=jsonl",
        "/console/audit/export?format=csv",
    ] {
        seen.push(b.get(path).await.body);
    }
    for e in audit_entries(&w.app, &w.admin_s, "limit=1000").await {
        seen.push(
            b.get(&format!("/console/audit/entry/{}", e["seq"]))
                .await
                .body,
        );
        seen.push(e.to_string());
    }
    seen.push(captured_logs());
    for (i, text) in seen.iter().enumerate() {
        assert!(!text.contains(SECRET), "the secret leaked in item {i}");
    }
    for (path, bytes) in all_bytes_under(w.app.dir.path()) {
        assert!(
            !contains(&bytes, SECRET.as_bytes()),
            "the secret is in {}",
            path.display()
        );
    }
    // The rotation is recorded, without the secret.
    let rotated = audit_entries(&w.app, &w.admin_s, "action=account.rotate").await;
    assert_eq!(
        rotated.iter().filter(|e| e["outcome"] == "success").count(),
        1
    );
}

#[tokio::test]
async fn a_publisher_gets_a_403_page_for_admin_and_audit_pages_and_an_auditor_cannot_rotate() {
    let w = world().await;
    let mut carol = Browser::new(&w.app);
    carol.login(&w.app, &w.carol).await;
    let home = carol.get("/console").await;
    assert_eq!(home.status, 200);
    assert!(
        !home.body.contains("/console/admin/accounts\""),
        "no admin link for a publisher"
    );
    for path in [
        "/console/admin/accounts",
        "/console/admin/accounts/wx",
        "/console/admin/users",
        "/console/admin/clients",
        "/console/admin/policies",
        "/console/audit",
        "/console/audit/export?format=csv",
        "/console/approvals",
        "/console/incidents",
        "/console/incidents/new",
        "/console/posts",
    ] {
        let p = carol.get(path).await;
        assert_eq!(p.status, 403, "{path}");
        assert!(p.body.contains("无权访问"), "{path}: {}", p.body);
        assert!(p.body.contains("请联系系统管理员"), "{path}");
    }
    // In English on request.
    let p = carol.get("/console/audit?lang=en").await;
    assert_eq!(p.status, 403);
    assert!(p.body.contains("Not permitted"), "{}", p.body);
    let denied = audit_entries(&w.app, &w.admin_s, "actor=carol&outcome=denied").await;
    assert!(denied.len() >= 9, "{denied:?}");
    assert!(
        denied.iter().any(
            |e| e["action"] == "account.list" && e["http"]["path"] == "/console/admin/accounts"
        )
    );
    assert!(
        denied
            .iter()
            .any(|e| e["action"] == "audit.verify" && e["http"]["path"] == "/console/audit")
    );

    // The auditor reads the account but cannot rotate, even with a valid token and code.
    let mut dave = Browser::new(&w.app);
    dave.login(&w.app, &w.dave).await;
    let p = dave.get("/console/admin/accounts/wx").await;
    assert_eq!(p.status, 200);
    let csrf = p.csrf();
    let before = w.version().await;
    let code = w.app.code(&w.dave);
    let p = dave
        .post(
            "/console/admin/accounts/wx/rotate",
            &[
                ("csrf", &csrf),
                ("reason", "r"),
                ("totp", &code),
                ("app_id", "wx1"),
                ("app_secret", "auditor-secret"),
            ],
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    assert_eq!(w.version().await, before);
    let audit = dave.get("/console/audit").await;
    assert_eq!(audit.status, 200);
    let denied = audit_entries(&w.app, &w.admin_s, "actor=dave&action=account.rotate").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["outcome"], "denied");
}

#[tokio::test]
async fn logout_ends_the_session_and_pages_send_you_to_login() {
    let w = world().await;
    let mut b = Browser::new(&w.app);
    let p = b.get("/console/admin/users").await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location(), "/console/login?next=/console/admin/users");
    b.login(&w.app, &w.app.admin.clone()).await;
    let token = b.cookies["__Host-mv_session"].clone();
    let csrf = b.get("/console").await.csrf();
    let p = b.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, 303);
    assert!(!b.cookies.contains_key("__Host-mv_session"));
    // The old cookie no longer works.
    b.cookies.insert("__Host-mv_session".into(), token);
    assert_eq!(b.get("/console").await.status, 303);

    // The idle timeout is shown on every page and enforced by the sessions service.
    b.login(&w.app, &w.app.admin.clone()).await;
    let home = b.get("/console").await;
    assert!(home.body.contains("data-idle=\"1800\""), "{}", home.body);
    assert!(home.body.contains("id=\"idle-left\""));
    w.app.clock.advance(Duration::from_secs(31 * 60));
    let p = b.get("/console/admin/accounts").await;
    assert_eq!(p.status, 303);
    assert!(p.location().starts_with("/console/login"));
    let _ = (&w.bob, &w.client_key);
}

#[tokio::test]
async fn an_incident_is_confirmed_in_words_before_it_runs_then_worked_signed_twice_and_reported() {
    let w = world().await;
    let mut admin = Browser::new(&w.app);
    admin.login(&w.app, &w.app.admin.clone()).await;
    let new = admin
        .get("/console/incidents/new?account=wx&post=2247483647_1")
        .await;
    assert_eq!(new.status, 200, "{}", new.body);
    assert!(new.body.contains("console-drill") && new.body.contains("2247483647_1"));
    let csrf = new.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("account", "wx"),
        ("playbook", "console-drill"),
        ("summary", "发现可疑登录 <b>suspicious</b>"),
        ("post", ""),
    ];
    // The confirmation says what will run, and nothing has run yet.
    let confirm = admin.post("/console/incidents/confirm", &form).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(
        confirm.body.contains("冻结账号：不能再签出"),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains("封存审计日志链头的签名检查点"));
    assert!(confirm.body.contains("核实账号情况"));
    assert!(
        confirm.body.contains("&lt;b&gt;suspicious"),
        "the summary is text"
    );
    let list = w.app.get(&w.admin_s, "/api/v1/incidents").await.1;
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
    let acct = w.app.get(&w.admin_s, "/api/v1/accounts/wx").await.1;
    assert_eq!(acct["status"], "active");
    // An unknown playbook is a page that says so.
    let mut bad = form.to_vec();
    bad[2] = ("playbook", "nope");
    assert_eq!(
        admin.post("/console/incidents/confirm", &bad).await.status,
        404
    );

    let opened = admin.post("/console/incidents", &form).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    let location = opened.location().to_owned();
    assert!(location.contains("done=incident_opened"), "{location}");
    let id = location
        .trim_start_matches("/console/incidents/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let acct = w.app.get(&w.admin_s, "/api/v1/accounts/wx").await.1;
    assert_eq!(acct["status"], "frozen");
    let page = admin.get(&location).await;
    assert!(page.body.contains("应急事件已启动"), "{}", page.body);
    assert!(page.body.contains("id=\"step-3-note\""));
    assert!(
        !page.body.contains("id=\"step-1-note\""),
        "automated steps are not ticked off"
    );

    // The admin completes step 3 with a note; step 4 belongs to the auditor (an admin may too).
    let p = admin
        .post(
            &format!("/console/incidents/{id}/steps/3"),
            &[("csrf", &csrf), ("note", "已核实：密码未泄露")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let page = admin.get(p.location()).await;
    assert!(page.body.contains("步骤已标记完成"));
    assert!(page.body.contains("已核实：密码未泄露"));
    assert!(!page.body.contains("id=\"step-3-note\""));
    // The same step twice is a page that says it conflicts.
    let p = admin
        .post(
            &format!("/console/incidents/{id}/steps/3"),
            &[("csrf", &csrf), ("note", "again")],
        )
        .await;
    assert_eq!(p.status, 409, "{}", p.body);

    // First signature: the incident waits for a second person.
    let code = w.app.code(&w.app.admin);
    let p = admin
        .post(
            &format!("/console/incidents/{id}/close"),
            &[("csrf", &csrf), ("review", "处置完毕"), ("totp", &code)],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(p.location().contains("done=close_signed"));
    let page = admin.get(p.location()).await;
    assert!(
        page.body.contains("正在等待另一位人员签署"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"waiting-second\""));
    assert!(!page.body.contains("id=\"close-submit\""));

    // The auditor signs second: closed.
    let mut dave = Browser::new(&w.app);
    dave.login(&w.app, &w.dave).await;
    let page = dave.get(&format!("/console/incidents/{id}")).await;
    assert_eq!(page.status, 200);
    let dcsrf = page.csrf();
    let code = w.app.code(&w.dave);
    let p = dave
        .post(
            &format!("/console/incidents/{id}/close"),
            &[("csrf", &dcsrf), ("review", "同意结案"), ("totp", &code)],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(p.location().contains("done=incident_closed"));
    let inc = w
        .app
        .get(&w.admin_s, &format!("/api/v1/incidents/{id}"))
        .await
        .1;
    assert_eq!(inc["status"], "closed", "{inc}");

    // The report downloads as Markdown and JSON.
    let md = dave
        .get(&format!("/console/incidents/{id}/report?format=md"))
        .await;
    assert_eq!(md.status, 200);
    assert!(
        md.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(md.body.contains(&id));
    let js = dave
        .get(&format!("/console/incidents/{id}/report?format=json"))
        .await;
    assert_eq!(js.status, 200);
    let v: Value = serde_json::from_str(&js.body).unwrap();
    assert_eq!(v["incident"]["incident_id"], id.as_str());
    assert_eq!(
        dave.get(&format!("/console/incidents/{id}/report?format=pdf"))
            .await
            .status,
        400
    );
    // Everything is in the audit log under the service's actions, with the console's paths.
    for action in [
        "incident.open",
        "incident.step",
        "incident.close",
        "incident.report",
    ] {
        let e = audit_entries(
            &w.app,
            &w.admin_s,
            &format!("action={action}&outcome=success"),
        )
        .await;
        assert!(
            e.iter().any(|e| e["http"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/console/incidents"))),
            "{action}: {e:?}"
        );
    }
    // The list and the home page.
    let list = admin.get("/console/incidents").await;
    assert!(list.body.contains(&id));
    let home = admin.get("/console").await;
    assert!(home.body.contains("id=\"attention-incidents\""));
}

#[tokio::test]
async fn the_approver_reads_the_post_as_text_with_the_department_and_targets() {
    let w = world().await;
    let id = w.major_checkout().await;
    let mut bob = Browser::new(&w.app);
    bob.login(&w.app, &w.bob).await;
    let list = bob.get("/console/approvals").await;
    assert!(
        list.body.contains(&format!("/console/approvals/{id}")),
        "{}",
        list.body
    );
    let p = bob.get(&format!("/console/approvals/{id}")).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_console_headers("approval", &p);
    for text in [
        "2026年重点项目清单",
        "综合处",
        "省发改委发布重点项目清单",
        "<p>省发改委发布重点项目清单。</p>",
        "<code>fig1.png</code>",
        "&lt;b&gt;不是标签&lt;/b&gt;",
        "【重点项目】省发改委发布2026年重点项目清单。",
        "id=\"post-flags\"",
        "id=\"targets\"",
    ] {
        assert!(p.body.contains(text), "{text}: {}", p.body);
    }
    // Nothing of the untrusted HTML is markup in the page: the script, the handler and the
    // image exist only as escaped text.
    assert!(!p.body.contains("<script>alert"), "{}", p.body);
    assert!(!p.body.contains("onerror=\"alert"));
    assert!(!p.body.contains("<img"));
    assert!(p.body.contains("&lt;script&gt;alert"));
    let csp = p.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("img-src 'self'") && !csp.contains("data:"),
        "{csp}"
    );
    // The decision form is there, and approving from it works.
    let csrf = p.csrf();
    let code = w.app.code(&w.bob);
    let r = bob
        .post(
            &format!("/console/approvals/{id}"),
            &[
                ("csrf", &csrf),
                ("decision", "approve"),
                ("totp", &code),
                ("comment", "同意"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let co = w
        .app
        .get(&w.admin_s, &format!("/api/v1/checkouts/{id}"))
        .await
        .1;
    assert_eq!(co["status"], "approved", "{co}");
    assert_eq!(co["department"], "综合处");
}

#[tokio::test]
async fn a_pending_role_grant_is_confirmed_by_a_second_admin_never_by_the_one_who_asked() {
    let w = world().await;
    let mut admin = Browser::new(&w.app);
    admin.login(&w.app, &w.app.admin.clone()).await;
    let csrf = admin.get("/console/admin/users").await.csrf();
    let code = w.app.code(&w.app.admin);
    let p = admin
        .post(
            "/console/admin/users",
            &[
                ("csrf", &csrf),
                ("username", "frank"),
                ("display_name", "Frank"),
                ("role_approver", "1"),
                ("password", PASSWORD),
                ("totp", &code),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("id=\"pending-roles\""), "{}", p.body);
    let users = admin.get("/console/admin/users").await;
    assert!(
        users.body.contains("id=\"grant-frank-approver\""),
        "{}",
        users.body
    );
    assert!(users.body.contains("由您提出"));
    assert!(!users.body.contains("/console/admin/users/frank/confirm"));
    let home = admin.get("/console").await;
    assert!(home.body.contains("id=\"attention-grants\""));
    // The service refuses the admin who asked, even with a hand-made form.
    let code = w.app.code(&w.app.admin);
    let p = admin
        .post(
            "/console/admin/users/frank/confirm",
            &[("csrf", &csrf), ("role", "approver"), ("totp", &code)],
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(p.body.contains("无权访问"));
    // A second admin confirms with their own code: admin3, made an admin through the API and
    // confirmed by the vault's second admin (admin2).
    let second = w.app.create_user(&w.admin_s, "admin3", &["admin"]).await;
    let mut other = Browser::new(&w.app);
    other.login(&w.app, &second).await;
    let users = other.get("/console/admin/users").await;
    assert!(users.body.contains("/console/admin/users/frank/confirm"));
    let csrf2 = users.csrf();
    let code = w.app.code(&second);
    let p = other
        .post(
            "/console/admin/users/frank/confirm",
            &[("csrf", &csrf2), ("role", "approver"), ("totp", &code)],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(p.location().contains("done=role_confirmed"));
    let u = w.app.get(&w.admin_s, "/api/v1/users/frank").await.1;
    assert_eq!(u["roles"], json!(["approver"]), "{u}");
    assert_eq!(u["pending_roles"], json!([]));
    let e = audit_entries(&w.app, &w.admin_s, "action=user.confirm_role").await;
    assert!(
        e.iter()
            .any(|e| e["outcome"] == "success" && e["actor"]["id"] == "admin3")
    );
    assert!(
        e.iter()
            .any(|e| e["outcome"] == "denied" && e["actor"]["id"] == "admin")
    );
}

/// The header's countdown shows a window just opened (five minutes, give or take the second the
/// request took).
fn window_near_full(body: &str) -> bool {
    ["5:00", "4:59", "4:58"]
        .iter()
        .any(|t| body.contains(&format!("id=\"step-up-left\">{t}<")))
}

#[tokio::test]
async fn an_admin_adds_a_roster_with_one_code_and_the_header_counts_the_window_down() {
    let app = spawn_app().await;
    let admin_s = app.login(&app.admin.clone()).await;
    let mut admin = Browser::new(&app);
    admin.login(&app, &app.admin.clone()).await;

    // Just signed in: the header shows the window's time left, and forms may leave the code out.
    let users = admin.get("/console/admin/users").await;
    assert!(window_near_full(&users.body), "{}", users.body);
    assert!(users.body.contains("id=\"import-roster\""));
    let roster = "username,display_name,department,roles\n\
                  zhangsan,张三,宣传处,publisher\n\
                  lisi,李四,办公室,approver\n\
                  wangwu,王五,\"网信办, 二科\",publisher;approver\n";
    let p = admin
        .post(
            "/console/admin/users/import",
            &[("csrf", &users.csrf()), ("roster", roster), ("totp", "")],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("id=\"imported-count\">3<"), "{}", p.body);
    assert_eq!(p.body.matches("class=\"enrolment\"").count(), 3);
    assert_eq!(p.body.matches("<svg").count(), 3, "a QR code each");
    assert!(p.body.contains("网信办, 二科") && p.body.contains("待确认"));
    let u = app.get(&admin_s, "/api/v1/users/wangwu").await.1;
    assert_eq!(u["roles"], json!(["publisher"]), "{u}");
    assert_eq!(u["pending_roles"], json!(["approver"]), "{u}");

    // Five minutes on, the header asks for a code again, and a form without one is refused with
    // a page that says so; nobody is created.
    app.clock.advance(Duration::from_secs(5 * 60 + 1));
    let users = admin.get("/console/admin/users").await;
    assert!(!users.body.contains("id=\"step-up-left\""));
    assert!(users.body.contains("id=\"step-up-form\""));
    let p = admin
        .post(
            "/console/admin/users/import",
            &[
                ("csrf", &users.csrf()),
                (
                    "roster",
                    "username,display_name,department,roles\nzhaoliu,赵六,,publisher\n",
                ),
                ("totp", ""),
            ],
        )
        .await;
    assert_eq!(p.status, 400, "{}", p.body);
    let (st, _) = app.get(&admin_s, "/api/v1/users/zhaoliu").await;
    assert_eq!(st, 404);

    // The header's form opens the window again, back on the same page.
    let code = app.code(&app.admin);
    let p = admin
        .post(
            "/console/step-up",
            &[
                ("csrf", &users.csrf()),
                ("totp", &code),
                ("next", "/console/admin/users"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(
        p.location().starts_with("/console/admin/users"),
        "{}",
        p.location()
    );
    assert!(p.location().contains("stepped_up"), "{}", p.location());
    let users = admin.get(p.location()).await;
    assert!(window_near_full(&users.body), "{}", users.body);
    let e = audit_entries(&app, &admin_s, "action=auth.step_up").await;
    assert_eq!(e.len(), 1, "{e:?}");
    // Every enrolment of the import is in the log, none of its secrets.
    let e = audit_entries(&app, &admin_s, "action=user.create").await;
    assert_eq!(
        e.iter()
            .filter(|e| e["detail"]["import_seq"].is_i64())
            .count(),
        3
    );
}

// ---------------------------------------------------------------------------------------------
// Real Chromium over WebDriver (W3C JSON protocol, spoken with reqwest).

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub(crate) struct Driver {
    child: std::process::Child,
    http: reqwest::Client,
    base: String,
    session: String,
}

impl Drop for Driver {
    /// Ends the browser session (which closes Chromium) before stopping chromedriver, also when
    /// the test panicked: killing chromedriver alone would leave the browser running.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if !self.session.is_empty()
            && let Ok(mut s) = std::net::TcpStream::connect(self.base.trim_start_matches("http://"))
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                self.session
            );
            let mut answer = Vec::new();
            let _ = s.read_to_end(&mut answer);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(env: &str, names: &[&str]) -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(p.into());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

impl Driver {
    pub(crate) async fn start() -> Driver {
        const HOW: &str = "install them with `apt-get install -y chromium chromium-driver` (Debian; .ci/run does this), or point CHROMEDRIVER and CHROME_BIN at them";
        let driver = find_program("CHROMEDRIVER", &["chromedriver"]).unwrap_or_else(|| {
            panic!("the console browser test needs chromedriver and Chromium: {HOW}")
        });
        let chrome = find_program(
            "CHROME_BIN",
            &["chromium", "chromium-browser", "google-chrome"],
        )
        .unwrap_or_else(|| panic!("the console browser test needs Chromium: {HOW}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {HOW}", driver.display()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let mut d = Driver {
            child,
            http,
            base,
            session: String::new(),
        };
        for _ in 0..100 {
            if let Ok(r) = d.http.get(format!("{}/status", d.base)).send().await
                && r.status().is_success()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // The test's server certificate comes from a throwaway CA: accept it in this browser only.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chrome.to_string_lossy(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--ignore-certificate-errors", "--lang=zh-CN"]
            }
        }}});
        let r = d.call("POST", "/session", caps).await;
        d.session = r["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_owned();
        d
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let r = req.send().await.expect("chromedriver answers");
        let v: Value = r.json().await.unwrap();
        v["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url})).await;
    }

    async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT].as_str().map(str::to_owned)
    }

    /// Waits up to ten seconds for an element (pages load after a form's submission).
    pub(crate) async fn wait(&self, css: &str) -> String {
        for _ in 0..100 {
            if let Some(e) = self.find(css).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element {css} on {}", self.source().await);
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let e = self.wait(css).await;
        self.call("POST", &format!("/element/{e}/clear"), json!({}))
            .await;
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            json!({"text": text}),
        )
        .await;
    }

    pub(crate) async fn click(&self, css: &str) {
        let e = self.wait(css).await;
        self.call("POST", &format!("/element/{e}/click"), json!({}))
            .await;
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        let e = self.wait(css).await;
        self.call("GET", &format!("/element/{e}/text"), json!({}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits up to ten seconds for an element whose text contains `needle`. A click that submits
    /// a form returns before the next page has loaded, and the page it leaves may hold the same
    /// element (a `#notice` from the previous action): reading at once can see the old page.
    pub(crate) async fn wait_text(&self, css: &str, needle: &str) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            if let Some(e) = self.find(css).await {
                let v = self
                    .call("GET", &format!("/element/{e}/text"), json!({}))
                    .await;
                last = v.as_str().unwrap_or_default().to_owned();
                if last.contains(needle) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{css} never said {needle:?} (last: {last:?}) on {}",
            self.source().await
        );
    }

    async fn source(&self) -> String {
        self.call("GET", "/source", json!({}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub(crate) async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let v = self.call("GET", "/screenshot", json!({})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub(crate) async fn login(&self, app: &TestApp, user: &TestUser) {
        self.goto(&app.url("/console/login")).await;
        self.fill("#username", &user.username).await;
        self.fill("#password", &user.password).await;
        self.fill("#totp", &app.code(user)).await;
        self.click("#login").await;
        let me = self.wait("#me").await;
        let name = self
            .call("GET", &format!("/element/{me}/text"), json!({}))
            .await;
        assert_eq!(name, user.username.as_str());
    }

    async fn logout(&self) {
        self.click("#logout").await;
        self.wait("#login").await;
    }
}

#[tokio::test]
async fn in_chromium_an_admin_rotates_an_approver_approves_an_incident_is_worked_and_the_auditor_finds_all()
 {
    let w = world().await;
    let app = &w.app;
    let d = Driver::start().await;

    // The admin signs in with a computed TOTP code and rotates the WeChat AppSecret.
    d.goto(&app.url("/console/login")).await;
    d.wait("#login").await;
    d.screenshot("01-login").await;
    d.login(app, &app.admin).await;
    d.screenshot("02-home-admin").await;
    d.goto(&app.url("/console/admin/accounts")).await;
    d.wait("#accounts").await;
    d.screenshot("03-accounts").await;
    d.goto(&app.url("/console/admin/accounts/wx")).await;
    d.fill("#cred-app_id", "wx1").await;
    d.fill("#cred-app_secret", SECRET).await;
    d.fill("#rotate-reason", "季度例行更换").await;
    d.fill("#rotate-totp", &app.code(&app.admin)).await;
    d.click("#rotate-submit").await;
    d.wait_text("#notice", "凭据已更换").await;
    assert_eq!(d.text("#account-version").await, "v2");
    assert!(!d.source().await.contains(SECRET));
    d.screenshot("04-account-rotated").await;
    assert_eq!(w.version().await, 2);

    // A user is created; the enrolment QR code is shown once.
    d.goto(&app.url("/console/admin/users")).await;
    d.fill("#new-username", "erin").await;
    d.fill("#new-display", "Erin").await;
    d.click("input[name=role_publisher]").await;
    d.fill("#new-password", PASSWORD).await;
    d.fill("#create-user-totp", &app.code(&app.admin)).await;
    d.click("#create-user-submit").await;
    d.wait("#enrolment .qr svg").await;
    d.screenshot("05-user-enrolment").await;
    d.goto(&app.url("/console/admin/policies")).await;
    d.wait(".policy").await;
    d.screenshot("06-policies").await;
    d.logout().await;

    // Carol's tool asks for a major checkout carrying the post; it waits for an approver.
    let id = w.major_checkout().await;

    // Bob, an approver, reads the post as it will appear and approves it with his own code.
    d.login(app, &w.bob).await;
    d.screenshot("07-home-approver").await;
    d.goto(&app.url("/console/approvals")).await;
    let card = format!("#co-{id}");
    assert!(d.text(&card).await.contains("carol"));
    d.screenshot("08-approvals").await;
    d.click(&format!("{card} a.review")).await;
    assert_eq!(d.text("#post-title").await, "2026年重点项目清单");
    assert!(d.text("#department").await.contains("综合处"));
    let body = d.text("#post-body").await;
    assert!(
        body.contains("省发改委发布重点项目清单。") && body.contains("<b>不是标签</b>"),
        "{body}"
    );
    d.screenshot("12-approval-post").await;
    d.fill("#decide-comment", "同意发布").await;
    d.fill("#decide-totp", &app.code(&w.bob)).await;
    d.click("#approve").await;
    d.wait_text("#notice", "已批准").await;
    d.wait("#no-pending").await;
    let r = app
        .get(&w.admin_s, &format!("/api/v1/checkouts/{id}"))
        .await;
    assert_eq!(r.1["status"], "approved", "{}", r.1);
    d.logout().await;

    // The admin opens an incident from a playbook: the confirmation says what will run, then
    // the incident page; a checklist step is completed with a note.
    d.login(app, &app.admin).await;
    d.goto(&app.url("/console/incidents")).await;
    d.click("#new-incident").await;
    d.fill("#incident-summary", "发现异地登录，启动演练预案")
        .await;
    d.click("#incident-next").await;
    let words = d.text("#auto-steps").await;
    assert!(words.contains("冻结账号：不能再签出"), "{words}");
    d.screenshot("13-incident-confirm").await;
    d.click("#incident-open").await;
    d.wait_text("#notice", "应急事件已启动").await;
    let incident = d.text("#incident-id").await;
    d.fill("#step-3-note", "已核实：异地登录为出差人员").await;
    d.click("#step-3-done").await;
    d.wait_text("#notice", "步骤已标记完成").await;
    assert!(
        d.text("#step-3")
            .await
            .contains("已核实：异地登录为出差人员")
    );
    d.fill("#close-review", "演练完毕").await;
    d.fill("#close-totp", &app.code(&app.admin)).await;
    d.click("#close-submit").await;
    d.wait_text("#waiting-second", "等待另一位人员").await;
    d.screenshot("14-incident").await;
    assert_eq!(
        app.get(&w.admin_s, "/api/v1/accounts/wx").await.1["status"],
        "frozen"
    );
    d.logout().await;

    // Dave, the auditor, finds both actions on the audit page; the chain verifies.
    d.login(app, &w.dave).await;
    d.goto(&app.url("/console/audit")).await;
    assert!(d.text("#chain-ok").await.contains("审计链校验通过"));
    d.wait("#chart-24h").await;
    d.screenshot("09-audit").await;
    d.goto(&app.url("/console/audit?action=account.rotate&outcome=success"))
        .await;
    let log = d.text("#audit-log").await;
    assert!(
        log.contains("account.rotate") && log.contains("admin") && log.contains("wx"),
        "{log}"
    );
    d.goto(&app.url("/console/audit?action=checkout.approve"))
        .await;
    let log = d.text("#audit-log").await;
    assert!(
        log.contains("checkout.approve") && log.contains("bob") && log.contains(&id),
        "{log}"
    );
    for action in ["incident.open", "incident.step", "incident.close"] {
        d.goto(&app.url(&format!("/console/audit?action={action}&outcome=success")))
            .await;
        let log = d.text("#audit-log").await;
        assert!(
            log.contains(action)
                && log.contains("admin")
                && log.contains(if action == "incident.open" {
                    "wx"
                } else {
                    &incident
                }),
            "{action}: {log}"
        );
    }
    d.click("#audit-log tbody a").await;
    d.wait("#entry").await;
    d.screenshot("10-audit-entry").await;
    d.goto(&app.url("/console/audit?lang=en")).await;
    assert!(
        d.text("#chain-ok")
            .await
            .contains("The audit chain verifies")
    );
    d.screenshot("11-audit-en").await;
}

/// Break-glass in the browser: the admin (no approver role) releases carol's major post alone
/// from its approval page with a reason and a code; the account shows the credential due for
/// rotation; bob, an approver, finds the open review on his home page and closes it.
#[tokio::test]
async fn in_chromium_an_admin_releases_a_post_alone_and_an_approver_closes_the_review() {
    let w = world_with("allow_break_glass = true\n").await;
    let app = &w.app;
    let id = w.major_checkout().await;
    let d = Driver::start().await;

    d.login(app, &app.admin).await;
    d.goto(&app.url(&format!("/console/approvals/{id}"))).await;
    d.wait("#break-glass").await;
    assert!(
        d.find("#approve").await.is_none(),
        "an admin without the approver role is not offered the approval form"
    );
    d.fill(
        "#break-glass-reason",
        "审批人均在外地开会无法联系，防汛预警须立即发布",
    )
    .await;
    d.fill("#break-glass-totp", &app.code(&app.admin)).await;
    d.click("#break-glass-release").await;
    d.wait_text("#notice", "已紧急放行").await;
    let card = d.text(&format!("#bg-{id}")).await;
    assert!(
        card.contains("防汛预警") && card.contains("待复核"),
        "{card}"
    );
    assert!(d.find("#break-glass").await.is_none(), "released once");
    d.screenshot("15-break-glass-release").await;
    d.goto(&app.url("/console/admin/accounts/wx")).await;
    d.wait_text("#rotation-due", "紧急放行后须更换").await;
    d.logout().await;

    d.login(app, &w.bob).await;
    d.wait_text("#attention-break-glass", "防汛预警").await;
    d.goto(&app.url("/console/break-glass")).await;
    d.wait(&format!("#close-{id}")).await;
    d.screenshot("16-break-glass-review").await;
    d.fill(
        &format!("#close-{id} .review-note"),
        "已电话核实，内容与防汛指挥部通知一致",
    )
    .await;
    d.fill(&format!("#close-{id} .review-totp"), &app.code(&w.bob))
        .await;
    d.click(&format!("#close-{id} .review-close")).await;
    d.wait_text("#notice", "复核已结案").await;
    d.wait("#no-open-reviews").await;
    assert!(d.text(&format!("#bg-{id}")).await.contains("bob"));
    let (_, v) = app.get(&w.admin_s, "/api/v1/break-glass").await;
    assert_eq!(v[0]["review"], "closed", "{v}");
    assert_eq!(v[0]["closed_by"], "bob", "{v}");
}

/// The requester is told: a publisher's home page lists their own requests and how each was
/// decided, by whom, with the approver's comment.
#[tokio::test]
async fn a_publisher_sees_on_home_how_each_of_their_requests_was_decided() {
    let w = world().await;
    let mut carol = Browser::new(&w.app);
    carol.login(&w.app, &w.carol).await;
    let home = carol.get("/console").await;
    assert!(home.body.contains("您还没有签出申请。"), "{}", home.body);
    let id = w.major_checkout().await;
    let home = carol.get("/console").await;
    assert!(home.body.contains(&format!("id=\"mine-{id}\"")));
    assert!(home.body.contains("待审批"), "{}", home.body);
    let bob_s = w.app.login(&w.bob).await;
    let code = w.app.code(&w.bob);
    let (st, v) = w
        .app
        .post(
            &bob_s,
            &format!("/api/v1/checkouts/{id}/deny"),
            json!({"totp": code, "comment": "数据需再核实"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let home = carol.get("/console").await;
    let start = home.body.find(&format!("id=\"mine-{id}\"")).unwrap();
    let item = &home.body[start..start + home.body[start..].find("</li>").unwrap()];
    assert!(
        item.contains("已驳回") && item.contains("bob 驳回：数据需再核实"),
        "{item}"
    );
    // An approver who requests nothing has no such list.
    let mut bob = Browser::new(&w.app);
    bob.login(&w.app, &w.bob).await;
    assert!(
        !bob.get("/console")
            .await
            .body
            .contains("id=\"my-checkouts\"")
    );
}

/// Every console request counts against the general tier's per-address budget, the one the API's
/// general routes use: a signed-in browser (or a stolen session cookie) that pages the console
/// faster than the API would allow is refused with a page in the person's language, 429 and
/// `Retry-After`, the API's door is shut for that address too, the refusals are in the log, and
/// another address is not affected.
#[tokio::test]
async fn console_pages_share_the_general_budget_and_a_refusal_is_a_page() {
    let app = spawn_with(Options {
        tweak: Some(Box::new(|c| {
            c.rate_limits.general_burst = 12;
            c.rate_limits.general_per_second = 1;
        })),
        ..Default::default()
    })
    .await;
    // The admin's API session, from 127.0.0.1; the browser below is another machine.
    let admin = app.admin.clone();
    let admin_s = app.login(&admin).await;
    let elsewhere = std::net::IpAddr::from([127, 0, 0, 2]);
    let mut b = Browser::from(&app, elsewhere);
    b.login(&app, &admin).await;
    let mut served = 0;
    let refused = loop {
        let p = b.get("/console/audit?lang=en").await;
        if p.status == 429 {
            break p;
        }
        assert_eq!(p.status, 200, "{}", p.body);
        served += 1;
        assert!(served < 20, "twenty console pages and no refusal");
    };
    assert!(served >= 5, "refused after {served} pages");
    assert_console_headers("refused GET /console/audit", &refused);
    assert!(refused.headers.contains_key("retry-after"));
    assert!(
        refused.body.contains("Too many requests") && refused.body.contains("<html"),
        "{}",
        refused.body
    );
    // The same address's API requests draw on the same budget.
    let api = reqwest::Client::builder()
        .local_address(elsewhere)
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(app.dir.path().join("certs/ca.pem")).unwrap(),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let r = api
        .get(app.url("/api/v1/accounts"))
        .bearer_auth(&admin_s)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "rate_limited");
    // Another address is not affected, and the refusals are in the log with the browser's address.
    let limited = audit_entries(&app, &admin_s, "outcome=rate_limited").await;
    let console_refusals: Vec<&Value> = limited
        .iter()
        .filter(|e| e["http"]["path"] == "/console/audit")
        .collect();
    assert_eq!(console_refusals.len(), 1, "{limited:?}");
    assert_eq!(console_refusals[0]["source_ip"], "127.0.0.2");
}
