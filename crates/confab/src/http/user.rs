//! The user listener (HTTPS): a user's own data under `/api/user/v1`, authenticated with
//! HTTP Digest (RFC 7616) against the same HA1 values SIP uses. The digest username is the
//! user part of the address and the realm is its domain.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;

use confab_core::{Address, Change, Ha1Set, UserChanges};

use crate::http::error::{ApiError, ApiJson};
use crate::http::views::{self, UserView, double_option};
use crate::http::{AppState, RouteDef, routes};

/// The user routes. The OpenAPI file must list exactly these.
pub fn routes() -> Vec<RouteDef<AppState>> {
    routes![
        GET "/api/user/v1/me" => me,
        PATCH "/api/user/v1/me" => modify_me,
        PUT "/api/user/v1/me/password" => change_password,
    ]
}

/// The user router.
pub fn router(state: AppState) -> axum::Router {
    crate::http::build_router("user", routes(), state)
}

/// The authenticated user of a request.
#[derive(Debug)]
pub struct DigestUser {
    /// Their address.
    pub address: Address,
}

impl FromRequestParts<AppState> for DigestUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        crate::http::digest::authenticate(parts, s).await
    }
}

async fn me(user: DigestUser, State(s): State<AppState>) -> Result<Json<UserView>, ApiError> {
    match s.users.get_user(&user.address).await? {
        Some(u) => Ok(Json(UserView::from(&u))),
        None => Err(ApiError::not_found("your account was removed")),
    }
}

/// `PATCH /api/user/v1/me` body: a user may change their display name only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModifyMe {
    /// New display name, or `null` to remove it.
    #[serde(default, deserialize_with = "double_option")]
    pub display_name: Option<Option<String>>,
}

async fn modify_me(
    user: DigestUser,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<ModifyMe>,
) -> Result<Json<UserView>, ApiError> {
    let changes = UserChanges {
        display_name: match body.display_name {
            None => Change::Keep,
            Some(None) => Change::Clear,
            Some(Some(t)) => Change::Set(views::parse_display_name(&t)?),
        },
        ..UserChanges::default()
    };
    let u = s.users.modify_user(&user.address, changes).await?;
    Ok(Json(UserView::from(&u)))
}

/// `PUT /api/user/v1/me/password` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The new password.
    pub password: String,
}

async fn change_password(
    user: DigestUser,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    views::check_password(&body.password)?;
    let ha1 = Ha1Set::compute(user.address.user(), user.address.domain(), &body.password);
    s.users.set_password(&user.address, ha1).await?;
    tracing::info!(address = %user.address, "password changed by its user");
    Ok(StatusCode::NO_CONTENT)
}
