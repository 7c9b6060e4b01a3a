//! Published posts on the fakes (issue 10): WeChat `freepublish` articles and Weibo statuses,
//! listed, fetched and deleted through the platforms' own endpoints, plus a way for a test to
//! publish as an outsider who holds the AppSecret (or the Weibo access token) and never went
//! through the vault. Kept apart from `wechat.rs` and `weibo.rs`, which only call the three
//! `remember_*`/`*_published` hooks, so that other work on those files merges cleanly.
//!
//! WeChat: `freepublish/submit` answers a `publish_id`; the article it creates gets an
//! `article_id`, which `freepublish/get` reports for the `publish_id` and which `batchget`,
//! `getarticle` and `delete` use. The fake publishes at once (`publish_status` 0).

use std::collections::HashMap;

use axum::http::Method;
use serde_json::{Value, json};

use super::{Reply, Req, State, lookup, parse_urlencoded, wechat, weibo};

#[derive(Default)]
pub(crate) struct PostsState {
    /// media_id -> the draft's `articles`.
    drafts: HashMap<String, Value>,
    articles: Vec<Article>,
    statuses: Vec<Status>,
    next_article: u64,
}

struct Article {
    app_id: String,
    article_id: String,
    publish_id: Option<String>,
    news_item: Value,
    create_time: i64,
    deleted: bool,
}

struct Status {
    uid: u64,
    id: u64,
    json: Value,
    deleted: bool,
}

/// `draft/add` keeps the draft's articles so a later submit publishes them.
pub(crate) fn remember_draft(st: &mut State, media_id: &str, articles: Option<&Value>) {
    if let Some(a) = articles {
        st.posts.drafts.insert(media_id.to_owned(), a.clone());
    }
}

fn new_article(
    st: &mut State,
    app_id: &str,
    publish_id: Option<String>,
    news_item: Value,
) -> String {
    st.posts.next_article += 1;
    let article_id = format!(
        "Xy{}_{:06}",
        st.random_hex(8).unwrap_or_default(),
        st.posts.next_article
    );
    let create_time = st.now().unix_timestamp();
    st.posts.articles.push(Article {
        app_id: app_id.to_owned(),
        article_id: article_id.clone(),
        publish_id,
        news_item,
        create_time,
        deleted: false,
    });
    article_id
}

/// `freepublish/submit` succeeded: the draft becomes a published article.
pub(crate) fn wechat_published(st: &mut State, app_id: &str, media_id: &str, publish_id: &str) {
    let news = st
        .posts
        .drafts
        .get(media_id)
        .cloned()
        .unwrap_or_else(|| json!([]));
    new_article(st, app_id, Some(publish_id.to_owned()), news);
}

/// `statuses/share` succeeded.
pub(crate) fn weibo_posted(st: &mut State, uid: u64, status: &Value) {
    if let Some(id) = status.get("id").and_then(Value::as_u64) {
        st.posts.statuses.push(Status {
            uid,
            id,
            json: status.clone(),
            deleted: false,
        });
    }
}

fn live_articles<'a>(st: &'a State, app_id: &'a str) -> impl Iterator<Item = &'a Article> + 'a {
    st.posts
        .articles
        .iter()
        .rev()
        .filter(move |a| a.app_id == app_id && !a.deleted)
}

fn article_json(a: &Article, with_content: bool) -> Value {
    let mut news = a.news_item.clone();
    if !with_content && let Value::Array(items) = &mut news {
        for i in items {
            if let Value::Object(m) = i {
                m.insert("content".into(), Value::String(String::new()));
            }
        }
    }
    json!({
        "article_id": a.article_id,
        "content": { "news_item": news, "create_time": a.create_time, "update_time": a.create_time },
        "update_time": a.create_time,
    })
}

