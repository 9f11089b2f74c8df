//! What makes the HTTP adapter safe to expose: security headers on every response, no
//! state-changing request from another site's page, and request logs without secrets.
//!
//! **Security headers.** Every response carries a `Content-Security-Policy` that lets the page
//! run only its own scripts and styles (no inline script, no inline style, nothing from elsewhere:
//! an injected `<img onerror=...>` would not run) and that no other page may frame it
//! (`frame-ancestors 'none'`, with `X-Frame-Options: DENY` for older browsers: no clickjacking);
//! `X-Content-Type-Options: nosniff` (a JSON answer is never run as a script) and
//! `Referrer-Policy: no-referrer` (a link clicked in a message does not tell its site where the
//! reader came from). As headers rather than a `<meta>` tag they cover every response, and
//! `frame-ancestors` only works as a header.
//!
//! **Cross-site requests.** The session cookie is `SameSite=Strict`, but "site" ignores the
//! port: a page served by anything else on the same host (`http://host:8080`) is same-site and
//! its requests carry the cookie. So the requests that change state (`POST /connect`,
//! `/command`, `/message`, and `GET /messages/ROOM`, which joins the room) refuse a caller that a
//! browser says is another origin, with `403`:
//!
//! 1. `Sec-Fetch-Site` (sent by every current browser, and not settable by a page's script):
//!    `same-origin` and `none` (the user typed the URL) pass, `same-site` and `cross-site` do not;
//! 2. without it, `Origin`: absent passes, and so does one naming this server (`Host`); any other,
//!    `null` included, does not.
//!
//! A request with neither header is not a browser's cross-site request (a browser sends
//! `Origin` with every cross-origin request, and `Sec-Fetch-Site` with every request), so curl,
//! scripts and netcat are unaffected.
//!
//! **Logs without secrets.** Each request is traced (tower-http) in a `request` span that names
//! its method, its path and its query with the `session=` token replaced by `REDACTED`; no header
//! is ever logged, so neither the `Authorization` bearer nor the cookie reach a log, at any level.
//! A failed request is logged at the level of whose fault it is (see `ops::logs`): a `500` at
//! `error`, a `503` at `info` (a full server, an overloaded store: the server says so itself), with
//! a warning at most once a minute; a `4xx` only in the request's own `debug` lines.

use std::time::Duration;

use http::header::{HOST, HeaderMap, HeaderName, HeaderValue, ORIGIN};
use http::{Request, StatusCode, Uri};
use tower_http::classify::ServerErrorsFailureClass;
use tracing::Span;

use super::json::HttpError;
use crate::ops::logs::Throttle;

/// The page may use only its own origin's scripts, styles, images and connections, may not be
/// framed, and has no plugins, `<base>` or foreign form targets.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The headers every response carries; see the module docs.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

/// The Fetch Metadata header that says where a browser's request comes from.
const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// How many `503`s were answered, for the warning logged at most once a minute.
static UNAVAILABLE: Throttle = Throttle::new();

/// Adds the security headers to a response's `headers`.
pub(super) fn harden(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
}

/// Refuses a request that a browser sent from another origin; see the module docs.
///
/// # Errors
/// `403` naming the rule.
pub(super) fn same_origin_only<B>(req: &Request<B>) -> Result<(), HttpError> {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let allowed = match header(SEC_FETCH_SITE) {
        Some("same-origin" | "none") => true,
        Some("same-site" | "cross-site") => false,
        // No Fetch Metadata (an older browser, or no browser): the Origin decides.
        _ => match header(ORIGIN.as_str()) {
            None => true,
            Some(origin) => {
                let authority = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"));
                let host = header(HOST.as_str());
                authority
                    .zip(host)
                    .is_some_and(|(a, h)| a.eq_ignore_ascii_case(h))
            }
        },
    };
    if allowed {
        return Ok(());
    }
    tracing::debug!(
        origin = ?header(ORIGIN.as_str()),
        sec_fetch_site = ?header(SEC_FETCH_SITE),
        path = req.uri().path(),
        "cross-site request refused"
    );
    Err(HttpError::new(
        StatusCode::FORBIDDEN,
        "cross-site request refused: only chatd's own page (or a client that is not a browser, \
         such as curl) may do this",
    ))
}

