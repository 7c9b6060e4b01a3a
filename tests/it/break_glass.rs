//! Issue 24, break-glass: when no approver can be reached, an admin may release a major checkout
//! alone where the policy allows it, with a written reason and a fresh code. Every approver is
//! told at once, the audit entries and the post record are marked, the credential is due for
//! rotation, and a second person must close the review.

use std::time::Duration;

use crate::common::*;
use crate::publishing::{P, content, setup_with};
use serde_json::{Value, json};

const REASON: &str = "审批人均在外地开会无法联系，防汛预警必须立即发布";

/// Alice's tool asks for a major checkout carrying the post for `targets`; it waits.
async fn pending(p: &P, targets: &[&str]) -> String {
    let code = p.app.code(&p.alice);
    let (st, v) = p.app.post(&p.key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "防汛预警发布", "level": "major", "content": content(targets)})).await;
    assert_eq!(st, 202, "{v}");
    v["checkout_id"].as_str().unwrap().to_owned()
}

async fn release(p: &P, session: &str, who: &TestUser, id: &str, reason: &str) -> (u16, Value) {
    let code = p.app.code(who);
    p.app
        .post(
            session,
            &format!("/api/v1/checkouts/{id}/break-glass"),
            json!({"reason": reason, "totp": code}),
        )
        .await
}

