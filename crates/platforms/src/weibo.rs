//! The Sina Weibo API client (real base `https://api.weibo.com`).
//!
//! Weibo errors are `{"error","error_code","request"}` with HTTP 400 (or 403 for authentication
//! and rate limits); clients key on `error_code`. The account's long-lived OAuth2 access token is
//! part of the stored credential, so there is nothing to fetch or cache: the broker injects it.
//!
//! Injection: form-encoded POST bodies get the token as a form field (Weibo reads the body first);
//! every other request (GET, multipart uploads) gets it as a query parameter. Any `access_token` a
//! caller supplied in the query or form is dropped first.

use bytes::Bytes;
use reqwest::{Method, Url};
use serde::Deserialize;

use super::error::{scrub, scrub_body};
use super::{
    PlatformError, PlatformResponse, encode_with_token, endpoint, exchange, pairs_without_token,
    probe_error, set_query_with_token, with_body,
};
use mediavault_base::crypto::SecretString;

pub const PLATFORM: &str = "weibo";

const FORM: &str = "application/x-www-form-urlencoded";

/// What `get_token_info` says about a token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenInfo {
    pub uid: Option<u64>,
    pub appkey: Option<String>,
    /// Seconds left.
    pub expire_in: Option<i64>,
}

/// What the OAuth code exchange (`oauth2/access_token`) grants.
#[derive(Debug)]
pub struct OAuthGrant {
    pub access_token: SecretString,
    /// Seconds the token lives.
    pub expires_in: i64,
    pub uid: Option<String>,
}

#[derive(Deserialize)]
struct GrantAnswer {
    access_token: Option<SecretString>,
    expires_in: Option<i64>,
    uid: Option<String>,
}

#[derive(Clone)]
pub struct WeiboClient {
    http: reqwest::Client,
    base: String,
}

impl WeiboClient {
    pub fn new(http: reqwest::Client, base_url: &str) -> Self {
        Self {
            http,
            base: base_url.to_owned(),
        }
    }

    /// `POST /oauth2/get_token_info`: proves the token is alive and says whose it is.
    pub async fn get_token_info(
        &self,
        access_token: &SecretString,
    ) -> Result<TokenInfo, PlatformError> {
        let answer = self
            .send(
                Method::POST,
                "/oauth2/get_token_info",
                "",
                Bytes::new(),
                Some(FORM),
                access_token,
            )
            .await?;
        if let Some(e) = answer.error(PLATFORM) {
            return Err(e);
        }
        serde_json::from_slice(&answer.body).map_err(|_| PlatformError::Protocol {
            platform: PLATFORM,
            status: answer.status,
            detail: "get_token_info answer is not the expected JSON",
        })
    }

    /// The page where the account's owner grants the app a new token (`oauth2/authorize`): the
    /// admin's browser goes there, and Weibo sends it back to `redirect_uri` with a code.
    pub fn authorize_url(
        &self,
        app_key: &str,
        redirect_uri: &str,
        state: &str,
    ) -> Result<String, PlatformError> {
        let mut url = endpoint(PLATFORM, &self.base, "/oauth2/authorize")?;
        url.query_pairs_mut()
            .append_pair("client_id", app_key)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("state", state);
        Ok(url.to_string())
    }

    /// `POST /oauth2/access_token` (`grant_type=authorization_code`): the code Weibo sent back,
    /// exchanged with the app's secret for the account's new access token.
    pub async fn exchange_code(
        &self,
        app_key: &str,
        app_secret: &SecretString,
        code: &str,
        redirect_uri: &str,
    ) -> Result<OAuthGrant, PlatformError> {
        let url = endpoint(PLATFORM, &self.base, "/oauth2/access_token")?;
        // `Url` is the form codec reqwest already ships (see `pairs_without_token`).
        let mut scratch =
            Url::parse("http://form.invalid/").map_err(|_| PlatformError::Refused {
                platform: PLATFORM,
                detail: "form could not be encoded",
            })?;
        scratch
            .query_pairs_mut()
            .append_pair("client_id", app_key)
            .append_pair("client_secret", app_secret.expose())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri);
        let form = scratch.query().unwrap_or("").to_owned();
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, FORM)
            .body(form);
        let (status, _, body) = exchange(PLATFORM, request).await?;
        let probe = probe_error(&body);
        if let Some(code) = probe.error_code.filter(|c| *c != 0) {
            return Err(PlatformError::Api {
                platform: PLATFORM,
                code,
                message: scrub(&probe.error.unwrap_or_default(), &[app_secret.expose()]),
            });
        }
        match serde_json::from_slice::<GrantAnswer>(&body) {
            Ok(GrantAnswer {
                access_token: Some(access_token),
                expires_in: Some(expires_in),
                uid,
            }) if !access_token.expose().is_empty() => Ok(OAuthGrant {
                access_token,
                expires_in,
                uid,
            }),
            _ => Err(PlatformError::Protocol {
                platform: PLATFORM,
                status,
                detail: "access_token answer lacks access_token or expires_in",
            }),
        }
    }

    /// Refuses a path [`Self::call`] would refuse, without a round trip.
    pub fn check_path(&self, path: &str) -> Result<(), PlatformError> {
        if path.starts_with("/oauth2/") || path == "/oauth2" {
            return Err(PlatformError::Refused {
                platform: PLATFORM,
                detail: "OAuth2 endpoints are not forwarded",
            });
        }
        endpoint(PLATFORM, &self.base, path).map(|_| ())
    }

    /// Any API call with the account's token injected. The answer comes back as it came, with
    /// `errcode` holding Weibo's `error_code`; only transport failures and refused paths (the
    /// `/oauth2/` endpoints, which could revoke or disclose the token) are errors.
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
        let (url, body) = outgoing(&self.base, &method, path, query, content_type, body, token)?;
        let request = with_body(self.http.request(method, url), content_type, body);
        let (status, content_type, body) = exchange(PLATFORM, request).await?;
        let probe = probe_error(&body);
        let body = if matches!(probe.error_code, Some(c) if c != 0) {
            scrub_body(body, &[token.expose()])
        } else {
            body
        };
        Ok(PlatformResponse {
            status,
            errcode: probe.error_code,
            errmsg: probe.error.map(|m| scrub(&m, &[token.expose()])),
            content_type,
            body,
        })
    }
}

/// The URL and body a call to `base` leaves with: the path checked by `endpoint`, the caller's
/// query and form minus any `access_token` of theirs, and the account's token injected once (in
/// the form for a form POST, else in the query). No I/O; `#[doc(hidden)] pub` only so that the
/// `fuzz/` package (and the property tests) can drive exactly what [`WeiboClient::call`] sends.
#[doc(hidden)]
pub fn outgoing(
    base: &str,
    method: &Method,
    path: &str,
    query: &str,
    content_type: Option<&str>,
    body: Bytes,
    token: &SecretString,
) -> Result<(Url, Bytes), PlatformError> {
    let mut url = endpoint(PLATFORM, base, path)?;
    let is_form = content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case(FORM))
    });
    let body = if *method == Method::POST && is_form {
        let Ok(text) = std::str::from_utf8(&body) else {
            return Err(PlatformError::Refused {
                platform: PLATFORM,
                detail: "form body is not UTF-8",
            });
        };
        // The caller's query keeps its other parameters but loses any token of its own.
        let rest = pairs_without_token(query);
        url.query_pairs_mut().clear().extend_pairs(&rest);
        if rest.is_empty() {
            url.set_query(None);
        }
        Bytes::from(encode_with_token(&pairs_without_token(text), token))
    } else {
        set_query_with_token(&mut url, query, token);
        body
    };
    Ok((url, body))
}
