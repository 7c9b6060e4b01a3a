//! Rate limits, in tiers, keyed by the client's address (and, for token calls, by the token too):
//! login and checkout are strict, token and proxy calls are per token as well, everything else is
//! generous. Refusals are 429 problem+json with `Retry-After`, and since these layers sit inside
//! the request-context middleware, each refusal is audited like any other answer.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use governor::middleware::NoOpMiddleware;
use tower_governor::GovernorLayer;
use tower_governor::errors::GovernorError;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use super::context::RequestCtx;
use crate::error::Error;
use crate::problem::ErrorResponse as _;

/// The peer address the request-context middleware recorded.
#[derive(Debug, Clone, Copy)]
pub struct PeerKey;

impl KeyExtractor for PeerKey {
    type Key = IpAddr;

    fn name(&self) -> &'static str {
        "peer address"
    }

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        req.extensions()
            .get::<RequestCtx>()
            .map(|c| c.peer)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// The bearer credential, reduced to a digest so the limiter never holds a token. It is the token
/// as authentication reads it, not the raw header: `bearer` in lower case or extra spaces must not
/// buy a fresh bucket. Requests without one share the empty key (they fail authentication anyway,
/// and the per-address tier still counts them).
#[derive(Debug, Clone, Copy)]
pub struct BearerKey;

impl KeyExtractor for BearerKey {
    type Key = [u8; 16];

    fn name(&self) -> &'static str {
        "bearer token"
    }

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        let token = super::extract::bearer(req.headers()).unwrap_or_default();
        let digest = crate::crypto::sha256(token.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        Ok(key)
    }
}

pub type Layer<K> = GovernorLayer<K, NoOpMiddleware<governor::clock::QuantaInstant>, Body>;

fn refused(e: GovernorError) -> axum::http::Response<Body> {
    match e {
        GovernorError::TooManyRequests { wait_time, .. } => Error::RateLimited {
            retry_after: wait_time.max(1),
        }
        .into_response(),
        _ => Error::internal(anyhow::anyhow!("rate limiter could not key the request"))
            .into_response(),
    }
}

/// The general tier: per address, for every route no stricter tier covers.
pub fn general(limits: &crate::config::RateLimitConfig) -> Layer<PeerKey> {
    layer(
        PeerKey,
        limits.general_per_second,
        Duration::from_secs(1),
        limits.general_burst,
    )
}

/// The login tier: per address, strict. One instance serves the API's and the console's sign-in
/// (and step-up), so switching doors buys no fresh attempts.
pub fn login(limits: &crate::config::RateLimitConfig) -> Layer<PeerKey> {
    layer(
        PeerKey,
        limits.login_per_minute,
        Duration::from_secs(60),
        limits.login_burst,
    )
}

/// `count` requests per `period`, bursts of `burst`.
pub fn layer<K: KeyExtractor>(key: K, count: u32, period: Duration, burst: u32) -> Layer<K> {
    let per_ms = (period.as_millis() as u64 / u64::from(count.max(1))).max(1);
    let config: Option<GovernorConfig<K, NoOpMiddleware<governor::clock::QuantaInstant>>> =
        GovernorConfigBuilder::default()
            .per_millisecond(per_ms)
            .burst_size(burst.max(1))
            .key_extractor(key)
            .finish();
    // finish() only returns None for a zero period or burst, which the max(1) calls above rule
    // out, so this cannot fire.
    #[allow(clippy::expect_used)]
    let config = config.expect("period and burst are at least 1");
    GovernorLayer::new(Arc::new(config)).error_handler(refused)
}
