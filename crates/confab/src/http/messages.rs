//! `GET /api/admin/v1/messages` and `DELETE /api/admin/v1/messages/{id}` (admin listener,
//! bearer token): the offline message queue, the same objects `confab messages list --json`
//! prints (envelopes only, never the text).
//!
//! `?recipient=user@domain` lists one user's queue; `limit` (1 to 1000, default 100) and
//! `after` (the previous page's `next`) page through it in queue order.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use confab_core::{Cursor, PageRequest};

use crate::commands::messages::QueuedMessageView;
use crate::http::AppState;
use crate::http::admin::AdminToken;
use crate::http::error::{ApiError, PathParam};
use crate::http::views;

/// Query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Only this recipient.
    pub recipient: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Cursor from the previous page's `next`.
    pub after: Option<String>,
}

/// Response body.
#[derive(Debug, Serialize, Deserialize)]
pub struct MessagePage {
    /// The messages, oldest first.
    pub messages: Vec<QueuedMessageView>,
    /// Cursor of the next page, or null on the last one.
    pub next: Option<String>,
}

/// `GET /api/admin/v1/messages`.
pub async fn admin_list(
    _auth: AdminToken,
    State(s): State<AppState>,
    query: Result<Query<MessagesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MessagePage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let recipient = q
        .recipient
        .as_deref()
        .map(|r| views::parse_address(r, &s.domains))
        .transpose()
        .map_err(|e| ApiError::invalid("recipient", e.message))?;
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
        .messages
        .list_queued(
            recipient.as_ref(),
            PageRequest {
                after: q.after.map(Cursor),
                limit,
            },
        )
        .await
        .map_err(|e| match e {
            confab_core::StoreError::Invalid { message, .. } => ApiError::invalid("after", message),
            e => ApiError::from(e),
        })?;
    Ok(Json(MessagePage {
        messages: page.items.iter().map(QueuedMessageView::from).collect(),
        next: page.next.map(|c| c.0),
    }))
}

/// `DELETE /api/admin/v1/messages/{id}`.
pub async fn admin_remove(
    auth: AdminToken,
    State(s): State<AppState>,
    PathParam(id): PathParam,
) -> Result<StatusCode, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::invalid("id", format!("'{id}' is not a message id")))?;
    if s.messages.remove_queued(id).await? {
        tracing::info!(token = %auth.name, id, "queued message removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no queued message {id}")))
    }
}
