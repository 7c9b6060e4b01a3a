//! Mutual TLS for publishing tools (issue 21): a tool bound to a client certificate works only
//! over a connection that presents that certificate, its refusals are audited, and every request
//! on such a connection names the certificate in its audit entry. All through the front door:
//! the real server over TLS, with `tls.client_ca_file` set.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;
use crate::support::{tool_ca, tool_cert};

fn sha256_hex(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
}

/// A client that trusts the test vault's server CA and presents `cert` + `key`.
fn client_with(dir: &Path, cert: &str, key: &str) -> reqwest::Client {
    let ca = std::fs::read(dir.join("certs/ca.pem")).unwrap();
    let identity = reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .identity(identity)
        .build()
        .unwrap()
}

async fn send(
    client: &reqwest::Client,
    app: &TestApp,
    bearer: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let req = match body {
        Some(b) => client.post(app.url(path)).json(&b),
        None => client.get(app.url(path)),
    };
    into_pair(req.bearer_auth(bearer).send().await.unwrap()).await
}

fn policy(account: &str) -> String {
    format!(
        "account = \"{account}\"\nexclusive = false\nallowed_calls = [\"GET cgi-bin/getcallbackip\"]\n[who]\nroles = [\"publisher\"]\nclients = [\"cms\", \"plain\"]\n[levels.general]\napprovals = 0\n[levels.major]\napprovals = 1\n"
    )
}

/// The admin signs in, a publisher and the account `wx` are there, and the tool `cms` is bound
/// to `cert` at creation: (the admin's session, the publisher, the tool as created).
async fn bound_cms(app: &TestApp, cert: &str) -> (String, TestUser, Value) {
    let admin_s = app.login(&app.admin.clone()).await;
    let alice = app.create_user(&admin_s, "alice", &["publisher"]).await;
    let r = app
        .post(&admin_s, "/api/v1/accounts", json!({"id": "wx", "platform": "wechat", "display_name": "wx", "credential": {"app_id": "wx1", "app_secret": "s"}}))
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    let code = app.code(&app.admin);
    let (st, cms) = app
        .post(
            &admin_s,
            "/api/v1/clients",
            json!({"name": "cms", "accounts": ["wx"], "totp": code, "certificate": cert}),
        )
        .await;
    assert_eq!(st, 201, "{cms}");
    (admin_s, alice, cms)
}