/// `POST /cgi-bin/freepublish/batchget` `{offset, count, no_content}`
pub(crate) fn wechat_batchget(st: &mut State, req: &Req) -> Reply {
    let run = |st: &mut State| -> Result<Reply, Reply> {
        wechat::require_post(st, req)?;
        let app_id = wechat::authorize(st, req)?;
        wechat::injected(st, req)?;
        let body = wechat::json_body(st, req)?;
        let offset = body.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
        let count = body.get("count").and_then(Value::as_u64).unwrap_or(0) as usize;
        if !(1..=20).contains(&count) {
            return Err(wechat::error(st, 40097));
        }
        let no_content = body.get("no_content").and_then(Value::as_u64) == Some(1);
        let all: Vec<&Article> = live_articles(st, &app_id).collect();
        let items: Vec<Value> = all
            .iter()
            .skip(offset)
            .take(count)
            .map(|a| article_json(a, !no_content))
            .collect();
        Ok(Reply::ok(json!({
            "total_count": all.len(),
            "item_count": items.len(),
            "item": items,
        })))
    };
    run(st).unwrap_or_else(|e| e)
}

fn article_id_of(st: &State, req: &Req) -> Result<(String, serde_json::Map<String, Value>), Reply> {
    let body = wechat::json_body(st, req)?;
    match body.get("article_id").and_then(Value::as_str) {
        Some(id) => Ok((id.to_owned(), body)),
        None => Err(wechat::error(st, 47001)),
    }
}

/// `POST /cgi-bin/freepublish/getarticle` `{article_id}`
pub(crate) fn wechat_getarticle(st: &mut State, req: &Req) -> Reply {
    let run = |st: &mut State| -> Result<Reply, Reply> {
        wechat::require_post(st, req)?;
        let app_id = wechat::authorize(st, req)?;
        wechat::injected(st, req)?;
        let (id, _) = article_id_of(st, req)?;
        match live_articles(st, &app_id).find(|a| a.article_id == id) {
            Some(a) => Ok(Reply::ok(json!({ "news_item": a.news_item }))),
            None => Err(wechat::error(st, 53600)),
        }
    };
    run(st).unwrap_or_else(|e| e)
}

/// `POST /cgi-bin/freepublish/get` `{publish_id}`: the publish job's status and article.
pub(crate) fn wechat_publish_status(st: &mut State, req: &Req) -> Reply {
    let run = |st: &mut State| -> Result<Reply, Reply> {
        wechat::require_post(st, req)?;
        let app_id = wechat::authorize(st, req)?;
        wechat::injected(st, req)?;
        let body = wechat::json_body(st, req)?;
        let Some(pid) = body.get("publish_id").and_then(Value::as_str) else {
            return Err(wechat::error(st, 47001));
        };
        let found = st
            .posts
            .articles
            .iter()
            .find(|a| a.app_id == app_id && a.publish_id.as_deref() == Some(pid));
        match found {
            Some(a) => Ok(Reply::ok(json!({
                "publish_id": pid,
                "publish_status": 0,
                "article_id": a.article_id,
                "article_detail": { "count": 1, "item": [{ "idx": 1, "article_url": format!("https://mp.weixin.qq.com/s/{}", a.article_id) }] },
                "fail_idx": [],
            }))),
            None => Err(wechat::error(st, 47001)),
        }
    };
    run(st).unwrap_or_else(|e| e)
}

/// `POST /cgi-bin/freepublish/delete` `{article_id, index}`
pub(crate) fn wechat_delete(st: &mut State, req: &Req) -> Reply {
    let run = |st: &mut State| -> Result<Reply, Reply> {
        wechat::require_post(st, req)?;
        let app_id = wechat::authorize(st, req)?;
        wechat::injected(st, req)?;
        let (id, _) = article_id_of(st, req)?;
        let found = st
            .posts
            .articles
            .iter_mut()
            .find(|a| a.app_id == app_id && a.article_id == id && !a.deleted);
        match found {
            Some(a) => {
                a.deleted = true;
                Ok(Reply::ok(json!({ "errcode": 0, "errmsg": "ok" })))
            }
            None => Err(wechat::error(st, 53600)),
        }
    };
    run(st).unwrap_or_else(|e| e)
}

