//! The server of a sealed vault: health, the unseal API and the console's unseal page answer;
//! every other route answers 503 `sealed` (problem+json). Once the custodians' quorum opens the
//! vault, the full router takes over every request (see [`Switch`]).

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;
use tower::ServiceExt;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::limits;
use crate::vault::seal::Unsealer;

/// Where the full router goes once the vault is open; until then, the sealed one answers.
pub type Switch = Arc<OnceLock<Router>>;

/// The router a sealed-mode server starts with: answers as sealed until `open` is set.
pub fn router(unsealer: Arc<Unsealer>, open: Switch) -> Router {
    let cfg = Arc::clone(unsealer.config());
    let general = limits::general(&cfg.rate_limits);
    let sealed = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/api/v1/unseal",
            get(crate::api::unseal::status)
                .post(crate::api::unseal::submit)
                .delete(crate::api::unseal::reset)
                .layer(general.clone()),
        )
        .nest("/console", crate::console::unseal::routes().layer(general))
        .fallback(sealed)
        .layer(axum::middleware::from_fn(request_context))
        .layer(Extension(unsealer))
        .layer(axum::extract::DefaultBodyLimit::max(cfg.limits.body_bytes))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(crate::hsts(&cfg));
    Router::new().fallback_service(tower::service_fn(move |req: Request| {
        // The request (its peer address and client certificate included) goes whole to
        // whichever router is in force now.
        let to = open.get().cloned().unwrap_or_else(|| sealed.clone());
        async move { Ok::<_, Infallible>(to.oneshot(req).await.into_response()) }
    }))
}

/// The full router of a sealed-mode vault once open: `/api/v1/unseal` still answers (unsealed).
pub fn opened(full: Router, unsealer: Arc<Unsealer>) -> Router {
    full.layer(Extension(unsealer))
}

/// The request's id and peer, as the full router's outermost middleware gives them (the rate
/// limiter keys on the peer; submissions are recorded with both). Nothing is chained here: the
/// audit key is locked while sealed (see `vault::seal`).
async fn request_context(mut req: Request, next: axum::middleware::Next) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let ctx = crate::context::RequestCtx::new(crate::context::new_request_id(), peer)
        .with_http(req.method().as_str(), req.uri().path());
    let id = ctx.request_id.clone();
    req.extensions_mut().insert(ctx);
    let mut resp = crate::context::with_request_id(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut()
            .insert(crate::context::REQUEST_ID_HEADER, v);
    }
    resp
}

/// Alive, and sealed.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "sealed": true }))
}

/// Not ready while sealed: a load balancer sends nothing here until the custodians unseal it.
async fn readyz() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "sealed", "sealed": true })),
    )
}

async fn sealed(req: Request) -> Response {
    // A person opening the console is shown the way in, not a JSON error.
    let path = req.uri().path();
    if req.method() == axum::http::Method::GET
        && (path == "/console" || path.starts_with("/console/"))
    {
        return axum::response::Redirect::to("/console/unseal").into_response();
    }
    crate::problem::plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "sealed",
        "the vault is sealed: its custodians must submit their key shares (`mediavault unseal`, POST /api/v1/unseal or /console/unseal)",
    )
}
