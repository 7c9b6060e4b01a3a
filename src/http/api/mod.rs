//! `/api/v1`: the contract in API.md.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod ops;
pub mod users;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/users", post(users::create).get(users::list))
        .route("/users/{username}", get(users::get_one))
        .route("/users/{username}/disable", post(users::disable))
        .route("/accounts", post(accounts::create).get(accounts::list))
        .route("/accounts/{id}", get(accounts::get_one))
        .route("/accounts/{id}/rotate", post(accounts::rotate))
        .route("/accounts/{id}/versions", get(accounts::versions))
        .route("/accounts/{id}/rollback", post(accounts::rollback))
        .route("/accounts/{id}/freeze", post(accounts::freeze))
        .route("/accounts/{id}/unfreeze", post(accounts::unfreeze))
        .route("/audit", get(audit::list))
        .route("/audit/verify", get(audit::verify))
        .route("/audit/export", get(audit::export))
        .route("/openapi.json", get(ops::openapi))
}
