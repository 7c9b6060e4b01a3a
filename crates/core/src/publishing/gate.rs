//! The content gate of the proxy: given one call, the approved post (if the checkout carries one)
//! and what the platform already created under the checkout, decide whether the call may leave,
//! and what the vault must remember from the answer. Pure: no I/O, so every rule is testable.
//!
//! With an approved post (a checkout that carries content), nothing is published that was not
//! approved:
//! - WeChat `media/uploadimg` and `material/add_material` upload only approved images;
//! - `draft/add` must be exactly the approved article (title, author, digest, HTML with the URLs
//!   this checkout uploaded, the cover this checkout uploaded);
//! - `freepublish/submit` only a draft this checkout created; `draft/get` and `freepublish/get`
//!   only this checkout's ids;
//! - Weibo `statuses/share.json` only the approved text;
//! - any other POST is refused. GETs (reads) pass.
//!
//! Without one, a checkout bound by `content_sha256` digests keeps the older rule (every POST body
//! must have an approved digest), and every checkout's drafts, publishes and statuses are still
//! observed, so each post gets its evidence record.

use crate::platforms::Method;
use serde_json::Value;

use crate::accounts::Platform;
use crate::content::Post;
use crate::platforms::payload;
use crate::store::posts::MediaRow;
use crate::store::types::MediaKind;

/// What the vault does around a call that passed the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Forward; nothing to remember.
    Plain,
    /// An approved image upload: remember the URL or media_id the platform returns.
    Upload { kind: MediaKind, sha256: String },
    /// A draft: remember its media_id with the digest of its HTML.
    Draft { live_sha256: String },
    /// A WeChat publish: evidence record first, then the publish_id.
    Submit {
        media_id: String,
        live_sha256: String,
    },
    /// A WeChat publish status: completes the record of this checkout's post `post_id`.
    PublishStatus { publish_id: String },
    /// A Weibo status: evidence record first, then the status id.
    WeiboStatus { live_sha256: String },
}

/// Why a call was refused (shown in the audit entry's detail; the client gets
/// `content_not_approved`).
pub type Refusal = String;

/// One call, as the gate needs it.
pub struct Call<'a> {
    pub method: &'a Method,
    /// Without the leading `/`.
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

fn sha(b: &[u8]) -> String {
    crate::crypto::sha256_hex(b)
}

fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err("the body is not a JSON object".into()),
    }
}

/// The one string field `key` of a body that has exactly that field.
fn only_id(body: &[u8], key: &str) -> Result<String, Refusal> {
    let m = json_object(body)?;
    match (m.len(), m.get(key).and_then(Value::as_str)) {
        (1, Some(id)) => Ok(id.to_owned()),
        _ => Err(format!("the body must be exactly {{\"{key}\": \"...\"}}")),
    }
}

fn find_media<'m>(media: &'m [MediaRow], kind: MediaKind, id: &str) -> Option<&'m MediaRow> {
    media
        .iter()
        .find(|m| m.kind == kind && crate::crypto::ct_eq(m.platform_id.as_bytes(), id.as_bytes()))
}

/// Decides on one call. `digests` are the checkout's `content_sha256` (older binding).
pub fn plan(
    platform: Platform,
    call: &Call<'_>,
    post: Option<&Post>,
    digests: Option<&[String]>,
    media: &[MediaRow],
) -> Result<Plan, Refusal> {
    if call.method != Method::POST {
        return Ok(Plan::Plain);
    }
    match post {
        Some(post) => bound(platform, call, post, media),
        None => {
            if let Some(approved) = digests {
                let d = sha(call.body);
                if !approved
                    .iter()
                    .any(|a| crate::crypto::ct_eq(a.as_bytes(), d.as_bytes()))
                {
                    return Err("this body's SHA-256 is not among the approved digests".into());
                }
            }
            Ok(observe(platform, call))
        }
    }
}

