use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::http::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store answers on both pools and the keyring opens a fresh seal.
pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let store_ok = s.vault.store.ping().await.is_ok();
    let probe = crate::crypto::Aad {
        table: "readyz",
        row: "probe",
        field: "probe",
        version: 0,
    };
    let keys_ok = s
        .vault
        .keys
        .seal(&probe, b"probe")
        .and_then(|ct| s.vault.keys.open(&probe, &ct))
        .is_ok();
    let status = if store_ok && keys_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({ "status": if status == StatusCode::OK { "ready" } else { "not_ready" }, "store": store_ok, "keys": keys_ok }),
        ),
    )
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
}
