//! Extractors that speak the API's error language: JSON and query rejections become problem+json
//! with the offending field, and credentials become typed callers recorded in the audit note.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::AppState;
use super::context::RequestCtx;
use super::problem;
use crate::actor::{Actor, Principal};
use crate::error::Error;
use crate::problem::ErrorResponse as _;

/// A JSON body; unknown fields and wrong types are refused by the target type.
pub struct ApiJson<T>(pub T);

/// Rejections that are not domain errors: they still answer problem+json.
pub struct Rejection(Response);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.0
    }
}

impl From<Error> for Rejection {
    fn from(e: Error) -> Self {
        Rejection(e.into_response())
    }
}

/// serde's messages can quote the value that failed to parse; a value may be a secret typed into
/// the wrong field, so quoted strings are cut out before the message goes anywhere. serde also
/// quotes values in backticks (an unknown enum variant, a number where a string belongs: a
/// password sent as a JSON number), so a backtick span is kept only where it names a field
/// (`unknown field`, `missing field`) or what was expected; any other is cut too (found by the
/// `json_bodies` fuzz target). `#[doc(hidden)] pub` only so that the `fuzz/` package can check
/// what a refused body's message keeps of it.
#[doc(hidden)]
pub fn scrub(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        if c == '`' {
            let keep = out.ends_with("field ") || out.contains("expected");
            // A value may itself hold a backtick, so a cut span runs to serde's own last
            // "`, expected" (or to the end), never to the next backtick.
            let end = if keep {
                rest.find('`')
            } else {
                rest.rfind("`, expected")
            };
            match end {
                Some(i) => {
                    out.push('`');
                    if keep {
                        out.push_str(&rest[..i]);
                    } else {
                        out.push('…');
                    }
                    out.push('`');
                    rest = &rest[i + 1..];
                }
                None => {
                    out.push_str("`…");
                    rest = "";
                }
            }
            continue;
        }
        if c == '"' {
            // The same for a quoted value, which may itself hold a double quote: the cut runs to
            // serde's own last "\", expected" (or to the end).
            match rest.rfind("\", expected") {
                Some(i) => {
                    out.push_str("\"…\"");
                    rest = &rest[i + 1..];
                }
                None => {
                    out.push_str("\"…");
                    rest = "";
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(Rejection(json_rejection(rejection))),
        }
    }
}

fn json_rejection(r: JsonRejection) -> Response {
    let status = r.status();
    match r {
        JsonRejection::MissingJsonContentType(_) => problem::plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::JsonDataError(e) => {
            // The inner serde error has the field path; axum's wrapper text adds nothing useful.
            let inner = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.body_text());
            Error::Invalid {
                field: None,
                detail: format!("invalid request body: {}", scrub(&inner)),
            }
            .into_response()
        }
        JsonRejection::JsonSyntaxError(e) => {
            let inner = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.body_text());
            Error::Invalid {
                field: None,
                detail: format!("malformed JSON: {}", scrub(&inner)),
            }
            .into_response()
        }
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        _ => Error::Invalid {
            field: None,
            detail: "the request body could not be read".into(),
        }
        .into_response(),
    }
}

/// Query parameters, with rejections as 400 problem+json.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| invalid_url("query", &e.body_text()))
    }
}

/// A part of the URL that did not parse, as 400 problem+json; quoted values are cut out.
fn invalid_url(part: &str, text: &str) -> Rejection {
    Error::Invalid {
        field: None,
        detail: format!("invalid {part}: {}", scrub(text)),
    }
    .into()
}

/// What is wrong with a path parameter, without its value (axum's own text quotes it).
fn path_problem(e: PathRejection) -> String {
    use axum::extract::path::ErrorKind;
    let PathRejection::FailedToDeserializePathParams(e) = e else {
        return "the path parameters could not be read".into();
    };
    match e.into_kind() {
        ErrorKind::ParseErrorAtKey { expected_type, .. }
        | ErrorKind::ParseErrorAtIndex { expected_type, .. }
        | ErrorKind::ParseError { expected_type, .. } => {
            let what = if expected_type.starts_with(['i', 'u']) {
                "a number"
            } else {
                expected_type
            };
            format!("a path parameter must be {what}")
        }
        ErrorKind::InvalidUtf8InPathParam { key } => {
            format!("path parameter {key} is not valid UTF-8")
        }
        _ => "the path parameters could not be read".into(),
    }
}

/// Path parameters, with rejections (a segment that is not valid UTF-8 once decoded, a step number
/// that is not a number) as 400 problem+json that says what is wrong without echoing the value.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| invalid_url("path", &path_problem(e)))
    }
}

/// A body of any type as bytes (the platform proxy's); a body over the limit is 413
/// problem+json, like a JSON one.
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|r: BytesRejection| {
                Rejection(if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    Error::Invalid {
                        field: None,
                        detail: "the request body could not be read".into(),
                    }
                    .into_response()
                })
            })
    }
}