/// Calls of a checkout without an approved post: what to record, nothing to refuse.
fn observe(platform: Platform, call: &Call<'_>) -> Plan {
    match (platform, call.path) {
        (Platform::Wechat, "cgi-bin/draft/add") => {
            let live = json_object(call.body)
                .ok()
                .and_then(|m| {
                    m.get("articles")?
                        .get(0)?
                        .get("content")?
                        .as_str()
                        .map(|c| sha(c.as_bytes()))
                })
                .unwrap_or_else(|| sha(call.body));
            Plan::Draft { live_sha256: live }
        }
        (Platform::Wechat, "cgi-bin/freepublish/submit") => match only_id(call.body, "media_id") {
            Ok(media_id) => Plan::Submit {
                media_id,
                live_sha256: String::new(),
            },
            Err(_) => Plan::Plain,
        },
        (Platform::Wechat, "cgi-bin/freepublish/get") => match only_id(call.body, "publish_id") {
            Ok(publish_id) => Plan::PublishStatus { publish_id },
            Err(_) => Plan::Plain,
        },
        (Platform::Weibo, "2/statuses/share.json") => {
            let text = payload::form_pairs(call.body)
                .and_then(|p| p.into_iter().find(|(k, _)| k == "status").map(|(_, v)| v));
            Plan::WeiboStatus {
                live_sha256: sha(text.as_deref().unwrap_or("").as_bytes()),
            }
        }
        _ => Plan::Plain,
    }
}

fn bound(
    platform: Platform,
    call: &Call<'_>,
    post: &Post,
    media: &[MediaRow],
) -> Result<Plan, Refusal> {
    match (platform, call.path) {
        (Platform::Wechat, "cgi-bin/media/uploadimg") => upload(call, post, MediaKind::ImageUrl),
        (Platform::Wechat, "cgi-bin/material/add_material") => upload(call, post, MediaKind::Thumb),
        (Platform::Wechat, "cgi-bin/draft/add") => draft(call, post, media),
        (Platform::Wechat, "cgi-bin/freepublish/submit") => {
            let media_id = only_id(call.body, "media_id")?;
            let draft = find_media(media, MediaKind::Draft, &media_id)
                .ok_or("this media_id is not a draft this checkout created")?;
            if draft.used_at.is_some() {
                return Err("this draft was already submitted".into());
            }
            Ok(Plan::Submit {
                live_sha256: draft.sha256.clone(),
                media_id,
            })
        }
        (Platform::Wechat, "cgi-bin/draft/get") => {
            let media_id = only_id(call.body, "media_id")?;
            find_media(media, MediaKind::Draft, &media_id)
                .ok_or("this media_id is not a draft this checkout created")?;
            Ok(Plan::Plain)
        }
        (Platform::Wechat, "cgi-bin/freepublish/get") => Ok(Plan::PublishStatus {
            publish_id: only_id(call.body, "publish_id")?,
        }),
        (Platform::Weibo, "2/statuses/share.json") => {
            let approved = post
                .text
                .as_deref()
                .ok_or("the approved post has no Weibo text")?;
            let pairs = payload::form_pairs(call.body).ok_or("the form is not UTF-8")?;
            let is_form = call.content_type.is_some_and(|ct| {
                ct.split(';')
                    .next()
                    .is_some_and(|m| m.trim() == "application/x-www-form-urlencoded")
            });
            if !is_form {
                return Err(
                    "a status must be sent as application/x-www-form-urlencoded with the approved text"
                        .into(),
                );
            }
            match pairs.as_slice() {
                [(k, v)] if k == "status" && v == approved => Ok(Plan::WeiboStatus {
                    live_sha256: sha(v.as_bytes()),
                }),
                _ => Err("the status is not exactly the approved text".into()),
            }
        }
        _ => Err(format!(
            "{} is not a publishing call the vault can check against the approved post",
            call.path
        )),
    }
}

fn upload(call: &Call<'_>, post: &Post, kind: MediaKind) -> Result<Plan, Refusal> {
    let ct = call
        .content_type
        .ok_or("an upload must be multipart/form-data")?;
    let parts = payload::multipart_parts(ct, call.body).ok_or("the multipart body is malformed")?;
    let [part] = parts.as_slice() else {
        return Err("an upload must carry exactly one part, `media`".into());
    };
    if part.name != "media" {
        return Err("an upload must carry exactly one part, `media`".into());
    }
    let digest = sha(part.data);
    post.image_by_sha(&digest)
        .ok_or("this image is not among the approved images")?;
    Ok(Plan::Upload {
        kind,
        sha256: digest,
    })
}