#[tokio::test]
async fn a_bound_tool_works_only_with_its_certificate() {
    let pki = tempfile::tempdir().unwrap();
    let ca = tool_ca("office tool CA");
    let ca_file = pki.path().join("tool-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let (a_pem, a_der, a_key) = tool_cert(&ca, "cms-prod");
    let (b_pem, b_der, b_key) = tool_cert(&ca, "cms-other");
    // A certificate from a CA the vault does not trust.
    let stranger_ca = tool_ca("someone else's CA");
    let (s_pem, _, s_key) = tool_cert(&stranger_ca, "cms-prod");

    let app = spawn_with(Options {
        policies: Some(vec![("wx.toml", policy("wx"))]),
        tweak: Some(Box::new(move |c| c.tls.client_ca_file = Some(ca_file))),
        ..Default::default()
    })
    .await;
    // Bound at creation: the answer names the certificate by fingerprint and subject.
    let (admin_s, alice, cms) = bound_cms(&app, &a_pem).await;
    assert_eq!(cms["certificate"]["sha256"], sha256_hex(&a_der), "{cms}");
    assert!(
        cms["warning"].is_null(),
        "the server asks for certificates: {cms}"
    );
    assert!(
        cms["certificate"]["subject"]
            .as_str()
            .unwrap()
            .contains("CN=cms-prod"),
        "{cms}"
    );
    let cms_id = cms["client_id"].as_str().unwrap().to_owned();
    let cms_key = cms["client_key"].as_str().unwrap().to_owned();
    let (st, plain) = app.create_client(&admin_s, "plain", &["wx"]).await;
    assert_eq!(st, 201, "{plain}");
    let plain_key = plain["client_key"].as_str().unwrap().to_owned();

    let with_a = client_with(app.dir.path(), &a_pem, &a_key);
    let with_b = client_with(app.dir.path(), &b_pem, &b_key);
    let without = &app.client;
    let checkout = |who: &TestUser| json!({"account": "wx", "operator": who.username, "totp": app.code(who), "purpose": "发布通知", "level": "general"});

    // Key + its certificate: the checkout goes through, and its token works on that connection.
    let (st, v) = send(
        &with_a,
        &app,
        &cms_key,
        "/api/v1/checkouts",
        Some(checkout(&alice)),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let (st, v) = send(&with_a, &app, &token, "/api/v1/token", None).await;
    assert_eq!(st, 200, "{v}");

    // The key without a certificate, or with another valid one: refused, and nothing happens.
    for (client, what) in [(without, "none"), (&with_b, "another")] {
        let (st, v) = send(
            client,
            &app,
            &cms_key,
            "/api/v1/checkouts",
            Some(checkout(&alice)),
        )
        .await;
        assert_eq!(st, 401, "{what}: {v}");
        assert_eq!(v["code"], "client_certificate_required", "{what}: {v}");
        // The token issued under the tool's checkout is bound the same way.
        let (st, v) = send(client, &app, &token, "/api/v1/token", None).await;
        assert_eq!(st, 401, "{what}: {v}");
        assert_eq!(v["code"], "client_certificate_required", "{what}: {v}");
    }
    // A certificate from an untrusted CA does not get past the handshake.
    let stranger = client_with(app.dir.path(), &s_pem, &s_key);
    assert!(
        stranger.get(app.url("/healthz")).send().await.is_err(),
        "a certificate the tool CA did not issue was accepted"
    );

    // An unbound tool works as before, with or without a certificate on the connection.
    for client in [without, &with_b] {
        let (st, v) = send(
            client,
            &app,
            &plain_key,
            "/api/v1/checkouts",
            Some(checkout(&alice)),
        )
        .await;
        assert_eq!(st, 201, "{v}");
    }

    // The audit log: the success names the certificate, each refusal names the tool, the code and
    // the certificate presented (if any).
    let (_, page) = app.get(&admin_s, "/api/v1/audit?limit=1000").await;
    let entries = page["entries"].as_array().unwrap();
    let by_cert = |sha: &str| {
        entries
            .iter()
            .filter(|e| e["detail"]["client_cert"]["sha256"] == sha)
            .collect::<Vec<_>>()
    };
    let a_sha = sha256_hex(&a_der);
    let b_sha = sha256_hex(&b_der);
    assert!(
        by_cert(&a_sha)
            .iter()
            .any(|e| e["action"] == "checkout.create"
                && e["outcome"] == "success"
                && e["actor"]["id"] == cms_id.as_str()
                && e["detail"]["client_cert"]["subject"]
                    .as_str()
                    .unwrap()
                    .contains("CN=cms-prod")),
        "{page}"
    );
    let refused: Vec<&Value> = entries
        .iter()
        .filter(|e| e["detail"]["code"] == "client_certificate_required")
        .collect();
    assert_eq!(refused.len(), 4, "{page}");
    assert!(refused.iter().all(|e| e["outcome"] == "denied"
        && e["detail"]["client"] == cms_id.as_str()
        && e["detail"]["bound_cert_sha256"] == a_sha.as_str()));
    assert_eq!(
        refused
            .iter()
            .filter(|e| e["detail"]["client_cert"]["sha256"] == b_sha.as_str())
            .count(),
        2,
        "{page}"
    );
    assert_eq!(
        refused
            .iter()
            .filter(|e| e["detail"]["client_cert"].is_null())
            .count(),
        2,
        "{page}"
    );
    let page_text = page.to_string();
    assert!(!page_text.contains(&cms_key) && !page_text.contains(&token));

    // Rebinding to certificate B (an audited admin change with step-up), then unbinding.
    let path = format!("/api/v1/clients/{cms_id}/certificate");
    let put = |body: Value| {
        let req = app
            .client
            .put(app.url(&path))
            .bearer_auth(&admin_s)
            .json(&body);
        async move { into_pair(req.send().await.unwrap()).await }
    };
    let (st, v) = put(json!({"certificate": b_pem, "totp": app.code(&app.admin)})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["certificate"]["sha256"], b_sha.as_str(), "{v}");
    let (st, v) = send(&with_b, &app, &token, "/api/v1/token", None).await;
    assert_eq!(st, 200, "the token follows the new binding: {v}");
    let (st, v) = send(&with_a, &app, &token, "/api/v1/token", None).await;
    assert_eq!(st, 401, "the old certificate no longer works: {v}");
    // A private key pasted by mistake is refused, and not echoed.
    let (st, v) = put(json!({"certificate": format!("{b_pem}{b_key}")})).await;
    assert_eq!(st, 400, "{v}");
    assert!(
        !v.to_string().contains(b_key.lines().nth(1).unwrap()),
        "{v}"
    );
    let (st, v) = put(json!({"certificate": null})).await;
    assert_eq!(st, 200, "{v}");
    assert!(v.get("certificate").is_none(), "{v}");
    let (st, v) = send(
        without,
        &app,
        &cms_key,
        "/api/v1/checkouts",
        Some(checkout(&alice)),
    )
    .await;
    assert_eq!(st, 201, "unbound, the key alone works again: {v}");
    let (_, v) = app
        .get(&admin_s, "/api/v1/audit?action=client.bind_cert")
        .await;
    let bind = &v["entries"][0];
    assert_eq!(bind["outcome"], "success", "{v}");
    assert_eq!(
        bind["detail"]["bound_cert"]["sha256"],
        b_sha.as_str(),
        "{v}"
    );
    assert_eq!(
        bind["detail"]["previous_cert"]["sha256"],
        a_sha.as_str(),
        "{v}"
    );
    let (_, v) = app
        .get(&admin_s, "/api/v1/audit?action=client.unbind_cert")
        .await;
    assert_eq!(v["entries"][0]["outcome"], "success", "{v}");
    assert_eq!(
        v["entries"][0]["detail"]["previous_cert"]["sha256"],
        b_sha.as_str(),
        "{v}"
    );
}

/// An SM2 tool certificate as an office's SM2 CA issues one, made with OpenSSL 3 in `dir` (the
/// keys stay there): an SM2 key, signed SM2-with-SM3 by an SM2 CA. Its PEM.
fn sm2_tool_cert(dir: &Path) -> String {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl must be installed (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let sm2_key = |out: &str| {
        run(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:SM2",
            "-out",
            out,
        ]);
    };
    sm2_key("sm2-ca.key");
    run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "sm2-ca.key",
        "-sm3",
        "-subj",
        "/CN=office SM2 tool CA",
        "-days",
        "365",
        "-out",
        "sm2-ca.pem",
    ]);
    sm2_key("sm2-tool.key");
    run(&[
        "req",
        "-new",
        "-key",
        "sm2-tool.key",
        "-sm3",
        "-subj",
        "/CN=cms-sm2/O=office",
        "-out",
        "sm2-tool.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "sm2-tool.csr",
        "-CA",
        "sm2-ca.pem",
        "-CAkey",
        "sm2-ca.key",
        "-sm3",
        "-days",
        "365",
        "-out",
        "sm2-tool.pem",
    ]);
    std::fs::read_to_string(dir.join("sm2-tool.pem")).unwrap()
}