fn too_large() -> Response {
    problem::plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is larger than this server accepts",
    )
}

/// The request context set by the outermost middleware.
pub struct Ctx(pub RequestCtx);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestCtx>()
            .cloned()
            .map(Ctx)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("request context missing")).into())
    }
}

pub const SESSION_COOKIE: &str = "__Host-mv_session";

/// The token of an `Authorization` value: the scheme is case-insensitive (RFC 9110 §11.1) and
/// any run of spaces or tabs may surround the token, so every spelling of one credential yields
/// the same token. Authentication and the per-token rate limit both read it through here.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(rest.trim_matches([' ', '\t'])).filter(|t| !t.is_empty())
}

/// The bearer credential of a request, if any (the console's session may come as a cookie).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return bearer_token(v).map(str::to_owned);
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn request_ctx(parts: &Parts) -> Option<RequestCtx> {
    parts.extensions.get::<RequestCtx>().cloned()
}

/// A person with a live session, as the acting [`Actor`].
pub struct Session(pub Actor);

impl FromRequestParts<AppState> for Session {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or(Error::Unauthenticated)?;
        if !token.starts_with("mvs_") {
            return Err(Error::Unauthenticated.into());
        }
        let person = state.vault.sessions().authenticate(&token).await?;
        Ok(Session(Actor::new(
            Principal::Person(person),
            request_ctx(parts),
        )))
    }
}

/// A publishing tool, by its client key, as the acting [`Actor`].
pub struct ClientAuth(pub Actor);

impl FromRequestParts<AppState> for ClientAuth {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer(&parts.headers).ok_or(Error::Unauthenticated)?;
        let ctx = parts.extensions.get::<RequestCtx>();
        let client = state.vault.clients().authenticate(&key, ctx).await?;
        Ok(ClientAuth(Actor::new(
            Principal::Client(client),
            request_ctx(parts),
        )))
    }
}

/// A live publishing token, as the acting [`Actor`].
pub struct TokenAuth(pub Actor);

impl FromRequestParts<AppState> for TokenAuth {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or(Error::Unauthenticated)?;
        let ctx = parts.extensions.get::<RequestCtx>();
        let grant = state.vault.checkouts().authenticate(&token, ctx).await?;
        if let Some(ctx) = parts.extensions.get::<RequestCtx>() {
            ctx.detail("operator", grant.operator.clone());
            ctx.detail("client", grant.client_id.clone());
        }
        Ok(TokenAuth(Actor::new(
            Principal::Token(grant),
            request_ctx(parts),
        )))
    }
}

/// Whoever presents a credential: a person, a tool, or a publishing token.
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or(Error::Unauthenticated)?;
        if token.starts_with("mvs_") {
            return Ok(Caller(Session::from_request_parts(parts, state).await?.0));
        }
        if token.starts_with("mvc_") {
            return Ok(Caller(
                ClientAuth::from_request_parts(parts, state).await?.0,
            ));
        }
        Ok(Caller(TokenAuth::from_request_parts(parts, state).await?.0))
    }
}

