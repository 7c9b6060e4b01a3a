//! Issue 24, the publication watch after publishing: a post the vault published that WeChat later
//! reports deleted by the account's own users (publish_status 5) or blocked by the platform (6),
//! or that is deleted or restricted on Weibo, moves its evidence record on, is recorded with the
//! platform's answer as evidence, and is told to every channel.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::publishing::{P, setup_with};
use mediavault::platforms::payload::weibo_share_form;
use serde_json::{Value, json};

const APP_ID: &str = "wx11aa22bb33cc44dd";

/// One general checkout's token, used for one post and then checked in.
async fn general(p: &P, account: &str) -> (String, String) {
    let code = p.app.code(&p.alice);
    let (st, v) = p.app.post(&p.key, "/api/v1/checkouts", json!({"account": account, "operator": "alice", "totp": code, "purpose": "日常发布", "level": "general"})).await;
    assert_eq!(st, 201, "{v}");
    (
        v["token"].as_str().unwrap().to_owned(),
        v["checkout_id"].as_str().unwrap().to_owned(),
    )
}

async fn wechat_post(p: &P, title: &str) -> String {
    let (token, id) = general(p, "wx").await;
    let (st, v) = p
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/draft/add",
            json!({"articles": [{"title": title, "content": "<p>正文</p>"}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = p
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/freepublish/submit",
            json!({"media_id": v["media_id"]}),
        )
        .await;
    assert_eq!((st, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    let publish_id = v["publish_id"].as_str().unwrap().to_owned();
    // The status call completes the record with WeChat's article id.
    let (st, v) = p
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/freepublish/get",
            json!({"publish_id": publish_id}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    p.app
        .post(
            &token,
            &format!("/api/v1/checkouts/{id}/checkin"),
            json!({}),
        )
        .await;
    v["article_id"].as_str().unwrap().to_owned()
}

async fn weibo_post(p: &P, text: &'static str) -> String {
    let (token, id) = general(p, "wb").await;
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
    let (st, v) = into_pair(r).await;
    assert_eq!(st, 200, "{v}");
    p.app
        .post(
            &token,
            &format!("/api/v1/checkouts/{id}/checkin"),
            json!({}),
        )
        .await;
    v["idstr"].as_str().unwrap().to_owned()
}

async fn posts(p: &P, session: &str) -> Vec<Value> {
    let (st, v) = p.app.get(session, "/api/v1/posts").await;
    assert_eq!(st, 200, "{v}");
    v.as_array().unwrap().clone()
}

#[tokio::test]
async fn the_watch_follows_posts_after_publishing_deleted_blocked_or_hidden() {
    let (hook, got) = webhook_inbox().await;
    let p = setup_with(
        "",
        Some(Box::new(move |c| {
            c.watch.interval_seconds = 1;
            c.notify = vec![mediavault::config::NotifyChannel::new(
                "ops",
                mediavault::config::NotifyKind::Generic,
                &hook,
            )];
        })),
    )
    .await;
    let deleted = wechat_post(&p, "将被删除的通知").await;
    let blocked = wechat_post(&p, "将被封禁的通知").await;
    let kept = wechat_post(&p, "保留的通知").await;
    let gone = weibo_post(&p, "将被删除的微博").await;
    let hidden = weibo_post(&p, "将被隐藏的微博").await;
    let auditor_s = p.app.login(&p.auditor).await;
    assert!(
        posts(&p, &auditor_s)
            .await
            .iter()
            .all(|r| r["status"] == "published"),
    );

    // On the platforms, after publishing: the account's users delete one article in the WeChat
    // console, WeChat blocks another, a Weibo status is deleted and another restricted.
    assert!(p.fake.user_deletes_wechat_article(APP_ID, &deleted));
    assert!(p.fake.platform_blocks_wechat_article(APP_ID, &blocked));
    assert!(p.fake.user_deletes_weibo_status(&gone));
    assert!(p.fake.restrict_weibo_status(&hidden, 1));

    let deadline = Instant::now() + Duration::from_secs(20);
    let records = loop {
        let records = posts(&p, &auditor_s).await;
        let settled = records
            .iter()
            .filter(|r| r["status"] != "published")
            .count();
        if settled == 4 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "the watch did not follow: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status_of = |platform_id: &str| {
        records
            .iter()
            .find(|r| r["article_id"] == platform_id || r["status_id"] == platform_id)
            .map(|r| r["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(status_of(&deleted), "deleted");
    assert_eq!(status_of(&blocked), "blocked");
    assert_eq!(status_of(&kept), "published");
    assert_eq!(status_of(&gone), "deleted");
    assert_eq!(status_of(&hidden), "hidden");

    // Each move is one audit entry with the platform's answer as evidence.
    let (_, page) = p
        .app
        .get(&auditor_s, "/api/v1/audit?action=watch.post_removed")
        .await;
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{page}");
    let blocked_entry = entries
        .iter()
        .find(|e| e["detail"]["platform_id"] == blocked.as_str())
        .unwrap();
    assert_eq!(blocked_entry["detail"]["status"], "blocked");
    let evidence: Value =
        serde_json::from_str(blocked_entry["detail"]["evidence"].as_str().unwrap()).unwrap();
    assert_eq!(evidence["publish_status"], 6);
    assert_eq!(
        blocked_entry["detail"]["evidence_sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );

    // Every channel is told, once per post.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let told: Vec<String> = got
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n["event"] == "post.removed")
            .map(|n| n["summary"].as_str().unwrap().to_owned())
            .collect();
        if told.len() >= 4 {
            assert!(told.iter().any(|t| t.contains("封禁")), "{told:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{told:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Later rounds leave settled records alone.
    let before = p.fake.calls().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.fake.calls().len() < before + 4 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, page) = p
        .app
        .get(&auditor_s, "/api/v1/audit?action=watch.post_removed")
        .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 4);
}