/// Weibo GET endpoints: access token in the query (or header), no body.
fn weibo_get(st: &mut State, req: &Req) -> Result<u64, Reply> {
    if req.method != Method::GET {
        return Err(weibo::error(req, 10021));
    }
    let caller = weibo::authorize(st, req, &[])?;
    if let Some(code) = st.take_injection(&req.path) {
        return Err(weibo::error(req, code));
    }
    Ok(caller.uid)
}

/// `GET /2/statuses/user_timeline.json?count=`
pub(crate) fn weibo_timeline(st: &mut State, req: &Req) -> Reply {
    let uid = match weibo_get(st, req) {
        Ok(u) => u,
        Err(e) => return e,
    };
    let count = req
        .query_param("count")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let live: Vec<&Status> = st
        .posts
        .statuses
        .iter()
        .rev()
        .filter(|s| s.uid == uid && !s.deleted)
        .collect();
    let statuses: Vec<Value> = live.iter().take(count).map(|s| s.json.clone()).collect();
    Reply::ok(json!({ "statuses": statuses, "total_number": live.len() }))
}

/// `GET /2/statuses/show.json?id=`
pub(crate) fn weibo_show(st: &mut State, req: &Req) -> Reply {
    let uid = match weibo_get(st, req) {
        Ok(u) => u,
        Err(e) => return e,
    };
    let id = req.query_param("id").and_then(|i| i.parse::<u64>().ok());
    match st
        .posts
        .statuses
        .iter()
        .find(|s| Some(s.id) == id && s.uid == uid && !s.deleted)
    {
        Some(s) => Reply::ok(s.json.clone()),
        None => weibo::error(req, 20101),
    }
}

/// `POST /2/statuses/destroy.json` `id=`
pub(crate) fn weibo_destroy(st: &mut State, req: &Req) -> Reply {
    if req.method != Method::POST {
        return weibo::error(req, 10021);
    }
    let form = parse_urlencoded(&String::from_utf8_lossy(&req.body));
    let caller = match weibo::authorize(st, req, &form) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if let Some(code) = st.take_injection(&req.path) {
        return weibo::error(req, code);
    }
    let id = lookup(&form, "id").and_then(|i| i.parse::<u64>().ok());
    match st
        .posts
        .statuses
        .iter_mut()
        .find(|s| Some(s.id) == id && s.uid == caller.uid && !s.deleted)
    {
        Some(s) => {
            s.deleted = true;
            Reply::ok(s.json.clone())
        }
        None => weibo::error(req, 20101),
    }
}

/// An outsider who holds the AppSecret publishes an article straight on WeChat (normal-mode
/// `stable_token`, which cancels nothing, then draft and submit). Returns the article id, or
/// `None` if the app or secret is wrong.
pub(crate) fn outsider_wechat(
    st: &mut State,
    app_id: &str,
    secret: &str,
    title: &str,
    content: &str,
) -> Option<String> {
    if !wechat::secret_matches(st, app_id, secret) {
        return None;
    }
    let news =
        json!([{ "title": title, "author": "", "digest": "", "content": content, "url": "" }]);
    Some(new_article(st, app_id, None, news))
}

/// An outsider who holds the account's Weibo access token posts a status. Returns its id.
pub(crate) fn outsider_weibo(st: &mut State, access_token: &str, text: &str) -> Option<u64> {
    let uid = weibo::uid_of(st, access_token)?;
    st.posts.next_article += 1;
    let id = 4_980_000_000_000_000_u64 + st.posts.next_article;
    let status = json!({
        "id": id,
        "idstr": id.to_string(),
        "mid": id.to_string(),
        "text": text,
        "source": "<a href=\"http://weibo.com\" rel=\"nofollow\">unknown</a>",
        "user": { "id": uid, "idstr": uid.to_string() },
    });
    weibo_posted(st, uid, &status);
    Some(id)
}