/// Nobody yet: the actor of a login.
pub struct Anonymous(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Anonymous {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Anonymous(Actor::new(
            Principal::Anonymous,
            request_ctx(parts),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    /// Regression (found by the `json_bodies` fuzz target): a value serde quotes in backticks,
    /// such as a secret typed into an enum field or sent as a number, is cut out too.
    #[test]
    fn scrub_cuts_backticked_values_but_keeps_field_names() {
        assert_eq!(
            super::scrub(
                "unknown variant `hunter2-secret`, expected `cover` or `inline` at line 1"
            ),
            "unknown variant `…`, expected `cover` or `inline` at line 1"
        );
        assert_eq!(
            super::scrub("invalid type: integer `12345678`, expected a string at line 1 column 9"),
            "invalid type: integer `…`, expected a string at line 1 column 9"
        );
        assert_eq!(
            super::scrub("unknown field `pasword`, expected one of `username`, `password`"),
            "unknown field `pasword`, expected one of `username`, `password`"
        );
        assert_eq!(super::scrub("missing field `totp`"), "missing field `totp`");
        // A value holding a backtick does not end the cut early.
        assert_eq!(
            super::scrub("unknown variant ``unter2-secret`, expected `cover` or `inline`"),
            "unknown variant `…`, expected `cover` or `inline`"
        );
        assert_eq!(
            super::scrub("invalid type: string \"s3cret\", expected u64"),
            "invalid type: string \"…\", expected u64"
        );
        // Nor does a value holding a double quote (found by the request-body proptest).
        assert_eq!(
            super::scrub("invalid type: string \"\"s3cret\", expected u64 at line 1"),
            "invalid type: string \"…\", expected u64 at line 1"
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_spacing_free() {
        for v in [
            "Bearer mvt_x",
            "bearer mvt_x",
            "BEARER   mvt_x",
            "  Bearer\tmvt_x \t",
        ] {
            assert_eq!(bearer_token(v), Some("mvt_x"), "{v:?}");
        }
        for v in ["Basic mvt_x", "Bearer", "Bearer   ", "Bearermvt_x", ""] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }

    /// The properties of the `json_bodies` fuzz target (README, "Fuzzing"), on stable: every
    /// JSON request body type of the API.
    mod props {
        use proptest::prelude::*;
        use serde::de::DeserializeOwned;
        use serde_json::Value;

        use super::super::scrub;
        use crate::api::{accounts, auth, checkouts, clients, incidents, users};

        /// Field names the request types use, so that generated bodies get past the first one.
        const FIELDS: &str = "username|password|totp|reason|version|credential|app_id|app_secret|\
            account|operator|purpose|level|content|title|images|role|data_base64|name|roles|\
            users|display_name|comment|note|review|summary|playbook|accounts|[a-z]{1,4}";

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "\\PC{0,12}|secret-[a-z]{8}".prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 24, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(FIELDS, inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn strings(v: &Value, keys: &mut Vec<String>, values: &mut Vec<String>) {
            match v {
                Value::String(s) => values.push(s.clone()),
                Value::Array(a) => a.iter().for_each(|x| strings(x, keys, values)),
                Value::Object(m) => {
                    for (k, x) in m {
                        keys.push(k.clone());
                        strings(x, keys, values);
                    }
                }
                _ => {}
            }
        }

        fn check<T: DeserializeOwned>(body: &[u8]) -> Result<(), TestCaseError> {
            match serde_json::from_slice::<T>(body) {
                Ok(_) => {
                    let generic = serde_json::from_slice::<Value>(body);
                    prop_assert!(generic.is_ok_and(|g| serde_json::from_value::<T>(g).is_ok()));
                }
                Err(e) => {
                    let shown = scrub(&e.to_string());
                    prop_assert!(!shown.trim().is_empty());
                    // Backtick spans are left out: those kept name a field, which may hold a `"`.
                    let outside: String = shown.split('`').step_by(2).collect();
                    for (i, part) in outside.split('"').enumerate().skip(1) {
                        prop_assert!(i % 2 == 0 || part == "\u{2026}", "{}", shown);
                    }
                    if let Ok(v) = serde_json::from_slice::<Value>(body) {
                        let (mut keys, mut values) = (Vec::new(), Vec::new());
                        strings(&v, &mut keys, &mut values);
                        // serde echoes the input before "expected"; what follows is its own text.
                        let echoed = shown.split("expected").next().unwrap_or_default();
                        for s in values
                            .iter()
                            .filter(|s| s.chars().count() >= 8 && !keys.contains(s))
                        {
                            prop_assert!(!echoed.contains(s.as_str()), "{}", shown);
                        }
                    }
                }
            }
            Ok(())
        }

        fn every_type(body: &[u8]) -> Result<(), TestCaseError> {
            check::<crate::accounts::service::CreateAccount>(body)?;
            check::<accounts::RotateBody>(body)?;
            check::<accounts::RollbackBody>(body)?;
            check::<accounts::FreezeBody>(body)?;
            check::<auth::LoginBody>(body)?;
            check::<auth::StepUpBody>(body)?;
            check::<crate::checkout::CheckoutRequest>(body)?;
            check::<checkouts::Decision>(body)?;
            check::<checkouts::ClaimBody>(body)?;
            check::<clients::CreateClient>(body)?;
            check::<crate::incidents::OpenIncident>(body)?;
            check::<incidents::CompleteBody>(body)?;
            check::<incidents::CloseBody>(body)?;
            check::<users::CreateUser>(body)?;
            check::<users::ImportBody>(body)?;
            check::<users::GrantBody>(body)?;
            check::<users::ConfirmBody>(body)?;
            check::<users::StepUp>(body)?;
            check::<users::ResetPassword>(body)?;
            check::<crate::content::ContentInput>(body)?;
            check::<crate::identity::roster::RosterEntry>(body)?;
            if let Ok(entry) = serde_json::from_slice::<crate::identity::roster::RosterEntry>(body)
            {
                let again = serde_json::to_vec(&entry).unwrap_or_default();
                prop_assert_eq!(serde_json::from_slice(&again).ok(), Some(entry));
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn request_bodies_parse_or_are_refused_without_quoting(v in json()) {
                every_type(&serde_json::to_vec(&v).unwrap_or_default())?;
            }

            #[test]
            fn raw_bytes_parse_or_are_refused(body in prop::collection::vec(any::<u8>(), 0..64)) {
                every_type(&body)?;
            }
        }
    }
}