/// The `request` span of one request: method, version and the URI with its token redacted.
pub(super) fn request_span<B>(req: &Request<B>) -> Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        uri = %redacted(req.uri()),
        version = ?req.version(),
    )
}

/// `uri`'s path and query, with the value of every `session` parameter replaced.
pub(super) fn redacted(uri: &Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("session") => format!("{key}=REDACTED"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{}?{}", uri.path(), query.join("&"))
}

fn class_status(class: &ServerErrorsFailureClass) -> String {
    match class {
        ServerErrorsFailureClass::StatusCode(status) => status.to_string(),
        ServerErrorsFailureClass::Error(error) => error.clone(),
    }
}

/// Logs a failed request (a `5xx`, or an error inside a response body) at the level of whose
/// fault it is; see the module docs. Runs inside the request's span, which names the request.
pub(super) fn on_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &Span) {
    let latency_ms = latency.as_millis();
    match class {
        ServerErrorsFailureClass::StatusCode(
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT,
        ) => {
            tracing::info!(latency_ms, status = %class_status(&class), "answered a temporary failure");
            if let Some(answered) = UNAVAILABLE.hit() {
                tracing::warn!(
                    answered,
                    "HTTP requests answered 503 or 504 (since the last such warning, at most a \
                     minute ago): the server is full or a backend is slow or down; /readyz and \
                     /metrics say which"
                );
            }
        }
        ServerErrorsFailureClass::StatusCode(status) => {
            tracing::error!(latency_ms, %status, "request failed");
        }
        ServerErrorsFailureClass::Error(error) => {
            tracing::error!(latency_ms, %error, "response failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut req = Request::post("/message").header("host", "chat.example:3001");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).unwrap()
    }

    #[test]
    fn fetch_metadata_decides_when_a_browser_sends_it() {
        for site in ["same-origin", "none"] {
            assert!(same_origin_only(&request(&[("sec-fetch-site", site)])).is_ok());
        }
        for site in ["same-site", "cross-site"] {
            let err = same_origin_only(&request(&[("sec-fetch-site", site)])).unwrap_err();
            assert_eq!(err.status, StatusCode::FORBIDDEN);
        }
        // The browser's word wins over an Origin that would have passed.
        let both = [
            ("sec-fetch-site", "same-site"),
            ("origin", "http://chat.example:3001"),
        ];
        assert!(same_origin_only(&request(&both)).is_err());
    }

    #[test]
    fn without_fetch_metadata_the_origin_must_be_this_server_or_absent() {
        assert!(
            same_origin_only(&request(&[])).is_ok(),
            "curl sends neither"
        );
        assert!(same_origin_only(&request(&[("origin", "http://chat.example:3001")])).is_ok());
        assert!(same_origin_only(&request(&[("origin", "https://CHAT.example:3001")])).is_ok());
        for origin in [
            "http://chat.example:8080",
            "http://evil.example",
            "null",
            "chat.example:3001",
        ] {
            assert!(
                same_origin_only(&request(&[("origin", origin)])).is_err(),
                "{origin}"
            );
        }
    }

    #[test]
    fn tokens_are_redacted_from_logged_uris() {
        let uri: Uri = "/messages/general?session=0123abcd&last_event_id=3"
            .parse()
            .unwrap();
        assert_eq!(
            redacted(&uri),
            "/messages/general?session=REDACTED&last_event_id=3"
        );
        let uri: Uri = "/messages/general?SESSION=x".parse().unwrap();
        assert_eq!(redacted(&uri), "/messages/general?SESSION=REDACTED");
        assert_eq!(redacted(&"/healthz".parse().unwrap()), "/healthz");
    }

    #[test]
    fn every_security_header_is_set() {
        let mut headers = HeaderMap::new();
        harden(&mut headers);
        assert_eq!(headers["x-frame-options"], "DENY");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
}
