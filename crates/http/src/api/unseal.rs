//! `/api/v1/unseal`: a sealed-mode vault's custodians submit their shares of the root key. These
//! routes answer while the vault is sealed (nothing else does but health) and take no session:
//! the share is the credential. Unsealed, the status says so and a submission is a conflict.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::crypto::SecretString;
use crate::error::{Conflict, Error, Result};
use crate::extract::ApiJson;
use crate::vault::seal::{Submitter, UnsealStatus, Unsealer};

/// The peer's address, if the connection has one (every served one does).
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// Where the unsealer is: absent for a vault whose root key is a file.
pub type Seal = Option<Extension<Arc<Unsealer>>>;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsealBody {
    /// The custodian's name, as `init --custodian` gave it.
    custodian: String,
    /// The share as dealt: `mvshare1-XX-<64 hex digits>`.
    #[schema(value_type = String, format = Password)]
    share: SecretString,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// Who resets (recorded with the submissions).
    custodian: String,
}

/// Whether the vault is sealed, and the progress of the current attempt.
#[derive(Serialize, ToSchema)]
pub struct UnsealAnswer {
    sealed: bool,
    /// Sealed mode: the root key is held by custodians (false: a root key file).
    sealed_mode: bool,
    /// Shares needed (T); 0 without sealed mode.
    threshold: u8,
    /// Shares dealt (N).
    shares: usize,
    /// Custodians whose shares are held now.
    submitted: Vec<String>,
    /// When the held shares are discarded (unix seconds).
    expires_at: Option<i64>,
}

impl From<UnsealStatus> for UnsealAnswer {
    fn from(s: UnsealStatus) -> Self {
        Self {
            sealed: s.sealed,
            sealed_mode: true,
            threshold: s.threshold,
            shares: s.shares,
            submitted: s.submitted,
            expires_at: s.expires_at,
        }
    }
}

fn submitter(custodian: String, peer: Option<SocketAddr>) -> Submitter {
    Submitter {
        custodian,
        source_ip: peer.map(|p| p.ip().to_string()).unwrap_or_default(),
        request_id: crate::context::current_request_id().unwrap_or_default(),
    }
}

#[utoipa::path(
    get,
    path = "/unseal",
    tag = "operations",
    responses((status = 200, description = "sealed or not, and the shares held", body = UnsealAnswer)),
)]
pub async fn status(seal: Seal) -> Result<Json<UnsealAnswer>> {
    let Some(Extension(u)) = seal else {
        return Ok(Json(UnsealAnswer {
            sealed: false,
            sealed_mode: false,
            threshold: 0,
            shares: 0,
            submitted: Vec::new(),
            expires_at: None,
        }));
    };
    Ok(Json(u.status().await?.into()))
}

#[utoipa::path(
    post,
    path = "/unseal",
    tag = "operations",
    request_body = UnsealBody,
    responses((status = 200, description = "the share was taken; `sealed: false` once the quorum opened the vault", body = UnsealAnswer)),
)]
pub async fn submit(
    seal: Seal,
    Peer(peer): Peer,
    ApiJson(b): ApiJson<UnsealBody>,
) -> Result<Json<UnsealAnswer>> {
    let Some(Extension(u)) = seal else {
        return Err(not_sealed_mode());
    };
    let by = submitter(b.custodian, peer);
    Ok(Json(u.submit(by, b.share).await?.into()))
}

#[utoipa::path(
    delete,
    path = "/unseal",
    tag = "operations",
    request_body = ResetBody,
    responses((status = 200, description = "every held share was discarded", body = UnsealAnswer)),
)]
pub async fn reset(
    seal: Seal,
    Peer(peer): Peer,
    ApiJson(b): ApiJson<ResetBody>,
) -> Result<Json<UnsealAnswer>> {
    let Some(Extension(u)) = seal else {
        return Err(not_sealed_mode());
    };
    let by = submitter(b.custodian, peer);
    Ok(Json(u.reset(&by).await?.into()))
}

fn not_sealed_mode() -> crate::problem::Problem {
    Error::conflict(
        Conflict::NotSealed,
        "this vault's root key is a file (not sealed mode): there is nothing to unseal",
    )
    .into()
}
