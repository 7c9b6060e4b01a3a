use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::Error;
use crate::extract::{Ctx, bearer};
use crate::identity::Role as PersonRole;
use crate::vault::cluster::Role;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store answers on both pools and the keys open what is stored (a fresh seal, the
/// newest credential version and TOTP seed), and, in a cluster, this node is active or knows the
/// active node to forward to: see `Vault::readiness`.
pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let r = s.vault.readiness().await;
    let status = if r.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let suite = s.vault.crypto_suite();
    let mut body = json!({
        "status": if r.ready() { "ready" } else { "not_ready" },
        "store": r.store_usable,
        "keys": r.keys_usable,
        "audit": r.audit_writing,
        "crypto": { "suite": suite, "primitives": suite.describe() },
    });
    if let Some(node) = s.vault.cluster().node() {
        body["node"] = json!(node);
        match &r.role {
            Role::Active { term } => {
                body["role"] = json!("active");
                body["term"] = json!(term);
            }
            Role::Standby { leader } => {
                body["role"] = json!("standby");
                body["leader"] = match leader {
                    Some(l) => json!({ "node": l.node, "address": l.address }),
                    None => Value::Null,
                };
            }
            Role::Sole => {}
        }
    }
    (status, Json(body))
}

/// Prometheus text, to the vault's own host or to an admin session (see `telemetry`).
pub async fn metrics(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, crate::problem::Problem> {
    let admin = match bearer(&headers) {
        Some(t) if t.starts_with("mvs_") => s
            .vault
            .sessions()
            .authenticate(&t)
            .await
            .is_ok_and(|p| p.roles.any(&[PersonRole::Admin])),
        _ => false,
    };
    if !crate::telemetry::metrics_allowed(Some(ctx.peer), admin) {
        return Err(Error::NotPermitted(
            "metrics are served to the vault's own host or to an admin session".into(),
        )
        .into());
    }
    let text = s.vault.metrics_text().await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}
