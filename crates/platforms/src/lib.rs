//! mediavault-platforms: the platform adapters and the token broker. Knows nothing of checkouts,
//! people or the store's transactions; the services above hand it a credential and a request.
//!
//! - [`wechat::WechatClient`] and [`weibo::WeiboClient`] are thin HTTP clients with configurable
//!   base URLs. They inject the credential and turn platform answers into [`PlatformResponse`] or
//!   [`PlatformError`]; they keep no state.
//! - [`broker::Broker`] owns the only WeChat token fetches of the whole vault (each new token can
//!   cancel the previous one, so there must be one fetcher), caches them with single-flight, retries
//!   once on a rejected token, runs the leak canary, and reports [`SecurityEvent`]s.
//! - [`credential::Credential`] is what an account's sealed secret holds, per platform.
//!
//! The fakes of both platforms are a crate of their own (mediavault-fake-platforms), so a
//! production build carries no fake platform.
//!
//! Both clients share one `reqwest::Client` (keep-alive pool, timeout from config, no redirects: a
//! redirect would carry the access token in its query to wherever the platform points).

pub mod broker;
pub mod config;
pub mod credential;
pub mod error;
pub mod payload;
pub mod wechat;
pub mod weibo;

use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use serde::Deserialize;

pub use config::PlatformsConfig;
use mediavault_base::crypto::SecretString;
/// The request method of a platform call, as the services above name it.
pub use reqwest::Method;

pub use broker::{
    ApiRequest, Broker, CanaryOutcome, FetchPermit, SecurityEvent, SecurityEventKind,
};
pub use error::{PlatformError, TransportKind};
pub use wechat::WechatClient;
pub use weibo::{TokenInfo, WeiboClient};

/// The biggest platform answer the broker reads (WeChat material downloads are the largest
/// legitimate answers; 10 MB videos and the like).
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// Only bodies up to this size are parsed to find an error code; error answers are tiny.
const MAX_PROBE_BYTES: usize = 1024 * 1024;

/// A token the platform just issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: SecretString,
    /// Seconds, as the platform said.
    pub expires_in: i64,
}

/// A platform's answer to an API call, passed through as it came.
#[derive(Debug, Clone)]
pub struct PlatformResponse {
    /// The HTTP status the platform answered with (WeChat: always 200, errors included; Weibo:
    /// 400 or 403 on errors).
    pub status: u16,
    pub body: Bytes,
    pub content_type: Option<String>,
    /// WeChat `errcode` / Weibo `error_code` when the body is a JSON object carrying one.
    /// `Some(0)` is WeChat's explicit success (e.g. `freepublish/submit`).
    pub errcode: Option<i64>,
    /// WeChat `errmsg` / Weibo `error`, with any credential the broker knows of scrubbed out.
    pub errmsg: Option<String>,
}

impl PlatformResponse {
    /// True when the platform reported an error code other than 0.
    pub fn is_error(&self) -> bool {
        matches!(self.errcode, Some(c) if c != 0)
    }

    /// The platform error this answer carries, if any, for callers that map it (e.g. to 502).
    pub fn error(&self, platform: &'static str) -> Option<PlatformError> {
        match self.errcode {
            Some(code) if code != 0 => Some(PlatformError::Api {
                platform,
                code,
                message: self.errmsg.clone().unwrap_or_default(),
            }),
            _ => None,
        }
    }
}

/// The one HTTP client both adapters share.
pub fn http_client(config: &PlatformsConfig) -> Result<reqwest::Client, PlatformError> {
    // A zero timeout would make every request fail at once; config validation should refuse it,
    // but a floor here keeps a bad value from turning into an outage.
    let timeout = Duration::from_secs(config.request_timeout_seconds.max(1));
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mediavault/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|_| PlatformError::Transport {
            platform: "platforms",
            kind: TransportKind::Other,
        })
}

/// `base` + `path`, after checking that `path` is a plain API path: it cannot climb out of the
/// base, add a query or fragment, or smuggle another host.
pub(crate) fn endpoint(
    platform: &'static str,
    base: &str,
    path: &str,
) -> Result<Url, PlatformError> {
    let refused = PlatformError::Refused {
        platform,
        detail: "not a forwardable platform path",
    };
    let plain = path.starts_with('/')
        && path.len() <= 256
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'))
        && !path.split('/').any(|seg| seg == "." || seg == "..");
    if !plain {
        return Err(refused);
    }
    Url::parse(&format!("{}{}", base.trim_end_matches('/'), path)).map_err(|_| {
        PlatformError::Refused {
            platform,
            detail: "platform base URL is not a valid URL",
        }
    })
}

