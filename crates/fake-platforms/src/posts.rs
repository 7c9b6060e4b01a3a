//! Published posts on the fakes (issue 10): WeChat `freepublish` articles and Weibo statuses,
//! listed, fetched and deleted through the platforms' own endpoints, plus a way for a test to
//! publish as an outsider who holds the AppSecret (or the Weibo access token) and never went
//! through the vault. The posts themselves are what `wechat.rs` (`published`) and `weibo.rs`
//! (`posted`) keep; a deleted post leaves those lists, as it leaves the account.

use axum::http::Method;
use serde_json::{Value, json};

use super::wechat::{self, PublishedArticle};
use super::weibo::{self, PostedStatus};
use super::{Reply, Req, State, lookup, parse_urlencoded};

fn article_json(a: &PublishedArticle, with_content: bool) -> Value {
    let mut news = a.articles.clone();
    if !with_content && let Value::Array(items) = &mut news {
        for i in items {
            if let Value::Object(m) = i {
                m.insert("content".into(), Value::String(String::new()));
            }
        }
    }
    json!({
        "article_id": a.article_id,
        "content": { "news_item": news, "create_time": a.published_at, "update_time": a.published_at },
        "update_time": a.published_at,
    })
}

/// `POST /cgi-bin/freepublish/batchget` `{offset, count, no_content}`, newest first.
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
        let all: Vec<&PublishedArticle> = st
            .wechat
            .published
            .iter()
            .rev()
            .filter(|a| a.app_id == app_id)
            .collect();
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

fn article_id_of(st: &State, req: &Req) -> Result<String, Reply> {
    let body = wechat::json_body(st, req)?;
    match body.get("article_id").and_then(Value::as_str) {
        Some(id) => Ok(id.to_owned()),
        None => Err(wechat::error(st, 47001)),
    }
}

/// `POST /cgi-bin/freepublish/getarticle` `{article_id}`
pub(crate) fn wechat_getarticle(st: &mut State, req: &Req) -> Reply {
    let run = |st: &mut State| -> Result<Reply, Reply> {
        wechat::require_post(st, req)?;
        let app_id = wechat::authorize(st, req)?;
        wechat::injected(st, req)?;
        let id = article_id_of(st, req)?;
        match st
            .wechat
            .published
            .iter()
            .find(|a| a.app_id == app_id && a.article_id == id)
        {
            Some(a) => Ok(Reply::ok(json!({ "news_item": a.articles }))),
            None => Err(wechat::error(st, 53600)),
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
        let id = article_id_of(st, req)?;
        if !gone_wechat(st, &app_id, &id, 5) {
            return Err(wechat::error(st, 53600));
        }
        Ok(Reply::ok(json!({ "errcode": 0, "errmsg": "ok" })))
    };
    run(st).unwrap_or_else(|e| e)
}

/// Takes a live article off the account; WeChat then reports `status` for its publish_id.
pub(crate) fn gone_wechat(st: &mut State, app_id: &str, article_id: &str, status: i64) -> bool {
    let Some(pos) = st
        .wechat
        .published
        .iter()
        .position(|a| a.app_id == app_id && a.article_id == article_id)
    else {
        return false;
    };
    let a = st.wechat.published.remove(pos);
    st.wechat.gone.push((a, status));
    true
}

fn status_json(s: &PostedStatus) -> Value {
    json!({
        "visible": { "type": s.visible, "list_id": 0 },
        "id": s.id,
        "idstr": s.idstr,
        "mid": s.idstr,
        "text": s.text,
        "created_at_unix": s.created_at,
        "source": format!("<a href=\"http://app.weibo.com/t/feed/{}\" rel=\"nofollow\">app</a>", s.app_key),
        "user": { "id": s.uid, "idstr": s.uid.to_string() },
    })
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

/// `GET /2/statuses/user_timeline.json?count=`, newest first.
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
    let live: Vec<&PostedStatus> = st
        .weibo
        .posted
        .iter()
        .rev()
        .filter(|s| s.uid == uid)
        .collect();
    let statuses: Vec<Value> = live.iter().take(count).map(|s| status_json(s)).collect();
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
        .weibo
        .posted
        .iter()
        .find(|s| Some(s.id) == id && s.uid == uid)
    {
        Some(s) => Reply::ok(status_json(s)),
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
    let Some(pos) = st
        .weibo
        .posted
        .iter()
        .position(|s| Some(s.id) == id && s.uid == caller.uid)
    else {
        return weibo::error(req, 20101);
    };
    let gone = st.weibo.posted.remove(pos);
    Reply::ok(status_json(&gone))
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
    let article_id = st.random_b64(48)?;
    let publish_id = format!("9{}", u64::from_str_radix(&st.random_hex(4)?, 16).ok()?);
    let published_at = st.now().unix_timestamp();
    st.wechat.published.push(PublishedArticle {
        app_id: app_id.to_owned(),
        publish_id,
        article_id: article_id.clone(),
        msg_data_id: 0,
        articles: json!([{ "title": title, "author": "", "digest": "", "content": content, "content_source_url": "" }]),
        published_at,
    });
    Some(article_id)
}

/// An outsider who holds the account's Weibo access token posts a status. Returns its id.
pub(crate) fn outsider_weibo(st: &mut State, access_token: &str, text: &str) -> Option<u64> {
    let (uid, app_key) = weibo::owner_of(st, access_token)?;
    let id = 4_980_000_000_000_000_u64 + st.weibo.posted.len() as u64 + 1;
    let created_at = st.now().unix_timestamp();
    st.weibo.posted.push(PostedStatus {
        visible: 0,
        uid,
        id,
        idstr: id.to_string(),
        text: text.to_owned(),
        app_key,
        created_at,
    });
    Some(id)
}
