//! Issue 14: `GET /metrics` in Prometheus text, counters that move, loopback or admin only.

use crate::common::*;

/// The value of the first sample line that starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_hold_no_secret() {
    let app = spawn_app().await;
    let session = app.login(&app.admin.clone()).await;
    let scrape = || async {
        let r = app.client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/plain"), "{ct}");
        r.text().await.unwrap()
    };
    let before = scrape().await;
    let users = "mediavault_http_requests_total{route=\"/api/v1/users/{username}\",method=\"GET\",status=\"200\"}";
    let unauth =
        "mediavault_http_requests_total{route=\"/api/v1/token\",method=\"GET\",status=\"401\"}";
    for _ in 0..3 {
        assert_eq!(app.get(&session, "/api/v1/users/admin").await.0, 200);
        assert_eq!(app.get("mvt_nonsense", "/api/v1/token").await.0, 401);
    }
    let after = scrape().await;
    assert_eq!(
        sample(&after, users) - sample(&before, users),
        3.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, unauth) - sample(&before, unauth),
        3.0,
        "{after}"
    );
    // Every request's entry went through the writer: batches were committed and timed.
    assert!(sample(&after, "mediavault_audit_batch_size_count") > 0.0);
    assert!(sample(&after, "mediavault_audit_commit_duration_seconds_count") > 0.0);
    for family in [
        "mediavault_http_request_duration_seconds_bucket",
        "mediavault_audit_queue_depth",
        "mediavault_live_checkouts",
        "mediavault_indexed_tokens",
    ] {
        assert!(after.contains(family), "{family} missing:\n{after}");
    }
    // Route templates, never what was in the path or the credential.
    assert!(!after.contains("/users/admin\""), "{after}");
    assert!(!after.contains("mvt_nonsense"));
    assert!(!after.contains(&session));
    // An admin session is also let in (from another address too: the test below).
    assert_eq!(
        app.client
            .get(app.url("/metrics"))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// One of this machine's own non-loopback IPv4 addresses: the one a route out would leave from
/// (connecting a UDP socket sends nothing; 192.0.2.1 is a documentation address), else any local
/// address the kernel lists in /proc/net/fib_trie.
fn outward_ip() -> Option<std::net::IpAddr> {
    let routed = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    if routed.is_some() {
        return routed;
    }
    let trie = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    let mut last = None;
    for line in trie.lines() {
        if let Some(ip) = line.trim().strip_prefix("|-- ") {
            last = ip.parse::<std::net::Ipv4Addr>().ok();
        } else if line.contains("/32 host LOCAL")
            && let Some(ip) = last.filter(|ip| !ip.is_loopback())
        {
            return Some(ip.into());
        }
    }
    None
}

#[tokio::test]
async fn metrics_from_another_address_need_an_admin_session() {
    let Some(ip) = outward_ip() else {
        // Only a machine with nothing but loopback gets here; there is no other address to
        // come from.
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let tweak: Tweak = Box::new(|c| c.listen = "0.0.0.0:0".parse().unwrap());
    let app = spawn_with(Options {
        tweak: Some(tweak),
        ..Default::default()
    })
    .await;
    let port = app.running.as_ref().unwrap().addr.port();
    // The vault's certificate names localhost: resolve that name to the machine's outward
    // address, so the vault sees a peer that is not loopback.
    let ca = std::fs::read(app.dir.path().join("certs/ca.pem")).unwrap();
    let outside = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve("localhost", std::net::SocketAddr::new(ip, port))
        .build()
        .unwrap();
    let url = |path: &str| format!("https://localhost:{port}{path}");

    let r = outside.get(url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "not_permitted", "{v}");
    // Nor does a header claiming to come from the host itself help.
    let r = outside
        .get(url("/metrics"))
        .header("x-forwarded-for", "127.0.0.1")
        .header("x-real-ip", "127.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // An admin who signs in from that address is let in.
    let admin = app.admin.clone();
    let v: serde_json::Value = outside
        .post(url("/api/v1/auth/login"))
        .json(&serde_json::json!({"username": admin.username, "password": admin.password, "totp": app.code(&admin)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = v["session_token"].as_str().expect("admin login").to_owned();
    let r = outside
        .get(url("/metrics"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("mediavault_http_requests_total")
    );
}
