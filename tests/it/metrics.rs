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
    // An admin session is also let in (the refusal from other addresses is a unit test of
    // `telemetry::metrics_allowed`: this harness serves on loopback only).
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
