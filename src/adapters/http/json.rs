//! JSON in and out, and the HTTP face of [`ChatError`].
//!
//! Every error is `{"error": "..."}` with the status its [`ErrorKind`] calls for; the words are
//! the core's, the same a netcat user reads after `! `.

use bytes::Bytes;
use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower::BoxError;

use super::Body;
use crate::adapters::limits::Refused;
use crate::core::{ChatError, ErrorKind};

/// A refusal, ready to be sent.
#[derive(Debug)]
pub struct HttpError {
    /// The status code.
    pub status: StatusCode,
    /// The message, for `{"error": ...}`.
    pub message: String,
    /// For a `429`: how long the client should wait, sent as `Retry-After` (whole seconds,
    /// rounded up) and as `retry_after_ms` in the body.
    pub retry_after: Option<Duration>,
}

impl HttpError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The response: `{"error": message}`, plus `Retry-After` when there is a wait to tell.
    pub fn into_response(self) -> Response<Body> {
        let Some(wait) = self.retry_after else {
            return json_response(self.status, &json!({ "error": self.message }));
        };
        let ms = wait.as_nanos().div_ceil(1_000_000);
        let body = json!({ "error": self.message, "retry_after_ms": ms });
        let mut response = json_response(self.status, &body);
        // `Retry-After` counts whole seconds; rounding up keeps a polite client from coming back
        // too early.
        let secs = wait.as_nanos().div_ceil(1_000_000_000);
        response.headers_mut().insert(
            RETRY_AFTER,
            HeaderValue::from(u64::try_from(secs).unwrap_or(u64::MAX)),
        );
        response
    }
}

impl From<ChatError> for HttpError {
    fn from(err: ChatError) -> HttpError {
        let status = match err.kind {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::TimedOut => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        };
        let mut error = HttpError::new(status, err.message);
        if let ErrorKind::RateLimited { retry_after } = err.kind {
            error.retry_after = Some(retry_after);
        }
        error
    }
}

/// A connection or session over the limits: `429 Too Many Requests` when one address holds too
/// many, `503 Service Unavailable` when the whole server is full.
impl From<Refused> for HttpError {
    fn from(refused: Refused) -> HttpError {
        let status = match refused {
            Refused::PerIp { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refused::Total { .. } => StatusCode::SERVICE_UNAVAILABLE,
        };
        HttpError::new(status, refused.to_string())
    }
}

impl From<BoxError> for HttpError {
    fn from(err: BoxError) -> HttpError {
        ChatError::from_box(&err).into()
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(super::full(Full::new(Bytes::from(value.to_string()))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Reads an optional JSON body: a request with no body at all (`curl -X POST URL`, a `fetch`
/// without `body`) is `T::default()`, whatever its content type; any other body is read as
/// [`read_json`] reads it.
///
/// # Errors
/// As [`read_json`], for a request that has a body.
pub async fn read_optional_json<T: DeserializeOwned + Default>(
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, HttpError> {
    // hyper knows an empty body from the head alone: `Content-Length: 0`, or neither a length
    // nor chunked encoding.
    if hyper::body::Body::size_hint(req.body()).exact() == Some(0) {
        return Ok(T::default());
    }
    read_json(req, limit).await
}

/// Reads a JSON body of at most `limit` bytes into `T`.
///
/// # Errors
/// `415` without a JSON content type, `413` over the limit, `400` for malformed JSON or fields.
pub async fn read_json<T: DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, HttpError> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send JSON with Content-Type: application/json",
        ));
    }
    let bytes = match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err)
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body too large (max {limit} bytes)"),
            ));
        }
        Err(err) => {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                format!("could not read the body: {err}"),
            ));
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|err| HttpError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {err}")))
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn a_rate_limit_is_a_429_whose_retry_after_rounds_up_to_the_second() {
        let wait = Duration::from_millis(1500);
        let error = HttpError::from(ChatError::rate_limited("at most 1 line a second", wait));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["retry_after_ms"], 1500);
        assert_eq!(
            body["error"],
            "slow down: at most 1 line a second (try again in 1500 ms)"
        );
    }

    #[test]
    fn other_errors_have_no_retry_after() {
        let response = HttpError::from(ChatError::unavailable("server busy, try again"));
        let response = response.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get(RETRY_AFTER).is_none());
    }
}
