//! `GET /api/admin/v1/registrations` (admin listener, bearer token): the live bindings of
//! the registrar, the same objects `confab registrations --json` prints.
//!
//! - `?aor=user@domain`: every live binding of that address (no paging; `next` is null).
//! - otherwise: all live bindings by address, one page at a time (`limit` 1 to 1000,
//!   default 100; pass `next` back as `after`). A page can hold fewer than `limit` items
//!   when bindings on it had expired but were not swept yet.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use confab_core::{Cursor, PageRequest};

use crate::commands::registrations::{RegistrationView, now};
use crate::http::AppState;
use crate::http::admin::AdminToken;
use crate::http::error::ApiError;
use crate::http::views;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 100;

/// Query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationsQuery {
    /// Only this address-of-record.
    pub aor: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Cursor from the previous page's `next`.
    pub after: Option<String>,
}

/// Response body.
#[derive(Debug, Serialize, Deserialize)]
pub struct RegistrationPage {
    /// The bindings.
    pub registrations: Vec<RegistrationView>,
    /// Cursor of the next page, or null on the last one.
    pub next: Option<String>,
}

/// `GET /api/admin/v1/registrations`.
pub async fn admin_list(
    _auth: AdminToken,
    State(s): State<AppState>,
    query: Result<Query<RegistrationsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RegistrationPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let now = now();
    if let Some(aor) = q.aor.as_deref() {
        if q.after.is_some() || q.limit.is_some() {
            return Err(ApiError::invalid(
                "aor",
                "aor lists one address whole: do not combine it with limit or after",
            ));
        }
        let aor = views::parse_address(aor, &s.domains)
            .map_err(|e| ApiError::invalid("aor", e.message))?;
        let bindings = s.registrations.lookup(&aor, now).await?;
        return Ok(Json(RegistrationPage {
            registrations: bindings
                .iter()
                .map(|b| RegistrationView::new(b, now))
                .collect(),
            next: None,
        }));
    }
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
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
        .registrations
        .list_bindings(PageRequest {
            after: q.after.map(Cursor),
            limit,
        })
        .await
        .map_err(|e| match e {
            confab_core::StoreError::Invalid { message, .. } => ApiError::invalid("after", message),
            e => ApiError::from(e),
        })?;
    Ok(Json(RegistrationPage {
        registrations: page
            .items
            .iter()
            .filter(|b| !b.is_expired(now))
            .map(|b| RegistrationView::new(b, now))
            .collect(),
        next: page.next.map(|c| c.0),
    }))
}
