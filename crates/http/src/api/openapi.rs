//! The OpenAPI document of `/api/v1`, derived from the code: each handler's `#[utoipa::path]`
//! and the types it takes and gives (`ToSchema` where each type lives). The router registers
//! every handler through `utoipa_axum::routes!`, which adds its route and its document entry
//! together, so a served route cannot be missing from the document. What holds for every
//! operation alike is added here once: the problem+json error answers, the `x-request-id` header,
//! and the security schemes.

use std::sync::Arc;

use axum::Extension;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder,
};

use crate::extract::SESSION_COOKIE;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mediavault API",
        version = "1",
        description = "Hardened credential vault for official new-media accounts; docs/API.md is \
            the contract in words. Outside this base path the server also answers the probes \
            GET /healthz and GET /readyz, and GET /metrics (Prometheus text; only to loopback \
            callers or with an admin session, 403 otherwise).",
    ),
    servers((url = "/api/v1")),
    components(schemas(crate::problem::ProblemBody)),
)]
struct Base;

/// The document as served, rendered once when the router is built.
#[derive(Clone)]
pub struct Served(Arc<str>);

/// Where the route finds the document: it is complete only once the router that serves it has
/// been collected, so the route is given this slot and the slot is filled right after. Layered
/// on this one route alone: an extension layer on the whole API would be one more boxed level
/// that axum clones on every call of every route.
#[derive(Clone, Default)]
pub struct Slot(Arc<std::sync::OnceLock<Served>>);

impl Slot {
    pub fn fill(&self, served: Served) {
        // Filled once, by the one router that built it.
        let _ = self.0.set(served);
    }
}

/// The document with what every operation shares; the routes come from the router.
pub fn base() -> Document {
    Base::openapi()
}

/// Completes the document the router collected and renders it.
pub fn finish(mut doc: Document) -> Served {
    let components = doc.components.get_or_insert_with(Default::default);
    let bearer = |prefix: &str, what: &str| {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(format!("`Authorization: Bearer {prefix}…`: {what}"));
        RefOr::T(SecurityScheme::Http(http))
    };
    components.security_schemes.insert(
        "session".into(),
        bearer("mvs_", "a person's session, from `POST /auth/login`"),
    );
    components.security_schemes.insert(
        "session_cookie".into(),
        RefOr::T(SecurityScheme::ApiKey(ApiKey::Cookie(
            ApiKeyValue::with_description(
                SESSION_COOKIE,
                "the console's session cookie (the same `mvs_…` session); read only when no \
                 Authorization header is sent",
            ),
        ))),
    );
    components.security_schemes.insert(
        "client".into(),
        bearer("mvc_", "a publishing tool's client key"),
    );
    components.security_schemes.insert(
        "token".into(),
        bearer("mvt_", "a publishing token: one checkout of one account"),
    );
    let request_id = || {
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some("the request's id, also in its audit entry"))
            .build()
    };
    components.responses.insert(
        "Problem".into(),
        RefOr::T(
            ResponseBuilder::new()
                .description("an error, as problem+json (RFC 9457)")
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .header("x-request-id", request_id())
                .build(),
        ),
    );
    // The router's catch-all segment is `{*path}`; OpenAPI names it `{path}`.
    let paths = std::mem::take(&mut doc.paths.paths);
    for (path, mut item) in paths {
        let path = path.replace("{*", "{");
        for (method, op) in [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("patch", &mut item.patch),
            ("delete", &mut item.delete),
        ] {
            let Some(op) = op else { continue };
            // Handlers are named per module (`list`, `get_one`): the id is the route's, unique.
            let words: Vec<&str> = path
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect();
            op.operation_id = Some(format!("{method}_{}", words.join("_")));
            for response in op.responses.responses.values_mut() {
                if let RefOr::T(r) = response {
                    r.headers
                        .entry("x-request-id".into())
                        .or_insert_with(|| RefOr::T(request_id()));
                }
            }
            for range in ["4XX", "5XX"] {
                op.responses
                    .responses
                    .entry(range.into())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name("Problem")));
            }
        }
        doc.paths.paths.insert(path, item);
    }
    Served(match serde_json::to_string(&doc) {
        Ok(json) => json.into(),
        // Nothing in the document can fail to serialise (string keys, no floats); were it ever
        // to, the route answers an empty document rather than the server failing to start.
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document could not be rendered");
            "{}".into()
        }
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "the OpenAPI 3.1 document of this API", body = Object, content_type = "application/json")),
)]
pub async fn openapi(Extension(slot): Extension<Slot>) -> Response {
    let Some(doc) = slot.0.get() else {
        // Unreachable: the router is served only after `api::routes` filled the slot.
        return crate::problem::ErrorResponse::into_response(crate::error::Error::internal(
            anyhow::anyhow!("the OpenAPI document is not ready"),
        ));
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.0.to_string(),
    )
        .into_response()
}
