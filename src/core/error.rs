//! The errors a chat user can cause, and how each protocol shows them.
//!
//! Every refusal in chatd is a [`ChatError`]: a [`ErrorKind`] that an adapter maps to its own
//! vocabulary (the TCP adapter prints `! message`, the HTTP adapter picks a status code), and a
//! message written for a person. Because both adapters render the same value, every error a netcat
//! user can get has an HTTP twin with the same words.
//!
//! Layers return `ChatError`s boxed into tower's `BoxError`, so that tower's own middleware
//! (timeouts, load shedding) composes with ours; adapters recover the kind with
//! [`ChatError::from_box`], the downcast idiom tower uses for its own `Elapsed` error.

use std::fmt;
use std::time::Duration;

use tower::BoxError;
use tower::load_shed::error::Overloaded;
use tower::timeout::error::Elapsed;

pub use super::refusal::Refusal;

/// What went wrong, coarsely: enough for an adapter to choose a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is malformed or breaks a rule (bad nick, unknown command, too long).
    Invalid,
    /// The session may not do this (e.g. talk in a room it has not joined).
    Forbidden,
    /// The thing asked about does not exist (an unknown room or session).
    NotFound,
    /// The name is already in use (a nick).
    Conflict,
    /// The server cannot do this right now (a dependency is down, shutting down).
    Unavailable,
    /// The request names no open session (an unknown, forged or expired token).
    Unauthenticated,
    /// The server gave up waiting for its own answer (a `timeout` layer): what was asked may
    /// still happen (a message being stored is delivered if it is stored), so this is not a
    /// refusal; the client should look before trying again.
    TimedOut,
    /// The session sends faster than the `rate_limit` layer allows; it may try again after
    /// `retry_after`. The connection stays open.
    RateLimited {
        /// How long until the session's bucket holds a token again.
        retry_after: Duration,
    },
}

/// What a client is told when a `timeout` layer gave up on its request.
pub const TIMED_OUT: &str = "the server took too long to answer: what you sent may still arrive (look before sending it again)";

/// A refusal with a message meant for the person who caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatError {
    /// How adapters should classify it.
    pub kind: ErrorKind,
    /// The human-readable reason, without the protocol's `! ` prefix.
    pub message: String,
    /// Which chat rule refused, when a protocol names each one (IRC's numerics); `None` for
    /// refusals that need no more than the kind.
    pub refusal: Option<Refusal>,
}

impl ChatError {
    /// A refusal of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ChatError {
            kind,
            message: message.into(),
            refusal: None,
        }
    }

    /// The same error, naming the rule that refused (see [`Refusal`]).
    pub fn because(mut self, refusal: Refusal) -> Self {
        self.refusal = Some(refusal);
        self
    }

    /// Malformed input or a broken rule.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// Not allowed for this session.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    /// Nothing by that name.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Name already taken.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// A dependency or the server itself cannot serve this now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Refused by the `rate_limit` layer: `slow down: {why} (try again in N ms)`, with the
    /// milliseconds rounded up so that waiting that long is always enough.
    pub fn rate_limited(why: &str, retry_after: Duration) -> Self {
        let ms = retry_after.as_nanos().div_ceil(1_000_000);
        Self::new(
            ErrorKind::RateLimited { retry_after },
            format!("slow down: {why} (try again in {ms} ms)"),
        )
    }

    /// The error a stack call returned, as a `ChatError`. tower's own middleware errors get
    /// words of their own (a `timeout` layer's [`Elapsed`], a `load_shed` layer's
    /// [`Overloaded`]); other errors that are not ours (a bug) become `Unavailable` with their
    /// own message, so a client always gets a readable line rather than a dropped connection.
    pub fn from_box(err: &BoxError) -> ChatError {
        if let Some(chat) = err.downcast_ref::<ChatError>() {
            chat.clone()
        } else if err.is::<Elapsed>() {
            ChatError::new(ErrorKind::TimedOut, TIMED_OUT)
        } else if err.is::<Overloaded>() {
            ChatError::unavailable("server busy, try again")
        } else {
            ChatError::unavailable(format!("server error: {err}"))
        }
    }
}

impl fmt::Display for ChatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ChatError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_chat_errors_keep_their_kind() {
        let boxed: BoxError = Box::new(ChatError::conflict("nick alice is taken"));
        let back = ChatError::from_box(&boxed);
        assert_eq!(back.kind, ErrorKind::Conflict);
        assert_eq!(back.to_string(), "nick alice is taken");
    }

    #[test]
    fn towers_errors_get_clear_words() {
        let elapsed: BoxError = Box::new(Elapsed::new());
        let back = ChatError::from_box(&elapsed);
        assert_eq!(back.message, TIMED_OUT);
        assert_eq!(back.kind, ErrorKind::TimedOut);
        let overloaded: BoxError = Box::new(Overloaded::new());
        let back = ChatError::from_box(&overloaded);
        assert_eq!(back.kind, ErrorKind::Unavailable);
        assert_eq!(back.message, "server busy, try again");
    }

    #[test]
    fn a_rate_limit_rounds_its_wait_up_to_the_millisecond() {
        let wait = Duration::from_micros(33_334);
        let err = ChatError::rate_limited("at most 30 lines a second", wait);
        assert_eq!(err.kind, ErrorKind::RateLimited { retry_after: wait });
        assert_eq!(
            err.message,
            "slow down: at most 30 lines a second (try again in 34 ms)"
        );
    }

    #[test]
    fn foreign_errors_become_unavailable() {
        let boxed: BoxError = "pool timed out".into();
        let back = ChatError::from_box(&boxed);
        assert_eq!(back.kind, ErrorKind::Unavailable);
        assert!(back.message.contains("pool timed out"));
    }
}
