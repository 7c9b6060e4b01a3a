//! Issue 9: reviewed publishing against the shipped fakes. The approver reads the post, the
//! approved post goes out on WeChat (upload, draft, submit) and Weibo under one approval, nothing
//! else gets through, and every post keeps its evidence.

use std::time::Duration;

use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mediavault::platforms::fake::{FakeConfig, FakePlatforms};
use mediavault::platforms::payload::multipart_file;
use serde_json::{Value, json};

const APP_ID: &str = "wx11aa22bb33cc44dd";
const SECRET: &str = "SECRET-MARKER-9f1e";
const WB_KEY: &str = "3344556677";
const WB_TOKEN: &str = "2.00WEIBO-TOKEN-MARKER";
const WB_UID: u64 = 7_000_123;

const COVER: &[u8] = b"\x89PNG\r\n\x1a\ncover-image-bytes";
const FIG: &[u8] = b"\x89PNG\r\n\x1a\ninline-figure-bytes";
const BODY: &str =
    "<p>省发改委发布重大项目清单。</p><img src=\"cid:fig1.png\"><p>&lt;script&gt; stays text</p>";
const TEXT: &str = "【重大项目】省发改委发布2025年重大项目清单，详见公众号。";

fn policy(account: &str, calls: &[&str]) -> String {
    let calls: Vec<String> = calls.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        "account = \"{account}\"\nexclusive = true\nallowed_calls = [{}]\n[who]\nroles = [\"publisher\"]\nclients = [\"cms\"]\n[levels.general]\napprovals = 0\n[levels.major]\napprovals = 1\nrequire_content_binding = true\n",
        calls.join(", ")
    )
}

pub(crate) struct P {
    pub(crate) app: TestApp,
    pub(crate) fake: FakePlatforms,
    pub(crate) admin_s: String,
    pub(crate) alice: TestUser,
    pub(crate) bob: TestUser,
    pub(crate) auditor: TestUser,
    pub(crate) key: String,
}

async fn setup() -> P {
    setup_with("", None).await
}

/// A change to the test vault's configuration.
pub(crate) type Tweak = Box<dyn FnOnce(&mut mediavault::Config) + Send>;

/// The publishing world with `extra` lines in both accounts' policies and `tweak` applied to the
/// configuration.
pub(crate) async fn setup_with(extra: &str, tweak: Option<Tweak>) -> P {
    let fake = FakePlatforms::new(FakeConfig {
        classic_overlap: Duration::from_secs(0),
        ..Default::default()
    });
    fake.add_wechat_app(APP_ID, SECRET);
    fake.add_weibo_app(WB_KEY, "wb-secret", WB_TOKEN, WB_UID);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(fake.clone().serve(listener));
    let app = spawn_with(Options {
        policies: Some(vec![
            (
                "wx.toml",
                // Top-level keys go before the policy's tables.
                extra.to_owned()
                    + &policy(
                        "wx",
                        &[
                            "POST cgi-bin/media/uploadimg",
                            "POST cgi-bin/material/add_material?type",
                            "POST cgi-bin/draft/add",
                            "POST cgi-bin/freepublish/submit",
                            "POST cgi-bin/freepublish/get",
                        ],
                    ),
            ),
            (
                "wb.toml",
                extra.to_owned() + &policy("wb", &["POST 2/statuses/share.json"]),
            ),
        ]),
        tweak: Some(Box::new(move |c| {
            c.platforms.wechat_base_url = url.clone();
            c.platforms.weibo_base_url = url;
            if let Some(t) = tweak {
                t(c);
            }
        })),
        ..Default::default()
    })
    .await;
    let admin_s = app.login(&app.admin.clone()).await;
    let code = app.code(&app.admin);
    let r = app
        .post(&admin_s, "/api/v1/users", json!({"username": "alice", "display_name": "Alice", "roles": ["publisher"], "password": PASSWORD, "department": "综合处", "totp": code}))
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["department"], "综合处");
    let secret = r.1["totp_uri"]
        .as_str()
        .unwrap()
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let alice = TestUser {
        username: "alice".into(),
        password: PASSWORD.into(),
        seed: std::sync::Arc::new(mediavault::identity::totp::seed_from_base32(&secret).unwrap()),
    };
    let bob = app.create_user(&admin_s, "bob", &["approver"]).await;
    let auditor = app.create_user(&admin_s, "audrey", &["auditor"]).await;
    let r = app.post(&admin_s, "/api/v1/accounts", json!({"id": "wx", "platform": "wechat", "display_name": "公众号", "credential": {"app_id": APP_ID, "app_secret": SECRET}})).await;
    assert_eq!(r.0, 201, "{}", r.1);
    let r = app.post(&admin_s, "/api/v1/accounts", json!({"id": "wb", "platform": "weibo", "display_name": "微博", "credential": {"app_key": WB_KEY, "app_secret": "wb-secret", "access_token": WB_TOKEN}})).await;
    assert_eq!(r.0, 201, "{}", r.1);
    let r = app.create_client(&admin_s, "cms", &["wx", "wb"]).await;
    let key = r.1["client_key"].as_str().unwrap().to_owned();
    P {
        app,
        fake,
        admin_s,
        alice,
        bob,
        auditor,
        key,
    }
}

