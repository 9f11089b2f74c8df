//! The endpoints: each turns JSON into a core request and the reply back into JSON.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::auth::{COOKIE_NAME, authenticate};
use super::json::{HttpError, json_response, read_json, read_optional_json};
use super::sessions::STREAM_GRACE;
use super::{Body, HttpResult, Peer, REQUEST_TIMEOUT, State, frames, full, hardening, sse};
use crate::core::{
    Action, Closer, Connect, Connected, Outcome, Protocol, Reply, Request as ChatRequest, RoomName,
    Say, Sent, outbound,
};

/// The HTTP service: tracing (its token redacted, see `hardening`) and a timeout around the
/// router, and the security headers on every response.
pub(super) fn service(
    state: Arc<State>,
) -> BoxCloneSyncService<Request<Incoming>, Response<Body>, Infallible> {
    let router = tower::service_fn(move |req| route(state.clone(), req));
    let trace = TraceLayer::new_for_http()
        .make_span_with(hardening::request_span::<Incoming>)
        .on_failure(hardening::on_failure);
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(trace)
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_TIMEOUT,
            ))
            .service(router)
            .map_response(|mut res| {
                hardening::harden(res.headers_mut());
                res.map(full)
            }),
    )
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> HttpResult {
    let path = req.uri().path().to_string();
    // What changes state (a session, a membership, a message) answers only its own page.
    let changes_state = matches!(
        (req.method(), path.as_str()),
        (&Method::POST, "/connect" | "/command" | "/message")
    ) || (req.method() == Method::GET && path.starts_with("/messages/"));
    if changes_state && let Err(refused) = hardening::same_origin_only(&req) {
        return Ok(refused.into_response());
    }
    let result = match (req.method().clone(), path.as_str()) {
        (Method::POST, "/connect") => connect(&state, req).await,
        (Method::POST, "/command") => command(&state, req).await,
        (Method::POST, "/message") => message(&state, req).await,
        (Method::GET, "/healthz") => Ok(healthz()),
        (Method::GET, "/readyz") => Ok(readyz(&state).await),
        (Method::GET, "/metrics") => Ok(metrics(&state)),
        (Method::GET, p) if p.starts_with("/messages/") => sse::open(&state, req).await,
        (_, "/connect" | "/command" | "/message" | "/healthz" | "/readyz" | "/metrics") => Err(
            HttpError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        ),
        (Method::GET | Method::HEAD, _) => static_file(&state, req).await,
        _ => Err(HttpError::new(StatusCode::NOT_FOUND, "not found")),
    };
    Ok(result.unwrap_or_else(HttpError::into_response))
}

/// `POST /connect`'s body, which is optional: no body at all asks for a guest nick, as `{}` does.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConnectBody {
    nick: Option<String>,
}

async fn connect(state: &Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    let body: ConnectBody = read_optional_json(req, state.options.max_body_bytes).await?;
    // An HTTP session outlives its connections, so it is counted on its own; the slot is
    // given back when the session ends (see `sessions`).
    let permit = match peer {
        Some(peer) => Some(
            state
                .options
                .session_limits
                .admit(peer.ip())
                .map_err(HttpError::from)?,
        ),
        None => None,
    };
    // Bounded in events only: the dispatcher below moves each event on to a stream's tap at
    // once, and the taps are what is bounded in bytes (see `sessions`). It draws on the
    // instance's budget like every other queue: a room's broadcast charges a payload once, to
    // the budget of the queues it reaches (`core::outbound::Broadcast`).
    let (outbound, mut events) = outbound::bounded(&outbound::QueueLimits {
        bytes: usize::MAX,
        ..state.options.queue.clone()
    });
    let closer = Closer::default();
    let connect = Connect {
        protocol: Protocol::Http,
        nick: body.nick,
        peer,
        outbound,
        closer: closer.clone(),
    };
    let Connected { session: id, nick } = state.ask(None, connect).await?.answer;
    let session = state.sessions.open(id, permit);
    // The dispatcher: from the core's queue to the open streams, until the session ends.
    let (dispatch_state, dispatch_session) = (state.clone(), session.clone());
    state.tracker.spawn(async move {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => dispatch_session.dispatch(event, dispatch_state.ops.hub().stats()),
                    None => break, // the core closed the session
                },
                _ = closer.closed() => {
                    end_session(&dispatch_state, &dispatch_session.token).await;
                    break;
                }
                _ = dispatch_state.shutdown.cancelled() => break,
            }
        }
    });
    let mut response = json_response(
        StatusCode::OK,
        &json!({ "session": session.token, "nick": nick }),
    );
    let cookie = format!(
        "{COOKIE_NAME}={}; HttpOnly; SameSite=Strict; Path=/",
        session.token
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    command: String,
}

