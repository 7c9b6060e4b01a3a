//! `/api/v1`: the contract in API.md, grouped by rate-limit tier. Every handler is registered
//! with `routes!`, which adds its route and its OpenAPI entry (`openapi`) together.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod checkouts;
pub mod clients;
pub mod incidents;
pub mod openapi;
pub mod ops;
pub mod platform;
pub mod posts;
pub mod unseal;
pub mod users;

use std::time::Duration;

use axum::{Extension, Router};
use tower::ServiceBuilder;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::limits::{BearerKey, Layer, PeerKey, layer};
use crate::config::RateLimitConfig;

/// `general` is the general tier's layer, shared with the routes outside every tier; `login` the
/// login tier's, shared with the console's sign-in. Returns the routes, serving their own OpenAPI
/// document at `/openapi.json`.
pub fn routes(
    limits: &RateLimitConfig,
    general: Layer<PeerKey>,
    login: Layer<PeerKey>,
) -> Router<AppState> {
    let slot = openapi::Slot::default();
    let (router, doc) = documented(limits, general, login, slot.clone()).split_for_parts();
    slot.fill(openapi::finish(doc));
    router
}

fn documented(
    limits: &RateLimitConfig,
    general: Layer<PeerKey>,
    login: Layer<PeerKey>,
    doc: openapi::Slot,
) -> OpenApiRouter<AppState> {
    let minute = Duration::from_secs(60);
    let second = Duration::from_secs(1);
    let login = OpenApiRouter::new()
        .routes(routes!(auth::login))
        .routes(routes!(auth::step_up))
        .layer(login);
    let checkout = OpenApiRouter::new()
        .routes(routes!(checkouts::create, checkouts::list))
        .routes(routes!(checkouts::claim))
        .layer(layer(
            PeerKey,
            limits.checkout_per_minute,
            minute,
            limits.checkout_burst,
        ));
    // Per address, then per token, as one layer: each `layer` call on a router boxes its routes
    // once more, and axum clones every box below a route on each of its calls (the token routes
    // are the hot path).
    let token_tiers = ServiceBuilder::new()
        .layer(layer(
            PeerKey,
            limits.token_per_second.saturating_mul(4),
            second,
            limits.token_burst.saturating_mul(4),
        ))
        .layer(layer(
            BearerKey,
            limits.token_per_second,
            second,
            limits.token_burst,
        ));
    let token = OpenApiRouter::new()
        .routes(routes!(checkouts::introspect))
        .routes(routes!(checkouts::publish))
        .routes(routes!(platform::proxy))
        .routes(routes!(platform::platform_token))
        .routes(routes!(platform::credential))
        .routes(routes!(platform::credential_totp))
        .layer(token_tiers);
    let document = OpenApiRouter::new()
        .routes(routes!(openapi::openapi))
        .layer(Extension(doc))
        .layer(general.clone());
    let general = OpenApiRouter::new()
        .routes(routes!(auth::logout))
        .routes(routes!(auth::session))
        .routes(routes!(users::create, users::list))
        .routes(routes!(users::import))
        .routes(routes!(users::get_one))
        .routes(routes!(users::disable))
        .routes(routes!(users::enable))
        .routes(routes!(users::unlock))
        .routes(routes!(users::reset_totp))
        .routes(routes!(users::reset_password))
        .routes(routes!(users::grant_role))
        .routes(routes!(users::confirm_role))
        .routes(routes!(clients::create, clients::list))
        .routes(routes!(clients::delete))
        .routes(routes!(clients::set_certificate))
        .routes(routes!(accounts::create, accounts::list))
        .routes(routes!(accounts::get_one))
        .routes(routes!(accounts::rotate))
        .routes(routes!(accounts::versions))
        .routes(routes!(accounts::rollback))
        .routes(routes!(accounts::freeze))
        .routes(routes!(accounts::unfreeze))
        .routes(routes!(accounts::clear_quota))
        .routes(routes!(checkouts::get_one))
        .routes(routes!(checkouts::approve))
        .routes(routes!(checkouts::deny))
        .routes(routes!(checkouts::break_glass))
        .routes(routes!(checkouts::break_glass_list))
        .routes(routes!(checkouts::break_glass_close))
        .routes(routes!(checkouts::checkin))
        .routes(routes!(accounts::policies))
        .routes(routes!(incidents::playbooks))
        .routes(routes!(incidents::open, incidents::list))
        .routes(routes!(incidents::get_one))
        .routes(routes!(incidents::complete_step))
        .routes(routes!(incidents::close))
        .routes(routes!(incidents::report))
        .routes(routes!(posts::list))
        .routes(routes!(posts::export))
        .routes(routes!(posts::get_one))
        .routes(routes!(audit::list))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::export))
        .routes(routes!(unseal::status, unseal::submit, unseal::reset))
        .layer(general);
    OpenApiRouter::with_openapi(openapi::base())
        .merge(login)
        .merge(checkout)
        .merge(token)
        .merge(general)
        .merge(document)
}