pub(crate) fn content(targets: &[&str]) -> Value {
    json!({
        "title": "2025年重大项目清单",
        "author": "综合处",
        "digest": "重大项目清单发布",
        "body": BODY,
        "text": TEXT,
        "images": [
            {"name": "cover.png", "role": "cover", "content_type": "image/png", "data_base64": STANDARD.encode(COVER)},
            {"name": "fig1.png", "role": "inline", "content_type": "image/png", "data_base64": STANDARD.encode(FIG)},
        ],
        "targets": targets,
    })
}

impl P {
    /// A major checkout with content, approved by bob and claimed by alice: (checkout id, token).
    async fn approved(&self, targets: &[&str]) -> (String, String) {
        let code = self.app.code(&self.alice);
        let (st, v) = self.app.post(&self.key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "重大信息发布", "level": "major", "content": content(targets)})).await;
        assert_eq!(st, 202, "{v}");
        let id = v["checkout_id"].as_str().unwrap().to_owned();
        let bob_s = self.app.login(&self.bob).await;
        let code = self.app.code(&self.bob);
        let (st, v) = self
            .app
            .post(
                &bob_s,
                &format!("/api/v1/checkouts/{id}/approve"),
                json!({"totp": code}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let code = self.app.code(&self.alice);
        let (st, v) = self
            .app
            .post(
                &self.key,
                &format!("/api/v1/checkouts/{id}/claim"),
                json!({"operator": "alice", "totp": code}),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        (id, v["token"].as_str().unwrap().to_owned())
    }

    async fn raw(&self, token: &str, path: &str, ct: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .app
            .client
            .post(self.app.url(path))
            .bearer_auth(token)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        into_pair(r).await
    }

    async fn upload(&self, token: &str, path: &str, name: &str, data: &[u8]) -> (u16, Value) {
        let (ct, body) = multipart_file("media", name, "image/png", data);
        self.raw(token, path, &ct, body).await
    }

    fn platform_calls(&self, path: &str) -> usize {
        self.fake.calls().iter().filter(|c| c.path == path).count()
    }
}

fn draft_body(url: &str, thumb: &str) -> Value {
    json!({"articles": [{
        "title": "2025年重大项目清单",
        "author": "综合处",
        "digest": "重大项目清单发布",
        "content": BODY.replace("cid:fig1.png", url),
        "thumb_media_id": thumb,
        "need_open_comment": 0,
        "only_fans_can_comment": 0,
    }]})
}

#[tokio::test]
async fn the_approver_reads_the_post_and_the_approved_post_goes_out_on_wechat_and_weibo() {
    let p = setup().await;
    // The approver reads the pending checkout: words and images, not only digests.
    let code = p.app.code(&p.alice);
    let (st, v) = p.app.post(&p.key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "重大信息发布", "level": "major", "content": content(&["wx", "wb"])})).await;
    assert_eq!(st, 202, "{v}");
    let id = v["checkout_id"].as_str().unwrap().to_owned();
    let bob_s = p.app.login(&p.bob).await;
    let (st, v) = p.app.get(&bob_s, &format!("/api/v1/checkouts/{id}")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "pending_approval");
    assert_eq!(v["content"]["title"], "2025年重大项目清单");
    assert_eq!(
        v["content"]["body"], BODY,
        "HTML is shown as data, byte for byte"
    );
    assert_eq!(v["content"]["text"], TEXT);
    assert_eq!(v["content"]["images"][0]["name"], "cover.png");
    assert_eq!(
        v["content"]["images"][0]["sha256"],
        mediavault::crypto::sha256_hex(COVER)
    );
    assert_eq!(v["targets"], json!(["wx", "wb"]));
    // The content is sealed at rest.
    for (path, bytes) in all_bytes_under(p.app.dir.path()) {
        assert!(
            !contains(&bytes, "重大项目清单发布".as_bytes()),
            "plaintext in {}",
            path.display()
        );
    }
    let code = p.app.code(&p.bob);
    let (st, v) = p
        .app
        .post(
            &bob_s,
            &format!("/api/v1/checkouts/{id}/approve"),
            json!({"totp": code, "comment": "同意发布"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
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

    // WeChat: inline image, cover, draft, submit, status.
    let (st, v) = p
        .upload(
            &token,
            "/api/v1/platform/wx/cgi-bin/media/uploadimg",
            "fig1.png",
            FIG,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let url = v["url"].as_str().unwrap().to_owned();
    let (st, v) = p
        .upload(
            &token,
            "/api/v1/platform/wx/cgi-bin/material/add_material?type=image",
            "cover.png",
            COVER,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let thumb = v["media_id"].as_str().unwrap().to_owned();
    let (st, v) = p
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/draft/add",
            draft_body(&url, &thumb),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let media_id = v["media_id"].as_str().unwrap().to_owned();
    let (st, v) = p
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/freepublish/submit",
            json!({"media_id": media_id}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let publish_id = v["publish_id"].as_str().unwrap().to_owned();
    let (st, v) = p
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/freepublish/get",
            json!({"publish_id": publish_id}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let article_id = v["article_id"].as_str().unwrap().to_owned();

    // The fake WeChat holds exactly the approved article.
    let live = p.fake.wechat_published(APP_ID);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].article_id, article_id);
    assert_eq!(live[0].articles, draft_body(&url, &thumb)["articles"]);

    // Weibo: the same approval, the same text.
    let form = mediavault::platforms::payload::weibo_share_form(TEXT);
    let (st, v) = p
        .raw(
            &token,
            "/api/v1/platform/wb/2/statuses/share.json",
            "application/x-www-form-urlencoded",
            form.into_bytes(),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let status_id = v["idstr"].as_str().unwrap().to_owned();
    let statuses = p.fake.weibo_statuses(WB_UID);
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].text, TEXT);

    // Evidence: one record per post.
    let audrey_s = p.app.login(&p.auditor).await;
    // The draft call recorded its intent before it left, then one entry for the request,
    // committed with the media row the platform created (one entry per answered request).
    let (_, v) = p
        .app
        .get(&audrey_s, "/api/v1/audit?action=platform.call&limit=1000")
        .await;
    let drafts: Vec<&Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["call"] == "POST cgi-bin/draft/add")
        .collect();
    assert_eq!(drafts.len(), 1, "{v}");
    assert_eq!(drafts[0]["detail"]["media_kind"], "draft");
    assert_eq!(drafts[0]["detail"]["platform_id"], media_id.as_str());
    assert_eq!(drafts[0]["outcome"], "success");
    let request = drafts[0]["request_id"].as_str().unwrap();
    let (_, v) = p
        .app
        .get(&audrey_s, "/api/v1/audit?action=platform.send&limit=1000")
        .await;
    assert!(
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["request_id"] == request),
        "{v}"
    );
    let (st, v) = p
        .app
        .get(
            &audrey_s,
            "/api/v1/posts?account=wx&since=2000-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let posts = v.as_array().unwrap();
    assert_eq!(posts.len(), 1, "{v}");
    let wx = &posts[0];
    assert_eq!(wx["checkout_id"], id.as_str());
    assert_eq!(wx["operator"], "alice");
    assert_eq!(wx["department"], "综合处");
    assert_eq!(wx["approvals"][0]["approver"], "bob");
    assert_eq!(wx["article_id"], article_id.as_str());
    assert_eq!(wx["publish_id"], publish_id.as_str());
    assert_eq!(wx["status"], "published");
    let (_, v) = p.app.get(&audrey_s, "/api/v1/posts?account=wb").await;
    assert_eq!(v[0]["status_id"], status_id.as_str());
    assert_eq!(v[0]["status"], "published");
    assert_eq!(
        v[0]["content_sha256"], wx["content_sha256"],
        "one approval, both platforms"
    );
    assert_eq!(
        v[0]["live_sha256"],
        mediavault::crypto::sha256_hex(TEXT.as_bytes())
    );
    // The checkout names its posts.
    let (_, v) = p
        .app
        .get(&audrey_s, &format!("/api/v1/checkouts/{id}"))
        .await;
    assert_eq!(v["posts"].as_array().unwrap().len(), 2);

    // Export: one packet per post, JSON plus the content.
    let r = p
        .app
        .client
        .get(p.app.url("/api/v1/posts/export"))
        .bearer_auth(&audrey_s)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let packets: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(packets.len(), 2);
    for pk in &packets {
        assert_eq!(pk["content"]["title"], "2025年重大项目清单");
        assert_eq!(
            pk["content"]["images"][0]["data_base64"],
            STANDARD.encode(COVER)
        );
        assert_eq!(pk["checkout"]["approvals"][0]["approver"], "bob");
    }
    // A publisher cannot read the evidence list.
    let alice_s = p.app.login(&p.alice).await;
    assert_eq!(p.app.get(&alice_s, "/api/v1/posts").await.0, 403);
    // The secrets never showed up in the audit log or the logs.
    let (_, audit) = p.app.get(&p.admin_s, "/api/v1/audit?limit=1000").await;
    let dump = audit.to_string();
    assert!(!dump.contains(SECRET) && !dump.contains(WB_TOKEN));
    assert!(dump.contains("post.update"));
}

#[tokio::test]
async fn anything_but_the_approved_post_is_refused_before_the_platform_sees_it() {
    let p = setup().await;
    let (_, token) = p.approved(&["wx", "wb"]).await;
    let (_, v) = p
        .upload(
            &token,
            "/api/v1/platform/wx/cgi-bin/media/uploadimg",
            "fig1.png",
            FIG,
        )
        .await;
    let url = v["url"].as_str().unwrap().to_owned();
    let (_, v) = p
        .upload(
            &token,
            "/api/v1/platform/wx/cgi-bin/material/add_material?type=image",
            "cover.png",
            COVER,
        )
        .await;
    let thumb = v["media_id"].as_str().unwrap().to_owned();
    let before = p.fake.calls().len();

    // An image nobody approved.
    let (st, v) = p
        .upload(
            &token,
            "/api/v1/platform/wx/cgi-bin/media/uploadimg",
            "x.png",
            b"other image",
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("content_not_approved")),
        "{v}"
    );
    // A different body.
    let mut other = draft_body(&url, &thumb);
    other["articles"][0]["content"] = json!("<p>未经审核的正文</p>");
    let (st, v) = p
        .app
        .post(&token, "/api/v1/platform/wx/cgi-bin/draft/add", other)
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("content_not_approved")),
        "{v}"
    );
    let mut other = draft_body(&url, &thumb);
    other["articles"][0]["title"] = json!("改过的标题");
    assert_eq!(
        p.app
            .post(&token, "/api/v1/platform/wx/cgi-bin/draft/add", other)
            .await
            .0,
        403
    );
    // A media_id this checkout did not create: a draft from another (general) checkout.
    let code = p.app.code(&p.alice);
    let (st, v) = p.app.post(&p.key, "/api/v1/checkouts", json!({"account": "wb", "operator": "alice", "totp": code, "purpose": "p", "level": "general"})).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = p
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/freepublish/submit",
            json!({"media_id": "SOME-OTHER-DRAFT"}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("content_not_approved")),
        "{v}"
    );
    // An unapproved query parameter, even on an allowed call with an approved body.
    let (st, v) = p
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/draft/add?foo=1",
            draft_body(&url, &thumb),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("not_permitted")),
        "{v}"
    );
    let form = mediavault::platforms::payload::weibo_share_form(TEXT);
    let (st, _) = p
        .raw(
            &token,
            "/api/v1/platform/wb/2/statuses/share.json?status=OTHER",
            "application/x-www-form-urlencoded",
            form.into_bytes(),
        )
        .await;
    assert_eq!(st, 403);
    // Different Weibo text.
    let form = mediavault::platforms::payload::weibo_share_form("未经审核");
    let (st, v) = p
        .raw(
            &token,
            "/api/v1/platform/wb/2/statuses/share.json",
            "application/x-www-form-urlencoded",
            form.into_bytes(),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("content_not_approved")),
        "{v}"
    );
    assert_eq!(
        p.fake.calls().len(),
        before,
        "the platform saw none of these"
    );
    assert_eq!(p.platform_calls("/cgi-bin/draft/add"), 0);

    // The refusals are audited with the query and the reason.
    let (_, audit) = p
        .app
        .get(
            &p.admin_s,
            "/api/v1/audit?action=platform.call&outcome=denied&limit=100",
        )
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["detail"]["query"] == "foo=1"),
        "{audit}"
    );
    assert!(
        entries.iter().any(|e| e["detail"]["refused"]
            .as_str()
            .is_some_and(|r| r.contains("media_id"))),
        "{audit}"
    );

    // The approved draft goes out once.
    let (st, v) = p
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/draft/add",
            draft_body(&url, &thumb),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let media_id = v["media_id"].as_str().unwrap().to_owned();
    let (st, _) = p
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/freepublish/submit",
            json!({"media_id": media_id}),
        )
        .await;
    assert_eq!(st, 200);
    let before = p.fake.calls().len();
    let (st, _) = p
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/freepublish/submit",
            json!({"media_id": media_id}),
        )
        .await;
    assert_eq!(st, 403, "a draft is submitted once");
    assert_eq!(p.fake.calls().len(), before);
    assert_eq!(p.fake.wechat_published(APP_ID).len(), 1);
}

