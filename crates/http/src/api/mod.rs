//! `/api/v1`: the contract in API.md, grouped by rate-limit tier.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod checkouts;
pub mod clients;
pub mod incidents;
pub mod ops;
pub mod platform;
pub mod posts;
pub mod users;

use std::time::Duration;

use axum::Router;
use axum::routing::{delete, get, post};

use super::AppState;
use super::limits::{BearerKey, Layer, PeerKey, layer};
use crate::config::RateLimitConfig;

/// `general` is the general tier's layer, shared with the routes outside every tier.
pub fn routes(limits: &RateLimitConfig, general: Layer<PeerKey>) -> Router<AppState> {
    let minute = Duration::from_secs(60);
    let second = Duration::from_secs(1);
    let login = Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/step-up", post(auth::step_up))
        .layer(layer(
            PeerKey,
            limits.login_per_minute,
            minute,
            limits.login_burst,
        ));
    let checkout = Router::new()
        .route("/checkouts", post(checkouts::create).get(checkouts::list))
        .route("/checkouts/{id}/claim", post(checkouts::claim))
        .layer(layer(
            PeerKey,
            limits.checkout_per_minute,
            minute,
            limits.checkout_burst,
        ));
    let token = Router::new()
        .route("/token", get(checkouts::introspect))
        .route("/checkouts/{id}/publish", post(checkouts::publish))
        .route(
            "/platform/{account}/{*path}",
            get(platform::proxy).post(platform::proxy),
        )
        .route("/platform-token", post(platform::platform_token))
        .route("/credential", get(platform::credential))
        .route("/credential/totp", get(platform::credential_totp))
        .layer(layer(
            BearerKey,
            limits.token_per_second,
            second,
            limits.token_burst,
        ))
        .layer(layer(
            PeerKey,
            limits.token_per_second.saturating_mul(4),
            second,
            limits.token_burst.saturating_mul(4),
        ));
    let general = Router::new()
        .route("/auth/logout", post(auth::logout))
        .route("/auth/session", get(auth::session))
        .route("/users", post(users::create).get(users::list))
        .route("/users/import", post(users::import))
        .route("/users/{username}", get(users::get_one))
        .route("/users/{username}/disable", post(users::disable))
        .route("/users/{username}/enable", post(users::enable))
        .route("/users/{username}/unlock", post(users::unlock))
        .route("/users/{username}/reset-totp", post(users::reset_totp))
        .route(
            "/users/{username}/reset-password",
            post(users::reset_password),
        )
        .route("/users/{username}/roles", post(users::grant_role))
        .route(
            "/users/{username}/roles/{role}/confirm",
            post(users::confirm_role),
        )
        .route("/clients", post(clients::create).get(clients::list))
        .route("/clients/{id}", delete(clients::delete))
        .route("/accounts", post(accounts::create).get(accounts::list))
        .route("/accounts/{id}", get(accounts::get_one))
        .route("/accounts/{id}/rotate", post(accounts::rotate))
        .route("/accounts/{id}/versions", get(accounts::versions))
        .route("/accounts/{id}/rollback", post(accounts::rollback))
        .route("/accounts/{id}/freeze", post(accounts::freeze))
        .route("/accounts/{id}/unfreeze", post(accounts::unfreeze))
        .route("/checkouts/{id}", get(checkouts::get_one))
        .route("/checkouts/{id}/approve", post(checkouts::approve))
        .route("/checkouts/{id}/deny", post(checkouts::deny))
        .route("/checkouts/{id}/checkin", post(checkouts::checkin))
        .route("/policies", get(accounts::policies))
        .route("/playbooks", get(incidents::playbooks))
        .route("/incidents", post(incidents::open).get(incidents::list))
        .route("/incidents/{id}", get(incidents::get_one))
        .route(
            "/incidents/{id}/steps/{n}/complete",
            post(incidents::complete_step),
        )
        .route("/incidents/{id}/close", post(incidents::close))
        .route("/incidents/{id}/report", get(incidents::report))
        .route("/posts", get(posts::list))
        .route("/posts/export", get(posts::export))
        .route("/posts/{id}", get(posts::get_one))
        .route("/audit", get(audit::list))
        .route("/audit/verify", get(audit::verify))
        .route("/audit/export", get(audit::export))
        .route("/openapi.json", get(ops::openapi))
        .layer(general);
    Router::new()
        .merge(login)
        .merge(checkout)
        .merge(token)
        .merge(general)
}
