//! The proxy's path and query handling (`/api/v1/platform/{account}/{path}?{query}` forwarded to
//! WeChat or Weibo): checking never panics; a path the clients accept stays under the configured
//! base (same scheme, host and port, the base's path as its prefix, the caller's path appended
//! unchanged), adds no second query and no fragment; the vault's token is in the query (or, for a
//! Weibo form, the body) exactly once and the caller's own `access_token` never is; the caller's
//! other parameters pass unchanged; and token and OAuth2 endpoints are refused.
//!
//! Input: first byte picks the base, the method and the content type; then `path`, a newline,
//! `query`, a newline, and the body.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mediavault_core::crypto::SecretString;
use mediavault_core::platforms::{
    Method, PlatformsConfig, WechatClient, WeiboClient, http_client, pairs_without_token, wechat,
    weibo,
};

const BASES: [&str; 4] = [
    "https://api.weixin.qq.com",
    "https://api.weibo.com/",
    "http://127.0.0.1:8081/fake/wechat",
    "http://[::1]:9000/prefix/",
];
const TOKEN: &str = "VAULT-TOKEN-0123456789";

fn http() -> &'static Option<reqwest::Client> {
    static HTTP: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    HTTP.get_or_init(|| http_client(&PlatformsConfig::default()).ok())
}

/// The properties every forwarded URL has, whichever platform built it.
fn check_url(base: &str, path: &str, url: &reqwest::Url, token_in_query: bool) {
    let Ok(b) = reqwest::Url::parse(base) else {
        panic!("a base that does not parse produced a URL");
    };
    assert_eq!(url.scheme(), b.scheme(), "{url}");
    assert_eq!(url.host_str(), b.host_str(), "escaped the host: {url}");
    assert_eq!(
        url.port_or_known_default(),
        b.port_or_known_default(),
        "{url}"
    );
    assert_eq!(url.username(), "", "{url}");
    assert!(url.password().is_none(), "{url}");
    assert!(url.fragment().is_none(), "a fragment: {url}");
    assert_eq!(
        url.path(),
        format!("{}{}", b.path().trim_end_matches('/'), path),
        "the path changed or climbed out of the base"
    );
    let s = url.as_str();
    assert!(s.matches('?').count() <= 1, "a second query: {url}");
    assert!(!s.contains('#'), "a fragment: {url}");
    let tokens: Vec<_> = url
        .query_pairs()
        .filter(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
        .collect();
    if token_in_query {
        assert_eq!(tokens, vec![TOKEN.to_owned()], "{url}");
    } else {
        assert!(tokens.is_empty(), "{url}");
    }
}

fn query_without_token(url: &reqwest::Url) -> Vec<(String, String)> {
    url.query_pairs()
        .filter(|(k, _)| k != "access_token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = Bytes::copy_from_slice(parts.next().unwrap_or_default());
    let base = BASES[usize::from(pick) % BASES.len()];
    let method = if pick & 0x10 == 0 {
        Method::POST
    } else {
        Method::GET
    };
    let content_type = match (pick >> 5) & 3 {
        0 => None,
        1 => Some("application/x-www-form-urlencoded; charset=UTF-8"),
        2 => Some("multipart/form-data; boundary=x"),
        _ => Some("application/json"),
    };
    let token = SecretString::from(TOKEN);
    let caller_pairs = pairs_without_token(&query);

    // WeChat: the token always goes in the query.
    if let Ok(url) = wechat::outgoing(base, &path, &query, &token) {
        check_url(base, &path, &url, true);
        assert_eq!(query_without_token(&url), caller_pairs);
    }
    // Weibo: in the body for a form POST, else in the query.
    if let Ok((url, sent)) =
        weibo::outgoing(base, &method, &path, &query, content_type, body, &token)
    {
        let form = method == Method::POST && content_type.is_some_and(|c| c.contains("urlencoded"));
        check_url(base, &path, &url, !form);
        assert_eq!(query_without_token(&url), caller_pairs);
        if form {
            let Ok(text) = std::str::from_utf8(&sent) else {
                panic!("a form body that is not UTF-8 was sent");
            };
            let all = reqwest::Url::parse("http://f.invalid/").map(|mut u| {
                u.set_query(Some(text));
                u
            });
            let tokens = all.map(|u| {
                u.query_pairs()
                    .filter(|(k, _)| k == "access_token")
                    .map(|(_, v)| v.into_owned())
                    .collect::<Vec<_>>()
            });
            assert!(tokens.is_ok_and(|t| t == vec![TOKEN.to_owned()]), "{text}");
        }
    }

    // The clients' own checks (what the broker asks before it fetches a token).
    let Some(http) = http() else {
        return;
    };
    let wc = WechatClient::new(http.clone(), base);
    if wc.check_path(&path).is_ok() {
        assert!(wechat::outgoing(base, &path, &query, &token).is_ok());
        let p = path.trim_end_matches('/');
        assert!(
            p != "/cgi-bin/token" && p != "/cgi-bin/stable_token",
            "{path}"
        );
    }
    let wb = WeiboClient::new(http.clone(), base);
    if wb.check_path(&path).is_ok() {
        assert!(!path.starts_with("/oauth2/") && path != "/oauth2", "{path}");
        assert!(
            weibo::outgoing(
                base,
                &Method::GET,
                &path,
                &query,
                None,
                Bytes::new(),
                &token
            )
            .is_ok()
        );
    }
});
