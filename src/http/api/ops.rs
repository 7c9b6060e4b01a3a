use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::http::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store answers on both pools and the keys open what is stored (a fresh seal, the
/// newest credential version and TOTP seed): see `Vault::readiness`.
pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let r = s.vault.readiness().await;
    let status = if r.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({ "status": if r.ready() { "ready" } else { "not_ready" }, "store": r.store, "keys": r.keys }),
        ),
    )
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
}