#[tokio::test]
async fn an_admin_releases_a_major_post_alone_and_a_second_person_must_close_the_review() {
    let (hook, got) = webhook_inbox().await;
    let p = setup_with(
        "allow_break_glass = true\n",
        Some(Box::new(move |c| {
            c.notify = vec![mediavault::config::NotifyChannel::new(
                "hook",
                mediavault::config::NotifyKind::Generic,
                &hook,
            )];
        })),
    )
    .await;
    let admin = p.app.admin.clone();
    let id = pending(&p, &["wx", "wb"]).await;
    let (_, v) = p
        .app
        .get(&p.admin_s, &format!("/api/v1/checkouts/{id}"))
        .await;
    assert_eq!(v["break_glass_allowed"], true, "{v}");
    assert_eq!(v["break_glass"], Value::Null);

    // Refusals change nothing: a reason that says nothing, a wrong code, an approver (not an
    // admin), the requester herself.
    let (st, v) = release(&p, &p.admin_s, &admin, &id, "急").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    let (st, v) = p
        .app
        .post(
            &p.admin_s,
            &format!("/api/v1/checkouts/{id}/break-glass"),
            json!({"reason": REASON, "totp": "000000"}),
        )
        .await;
    assert_eq!(st, 401, "{v}");
    let bob_s = p.app.login(&p.bob).await;
    let (st, v) = release(&p, &bob_s, &p.bob, &id, REASON).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("not_permitted")),
        "{v}"
    );
    let (_, v) = p
        .app
        .get(&p.admin_s, &format!("/api/v1/checkouts/{id}"))
        .await;
    assert_eq!(v["status"], "pending_approval", "{v}");
    assert_eq!(
        p.app.get(&p.admin_s, "/api/v1/accounts/wx").await.1["rotation_due_since"],
        Value::Null
    );

    // The admin releases it alone.
    let (st, v) = release(&p, &p.admin_s, &admin, &id, REASON).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "approved");
    assert_eq!(v["break_glass"]["released_by"], admin.username.as_str());
    assert_eq!(v["break_glass"]["reason"], REASON);
    assert_eq!(v["break_glass"]["review"], "open");
    assert_eq!(v["break_glass_allowed"], false);
    let (st, v) = release(&p, &p.admin_s, &admin, &id, REASON).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("not_pending")), "{v}");

    // Every approver is told at once, with who released it and why.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let notice = loop {
        let found = got
            .lock()
            .unwrap()
            .iter()
            .find(|n| n["event"] == "checkout.break_glass")
            .cloned();
        if let Some(n) = found {
            break n;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no break-glass notice"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let summary = notice["summary"].as_str().unwrap();
    assert!(
        summary.contains(REASON) && summary.contains("bob") && summary.contains(&admin.username),
        "{summary}"
    );
    assert_eq!(notice["checkout_id"], id.as_str());

    // Both accounts it may reach are due for rotation.
    for acct in ["wx", "wb"] {
        let (_, a) = p
            .app
            .get(&p.admin_s, &format!("/api/v1/accounts/{acct}"))
            .await;
        assert!(a["rotation_due_since"].is_string(), "{a}");
    }

    // Alice claims it as any approval and the vault publishes the post; its record is marked.
    let code = p.app.code(&p.alice);
    let (st, v) = p
        .app
        .post(
            &p.key,
            &format!("/api/v1/checkouts/{id}/claim"),
            json!({"operator": "alice", "totp": code}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let (st, v) = p
        .app
        .post(
            &token,
            &format!("/api/v1/checkouts/{id}/publish"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    for post in v.as_array().unwrap() {
        assert_eq!(post["status"], "published", "{post}");
        let mark = &post["approvals"][0];
        assert_eq!(mark["break_glass"], true, "{post}");
        assert_eq!(mark["approver"], admin.username.as_str());
        assert_eq!(mark["reason"], REASON);
    }

    // The audit log: the release itself, and everything the token did, carries the mark.
    let auditor_s = p.app.login(&p.auditor).await;
    let (_, page) = p
        .app
        .get(&auditor_s, "/api/v1/audit?action=checkout.break_glass")
        .await;
    let entries = page["entries"].as_array().unwrap();
    let ok: Vec<&Value> = entries
        .iter()
        .filter(|e| e["outcome"] == "success")
        .collect();
    assert_eq!(ok.len(), 1, "{page}");
    assert_eq!(ok[0]["detail"]["break_glass"], true);
    assert_eq!(ok[0]["detail"]["reason"], REASON);
    assert_eq!(ok[0]["actor"]["id"], admin.username.as_str());
    assert!(
        entries.iter().any(|e| e["outcome"] == "denied"),
        "the refused attempts are recorded too: {page}"
    );
    let (_, page) = p
        .app
        .get(&auditor_s, &format!("/api/v1/audit?actor={id}&limit=200"))
        .await;
    let by_token = page["entries"].as_array().unwrap();
    assert!(
        by_token.iter().any(|e| e["action"] == "platform.send"),
        "{page}"
    );
    for e in by_token {
        assert_eq!(e["detail"]["break_glass"], true, "{e}");
    }

    // The review: listed as open; the admin who released it cannot close it.
    let (_, open) = p.app.get(&bob_s, "/api/v1/break-glass?open=true").await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open[0]["checkout_id"], id.as_str());
    let code = p.app.code(&admin);
    let (st, v) = p
        .app
        .post(
            &p.admin_s,
            &format!("/api/v1/break-glass/{id}/close"),
            json!({"note": "我自己复核", "totp": code}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("not_permitted")),
        "{v}"
    );
    // Bob, an approver, reviews and closes it.
    let code = p.app.code(&p.bob);
    let (st, v) = p
        .app
        .post(
            &bob_s,
            &format!("/api/v1/break-glass/{id}/close"),
            json!({"note": "已电话核实，内容与防汛指挥部通知一致", "totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["review"], "closed");
    assert_eq!(v["closed_by"], "bob");
    let code = p.app.code(&p.bob);
    let (st, v) = p
        .app
        .post(
            &bob_s,
            &format!("/api/v1/break-glass/{id}/close"),
            json!({"note": "again", "totp": code}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("review_closed")),
        "{v}"
    );
    let (_, open) = p.app.get(&bob_s, "/api/v1/break-glass?open=true").await;
    assert_eq!(open, json!([]));
    let (_, all) = p.app.get(&p.admin_s, "/api/v1/break-glass").await;
    assert_eq!(all[0]["review"], "closed", "{all}");

    // A rotation ends the account's being due; a rollback would not have.
    let code = p.app.code(&admin);
    let (st, v) = p
        .app
        .post(
            &p.admin_s,
            "/api/v1/accounts/wx/rotate",
            json!({"credential": {"app_id": "wx11aa22bb33cc44dd", "app_secret": "NEW-SECRET-after-break-glass"}, "reason": "紧急放行后更换", "totp": code}),
        )
        .await;
    assert!(st == 200 || st == 201, "{st} {v}");
    let (_, a) = p.app.get(&p.admin_s, "/api/v1/accounts/wx").await;
    assert_eq!(a["rotation_due_since"], Value::Null, "{a}");
    let (_, a) = p.app.get(&p.admin_s, "/api/v1/accounts/wb").await;
    assert!(a["rotation_due_since"].is_string(), "{a}");
}

#[tokio::test]
async fn break_glass_is_off_unless_every_target_policy_allows_it() {
    let p = setup_with("", None).await;
    let admin = p.app.admin.clone();
    let id = pending(&p, &["wx"]).await;
    let (_, v) = p
        .app
        .get(&p.admin_s, &format!("/api/v1/checkouts/{id}"))
        .await;
    assert_eq!(v["break_glass_allowed"], false, "{v}");
    let (st, v) = release(&p, &p.admin_s, &admin, &id, REASON).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("not_permitted")),
        "{v}"
    );
    assert!(
        v["detail"].as_str().unwrap().contains("allow_break_glass"),
        "{v}"
    );
    let (_, v) = p
        .app
        .get(&p.admin_s, &format!("/api/v1/checkouts/{id}"))
        .await;
    assert_eq!(v["status"], "pending_approval", "{v}");
    let (_, open) = p.app.get(&p.admin_s, "/api/v1/break-glass?open=true").await;
    assert_eq!(open, json!([]));
    // A publisher cannot list the reviews.
    let alice_s = p.app.login(&p.alice).await;
    assert_eq!(p.app.get(&alice_s, "/api/v1/break-glass").await.0, 403);
}
