//! The publishing gate's body checks (`publishing::gate::plan`): deciding never panics, a refusal
//! says why, and with an approved post only the approved content passes: an upload only carries an
//! approved image, a draft only the approved article (its inline image's URL as this checkout
//! uploaded it), a publish only this checkout's unused draft, a Weibo status only the approved
//! text; any other POST is refused. With digests only, only a body with an approved digest passes.
//!
//! Input: first byte picks the platform, the path, the method and the checkout's binding; then the
//! Content-Type line (empty for none), a newline, and the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediavault_core::accounts::Platform;
use mediavault_core::content::{Image, ImageRole, Post};
use mediavault_core::crypto::sha256_hex;
use mediavault_core::platforms::Method;
use mediavault_core::publishing::gate::{Call, Plan, plan};
use mediavault_core::store::posts::MediaRow;
use mediavault_core::store::types::MediaKind;
use serde_json::Value;

const PATHS: [&str; 8] = [
    "cgi-bin/media/uploadimg",
    "cgi-bin/material/add_material",
    "cgi-bin/draft/add",
    "cgi-bin/freepublish/submit",
    "cgi-bin/draft/get",
    "cgi-bin/freepublish/get",
    "2/statuses/share.json",
    "cgi-bin/message/mass/sendall",
];
const COVER: &[u8] = b"\x89PNG cover image bytes";
const INLINE: &[u8] = b"\x89PNG inline image bytes";
const BODY: &str = "<p>\u{6b63}\u{6587}</p><img src=\"cid:photo\"/>";
const URL: &str = "http://mmbiz.qpic.cn/mmbiz_png/inline1/0";
const TEXT: &str = "\u{4eca}\u{65e5}\u{53d1}\u{5e03} notice & more";

fn image(name: &str, role: ImageRole, data: &[u8]) -> Image {
    Image {
        name: name.into(),
        role,
        content_type: "image/png".into(),
        sha256: sha256_hex(data),
        data: data.to_vec(),
    }
}

fn post() -> Post {
    Post {
        title: "\u{901a}\u{77e5}".into(),
        author: "\u{529e}\u{516c}\u{5ba4}".into(),
        digest: "summary".into(),
        body: Some(BODY.into()),
        text: Some(TEXT.into()),
        images: vec![
            image("cover", ImageRole::Cover, COVER),
            image("photo", ImageRole::Inline, INLINE),
        ],
        targets: vec!["wechat-main".into()],
    }
}

fn row(kind: MediaKind, id: &str, sha256: String, used_at: Option<i64>) -> MediaRow {
    MediaRow {
        checkout_id: "c1".into(),
        account_id: "wechat-main".into(),
        kind,
        platform_id: id.into(),
        sha256,
        created_at: 0,
        used_at,
    }
}

fn media() -> Vec<MediaRow> {
    vec![
        row(MediaKind::ImageUrl, URL, sha256_hex(INLINE), None),
        row(MediaKind::Thumb, "THUMB_1", sha256_hex(COVER), None),
        row(MediaKind::Draft, "DRAFT_1", "d1".into(), None),
        row(MediaKind::Draft, "DRAFT_USED", "d2".into(), Some(1)),
    ]
}

/// Form pairs as an independent decoder reads them, less any `access_token` (the Weibo client
/// drops a caller's token and injects the vault's, so it never reaches the platform).
fn form(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut url = reqwest::Url::parse("http://f.invalid/").ok()?;
    url.set_query(Some(text));
    Some(
        url.query_pairs()
            .filter(|(k, _)| k != "access_token")
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
    )
}

