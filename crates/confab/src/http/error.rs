//! The one JSON error shape of both HTTP APIs, and the extractors that turn every rejection
//! (bad JSON, wrong content type, over-long body, bad path or query) into it.
//!
//! ```json
//! {"error": {"code": "invalid", "field": "phone", "message": "phone number has no digits"}}
//! ```
//!
//! `code` is a stable machine-readable token (listed in [`ApiError`]'s constructors and in
//! the OpenAPI file), `field` names the request field at fault or is `null`, `message` is
//! for humans. 404 and 405 of unknown routes and methods use the same shape.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::HeaderName;
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use confab_core::{Entity, StoreError};

/// An API error: status, code, optional field, message, and extra headers
/// (`WWW-Authenticate`, `Retry-After`, `Allow`).
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable error code.
    pub code: &'static str,
    /// The request field at fault.
    pub field: Option<String>,
    /// Human-readable explanation.
    pub message: String,
    /// Headers to add to the response (a list keeps the error small).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    field: Option<&'a str>,
    message: &'a str,
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            field: None,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 400 `invalid`: a field has a bad value.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message).with_field(field)
    }

    /// 400 `bad_json`: the body is not JSON of the expected shape.
    pub fn bad_json(field: Option<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "bad_json", message);
        e.field = field;
        e
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `conflict`: the write collides with an existing record.
    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message).with_field(field)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 503 `unavailable` with `Retry-After`.
    pub fn unavailable(message: impl Into<String>, retry_after_s: u32) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_s))
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                field: self.field.as_deref(),
                message: &self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            resp.headers_mut().append(name, value);
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StoreError::Conflict { entity, .. } => {
                let field = match entity {
                    Entity::User => Some("address"),
                    Entity::PhoneNumber => Some("phone"),
                    Entity::Token => Some("name"),
                    _ => None,
                };
                let mut err = ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string());
                err.field = field.map(str::to_string);
                err
            }
            StoreError::Invalid { field, message } => ApiError::invalid(field, message.clone()),
            StoreError::Unavailable { .. } => {
                tracing::warn!(error = %e, "store unavailable");
                ApiError::unavailable("the database is unavailable; retry later", 5)
            }
            _ => ApiError::internal(e.to_string()),
        }
    }
}

/// 404 for a path no route matches.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such resource")
}

/// 405 for a known path with a method it does not support (axum adds `Allow`).
pub async fn no_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this resource does not support the method",
    )
}

/// A JSON body, deserialized with the path of the failing field reported.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json")
                    || (m.len() > 5 && m.to_ascii_lowercase().ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "payload_too_large"
            } else {
                "bad_body"
            };
            ApiError::new(e.status(), code, format!("cannot read the body: {e}"))
        })?;
        // Every body of these APIs is an object; serde would also fill a struct from an
        // array (`[null, null]`), so refuse anything else first.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_json(None, "the body must be a JSON object"));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let value: T = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let field = (path != ".").then_some(path);
            ApiError::bad_json(field, inner.to_string())
        })?;
        Ok(ApiJson(value))
    }
}

/// A path parameter as text (never rejected by axum's own shape).
#[derive(Debug)]
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|e| ApiError::invalid("path", e.body_text()))
    }
}
