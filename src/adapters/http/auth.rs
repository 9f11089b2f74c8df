//! Which session an HTTP request belongs to: the token in a header, the cookie, or the query.
//!
//! `POST /connect` answers a token and sets it as a cookie; every later request names its
//! session by one of three means, in this order: `Authorization: Bearer TOKEN` (scripts),
//! the `chatd_session` cookie (browsers; `HttpOnly`, `SameSite=Strict`), or `?session=TOKEN`
//! (an `EventSource`, which can send neither header). Both the endpoints (`routes`) and the
//! event streams (`sse`) read it here, so neither imports the other for it.

use std::sync::Arc;

use http::header::{AUTHORIZATION, COOKIE};
use http::{Request, StatusCode};
use hyper::body::Incoming;

use super::State;
use super::json::HttpError;
use super::sessions::HttpSession;

/// The cookie that carries the session token for browsers.
pub(super) const COOKIE_NAME: &str = "chatd_session";

/// The session a request belongs to: `Authorization: Bearer`, the cookie, or `?session=`.
pub(super) fn authenticate(
    state: &State,
    req: &Request<Incoming>,
) -> Result<Arc<HttpSession>, HttpError> {
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let cookie = req
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|header| {
            header
                .split(';')
                .find_map(|pair| pair.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
        });
    let query = query_param(req.uri().query(), "session");
    let token = bearer
        .or(cookie)
        .map(str::to_string)
        .or(query)
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::UNAUTHORIZED,
                "no session: POST /connect first, then send its token",
            )
        })?;
    let session = state
        .sessions
        .get(&token)
        .ok_or_else(|| HttpError::new(StatusCode::UNAUTHORIZED, "unknown or expired session"))?;
    session.touch();
    Ok(session)
}

/// The value of `name` in a query string, percent-decoded.
pub(super) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

/// Decodes `%XX` escapes (invalid ones are kept as written).
pub(super) fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param(Some("a=1&session=x%20y"), "session").as_deref(),
            Some("x y")
        );
        assert_eq!(query_param(Some("a=1"), "session"), None);
        assert_eq!(query_param(None, "session"), None);
        assert_eq!(percent_decode("%23general%zz"), "#general%zz");
    }
}
