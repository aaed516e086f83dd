//! The bearer token: read once from --token-file, compared in constant time, never logged.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::App;
use super::error::ApiError;

/// The token, kept only as its SHA-256 so that comparing leaks neither bytes nor length.
pub struct Token {
    digest: [u8; 32],
}

impl Token {
    /// Reads the token: the file's text without surrounding whitespace.
    pub fn load(path: &Path) -> anyhow::Result<Token> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            bail!("the token file {} is empty", path.display());
        }
        if token.chars().any(char::is_control) {
            bail!(
                "the token file {} holds more than one line: put the token alone in it",
                path.display()
            );
        }
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "nexus-audit: warning: the token file {} can be read by other users; chmod 600 it",
                path.display()
            );
        }
        Ok(Token {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// True when `candidate` is the token, in time that does not depend on where they differ.
    fn matches(&self, candidate: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate).into();
        bool::from(self.digest.ct_eq(&digest))
    }

    /// True when the Authorization header carries the token: `Bearer TOKEN`, or `Basic` with
    /// the token as the password (what a browser sends after asking).
    fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Ok(value) = std::str::from_utf8(value) else {
            return false;
        };
        let value = value.trim();
        let Some((scheme, rest)) = value.split_once(' ') else {
            return false;
        };
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.matches(rest.as_bytes());
        }
        if scheme.eq_ignore_ascii_case("basic")
            && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest)
            && let Some(colon) = decoded.iter().position(|b| *b == b':')
        {
            return self.matches(&decoded[colon + 1..]);
        }
        false
    }
}

/// Refuses a request without the token (when one is set) with 401.
pub async fn require_token(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(token) = &app.token {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(axum::http::HeaderValue::as_bytes);
        if !token.admits(authorization) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(t: &str) -> Token {
        Token {
            digest: Sha256::digest(t.as_bytes()).into(),
        }
    }

    #[test]
    fn bearer_and_basic_carry_the_token() {
        let t = token("s3cret-token");
        assert!(t.admits(Some(b"Bearer s3cret-token")));
        assert!(t.admits(Some(b"bearer  s3cret-token ")));
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:s3cret-token");
        assert!(t.admits(Some(format!("Basic {basic}").as_bytes())));
        assert!(!t.admits(Some(b"Bearer s3cret-toke")));
        assert!(!t.admits(Some(b"Bearer s3cret-token2")));
        assert!(!t.admits(Some(b"s3cret-token")));
        assert!(!t.admits(Some(b"Basic !!!")));
        assert!(!t.admits(None));
    }
}
