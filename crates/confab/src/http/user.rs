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
        GET "/api/user/v1/turn-credentials" => crate::http::turn::user_turn_credentials,
        GET "/api/user/v1/contacts" => crate::http::contacts::user_list,
        POST "/api/user/v1/contacts" => crate::http::contacts::user_add,
        DELETE "/api/user/v1/contacts/{contact}" => crate::http::contacts::user_remove,
        GET "/api/user/v1/presence-policy" => crate::http::contacts::user_policy,
        PATCH "/api/user/v1/presence-policy" => crate::http::contacts::user_patch_policy,
        PUT "/api/user/v1/presence-policy/rules/{watcher}" => crate::http::contacts::user_put_rule,
        DELETE "/api/user/v1/presence-policy/rules/{watcher}" => crate::http::contacts::user_delete_rule,
        GET "/api/user/v1/presence-policy/pending" => crate::http::contacts::user_pending,
        POST "/api/user/v1/presence-policy/pending/{watcher}" => crate::http::contacts::user_decide,
    ]
}

/// The user router: every route requires HTTP Digest authentication (see
/// [`crate::http::digest`]).
pub fn router(state: AppState) -> axum::Router {
    let auth_state = state.clone();
    crate::http::build_router_with("user", routes(), state, move |r| {
        r.route_layer(axum::middleware::from_fn_with_state(
            auth_state,
            crate::http::digest::require_digest,
        ))
    })
}

/// The authenticated user of a request (put there by the digest middleware).
#[derive(Debug, Clone)]
pub struct DigestUser {
    /// Their address.
    pub address: Address,
}

impl<S: Send + Sync> FromRequestParts<S> for DigestUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<DigestUser>()
            .cloned()
            .ok_or_else(|| ApiError::internal("route without digest authentication"))
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
