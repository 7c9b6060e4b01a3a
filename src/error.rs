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
    TotpInvalid(String),
    #[error("{0}")]
    NotPermitted(String),
    #[error("the requester of a checkout cannot approve it")]
    SelfApproval,
    #[error("this payload's SHA-256 is not among the digests approved for the checkout")]
    ContentNotApproved,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("too many failed attempts; locked until {until}")]
    UserLocked { until: String },
    #[error("account {0} is frozen")]
    AccountFrozen(String),
    #[error("too many requests; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("{platform} answered error {code}: {message}")]
    Platform {
        platform: &'static str,
        code: i64,
        message: String,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Internal(e.into())
    }
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        Error::Internal(e.into())
    }
}
