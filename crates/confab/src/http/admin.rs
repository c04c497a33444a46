//! The admin listener: health, readiness, Prometheus metrics, and the user administration
//! API under `/api/admin/v1` (bearer token from `confab token create`).

use axum::Json;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use confab_core::{
    Address, ApiTokenSecret, Change, Cursor, Ha1Set, NewUser, PageRequest, Role, UserChanges,
};

use crate::http::error::{ApiError, ApiJson, PathParam};
use crate::http::views::{self, UserView, double_option};
use crate::http::{AppState, RouteDef, routes};

/// The admin routes. The OpenAPI file must list exactly these.
pub fn routes() -> Vec<RouteDef<AppState>> {
    routes![
        GET "/healthz" => healthz,
        GET "/readyz" => readyz,
        GET "/metrics" => metrics,
        GET "/api/admin/v1/users" => list_users,
        POST "/api/admin/v1/users" => create_user,
        GET "/api/admin/v1/users/{address}" => get_user,
        PATCH "/api/admin/v1/users/{address}" => modify_user,
        DELETE "/api/admin/v1/users/{address}" => remove_user,
        PUT "/api/admin/v1/users/{address}/password" => set_password,
        GET "/api/admin/v1/users/{address}/contacts" => crate::http::contacts::admin_list,
        POST "/api/admin/v1/users/{address}/contacts" => crate::http::contacts::admin_add,
        DELETE "/api/admin/v1/users/{address}/contacts/{contact}" => crate::http::contacts::admin_remove,
        GET "/api/admin/v1/users/{address}/presence-policy" => crate::http::contacts::admin_policy,
        PATCH "/api/admin/v1/users/{address}/presence-policy" => crate::http::contacts::admin_patch_policy,
        PUT "/api/admin/v1/users/{address}/presence-policy/rules/{watcher}" => crate::http::contacts::admin_put_rule,
        DELETE "/api/admin/v1/users/{address}/presence-policy/rules/{watcher}" => crate::http::contacts::admin_delete_rule,
        GET "/api/admin/v1/registrations" => crate::http::registrations::admin_list,
        GET "/api/admin/v1/im-filter" => crate::http::filters::get_im_filter,
        PUT "/api/admin/v1/im-filter" => crate::http::filters::put_im_filter,
        GET "/api/admin/v1/client-filter" => crate::http::filters::get_client_filter,
        PUT "/api/admin/v1/client-filter" => crate::http::filters::put_client_filter,
        POST "/api/admin/v1/client-filter/rules" => crate::http::filters::add_client_rule,
        DELETE "/api/admin/v1/client-filter/rules/{number}" => crate::http::filters::remove_client_rule,
        GET "/api/admin/v1/client-filter/test" => crate::http::filters::test_client_filter,
        GET "/api/admin/v1/messages" => crate::http::messages::admin_list,
        DELETE "/api/admin/v1/messages/{id}" => crate::http::messages::admin_remove,
        GET "/api/admin/v1/turn/usage" => crate::http::turn::admin_usage,
        POST "/api/admin/v1/turn/usage/compact" => crate::http::turn::admin_compact_usage,
    ]
}

/// The admin router.
pub fn router(state: AppState) -> axum::Router {
    crate::http::build_router("admin", routes(), state)
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
    node_id: String,
}

async fn healthz(State(s): State<AppState>) -> Json<Status> {
    Json(Status {
        status: "ok",
        node_id: s.node_id.clone(),
    })
}

/// Ready when not draining and the database answers a lookup.
async fn readyz(State(s): State<AppState>) -> Result<Json<Status>, ApiError> {
    if s.is_draining() {
        return Err(ApiError::unavailable("the server is shutting down", 30));
    }
    // An indexed lookup of an address that cannot exist: exercises the connection without
    // scanning anything, on any backend.
    let probe =
        Address::new("readyz-probe", "invalid").map_err(|e| ApiError::internal(e.to_string()))?;
    s.users.get_user(&probe).await?;
    Ok(Json(Status {
        status: "ready",
        node_id: s.node_id.clone(),
    }))
}

