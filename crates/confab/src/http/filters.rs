//! The filter policy in the admin API (bearer token), the same objects `confab im-filter` and
//! `confab client-filter` print with `--json`:
//!
//! - `GET|PUT /api/admin/v1/im-filter`: the Intelligent IM Filter policy (`PUT` replaces it
//!   whole; absent fields take their defaults).
//! - `GET|PUT /api/admin/v1/client-filter`: the Client Version Filter (rules and default).
//! - `POST /api/admin/v1/client-filter/rules`: insert one rule (at the end, or at
//!   `position`, 1-based); `DELETE /api/admin/v1/client-filter/rules/{number}`: remove one.
//! - `GET /api/admin/v1/client-filter/test?user_agent=...`: which rule decides and what the
//!   client is answered.
//!
//! Writes are validated by the store; a refusal is a 400 naming the field (`rules[2].version`
//! style: the message says `rule 3: ...`). Every front end applies a change within a few
//! seconds.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use confab_core::StoreError;
use confab_core::policy::{ClientAction, ClientVersionPolicy, ClientVersionRule, ImFilterPolicy};

use crate::commands::filters::{
    ClientFilterTestView, ClientFilterView, ImFilterView, test_user_agent, warn_agent,
};
use crate::http::AppState;
use crate::http::admin::AdminToken;
use crate::http::error::{ApiError, ApiJson, PathParam};

/// A store refusal names the field; the position of a rule edit is called `position` /
/// `number` in the API.
fn refused(e: StoreError, position_field: &str) -> ApiError {
    match e {
        StoreError::Invalid {
            field: "position",
            message,
        } => ApiError::invalid(position_field, message),
        e => ApiError::from(e),
    }
}

/// `GET /api/admin/v1/im-filter`.
pub async fn get_im_filter(
    _auth: AdminToken,
    State(s): State<AppState>,
) -> Result<Json<ImFilterView>, ApiError> {
    Ok(Json(s.policy.im_filter_policy().await?.into()))
}

/// `PUT /api/admin/v1/im-filter`.
pub async fn put_im_filter(
    auth: AdminToken,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<ImFilterPolicy>,
) -> Result<Json<ImFilterView>, ApiError> {
    let version = s.policy.set_im_filter_policy(body).await?;
    tracing::info!(token = %auth.name, version, "IM filter policy changed");
    Ok(Json(s.policy.im_filter_policy().await?.into()))
}

/// `GET /api/admin/v1/client-filter`.
pub async fn get_client_filter(
    _auth: AdminToken,
    State(s): State<AppState>,
) -> Result<Json<ClientFilterView>, ApiError> {
    Ok(Json(s.policy.client_version_policy().await?.into()))
}

/// `PUT /api/admin/v1/client-filter`.
pub async fn put_client_filter(
    auth: AdminToken,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<ClientVersionPolicy>,
) -> Result<Json<ClientFilterView>, ApiError> {
    let version = s.policy.set_client_version_policy(body).await?;
    tracing::info!(token = %auth.name, version, "client version policy changed");
    Ok(Json(s.policy.client_version_policy().await?.into()))
}

/// `POST /api/admin/v1/client-filter/rules` body: a rule plus an optional 1-based position.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// Product pattern.
    pub product: String,
    /// Version condition.
    pub version: String,
    /// The action.
    pub action: confab_core::policy::ClientActionKind,
    /// Reason phrase (blocking actions).
    #[serde(default)]
    pub reason: Option<String>,
    /// Upgrade URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Notice text.
    #[serde(default)]
    pub message: Option<String>,
    /// Insert as rule number `position` (1 = first); at the end when absent.
    #[serde(default)]
    pub position: Option<u32>,
}

/// `POST /api/admin/v1/client-filter/rules`.
pub async fn add_client_rule(
    auth: AdminToken,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<NewRule>,
) -> Result<(StatusCode, Json<ClientFilterView>), ApiError> {
    let position = match body.position {
        Some(0) => {
            return Err(ApiError::invalid("position", "rules are numbered from 1"));
        }
        Some(n) => Some(n as usize - 1),
        None => None,
    };
    let rule = ClientVersionRule::new(
        &body.product,
        &body.version,
        ClientAction {
            action: body.action,
            reason: body.reason,
            url: body.url,
            message: body.message,
        },
    );
    let version = s
        .policy
        .insert_client_version_rule(position, rule)
        .await
        .map_err(|e| refused(e, "position"))?;
    tracing::info!(token = %auth.name, version, "client version rule added");
    Ok((
        StatusCode::CREATED,
        Json(s.policy.client_version_policy().await?.into()),
    ))
}

/// `DELETE /api/admin/v1/client-filter/rules/{number}`.
pub async fn remove_client_rule(
    auth: AdminToken,
    State(s): State<AppState>,
    PathParam(number): PathParam,
) -> Result<Json<ClientFilterView>, ApiError> {
    let n = match number.parse::<usize>() {
        Ok(n) if n >= 1 => n,
        _ => {
            return Err(ApiError::invalid(
                "number",
                format!("'{number}' is not a rule number (1 = first)"),
            ));
        }
    };
    let (_, version) = s
        .policy
        .remove_client_version_rule(n - 1)
        .await
        .map_err(|e| match e {
            StoreError::Invalid { message, .. } => ApiError::not_found(message),
            e => ApiError::from(e),
        })?;
    tracing::info!(token = %auth.name, version, rule = n, "client version rule removed");
    Ok(Json(s.policy.client_version_policy().await?.into()))
}

/// `GET /api/admin/v1/client-filter/test` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestQuery {
    /// The User-Agent to test; absent = a request without one.
    pub user_agent: Option<String>,
}

/// `GET /api/admin/v1/client-filter/test`.
pub async fn test_client_filter(
    _auth: AdminToken,
    State(s): State<AppState>,
    query: Result<Query<TestQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ClientFilterTestView>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    if let Some(ua) = &q.user_agent
        && (ua.chars().count() > 1024 || ua.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            "user_agent",
            "a User-Agent is at most 1024 characters without control characters",
        ));
    }
    let policy = s.policy.client_version_policy().await?.value;
    let v = test_user_agent(&policy, &warn_agent(&s.domains), q.user_agent.as_deref())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(v))
}
