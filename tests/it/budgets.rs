//! Issue 24, per-account publishing budgets: a policy's `max_posts_per_hour` (set under the
//! platform's own limit) makes the vault refuse the next post early, with a clear error and when
//! to retry, before the platform sees it; the budget frees up as the window moves.

use std::time::Duration;

use crate::common::*;
use crate::publishing::setup_with;
use mediavault::platforms::payload::weibo_share_form;
use serde_json::json;

#[tokio::test]
async fn the_vault_refuses_a_post_over_the_accounts_hourly_budget_before_weibo_sees_it() {
    let p = setup_with("max_posts_per_hour = 2\n", None).await;
    // One checkout is one post on each account: each post gets its own general checkout.
    let share = |text: &'static str| {
        let p = &p;
        async move {
            let code = p.app.code(&p.alice);
            let (st, v) = p.app.post(&p.key, "/api/v1/checkouts", json!({"account": "wb", "operator": "alice", "totp": code, "purpose": "汛情通报", "level": "general"})).await;
            assert_eq!(st, 201, "{v}");
            let token = v["token"].as_str().unwrap().to_owned();
            let r = p
                .app
                .client
                .post(p.app.url("/api/v1/platform/wb/2/statuses/share.json"))
                .bearer_auth(&token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(weibo_share_form(text))
                .send()
                .await
                .unwrap();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|h| h.to_str().unwrap().parse::<u64>().unwrap());
            let answer = into_pair(r).await;
            let id = v["checkout_id"].as_str().unwrap();
            let (st, _) = p
                .app
                .post(
                    &token,
                    &format!("/api/v1/checkouts/{id}/checkin"),
                    json!({}),
                )
                .await;
            assert_eq!(st, 200);
            (answer.0, answer.1, retry_after)
        }
    };
    assert_eq!(share("第一条汛情通报").await.0, 200);
    p.app.clock.advance(Duration::from_secs(600));
    assert_eq!(share("第二条汛情通报").await.0, 200);
    let (st, v, retry_after) = share("第三条汛情通报").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (429, Some("publishing_budget_spent")),
        "{v}"
    );
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("2 posts per hour") && detail.contains("max_posts_per_hour"),
        "{detail}"
    );
    // The first post leaves the window an hour after it went out: 600 s and two fresh codes
    // (30 s each) have passed since, and the test's own real seconds (the test clock runs on).
    let retry_after = retry_after.expect("Retry-After");
    let moved = 3600 - 600 - 2 * 30;
    assert!((moved - 10..=moved).contains(&retry_after), "{retry_after}");
    assert_eq!(p.fake.weibo_statuses(7_000_123).len(), 2, "Weibo saw it");

    // The refusal is in the audit log with its code; no post record was made for it.
    let auditor_s = p.app.login(&p.auditor).await;
    let (_, posts) = p.app.get(&auditor_s, "/api/v1/posts?account=wb").await;
    assert_eq!(posts.as_array().unwrap().len(), 2, "{posts}");
    let (_, page) = p
        .app
        .get(&auditor_s, "/api/v1/audit?account=wb&limit=500")
        .await;
    assert!(
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"]["code"] == "publishing_budget_spent" && e["outcome"] != "success"),
        "{page}"
    );

    // Once the first post is an hour old, one more may go out.
    p.app.clock.advance(Duration::from_secs(retry_after));
    assert_eq!(share("第三条汛情通报").await.0, 200);
    assert_eq!(share("第四条汛情通报").await.0, 429);
    assert_eq!(p.fake.weibo_statuses(7_000_123).len(), 3);
}

/// A Weibo refusal passes through with Weibo's own status and body, so a Weibo SDK reads its
/// `error_code`; the vault explains it beside the body.
#[tokio::test]
async fn a_weibo_refusal_reaches_the_tool_with_weibos_status_and_the_vaults_explanation() {
    let p = setup_with("", None).await;
    let code = p.app.code(&p.alice);
    let (st, v) = p.app.post(&p.key, "/api/v1/checkouts", json!({"account": "wb", "operator": "alice", "totp": code, "purpose": "通报", "level": "general"})).await;
    assert_eq!(st, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    p.fake.inject_error("/2/statuses/share.json", 21327, 1);
    let r = p
        .app
        .client
        .post(p.app.url("/api/v1/platform/wb/2/statuses/share.json"))
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(weibo_share_form("通报"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["mediavault-platform-error"].to_str().unwrap(),
        "weibo 21327"
    );
    assert!(
        r.headers()["mediavault-platform-hint"]
            .to_str()
            .unwrap()
            .contains("re-authorises")
    );
    let (st, v) = into_pair(r).await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["error_code"], 21327);
    assert_eq!(v["error"], "expired_token");
    assert!(!v.to_string().contains("2.00WEIBO-TOKEN-MARKER"));
}