fn object(body: &[u8]) -> serde_json::Map<String, Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        _ => panic!("a passing body is not a JSON object"),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (ct_line, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&rest[..0], rest),
    };
    let Ok(ct) = std::str::from_utf8(ct_line) else {
        return;
    };
    let content_type = (!ct.is_empty()).then_some(ct);
    let path = PATHS[usize::from(pick & 7)];
    let platform = if pick & 8 == 0 {
        Platform::Wechat
    } else {
        Platform::Weibo
    };
    let method = if pick & 0x10 == 0 {
        Method::POST
    } else {
        Method::GET
    };
    let post = post();
    let media = media();
    let approved_form = format!("status={}", TEXT.replace(' ', "+").replace('&', "%26"));
    let digests = vec![sha256_hex(approved_form.as_bytes()), sha256_hex(b"{}")];
    let binding = (pick >> 5) & 3;
    let call = Call {
        method: &method,
        path,
        content_type,
        body,
    };
    let decided = match binding {
        0 | 1 => plan(platform, &call, Some(&post), None, &media),
        2 => plan(platform, &call, None, Some(&digests), &media),
        _ => plan(platform, &call, None, None, &media),
    };
    if method != Method::POST {
        assert_eq!(decided, Ok(Plan::Plain), "a read was refused or planned");
        return;
    }
    let plan = match decided {
        Ok(p) => p,
        Err(why) => {
            assert!(!why.trim().is_empty(), "a refusal without a reason");
            assert!(
                binding < 3,
                "a checkout without a binding refused a call: {why}"
            );
            return;
        }
    };
    if binding == 2 {
        assert!(
            digests.contains(&sha256_hex(body)),
            "an unapproved digest passed"
        );
        return;
    }
    if binding == 3 {
        return;
    }
    // An approved post: only its content passes.
    let wechat = platform == Platform::Wechat;
    match plan {
        Plan::Upload { kind, sha256 } => {
            let (want, bytes) = match path {
                "cgi-bin/media/uploadimg" => (MediaKind::ImageUrl, [COVER, INLINE]),
                "cgi-bin/material/add_material" => (MediaKind::Thumb, [COVER, INLINE]),
                _ => panic!("an upload planned on {path}"),
            };
            assert!(wechat && kind == want);
            let image = bytes.iter().find(|b| sha256_hex(b) == sha256);
            assert!(
                image.is_some_and(|b| contains(body, b)),
                "an upload passed without an approved image in it"
            );
        }
        Plan::Draft { live_sha256 } => {
            assert!(wechat && path == "cgi-bin/draft/add");
            let m = object(body);
            assert_eq!(m.len(), 1);
            let Some(Value::Array(articles)) = m.get("articles") else {
                panic!("a draft without articles passed");
            };
            let [Value::Object(a)] = articles.as_slice() else {
                panic!("a draft of other than one article passed");
            };
            let text = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("");
            assert_eq!(text("title"), post.title);
            assert_eq!(text("author"), post.author);
            assert_eq!(text("digest"), post.digest);
            let content = text("content");
            let with_url = BODY.replace("cid:photo", URL);
            assert!(
                content == BODY || content == with_url,
                "an unapproved body passed: {content}"
            );
            assert_eq!(live_sha256, sha256_hex(content.as_bytes()));
            assert_eq!(text("thumb_media_id"), "THUMB_1", "not the approved cover");
            for (k, v) in a {
                match k.as_str() {
                    "title" | "author" | "digest" | "content" | "thumb_media_id" => {}
                    "need_open_comment" | "only_fans_can_comment" => {
                        assert!(matches!(v.as_u64(), Some(0 | 1)));
                    }
                    other => panic!("an unapproved field passed: {other}"),
                }
            }
        }
        Plan::Submit {
            media_id,
            live_sha256,
        } => {
            assert!(wechat && path == "cgi-bin/freepublish/submit");
            assert_eq!((media_id.as_str(), live_sha256.as_str()), ("DRAFT_1", "d1"));
            let m = object(body);
            assert!(m.len() == 1 && m.get("media_id").and_then(Value::as_str) == Some("DRAFT_1"));
        }
        Plan::PublishStatus { publish_id } => {
            assert!(wechat && path == "cgi-bin/freepublish/get");
            let m = object(body);
            assert!(
                m.len() == 1 && m.get("publish_id").and_then(Value::as_str) == Some(&publish_id)
            );
        }
        Plan::Plain => {
            assert!(wechat && path == "cgi-bin/draft/get");
            let m = object(body);
            assert!(
                m.len() == 1
                    && m.get("media_id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| id.starts_with("DRAFT_"))
            );
        }
        Plan::WeiboStatus { live_sha256 } => {
            assert!(!wechat && path == "2/statuses/share.json");
            assert!(content_type.is_some_and(|c| {
                c.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            }));
            assert_eq!(
                form(body),
                Some(vec![("status".to_owned(), TEXT.to_owned())]),
                "an unapproved status passed"
            );
            assert_eq!(live_sha256, sha256_hex(TEXT.as_bytes()));
        }
    }
});