/// Decodes an `application/x-www-form-urlencoded` string (a query or a form body), dropping every
/// `access_token` pair: only the broker puts a token into a request.
pub fn pairs_without_token(encoded: &str) -> Vec<(String, String)> {
    // `Url` is the form codec reqwest already ships; the crate has no direct `form_urlencoded`.
    let Ok(mut scratch) = Url::parse("http://form.invalid/") else {
        return Vec::new();
    };
    scratch.set_query(Some(encoded));
    scratch
        .query_pairs()
        .filter(|(k, _)| k != "access_token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Encodes pairs plus the access token as `application/x-www-form-urlencoded`.
pub(crate) fn encode_with_token(pairs: &[(String, String)], token: &SecretString) -> String {
    let Ok(mut scratch) = Url::parse("http://form.invalid/") else {
        return String::new();
    };
    scratch
        .query_pairs_mut()
        .extend_pairs(pairs)
        .append_pair("access_token", token.expose());
    scratch.query().unwrap_or("").to_owned()
}

/// Sets `url`'s query to the caller's pairs (minus any `access_token`) plus the broker's token.
pub(crate) fn set_query_with_token(url: &mut Url, caller_query: &str, token: &SecretString) {
    let pairs = pairs_without_token(caller_query);
    url.query_pairs_mut()
        .clear()
        .extend_pairs(&pairs)
        .append_pair("access_token", token.expose());
}

/// Sends a request and reads its whole answer. Transport failures are classified, never
/// formatted: the URL can hold a token or secret.
pub(crate) async fn exchange(
    platform: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<(u16, Option<String>, Bytes), PlatformError> {
    let resp = request
        .send()
        .await
        .map_err(|e| PlatformError::transport(platform, &e))?;
    read_answer(platform, resp).await
}

/// The caller's body and content type, passed on unchanged.
pub(crate) fn with_body(
    mut request: reqwest::RequestBuilder,
    content_type: Option<&str>,
    body: Bytes,
) -> reqwest::RequestBuilder {
    if let Some(ct) = content_type {
        request = request.header(reqwest::header::CONTENT_TYPE, ct);
    }
    if !body.is_empty() {
        request = request.body(body);
    }
    request
}

/// Reads a whole answer, refusing bodies over [`MAX_ANSWER_BYTES`].
async fn read_answer(
    platform: &'static str,
    mut resp: reqwest::Response,
) -> Result<(u16, Option<String>, Bytes), PlatformError> {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(PlatformError::Transport {
            platform,
            kind: TransportKind::TooLarge,
        });
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| PlatformError::transport(platform, &e))?
    {
        if buf.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(PlatformError::Transport {
                platform,
                kind: TransportKind::TooLarge,
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((status, content_type, Bytes::from(buf)))
}

/// The error fields of either platform's JSON error shape.
#[derive(Deserialize, Default)]
pub(crate) struct ErrorProbe {
    pub errcode: Option<i64>,
    pub errmsg: Option<String>,
    pub error_code: Option<i64>,
    pub error: Option<String>,
}

/// Parses the error fields out of a JSON object body; anything else has none.
pub(crate) fn probe_error(body: &[u8]) -> ErrorProbe {
    let looks_like_object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !looks_like_object || body.len() > MAX_PROBE_BYTES {
        return ErrorProbe::default();
    }
    serde_json::from_slice(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_api_are_refused() {
        let base = "http://127.0.0.1:1";
        assert!(endpoint("wechat", base, "/cgi-bin/draft/add").is_ok());
        assert!(endpoint("weibo", base, "/2/statuses/share.json").is_ok());
        for bad in [
            "cgi-bin/x",
            "/cgi-bin/../_fake/calls",
            "//evil.example/x",
            "/x?access_token=1",
            "/x#f",
            "/x@evil",
            "/x%2f..",
        ] {
            assert!(endpoint("wechat", base, bad).is_err(), "{bad}");
        }
        let u = endpoint("wechat", "http://h:1/prefix/", "/cgi-bin/a").unwrap();
        assert_eq!(u.as_str(), "http://h:1/prefix/cgi-bin/a");
    }

    #[test]
    fn caller_tokens_are_replaced() {
        let tok = SecretString::from("VAULT");
        let mut u = Url::parse("http://h/p").unwrap();
        set_query_with_token(&mut u, "a=1&access_token=EVIL&b=x+y", &tok);
        assert_eq!(u.query(), Some("a=1&b=x+y&access_token=VAULT"));
        let pairs = pairs_without_token("status=hi%20there&access_token=EVIL");
        assert_eq!(
            encode_with_token(&pairs, &tok),
            "status=hi+there&access_token=VAULT"
        );
    }

    #[test]
    fn error_probe_reads_both_shapes() {
        let p = probe_error(br#" {"errcode":45009,"errmsg":"quota"}"#);
        assert_eq!(
            (p.errcode, p.errmsg.as_deref()),
            (Some(45009), Some("quota"))
        );
        let p = probe_error(br#"{"error":"x","error_code":21332,"request":"/2/a"}"#);
        assert_eq!(p.error_code, Some(21332));
        assert!(probe_error(b"\x89PNG").errcode.is_none());
        assert!(probe_error(b"[1]").errcode.is_none());
    }

    /// The properties of the `proxy_paths` fuzz target (README, "Fuzzing"), on stable.
    mod props {
        use proptest::prelude::*;

        use super::*;

        const BASES: [&str; 3] = [
            "https://api.weixin.qq.com",
            "https://api.weibo.com/",
            "http://127.0.0.1:8081/fake/wechat",
        ];
        const TOKEN: &str = "VAULT";

        fn path() -> impl Strategy<Value = String> {
            prop::collection::vec(
                "[a-z_]{1,6}|\\.|\\.\\.|%2[fF]|[?#@:;]|\\.json|\\PC{1,3}|",
                0..5,
            )
            .prop_map(|segs| format!("/{}", segs.join("/")))
        }

        fn check(
            base: &str,
            path: &str,
            url: &Url,
            token_in_query: bool,
        ) -> Result<(), TestCaseError> {
            let b = Url::parse(base).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(url.host_str(), b.host_str());
            prop_assert_eq!(url.port_or_known_default(), b.port_or_known_default());
            prop_assert!(url.fragment().is_none());
            prop_assert_eq!(
                url.path(),
                format!("{}{}", b.path().trim_end_matches('/'), path)
            );
            prop_assert!(url.as_str().matches('?').count() <= 1);
            let tokens = url
                .query_pairs()
                .filter(|(k, _)| k == "access_token")
                .count();
            prop_assert_eq!(tokens, usize::from(token_in_query));
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn forwarded_urls_stay_under_the_base(
                base in 0usize..3,
                path in path(),
                query in "(([a-z_]{1,12}|access_token)=[a-zA-Z0-9%&#?=+ ]{0,8}&?){0,3}",
                form in any::<bool>(),
            ) {
                let base = BASES[base];
                let token = SecretString::from(TOKEN);
                let caller = pairs_without_token(&query);
                if let Ok(url) = wechat::outgoing(base, &path, &query, &token) {
                    check(base, &path, &url, true)?;
                    let rest: Vec<_> = url.query_pairs().filter(|(k, _)| k != "access_token").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
                    prop_assert_eq!(rest, caller.clone());
                }
                let ct = form.then_some("application/x-www-form-urlencoded");
                let sent = weibo::outgoing(base, &Method::POST, &path, &query, ct, Bytes::from_static(b"status=hi&access_token=EVIL"), &token);
                if let Ok((url, body)) = sent {
                    check(base, &path, &url, !form)?;
                    if form {
                        prop_assert_eq!(body.as_ref(), b"status=hi&access_token=VAULT".as_slice());
                    }
                }
                // Accepted paths are exactly the plain ones.
                let plain = !path.contains("//")
                    && path.len() <= 256
                    && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b))
                    && !path.split('/').any(|s| s == "." || s == "..");
                prop_assert_eq!(wechat::outgoing(base, &path, &query, &token).is_ok(), plain);
            }
        }
    }
}