async fn command(state: &Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let session = authenticate(state, &req)?;
    let body: CommandBody = read_json(req, state.options.max_body_bytes).await?;
    let reply = state
        .call(ChatRequest::from(session.id, Action::Line(body.command)))
        .await?;
    if reply.close {
        end_session(state, &session.token).await;
    }
    Ok(json_response(StatusCode::OK, &reply_json(&reply)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    room: String,
    text: String,
}

async fn message(state: &Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let session = authenticate(state, &req)?;
    let body: MessageBody = read_json(req, state.options.max_body_bytes).await?;
    let room = RoomName::parse(&body.room)?;
    let say = Say {
        room,
        text: body.text,
    };
    // A spawned call completes even if the client hangs up mid-request, so a numbered message
    // is never abandoned halfway through the stack.
    let stack_state = state.clone();
    let id = session.id;
    let sent = tokio::spawn(async move { stack_state.ask(Some(id), say).await })
        .await
        .map_err(|err| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))??
        .answer;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({ "room": sent.room, "seq": sent.seq }),
    ))
}

/// The reply as JSON: the lines a TCP client would read, plus the structured outcome.
fn reply_json(reply: &Reply) -> Value {
    let lines: Vec<String> = reply.events.iter().map(|e| e.text()).collect();
    let mut out = json!({ "lines": lines });
    let extra = match &reply.outcome {
        Outcome::Nick(nick) => json!({ "nick": nick }),
        Outcome::Joined { room, members, .. } => json!({ "room": room, "members": members }),
        Outcome::Left(room) => json!({ "room": room }),
        Outcome::Users { room, nicks } => json!({ "room": room, "users": nicks }),
        Outcome::Rooms(rooms) => {
            let rooms: Vec<Value> = rooms
                .iter()
                .map(|(name, n)| json!({ "name": name, "members": n }))
                .collect();
            json!({ "rooms": rooms })
        }
        Outcome::History { room, answer } => {
            let messages: Vec<Value> = answer
                .messages
                .iter()
                .map(|m| frames::message_json(m))
                .collect();
            let mut value = json!({ "room": room, "messages": messages });
            if !answer.missing.is_empty() {
                let missing: Vec<Value> = answer
                    .missing
                    .iter()
                    .map(|(from, to)| json!({ "from": from, "to": to }))
                    .collect();
                value["missing"] = json!(missing);
            }
            value
        }
        Outcome::Sent(Sent { room, seq }) => json!({ "room": room, "seq": seq }),
        // The lines say all the HTTP API promises for these (docs/PROTOCOL.md): `/help`, the
        // social commands typed into `/command`, and the answers other adapters ask for (a
        // session, a replay: `core::ask`; a store's rows: between layers). Listed rather than
        // caught by `_` so that a new outcome must be decided here.
        Outcome::Done
        | Outcome::Connected(_)
        | Outcome::Replayed(_)
        | Outcome::ReplayPage(_)
        | Outcome::Stored(_)
        | Outcome::Direct { .. }
        | Outcome::Away(_)
        | Outcome::Whois(_)
        | Outcome::Who(_)
        | Outcome::Whowas(_)
        | Outcome::Topic { .. }
        | Outcome::Mode(_)
        | Outcome::UserModes { .. }
        | Outcome::Kicked { .. }
        | Outcome::Invited { .. }
        | Outcome::Invitations(_)
        | Outcome::Census { .. }
        | Outcome::Names { .. }
        | Outcome::Oper
        | Outcome::Watch { .. } => json!({}),
    };
    if let (Some(out), Value::Object(extra)) = (out.as_object_mut(), extra) {
        out.extend(extra);
    }
    if reply.close {
        out["closed"] = json!(true);
    }
    out
}

/// Ends an HTTP session: its token stops working and it leaves its rooms.
async fn end_session(state: &State, token: &str) {
    if let Some(session) = state.sessions.remove(token) {
        let _ = state
            .call(ChatRequest::from(session.id, Action::Disconnect))
            .await;
    }
}

/// Expires idle sessions and closed pages (see `sessions`), checking a few times per grace.
pub(super) async fn expire_idle_sessions(state: Arc<State>) {
    let idle = state.options.session_idle;
    let grace = STREAM_GRACE.min(idle);
    let period = (grace / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut ticks = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for session in state.sessions.take_expired(idle, grace) {
            tracing::debug!(session = %session.id, "http session expired");
            let _ = state
                .call(ChatRequest::from(session.id, Action::Disconnect))
                .await;
        }
    }
}

/// `GET /healthz`: `200`, the process answers (also on a connection over the limits).
pub(super) fn healthz() -> Response<Body> {
    json_response(StatusCode::OK, &json!({ "status": "ok" }))
}

/// `GET /readyz`: `200` when the store and bus work, else `503`; the body names each check.
async fn readyz(state: &State) -> Response<Body> {
    let readiness = state.ops.readiness().await;
    let status = match readiness.ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    json_response(status, &readiness.body)
}

/// `GET /metrics`: the Prometheus text format.
fn metrics(state: &State) -> Response<Body> {
    let mut response = Response::new(full(http_body_util::Full::new(bytes::Bytes::from(
        state.ops.metrics(),
    ))));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(crate::ops::metrics::CONTENT_TYPE),
    );
    response
}

/// Files of the browser client, by tower-http's `ServeDir` (which refuses `..` escapes).
async fn static_file(state: &State, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let response = ServeDir::new(&state.options.static_dir)
        .oneshot(req)
        .await
        .map_err(|err| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
    if response.status() == StatusCode::NOT_FOUND {
        return Err(HttpError::new(StatusCode::NOT_FOUND, "not found"));
    }
    Ok(response.map(full))
}
