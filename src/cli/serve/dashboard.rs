//! `GET /`: the dashboard page, and its script and style under `/assets/`.
//!
//! Everything is embedded in the binary at build time: no CDN, no fonts, no network, so the
//! page works in an air-gapped audit room. The script draws its charts as inline SVG from the
//! API's answers and refreshes them from the live stream. Log content is attacker-influenced:
//! the script only ever puts it into the page as text, and the Content-Security-Policy allows
//! scripts, styles and requests from this server alone.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use super::error::ApiError;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    response
}

pub async fn index() -> Response {
    page(INDEX, "text/html; charset=utf-8")
}

pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    match name.as_str() {
        "app.js" => Ok(page(SCRIPT, "text/javascript; charset=utf-8")),
        "app.css" => Ok(page(STYLE, "text/css; charset=utf-8")),
        _ => Err(ApiError::NotFound),
    }
}
