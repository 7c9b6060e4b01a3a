//! The one place that turns a domain error into an HTTP status and a problem+json body
//! (RFC 9457). Internal causes are logged in full with the request id and never shown.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::context::current_request_id;
use crate::error::Error;

/// An RFC 9457 problem: every error the API answers. `code` is stable and machine-readable,
/// `detail` is for a person; neither ever holds a secret.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemBody<'a> {
    /// Always `about:blank`: the status and `code` say what happened.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The status's reason phrase.
    title: &'a str,
    status: u16,
    detail: String,
    /// E.g. `invalid_request`, `unauthenticated`, `not_permitted`, `not_found`, a conflict code,
    /// `rate_limited`, `platform_error`, `audit_unavailable` (API.md has the list).
    code: &'a str,
    /// The request's id, also in the `x-request-id` header and in its audit entry.
    request_id: String,
    /// The request field at fault (400).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// The platform's own error code (502).
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_code: Option<i64>,
    /// Until when the person is locked out (423).
    #[serde(skip_serializing_if = "Option::is_none")]
    locked_until: Option<String>,
}

/// The stable machine-readable code of an error, also written to the audit log.
pub fn code_of(e: &Error) -> &'static str {
    match e {
        Error::Invalid { .. } => "invalid_request",
        Error::Unauthenticated => "unauthenticated",
        Error::TotpInvalid(_) => "totp_invalid",
        Error::NotPermitted(_) => "not_permitted",
        Error::ClientCertificate(_) => "client_certificate_required",
        Error::SelfApproval => "self_approval",
        Error::ContentNotApproved => "content_not_approved",
        Error::NotFound(_) => "not_found",
        Error::Conflict { code, .. } => code.as_str(),
        Error::UserLocked { .. } => "user_locked",
        Error::AccountFrozen(_) => "account_frozen",
        Error::RateLimited { .. } => "rate_limited",
        Error::PublishingBudget { .. } => "publishing_budget_spent",
        Error::Platform { .. } => "platform_error",
        Error::Unavailable(_) => "unavailable",
        Error::AuditUnavailable => "audit_unavailable",
        Error::Internal(_) => "internal",
    }
}

pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        Error::Unauthenticated | Error::TotpInvalid(_) | Error::ClientCertificate(_) => {
            StatusCode::UNAUTHORIZED
        }
        Error::NotPermitted(_) | Error::SelfApproval | Error::ContentNotApproved => {
            StatusCode::FORBIDDEN
        }
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::UserLocked { .. } | Error::AccountFrozen(_) => StatusCode::LOCKED,
        Error::RateLimited { .. } | Error::PublishingBudget { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Platform { .. } => StatusCode::BAD_GATEWAY,
        Error::Unavailable(_) | Error::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A problem response for a status that has no domain error behind it (413, 415, 405, 408).
pub fn plain(status: StatusCode, code: &str, detail: &str) -> Response {
    render(status, code, detail.to_owned(), None, None, None)
}

fn render(
    status: StatusCode,
    code: &str,
    detail: String,
    field: Option<String>,
    platform_code: Option<i64>,
    locked_until: Option<String>,
) -> Response {
    let body = ProblemBody {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        code,
        request_id: current_request_id().unwrap_or_default(),
        field,
        platform_code,
        locked_until,
    };
    let mut resp = (status, serde_json::to_string(&body).unwrap_or_default()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

/// The vault's [`Error`] as an HTTP answer: one mapping, here, for the API and the console.
#[derive(Debug)]
pub struct Problem(pub Error);

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        Problem(e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let Problem(e) = self;
        ErrorResponse::into_response(e)
    }
}

/// `error.into_response()` where a middleware or extractor answers with the vault's error
/// directly (the orphan rule keeps axum's `IntoResponse` for the core's `Error` out of reach).
pub trait ErrorResponse {
    fn into_response(self) -> Response;
}

impl ErrorResponse for Error {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        let code = code_of(&self);
        let request_id = current_request_id().unwrap_or_default();
        let (detail, field, platform_code, locked_until) = match &self {
            Error::Internal(cause) => {
                tracing::error!(request_id = %request_id, error = ?cause, "internal error");
                (
                    "an internal error occurred; quote the request id to the operator".to_owned(),
                    None,
                    None,
                    None,
                )
            }
            Error::Invalid { field, detail } => (detail.clone(), field.clone(), None, None),
            Error::Platform { code, .. } => (self.to_string(), None, Some(*code), None),
            Error::UserLocked { until } => (self.to_string(), None, None, Some(until.clone())),
            Error::Unavailable(reason) => {
                tracing::error!(request_id = %request_id, reason = %reason, "service unavailable");
                (self.to_string(), None, None, None)
            }
            _ => (self.to_string(), None, None, None),
        };
        let retry_after = match &self {
            Error::RateLimited { retry_after } | Error::PublishingBudget { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        };
        let mut resp = render(status, code, detail, field, platform_code, locked_until);
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        resp.extensions_mut().insert(ErrorCode(code));
        resp
    }
}

/// Carried on error responses so the audit layer can record the code without parsing the body.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);
