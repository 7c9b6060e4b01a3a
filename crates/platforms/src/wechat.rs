//! The WeChat Official Account API client (real base `https://api.weixin.qq.com`).
//!
//! WeChat answers HTTP 200 with `{"errcode":N,"errmsg":..}` on errors, so every answer is probed
//! for `errcode`. Token endpoints turn an error into [`PlatformError::Api`]; API calls
//! ([`WechatClient::call`]) pass the answer through as a [`PlatformResponse`] with `errcode` set,
//! because the caller (the proxy) returns the platform's answer as it came.
//!
//! The client keeps no state: caching, single-flight and retry live in the broker.

use bytes::Bytes;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};

use super::error::{scrub, scrub_body};
use super::{
    IssuedToken, PlatformError, PlatformResponse, endpoint, exchange, probe_error,
    set_query_with_token, with_body,
};
use mediavault_base::crypto::SecretString;

pub const PLATFORM: &str = "wechat";

/// Token rejected because it was cancelled (a newer token replaced it, or the AppSecret changed).
pub const ERR_INVALID_TOKEN: i64 = 40001;
/// Token rejected because it expired.
pub const ERR_TOKEN_EXPIRED: i64 = 42001;
/// Wrong AppSecret.
pub const ERR_INVALID_SECRET: i64 = 40125;

/// Token endpoints never go through [`WechatClient::call`]: the broker is their only caller.
const TOKEN_PATHS: [&str; 2] = ["/cgi-bin/token", "/cgi-bin/stable_token"];

#[derive(Clone)]
pub struct WechatClient {
    http: reqwest::Client,
    base: String,
}

#[derive(Serialize)]
struct StableTokenRequest<'a> {
    grant_type: &'static str,
    appid: &'a str,
    secret: &'a str,
    force_refresh: bool,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<SecretString>,
    expires_in: Option<i64>,
    errcode: Option<i64>,
    errmsg: Option<String>,
}

impl WechatClient {
    pub fn new(http: reqwest::Client, base_url: &str) -> Self {
        Self {
            http,
            base: base_url.to_owned(),
        }
    }

    /// `POST /cgi-bin/stable_token`. In normal mode WeChat returns the current stable token while
    /// it lives (no cancellation); `force_refresh` issues a new one and cancels the old at once.
    pub async fn stable_token(
        &self,
        app_id: &str,
        secret: &SecretString,
        force_refresh: bool,
    ) -> Result<IssuedToken, PlatformError> {
        let url = endpoint(PLATFORM, &self.base, "/cgi-bin/stable_token")?;
        let body = serde_json::to_vec(&StableTokenRequest {
            grant_type: "client_credential",
            appid: app_id,
            secret: secret.expose(),
            force_refresh,
        })
        .map_err(|_| PlatformError::Refused {
            platform: PLATFORM,
            detail: "token request could not be encoded",
        })?;
        // The body buffer is handed to hyper, which does not wipe it; the secret has to travel to
        // WeChat in clear inside TLS anyway, and no copy of it is kept or logged here.
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.token_request(request, secret).await
    }

    /// `GET /cgi-bin/token`: the classic pool, where each new token cancels the previous one
    /// (after WeChat's five-minute overlap). The broker uses it only for its leak canary.
    pub async fn classic_token(
        &self,
        app_id: &str,
        secret: &SecretString,
    ) -> Result<IssuedToken, PlatformError> {
        let mut url = endpoint(PLATFORM, &self.base, "/cgi-bin/token")?;
        // WeChat's protocol puts the secret in the query; the URL is never logged or put into an
        // error (see `PlatformError::transport`).
        url.query_pairs_mut()
            .append_pair("grant_type", "client_credential")
            .append_pair("appid", app_id)
            .append_pair("secret", secret.expose());
        self.token_request(self.http.get(url), secret).await
    }

    /// `POST /cgi-bin/clear_quota/v2` with the AppSecret: resets the AppID's API call counts
    /// (after 45009), at most 10 times a month (then 48006). The AppSecret travels in the JSON body,
    /// never in the URL.
    pub async fn clear_quota(
        &self,
        app_id: &str,
        secret: &SecretString,
    ) -> Result<(), PlatformError> {
        let url = endpoint(PLATFORM, &self.base, "/cgi-bin/clear_quota/v2")?;
        let body = serde_json::to_vec(&serde_json::json!({
            "appid": app_id,
            "appsecret": secret.expose(),
        }))
        .map_err(|_| PlatformError::Refused {
            platform: PLATFORM,
            detail: "clear_quota request could not be encoded",
        })?;
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let (status, _, body) = exchange(PLATFORM, request).await?;
        let Ok(answer) = serde_json::from_slice::<TokenAnswer>(&body) else {
            return Err(PlatformError::Protocol {
                platform: PLATFORM,
                status,
                detail: "clear_quota answer is not JSON",
            });
        };
        match answer.errcode {
            Some(0) | None => Ok(()),
            Some(code) => Err(PlatformError::Api {
                platform: PLATFORM,
                code,
                message: scrub(&answer.errmsg.unwrap_or_default(), &[secret.expose()]),
            }),
        }
    }

