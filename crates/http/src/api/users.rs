use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::crypto::SecretString;
use crate::error::Result;
use crate::extract::{ApiJson, ApiPath, Session};
use crate::identity::roster::RosterEntry;
use crate::identity::users::{NewUserInput, UserView};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    display_name: String,
    /// `approver` and `admin` wait in `pending_roles` for a second admin.
    roles: Vec<String>,
    /// 10-256 characters.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    /// The admin's current code, unless the session's step-up window is open.
    totp: Option<String>,
    /// 处室, at most 64 characters.
    department: Option<String>,
}

/// A new person with the TOTP enrolment, shown this once.
#[derive(Serialize, ToSchema)]
pub struct Enrolled {
    username: String,
    display_name: String,
    roles: Vec<String>,
    pending_roles: Vec<String>,
    department: Option<String>,
    /// The `otpauth://` enrolment.
    totp_uri: String,
    /// Its base32 seed.
    totp_secret: String,
}

impl Enrolled {
    fn of(e: &crate::identity::users::Enrolment) -> Self {
        Enrolled {
            username: e.user.username.clone(),
            display_name: e.user.display_name.clone(),
            roles: e.user.roles.clone(),
            pending_roles: e.user.pending_roles.clone(),
            department: e.user.department.clone(),
            totp_uri: e.totp_uri.expose().to_owned(),
            totp_secret: e.totp_secret.expose().to_owned(),
        }
    }
}

#[utoipa::path(
    post,
    path = "/users",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    request_body = CreateUser,
    responses((status = 201, description = "created; the enrolment is shown once", body = Enrolled)),
)]
pub async fn create(
    State(s): State<AppState>,
    Session(me): Session,
    ApiJson(b): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<Enrolled>)> {
    let e = s
        .vault
        .people()
        .create_in(
            &me,
            NewUserInput {
                username: b.username,
                display_name: b.display_name,
                roles: b.roles,
                password: b.password,
            },
            b.department,
            b.totp.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(Enrolled::of(&e))))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// One to two hundred people; one bad row and nobody is created.
    users: Vec<RosterEntry>,
    totp: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Imported {
    created: Vec<ImportedUser>,
}

/// A person of the roster with a generated initial password and TOTP enrolment, shown once.
#[derive(Serialize, ToSchema)]
pub struct ImportedUser {
    #[serde(flatten)]
    enrolled: Enrolled,
    password: String,
}

/// Onboarding in one go: every person of the roster, with one step-up; each enrolment (and
/// initial password) is in the answer, once.
#[utoipa::path(
    post,
    path = "/users/import",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    request_body = ImportBody,
    responses((status = 201, description = "everyone was created", body = Imported)),
)]
pub async fn import(
    State(s): State<AppState>,
    Session(me): Session,
    ApiJson(b): ApiJson<ImportBody>,
) -> Result<(StatusCode, Json<Imported>)> {
    let made = s
        .vault
        .people()
        .import(&me, b.users, b.totp.as_deref())
        .await?;
    let created = made
        .iter()
        .map(|m| ImportedUser {
            enrolled: Enrolled::of(&m.enrolment),
            password: m.password.expose().to_owned(),
        })
        .collect();
    Ok((StatusCode::CREATED, Json(Imported { created })))
}

#[utoipa::path(
    get,
    path = "/users",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    responses((status = 200, description = "every person; never a secret", body = Vec<UserView>)),
)]
pub async fn list(State(s): State<AppState>, Session(me): Session) -> Result<Json<Vec<UserView>>> {
    Ok(Json(s.vault.people().list(&me).await?))
}