/// The approved body with this checkout's uploaded URLs put back as `cid:NAME`.
fn with_cids(content: &str, post: &Post, media: &[MediaRow]) -> String {
    let mut out = content.to_owned();
    for m in media.iter().filter(|m| m.kind == MediaKind::ImageUrl) {
        if let Some(img) = post.image_by_sha(&m.sha256) {
            out = out.replace(&m.platform_id, &format!("cid:{}", img.name));
        }
    }
    out
}

/// Article fields a tool may set beyond the approved ones (they change no words).
const FREE_FIELDS: [&str; 2] = ["need_open_comment", "only_fans_can_comment"];

fn draft(call: &Call<'_>, post: &Post, media: &[MediaRow]) -> Result<Plan, Refusal> {
    let approved_body = post
        .body
        .as_deref()
        .ok_or("the approved post has no WeChat article body")?;
    let m = json_object(call.body)?;
    let articles = match (m.len(), m.get("articles")) {
        (1, Some(Value::Array(a))) if a.len() == 1 => a,
        _ => return Err("a draft must be exactly {\"articles\": [one article]}".into()),
    };
    let Some(Value::Object(a)) = articles.first() else {
        return Err("the article is not a JSON object".into());
    };
    let field = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("");
    for k in a.keys() {
        let known = matches!(
            k.as_str(),
            "title" | "author" | "digest" | "content" | "thumb_media_id"
        ) || FREE_FIELDS.contains(&k.as_str());
        if !known {
            return Err(format!("the article field `{k}` was not approved"));
        }
    }
    for k in FREE_FIELDS {
        if let Some(v) = a.get(k)
            && !matches!(v.as_u64(), Some(0 | 1))
        {
            return Err(format!("`{k}` must be 0 or 1"));
        }
    }
    if field("title") != post.title || field("author") != post.author {
        return Err("the title or author is not the approved one".into());
    }
    if field("digest") != post.digest {
        return Err("the digest (summary) is not the approved one".into());
    }
    let content = a
        .get("content")
        .and_then(Value::as_str)
        .ok_or("the article has no content")?;
    if with_cids(content, post, media) != approved_body {
        return Err("the article's content is not the approved body".into());
    }
    match (post.cover(), a.get("thumb_media_id")) {
        (None, None) => {}
        (Some(cover), Some(Value::String(id))) => {
            let thumb = find_media(media, MediaKind::Thumb, id)
                .ok_or("thumb_media_id is not cover material this checkout uploaded")?;
            if thumb.sha256 != cover.sha256 {
                return Err("thumb_media_id is not the approved cover image".into());
            }
        }
        (Some(_), _) => return Err("the article must use the approved cover image".into()),
        (None, Some(_)) => return Err("the approved post has no cover image".into()),
    }
    Ok(Plan::Draft {
        live_sha256: sha(content.as_bytes()),
    })
}

#[cfg(test)]
mod tests {
    /// The properties of the `publish_gate` fuzz target (README, "Fuzzing"), on stable.
    mod props {
        use proptest::prelude::*;

        use super::super::*;
        use crate::content::{Image, ImageRole};
        use crate::platforms::payload::{WechatArticle, wechat_draft, weibo_share_form};

        const COVER: &[u8] = b"\x89PNG cover";
        const INLINE: &[u8] = b"\x89PNG inline";
        const BODY: &str = "<p>\u{6b63}\u{6587}</p><img src=\"cid:photo\"/>";
        const URL: &str = "http://mmbiz.qpic.cn/inline1/0";
        const TEXT: &str = "\u{4eca}\u{65e5} notice & more";

        fn image(name: &str, role: ImageRole, data: &[u8]) -> Image {
            Image {
                name: name.into(),
                role,
                content_type: "image/png".into(),
                sha256: sha(data),
                data: data.to_vec(),
            }
        }