    async fn token_request(
        &self,
        request: reqwest::RequestBuilder,
        secret: &SecretString,
    ) -> Result<IssuedToken, PlatformError> {
        let (status, _, body) = exchange(PLATFORM, request).await?;
        let Ok(answer) = serde_json::from_slice::<TokenAnswer>(&body) else {
            return Err(PlatformError::Protocol {
                platform: PLATFORM,
                status,
                detail: "token answer is not JSON",
            });
        };
        if let Some(code) = answer.errcode.filter(|c| *c != 0) {
            return Err(PlatformError::Api {
                platform: PLATFORM,
                code,
                message: scrub(&answer.errmsg.unwrap_or_default(), &[secret.expose()]),
            });
        }
        match (answer.access_token, answer.expires_in) {
            (Some(token), Some(expires_in)) if !token.is_empty() && expires_in > 0 => {
                Ok(IssuedToken { token, expires_in })
            }
            _ => Err(PlatformError::Protocol {
                platform: PLATFORM,
                status,
                detail: "token answer lacks access_token or expires_in",
            }),
        }
    }

    /// `GET /cgi-bin/getcallbackip`: the cheapest call that proves a token is alive.
    /// A rejected token comes back as `PlatformError::Api` (40001 cancelled, 42001 expired).
    pub async fn getcallbackip(&self, token: &SecretString) -> Result<(), PlatformError> {
        let answer = self
            .send(
                Method::GET,
                "/cgi-bin/getcallbackip",
                "",
                Bytes::new(),
                None,
                token,
            )
            .await?;
        match answer.error(PLATFORM) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Refuses a path [`Self::call`] would refuse, without a round trip, so the broker can check
    /// before it fetches a token.
    pub fn check_path(&self, path: &str) -> Result<(), PlatformError> {
        if TOKEN_PATHS.contains(&path.trim_end_matches('/')) {
            return Err(PlatformError::Refused {
                platform: PLATFORM,
                detail: "token endpoints are not forwarded; the vault is the only token fetcher",
            });
        }
        endpoint(PLATFORM, &self.base, path).map(|_| ())
    }

    /// Any API call, with `access_token` set as a query parameter (replacing one the caller put
    /// there). The answer comes back as it came, with `errcode` parsed; only transport failures
    /// and refused paths are errors. Token endpoints are refused.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Bytes,
        content_type: Option<&str>,
        token: &SecretString,
    ) -> Result<PlatformResponse, PlatformError> {
        self.check_path(path)?;
        self.send(method, path, query, body, content_type, token)
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Bytes,
        content_type: Option<&str>,
        token: &SecretString,
    ) -> Result<PlatformResponse, PlatformError> {
        let url = outgoing(&self.base, path, query, token)?;
        let request = with_body(self.http.request(method, url), content_type, body);
        let (status, content_type, body) = exchange(PLATFORM, request).await?;
        let probe = probe_error(&body);
        let body = if matches!(probe.errcode, Some(c) if c != 0) {
            scrub_body(body, &[token.expose()])
        } else {
            body
        };
        Ok(PlatformResponse {
            status,
            errcode: probe.errcode,
            errmsg: probe.errmsg.map(|m| scrub(&m, &[token.expose()])),
            content_type,
            body,
        })
    }
}

/// The URL a call to `base` leaves for: the path checked by `endpoint`, the caller's query minus
/// any `access_token` of theirs, and the vault's token appended once. No I/O; `#[doc(hidden)] pub`
/// only so that the `fuzz/` package (and the property tests) can drive exactly what
/// [`WechatClient::call`] sends.
#[doc(hidden)]
pub fn outgoing(
    base: &str,
    path: &str,
    query: &str,
    token: &SecretString,
) -> Result<Url, PlatformError> {
    let mut url = endpoint(PLATFORM, base, path)?;
    set_query_with_token(&mut url, query, token);
    Ok(url)
}