#[utoipa::path(
    get,
    path = "/users/{username}",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    params(("username" = String, Path, description = "the person's username")),
    responses((status = 200, description = "the person", body = UserView)),
)]
pub async fn get_one(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<UserView>> {
    Ok(Json(s.vault.people().get(&me, &username).await?))
}

#[utoipa::path(
    post,
    path = "/users/{username}/disable",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    params(("username" = String, Path, description = "the person's username")),
    responses((status = 200, description = "disabled: sessions ended, checkouts revoked", body = UserView)),
)]
pub async fn disable(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<UserView>> {
    Ok(Json(s.vault.people().disable(&me, &username).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    role: String,
    totp: Option<String>,
}

#[utoipa::path(
    post,
    path = "/users/{username}/roles",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    params(("username" = String, Path, description = "the person's username")),
    request_body = GrantBody,
    responses((status = 200, description = "granted", body = UserView), (status = 202, description = "`approver` or `admin`: in `pending_roles` until a second admin confirms", body = UserView)),
)]
pub async fn grant_role(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(username): ApiPath<String>,
    ApiJson(b): ApiJson<GrantBody>,
) -> Result<(StatusCode, Json<UserView>)> {
    let (view, pending) = s
        .vault
        .people()
        .grant_role(&me, &username, &b.role, b.totp.as_deref())
        .await?;
    let status = if pending {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    totp: Option<String>,
}

#[utoipa::path(
    post,
    path = "/users/{username}/roles/{role}/confirm",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    params(("username" = String, Path, description = "the person's username"), ("role" = String, Path, description = "the pending role")),
    request_body = ConfirmBody,
    responses((status = 200, description = "confirmed by a second admin", body = UserView)),
)]
pub async fn confirm_role(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath((username, role)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<ConfirmBody>,
) -> Result<Json<UserView>> {
    Ok(Json(
        s.vault
            .people()
            .confirm_role(&me, &username, &role, b.totp.as_deref())
            .await?,
    ))
}

/// A change that needs the admin's code, unless the step-up window is open.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUp {
    totp: Option<String>,
}

#[utoipa::path(
    post,
    path = "/users/{username}/unlock",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    params(("username" = String, Path, description = "the person's username")),
    request_body = StepUp,
    responses((status = 200, description = "the lock and the failure count cleared", body = UserView)),
)]
pub async fn unlock(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(username): ApiPath<String>,
    ApiJson(b): ApiJson<StepUp>,
) -> Result<Json<UserView>> {
    Ok(Json(
        s.vault
            .people()
            .unlock(&me, &username, b.totp.as_deref())
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/users/{username}/enable",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    params(("username" = String, Path, description = "the person's username")),
    request_body = StepUp,
    responses((status = 200, description = "may sign in again", body = UserView)),
)]
pub async fn enable(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(username): ApiPath<String>,
    ApiJson(b): ApiJson<StepUp>,
) -> Result<Json<UserView>> {
    Ok(Json(
        s.vault
            .people()
            .enable(&me, &username, b.totp.as_deref())
            .await?,
    ))
}

/// A new TOTP seed, shown once.
#[derive(Serialize, ToSchema)]
pub struct NewTotp {
    username: String,
    roles: Vec<String>,
    pending_roles: Vec<String>,
    totp_uri: String,
    /// Base32, what `mediavault totp-code --secret` takes.
    totp_secret: String,
}

#[utoipa::path(
    post,
    path = "/users/{username}/reset-totp",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    params(("username" = String, Path, description = "the person's username")),
    request_body = StepUp,
    responses((status = 200, description = "a new seed; the lock cleared, every session of the person ended", body = NewTotp)),
)]
pub async fn reset_totp(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(username): ApiPath<String>,
    ApiJson(b): ApiJson<StepUp>,
) -> Result<Json<NewTotp>> {
    let e = s
        .vault
        .people()
        .reset_totp(&me, &username, b.totp.as_deref())
        .await?;
    Ok(Json(NewTotp {
        username: e.user.username,
        roles: e.user.roles,
        pending_roles: e.user.pending_roles,
        totp_uri: e.totp_uri.expose().to_owned(),
        totp_secret: e.totp_secret.expose().to_owned(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// 10-256 characters.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    totp: Option<String>,
}

#[utoipa::path(
    post,
    path = "/users/{username}/reset-password",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    params(("username" = String, Path, description = "the person's username")),
    request_body = ResetPassword,
    responses((status = 200, description = "the new password is set; the lock cleared, every session of the person ended", body = UserView)),
)]
pub async fn reset_password(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(username): ApiPath<String>,
    ApiJson(b): ApiJson<ResetPassword>,
) -> Result<Json<UserView>> {
    Ok(Json(
        s.vault
            .people()
            .reset_password(&me, &username, b.password, b.totp.as_deref())
            .await?,
    ))
}