/// Percent-encodes every byte but letters and digits, as nginx's `$ssl_client_escaped_cert`
/// gives a PEM certificate.
fn escaped(pem: &str) -> String {
    pem.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Behind a TLS gateway (a TLCP gateway for a 密评 terminates the tools' connections), the
/// gateway verifies the tool's certificate and passes it in `gateway.client_cert_header`: the
/// vault reads it only on the gateway's connections, in the forms gateways give it, and binds
/// the tool to it as to a certificate of its own handshake. Anything else is refused.
#[tokio::test]
async fn behind_a_gateway_a_bound_tool_works_with_the_certificate_the_gateway_passes() {
    let ca = tool_ca("office SM2 tool CA");
    let (a_pem, a_der, _) = tool_cert(&ca, "cms-prod");
    let (b_pem, _, _) = tool_cert(&ca, "cms-other");
    let app = spawn_with(Options {
        policies: Some(vec![("wx.toml", policy("wx"))]),
        // The gateway runs on this host; the tests' own client (127.0.0.1) is the gateway.
        tweak: Some(Box::new(|c| {
            c.gateway.addresses = vec!["127.0.0.1/32".parse().unwrap()];
            c.gateway.client_cert_header = Some("X-SSL-Client-Cert".into());
        })),
        ..Default::default()
    })
    .await;
    let (admin_s, alice, cms) = bound_cms(&app, &a_pem).await;
    assert!(
        cms["warning"].is_null(),
        "the gateway passes certificates: {cms}"
    );
    let cms_key = cms["client_key"].as_str().unwrap().to_owned();

    let gateway = &app.client;
    let ca_pem = std::fs::read(app.dir.path().join("certs/ca.pem")).unwrap();
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .build()
        .unwrap();
    let call = |client: &reqwest::Client,
                bearer: &str,
                path: &str,
                cert: Option<String>,
                body: Option<Value>| {
        let mut req = match body {
            Some(b) => client.post(app.url(path)).json(&b),
            None => client.get(app.url(path)),
        }
        .bearer_auth(bearer)
        .header("x-forwarded-for", "10.20.30.40");
        if let Some(cert) = cert {
            req = req.header("x-ssl-client-cert", cert);
        }
        async move { into_pair(req.send().await.unwrap()).await }
    };
    let checkout = json!({"account": "wx", "operator": "alice", "totp": app.code(&alice), "purpose": "发布通知", "level": "general"});

    // The certificate as nginx escapes it: the checkout goes through.
    let (st, v) = call(
        gateway,
        &cms_key,
        "/api/v1/checkouts",
        Some(escaped(&a_pem)),
        Some(checkout),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    // As bare base64 DER, and as PEM with its line breaks turned into spaces: the token works.
    use base64::Engine as _;
    let bare = base64::engine::general_purpose::STANDARD.encode(&a_der);
    for form in [bare.clone(), a_pem.trim().replace('\n', " ")] {
        let (st, v) = call(gateway, &token, "/api/v1/token", Some(form), None).await;
        assert_eq!(st, 200, "{v}");
    }
    // Refused: no certificate, another one, a header that holds none, and the right one sent by
    // someone who is not the gateway.
    for (client, cert, what) in [
        (gateway, None, "none"),
        (gateway, Some(escaped(&b_pem)), "another"),
        (gateway, Some("not a certificate".to_owned()), "garbage"),
        (
            gateway,
            Some(bare[..bare.len() / 2].to_owned()),
            "cut short",
        ),
        (&elsewhere, Some(escaped(&a_pem)), "not from the gateway"),
    ] {
        let (st, v) = call(client, &token, "/api/v1/token", cert, None).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (401, Some("client_certificate_required")),
            "{what}: {v}"
        );
    }

    // The log: the client's own address (the gateway's X-Forwarded-For) and the certificate.
    let (_, page) = app
        .get(&admin_s, "/api/v1/audit?action=checkout.create")
        .await;
    let entry = &page["entries"][0];
    assert_eq!(entry["outcome"], "success", "{page}");
    assert_eq!(entry["source_ip"], "10.20.30.40", "{page}");
    assert_eq!(
        entry["detail"]["client_cert"]["sha256"],
        sha256_hex(&a_der),
        "{page}"
    );

    // A 密评's tools hold SM2 certificates, which only the gateway can verify: the tool is bound
    // to one (made with `openssl req -sm3` on an SM2 key, signed SM2-with-SM3 by an SM2 CA), and
    // its token then works with that certificate passed by the gateway, and no longer with A.
    let sm2_pem = &sm2_tool_cert(app.dir.path());
    let cms_id = cms["client_id"].as_str().unwrap();
    let (st, v) = into_pair(
        app.client
            .put(app.url(&format!("/api/v1/clients/{cms_id}/certificate")))
            .bearer_auth(&admin_s)
            .json(&json!({"certificate": sm2_pem, "totp": app.code(&app.admin)}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["certificate"]["subject"]
            .as_str()
            .unwrap()
            .contains("CN=cms-sm2"),
        "{v}"
    );
    let (st, v) = call(
        gateway,
        &token,
        "/api/v1/token",
        Some(escaped(sm2_pem)),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = call(
        gateway,
        &token,
        "/api/v1/token",
        Some(escaped(&a_pem)),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("client_certificate_required")),
        "{v}"
    );
}
