//! The answers for requests that fail: one JSON sentence and the right status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    /// 400: a parameter is wrong; the sentence says which and what is accepted.
    BadRequest(String),
    /// 401: no token, or the wrong one.
    Unauthorized,
    /// 404: no such path.
    NotFound,
    /// 405: only GET (and HEAD) are served.
    MethodNotAllowed,
    /// 429: over the export limit; retry after this many seconds.
    TooManyRequests { retry_after: u64 },
    /// 503: the log is missing or unreadable.
    Unavailable(String),
    /// 500: something that should not happen.
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn sentence(&self) -> String {
        match self {
            ApiError::BadRequest(s) | ApiError::Unavailable(s) | ApiError::Internal(s) => s.clone(),
            ApiError::Unauthorized => {
                "this server needs a token: send Authorization: Bearer <token>".to_owned()
            }
            ApiError::NotFound => "no such path: see /api/audit, /api/audit/aggregations, /api/audit/export, /api/audit/stream, /api/stats, /api/verify, /metrics and /".to_owned(),
            ApiError::MethodNotAllowed => "only GET is served: the server is read-only".to_owned(),
            ApiError::TooManyRequests { retry_after } => format!(
                "too many exports from this address: try again in {retry_after} s"
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.sentence() }).to_string();
        let mut response = (self.status(), body).into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self {
            ApiError::Unauthorized => {
                // NOTE: the Basic challenge makes a browser ask for the token (as the password),
                // so the dashboard works behind a token too; API clients send Bearer.
                h.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"nexus-audit\""),
                );
                h.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"nexus-audit\", charset=\"UTF-8\""),
                );
            }
            ApiError::TooManyRequests { retry_after } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            ApiError::MethodNotAllowed => {
                h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            _ => {}
        }
        response
    }
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A JSON body with status 200.
pub fn json_body(body: impl Into<axum::body::Body>) -> Response {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl From<crate::error::Error> for ApiError {
    fn from(e: crate::error::Error) -> Self {
        ApiError::Internal(format!("cannot read the log: {e}"))
    }
}