async fn metrics(State(s): State<AppState>) -> Response {
    match &s.metrics {
        Some(h) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            h.render(),
        )
            .into_response(),
        None => ApiError::not_found("metrics are not enabled in this process").into_response(),
    }
}

/// Proof that the request carried a valid admin bearer token.
#[derive(Debug)]
pub struct AdminToken {
    /// The token's name (for audit logs).
    pub name: String,
}

fn bearer_challenge(e: ApiError, error: Option<&'static str>) -> ApiError {
    let value = match error {
        Some(code) => format!("Bearer realm=\"confab-admin\", error=\"{code}\""),
        None => "Bearer realm=\"confab-admin\"".to_string(),
    };
    e.with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&value).expect("ASCII header"),
    )
}

impl FromRequestParts<AppState> for AdminToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(bearer_challenge(
                ApiError::unauthorized("an admin bearer token is required (confab token create)"),
                None,
            ));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .and_then(ApiTokenSecret::parse);
        let invalid = || {
            bearer_challenge(
                ApiError::unauthorized("the bearer token is not valid"),
                Some("invalid_token"),
            )
        };
        let secret = presented.ok_or_else(invalid)?;
        match s.tokens.find_token(&secret.hash()).await? {
            Some(t) => Ok(AdminToken {
                name: t.name.as_str().to_string(),
            }),
            None => Err(invalid()),
        }
    }
}

/// `GET /api/admin/v1/users` query.
#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    after: Option<String>,
}

/// A page of users.
#[derive(Debug, Serialize, Deserialize)]
pub struct UserPage {
    /// The users, ordered by domain then user part.
    pub users: Vec<UserView>,
    /// Pass as `after` to get the next page; `null` on the last page.
    pub next: Option<String>,
}

async fn list_users(
    _auth: AdminToken,
    State(s): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UserPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(t) => match t.parse::<u32>() {
            Ok(n) if (1..=PageRequest::MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    "limit",
                    format!(
                        "limit must be an integer from 1 to {}",
                        PageRequest::MAX_LIMIT
                    ),
                ));
            }
        },
    };
    let page = s
        .users
        .list_users(PageRequest {
            after: q.after.map(Cursor),
            limit,
        })
        .await
        .map_err(|e| match e {
            // The store names its own parameter; the API calls it `after`.
            confab_core::StoreError::Invalid { message, .. } => ApiError::invalid("after", message),
            e => ApiError::from(e),
        })?;
    Ok(Json(UserPage {
        users: page.items.iter().map(UserView::from).collect(),
        next: page.next.map(|c| c.0),
    }))
}

/// `POST /api/admin/v1/users` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// `user@domain`.
    pub address: String,
    /// The password (stored only as HA1 values).
    pub password: String,
    /// Name shown to others.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Phone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// `user` (default) or `admin`.
    #[serde(default)]
    pub role: Option<String>,
}

impl From<views::FieldError> for ApiError {
    fn from(e: views::FieldError) -> Self {
        ApiError::invalid(e.field, e.message)
    }
}

/// Validates a new user's fields and computes the HA1 values.
pub fn new_user(
    domains: &[String],
    address: &str,
    password: &str,
    display_name: Option<&str>,
    phone: Option<&str>,
    role: Role,
) -> Result<NewUser, views::FieldError> {
    let address = views::parse_address(address, domains)?;
    views::check_password(password)?;
    let display_name = display_name.map(views::parse_display_name).transpose()?;
    let phone = phone.map(views::parse_phone).transpose()?;
    let credentials = Some(Ha1Set::compute(address.user(), address.domain(), password));
    Ok(NewUser {
        address,
        display_name,
        phone,
        role,
        credentials,
    })
}