#[tokio::test]
async fn the_vault_publishes_the_approved_post_itself_on_every_target() {
    let p = setup().await;
    let (id, token) = p.approved(&["wx", "wb"]).await;
    let (st, v) = p
        .app
        .post(
            &token,
            &format!("/api/v1/checkouts/{id}/publish"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let posts = v.as_array().unwrap();
    assert_eq!(posts.len(), 2, "{v}");
    assert!(posts.iter().all(|p| p["status"] == "published"), "{v}");
    let wx = posts.iter().find(|p| p["account"] == "wx").unwrap();
    let live = p.fake.wechat_published(APP_ID);
    assert_eq!(live.len(), 1);
    assert_eq!(wx["article_id"], live[0].article_id.as_str());
    let article = &live[0].articles[0];
    assert_eq!(article["title"], "2025年重大项目清单");
    let html = article["content"].as_str().unwrap();
    assert!(
        html.starts_with("<p>省发改委发布重大项目清单。</p><img src=\"http://mmbiz.qpic.cn/"),
        "{html}"
    );
    assert!(article["thumb_media_id"].is_string());
    assert_eq!(p.fake.weibo_statuses(WB_UID)[0].text, TEXT);
    // Again: nothing more goes out.
    let before = p.fake.calls().len();
    let (st, v) = p
        .app
        .post(
            &token,
            &format!("/api/v1/checkouts/{id}/publish"),
            json!({}),
        )
        .await;
    assert_eq!((st, v.as_array().unwrap().len()), (200, 2));
    assert_eq!(p.fake.calls().len(), before);
    // Another checkout's token cannot publish this one.
    let code = p.app.code(&p.alice);
    let (_, v) = p.app.post(&p.key, "/api/v1/checkouts", json!({"account": "wb", "operator": "alice", "totp": code, "purpose": "p", "level": "general"})).await;
    let other = v["token"].as_str().unwrap().to_owned();
    assert_eq!(
        p.app
            .post(
                &other,
                &format!("/api/v1/checkouts/{id}/publish"),
                json!({})
            )
            .await
            .0,
        403
    );
}