        fn post() -> Post {
            Post {
                title: "\u{901a}\u{77e5}".into(),
                author: "office".into(),
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

        fn row(kind: MediaKind, id: &str, sha256: String) -> MediaRow {
            MediaRow {
                checkout_id: "c1".into(),
                account_id: "wechat-main".into(),
                kind,
                platform_id: id.into(),
                sha256,
                created_at: 0,
                used_at: None,
            }
        }

        fn media() -> Vec<MediaRow> {
            vec![
                row(MediaKind::ImageUrl, URL, sha(INLINE)),
                row(MediaKind::Thumb, "THUMB_1", sha(COVER)),
                row(MediaKind::Draft, "DRAFT_1", "d1".into()),
            ]
        }

        fn post_call(
            platform: Platform,
            path: &str,
            ct: Option<&str>,
            body: &[u8],
        ) -> Result<Plan, Refusal> {
            let call = Call {
                method: &Method::POST,
                path,
                content_type: ct,
                body,
            };
            plan(platform, &call, Some(&post()), None, &media())
        }

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

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn only_the_approved_status_passes(text in "\\PC{0,12}|\u{4eca}\u{65e5} notice & more", extra in prop::option::of("[a-z_]{1,8}=[a-z]{0,4}")) {
                let mut form = weibo_share_form(&text);
                if let Some(e) = &extra {
                    form = format!("{form}&{e}");
                }
                let got = post_call(Platform::Weibo, "2/statuses/share.json", Some("application/x-www-form-urlencoded"), form.as_bytes());
                // A caller's `access_token` is dropped before anything is compared or sent.
                let only_status = extra.as_deref().is_none_or(|e| e.starts_with("access_token="));
                prop_assert_eq!(got.is_ok(), text == TEXT && only_status, "{:?}", got);
            }

            #[test]
            fn only_the_approved_draft_passes(
                title in "\u{901a}\u{77e5}|[a-z]{0,4}",
                digest in "summary|[a-z]{0,4}",
                content in prop_oneof![Just(BODY.to_owned()), Just(BODY.replace("cid:photo", URL)), "\\PC{0,30}", Just(BODY.replace("cid:photo", "http://evil.example/x"))],
                thumb in prop::option::of("THUMB_1|DRAFT_1|[A-Z]{0,4}"),
                comment in 0u8..3,
            ) {
                let body = wechat_draft(&WechatArticle {
                    title: &title,
                    author: "office",
                    digest: &digest,
                    content: &content,
                    thumb_media_id: thumb.as_deref(),
                    need_open_comment: comment,
                    only_fans_can_comment: 0,
                });
                let got = post_call(Platform::Wechat, "cgi-bin/draft/add", Some("application/json"), &body);
                let approved = title == "\u{901a}\u{77e5}"
                    && digest == "summary"
                    && (content == BODY || content == BODY.replace("cid:photo", URL))
                    && thumb.as_deref() == Some("THUMB_1")
                    && comment < 2;
                prop_assert_eq!(got.is_ok(), approved, "{:?}", got);
            }

            #[test]
            fn any_body_is_decided_without_panic(
                pick in 0usize..8,
                weibo in any::<bool>(),
                ct in prop::option::of("application/json|application/x-www-form-urlencoded|multipart/form-data; boundary=[a-z]{1,4}|\\PC{0,10}"),
                body in prop::collection::vec(any::<u8>(), 0..200),
            ) {
                let platform = if weibo { Platform::Weibo } else { Platform::Wechat };
                let path = PATHS[pick];
                match post_call(platform, path, ct.as_deref(), &body) {
                    Err(why) => prop_assert!(!why.trim().is_empty()),
                    // Random bytes cannot be an approved upload, draft or status.
                    Ok(plan) => prop_assert!(
                        matches!(plan, Plan::PublishStatus { .. } | Plan::Plain | Plan::Submit { .. }),
                        "{:?} passed for {}", plan, path
                    ),
                }
                let digests = vec![sha(b"{}")];
                let call = Call { method: &Method::POST, path, content_type: ct.as_deref(), body: &body };
                let bound = plan(platform, &call, None, Some(&digests), &[]);
                prop_assert_eq!(bound.is_ok(), body == b"{}");
                prop_assert!(plan(platform, &call, None, None, &[]).is_ok());
                let read = Call { method: &Method::GET, ..call };
                prop_assert_eq!(plan(platform, &read, Some(&post()), None, &media()), Ok(Plan::Plain));
            }

            #[test]
            fn only_approved_images_upload(data in prop::collection::vec(any::<u8>(), 0..40), approved in 0u8..3) {
                let bytes = match approved { 0 => COVER.to_vec(), 1 => INLINE.to_vec(), _ => data };
                let (ct, body) = crate::platforms::payload::multipart_file("media", "a.png", "image/png", &bytes);
                let got = post_call(Platform::Wechat, "cgi-bin/media/uploadimg", Some(&ct), &body);
                prop_assert_eq!(got.is_ok(), bytes == COVER || bytes == INLINE, "{:?}", got);
            }
        }
    }
}