async fn create_user(
    auth: AdminToken,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<
    (
        StatusCode,
        [(header::HeaderName, HeaderValue); 1],
        Json<UserView>,
    ),
    ApiError,
> {
    let role = body
        .role
        .as_deref()
        .map(views::parse_role)
        .transpose()?
        .unwrap_or(Role::User);
    let new = new_user(
        &s.domains,
        &body.address,
        &body.password,
        body.display_name.as_deref(),
        body.phone.as_deref(),
        role,
    )?;
    let user = s.users.add_user(new).await?;
    tracing::info!(token = %auth.name, address = %user.address, "user added");
    let location = format!("/api/admin/v1/users/{}", user.address);
    let location =
        HeaderValue::from_str(&location).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UserView::from(&user)),
    ))
}

/// The user named in the path. A text that is not an address of a served domain names no
/// user, so it is a 404 (with the reason), not a 400.
fn path_address(s: &AppState, p: &str) -> Result<Address, ApiError> {
    views::parse_address(p, &s.domains).map_err(|e| {
        ApiError::not_found(format!("no user `{p}`: {}", e.message)).with_field("address")
    })
}

async fn get_user(
    _auth: AdminToken,
    State(s): State<AppState>,
    PathParam(address): PathParam,
) -> Result<Json<UserView>, ApiError> {
    let address = path_address(&s, &address)?;
    match s.users.get_user(&address).await? {
        Some(u) => Ok(Json(UserView::from(&u))),
        None => Err(ApiError::not_found(format!("user {address} not found"))),
    }
}

/// `PATCH /api/admin/v1/users/{address}` body: absent fields are kept, `null` clears.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModifyUser {
    /// New display name, or `null` to remove it.
    #[serde(default, deserialize_with = "double_option")]
    pub display_name: Option<Option<String>>,
    /// New phone number, or `null` to remove it.
    #[serde(default, deserialize_with = "double_option")]
    pub phone: Option<Option<String>>,
    /// New role.
    #[serde(default)]
    pub role: Option<String>,
}

/// Turns PATCH fields into store changes.
pub fn user_changes(
    display_name: Option<Option<&str>>,
    phone: Option<Option<&str>>,
    role: Option<&str>,
) -> Result<UserChanges, views::FieldError> {
    Ok(UserChanges {
        display_name: match display_name {
            None => Change::Keep,
            Some(None) => Change::Clear,
            Some(Some(t)) => Change::Set(views::parse_display_name(t)?),
        },
        phone: match phone {
            None => Change::Keep,
            Some(None) => Change::Clear,
            Some(Some(t)) => Change::Set(views::parse_phone(t)?),
        },
        role: role.map(views::parse_role).transpose()?,
    })
}

async fn modify_user(
    auth: AdminToken,
    State(s): State<AppState>,
    PathParam(address): PathParam,
    ApiJson(body): ApiJson<ModifyUser>,
) -> Result<Json<UserView>, ApiError> {
    let address = path_address(&s, &address)?;
    let changes = user_changes(
        body.display_name.as_ref().map(|o| o.as_deref()),
        body.phone.as_ref().map(|o| o.as_deref()),
        body.role.as_deref(),
    )?;
    let user = s.users.modify_user(&address, changes).await?;
    tracing::info!(token = %auth.name, address = %user.address, "user modified");
    Ok(Json(UserView::from(&user)))
}

async fn remove_user(
    auth: AdminToken,
    State(s): State<AppState>,
    PathParam(address): PathParam,
) -> Result<StatusCode, ApiError> {
    let address = path_address(&s, &address)?;
    s.users.remove_user(&address).await?;
    tracing::info!(token = %auth.name, address = %address, "user removed");
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT .../password` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The new password.
    pub password: String,
}

async fn set_password(
    auth: AdminToken,
    State(s): State<AppState>,
    PathParam(address): PathParam,
    ApiJson(body): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    let address = path_address(&s, &address)?;
    views::check_password(&body.password)?;
    let ha1 = Ha1Set::compute(address.user(), address.domain(), &body.password);
    s.users.set_password(&address, ha1).await?;
    tracing::info!(token = %auth.name, address = %address, "password set");
    Ok(StatusCode::NO_CONTENT)
}
