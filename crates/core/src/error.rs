//! The domain error. Every service returns it; `http::problem` is the one place that turns it into
//! a status and a problem+json body. Messages here are shown to clients, so they never carry a
//! secret; internal causes travel in `Internal` and are logged, not shown.

use crate::crypto::CryptoError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{detail}")]
    Invalid {
        field: Option<String>,
        detail: String,
    },
    #[error("authentication failed or missing")]
    Unauthenticated,
    #[error("{0}")]
    TotpInvalid(TotpRefusal),
    #[error("{0}")]
    NotPermitted(String),
    /// A tool's key (or a token issued under its checkouts) came over a connection without the
    /// client certificate the tool is bound to.
    #[error("{0}")]
    ClientCertificate(CertRefusal),
    #[error("the requester of a checkout cannot approve it")]
    SelfApproval,
    #[error("this payload's SHA-256 is not among the digests approved for the checkout")]
    ContentNotApproved,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{detail}")]
    Conflict { code: Conflict, detail: String },
    #[error("too many failed attempts; locked until {until}")]
    UserLocked { until: String },
    #[error("account {0} is frozen")]
    AccountFrozen(String),
    #[error("too many requests; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// The account's own publishing budget (its policy's `max_posts_per_hour` or
    /// `max_posts_per_day`, set to stay under the platform's limit) is spent.
    #[error(
        "account {account} has used its {limit} posts per {per} (its policy's max_posts_per_{per}); the next may go out in {retry_after} s"
    )]
    PublishingBudget {
        account: String,
        limit: u32,
        per: &'static str,
        retry_after: u64,
    },
    #[error("{platform} answered error {code}: {message}")]
    Platform {
        platform: &'static str,
        code: i64,
        message: String,
    },
    #[error("{0}")]
    Unavailable(String),
    /// The audit log could not be written, so the change did not happen (fail closed).
    #[error("the audit log cannot be written; the request was not completed")]
    AuditUnavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a TOTP code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpRefusal {
    #[error("the TOTP code is wrong or expired")]
    Wrong,
    #[error("this TOTP code was already used; wait for the next code and try again")]
    Replayed,
}

/// Why a bound tool's credential was refused: the code of both is `client_certificate_required`
/// (what to do is the same); the message says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertRefusal {
    #[error(
        "this publishing tool is bound to a client certificate: connect with that certificate (TLS client authentication)"
    )]
    Missing,
    #[error(
        "the client certificate of this connection is not the one this publishing tool is bound to"
    )]
    Other,
}

/// Why a request conflicts with the current state: the `code` of a 409 answer. Every code is
/// listed in `docs/API.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The id or name is taken.
    AlreadyExists,
    /// The version asked for is already the current one.
    AlreadyCurrent,
    /// The checkout is not waiting for this step (approval, claim, denial).
    NotPending,
    /// The checkout has no live token.
    NotActive,
    /// An exclusive account is checked out by someone else.
    AccountCheckedOut,
    /// The incident is closed; nothing more can be done in it.
    IncidentClosed,
    /// This person already signed the incident's close; a second, different person must.
    AlreadySigned,
    /// The step is not waiting to be completed (done, failed, skipped, or automatic).
    StepNotPending,
    /// An incident marked the account's credential compromised: rotate it before unfreezing, and
    /// do not roll back to a compromised version.
    CredentialCompromised,
    /// Step-up windows are switched off (`session.step_up_minutes = 0`).
    StepUpOff,
    /// The vault has two admins already: the root key holder's confirmation no longer applies.
    BootstrapOver,
    /// The review of a break-glass release is already closed.
    ReviewClosed,
    /// A WeChat AppID's ten API quota resets for the month are spent.
    QuotaResetsSpent,
    /// The vault is not sealed (an unseal share came after the quorum opened it).
    NotSealed,
    /// The custodians' shares did not rebuild the root key (each matched its custodian, so the
    /// split itself is not this vault's); all held shares were discarded.
    UnsealFailed,
}

impl Conflict {
    pub fn as_str(self) -> &'static str {
        match self {
            Conflict::AlreadyExists => "already_exists",
            Conflict::StepUpOff => "step_up_off",
            Conflict::BootstrapOver => "bootstrap_over",
            Conflict::AlreadyCurrent => "already_current",
            Conflict::NotPending => "not_pending",
            Conflict::NotActive => "not_active",
            Conflict::AccountCheckedOut => "account_checked_out",
            Conflict::IncidentClosed => "incident_closed",
            Conflict::AlreadySigned => "already_signed",
            Conflict::StepNotPending => "step_not_pending",
            Conflict::CredentialCompromised => "credential_compromised",
            Conflict::ReviewClosed => "review_closed",
            Conflict::QuotaResetsSpent => "quota_resets_spent",
            Conflict::NotSealed => "not_sealed",
            Conflict::UnsealFailed => "unseal_failed",
        }
    }
}

impl Error {
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Error::Invalid {
            field: Some(field.to_owned()),
            detail: detail.into(),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Error::Internal(e.into())
    }

    /// A platform's refusal or failure of a call the vault made for itself (a watch read, a
    /// quota reset, an OAuth exchange): its code where the platform gave one, else -1.
    pub fn from_platform(e: crate::platforms::PlatformError) -> Self {
        Error::Platform {
            platform: e.platform(),
            code: e.code().unwrap_or(-1),
            message: e.to_string(),
        }
    }

    pub fn conflict(code: Conflict, detail: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// A `code` conflict (classified generically where the store found it) told in the words of
    /// the service that knows what the thing is; any other error passes through.
    pub fn explain(self, code: Conflict, detail: impl FnOnce() -> String) -> Self {
        match self {
            Error::Conflict { code: c, .. } if c == code => Error::conflict(code, detail()),
            other => other,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            // The services say which thing exists where they know it; this is the fallback.
            StoreError::Duplicate => Error::conflict(Conflict::AlreadyExists, "it already exists"),
            e => Error::Internal(e.into()),
        }
    }
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        Error::Internal(e.into())
    }
}
