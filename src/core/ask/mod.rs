//! Typed asks: the requests whose answer an adapter cannot do without, each with its own type.
//!
//! Most requests are answered with lines and an [`Outcome`] that an adapter renders if it
//! wants to (HTTP's `reply_json`). Some are different: the adapter's next step needs a value
//! from the answer. A `Connect` must give a session id to serve, a `Say` from `POST /message`
//! the seq to answer with, an event stream its replay and then each next page; an IRC client's
//! `NAMES`, `WHO` or `KICK` is answered in numerics made of the answer's data (the members with
//! their ranks, the users found, who was kicked). Matching the outcome at each call site meant
//! guessing its variant, with a "cannot happen" arm that answered `500 the stack opened no
//! session` or, in the IRC adapter, nothing at all.
//!
//! Here each such request is an [`Ask`] that names its [`Ask::Answer`] type, and [`ask`] (or
//! [`answered`], for an adapter that calls the stack its own way) is the one place that turns a
//! reply into it. The stack itself still speaks [`Request`] and [`Reply`] (one tower service
//! type, so layers compose in any order the pipeline file asks); the pairing of request kind
//! and answer type is written once, with `asks!`, rather than in every adapter: the asks
//! about rooms are in [`rooms`], those about people in [`people`]. When the stack answers
//! without the value (a pipeline with no layer that opens sessions, which `--check` refuses, and
//! the bottom of the stack refuses a `Connect` too) the adapter gets an ordinary [`ChatError`]
//! saying so, of kind `Unavailable`: a refusal it already knows how to show (`! ...`, `503`, an
//! IRC `NOTICE`), never a guess.

use tower::{BoxError, Service, ServiceExt};

use super::error::ChatError;
use super::event::Event;
use super::history::ReplayPage;
use super::identity::SessionId;
use super::names::RoomName;
use super::reply::{Connected, Outcome, Replayed, Reply, Sent};
use super::request::{Action, Command, Connect, Request};

/// Declares asks: for each, `Asked => Answer, "what the stack failed to do",` then how it is
/// asked (`|pattern| action`, the request taken apart) and the outcome that carries the answer
/// (`Outcome::X(value) => value;`). Any other outcome is no answer: see [`ask`].
macro_rules! asks {
    ($(
        $asked:ty => $answer:ty, $unanswered:literal,
        |$this:pat_param| $action:expr,
        $outcome:pat => $value:expr;
    )+) => {$(
        impl $crate::core::ask::Ask for $asked {
            type Answer = $answer;
            const UNANSWERED: &'static str = $unanswered;

            fn action(self) -> $crate::core::request::Action {
                let $this = self;
                $action
            }

            fn answer(outcome: $crate::core::reply::Outcome) -> Option<$answer> {
                match outcome {
                    $outcome => Some($value),
                    _ => None,
                }
            }
        }
    )+};
}

pub mod people;
pub mod rooms;

/// A request whose reply carries a value the asker needs; see the module docs.
pub trait Ask {
    /// The value the reply carries.
    type Answer;
    /// What the stack is asked.
    fn action(self) -> Action;
    /// The value, when `outcome` carries it.
    fn answer(outcome: Outcome) -> Option<Self::Answer>;
    /// What the stack failed to do when it did not answer, for the error: "opened no session".
    const UNANSWERED: &'static str;
}

/// A typed answer with the rest of its reply.
#[derive(Debug)]
pub struct Answered<T> {
    /// The value asked for.
    pub answer: T,
    /// The lines of the reply (a welcome, a notice), to show as any reply's.
    pub events: Vec<Event>,
}

/// Asks `stack` on behalf of `session` (`None` for a `Connect`) and returns the typed answer.
///
/// # Errors
/// The stack's own error (a refusal, a timeout), or an `Unavailable` [`ChatError`] when the
/// reply does not carry the answer (see the module docs).
pub async fn ask<S, A>(
    stack: &mut S,
    session: Option<SessionId>,
    asked: A,
) -> Result<Answered<A::Answer>, BoxError>
where
    S: Service<Request, Response = Reply, Error = BoxError>,
    A: Ask,
{
    let request = Request::from_parts(session, asked.action());
    let reply = stack.ready().await?.call(request).await?;
    Ok(answered::<A>(reply)?)
}

/// The answer `reply` carries for an `A`, with the reply's lines.
///
/// # Errors
/// An `Unavailable` [`ChatError`] when the reply does not carry it (see the module docs).
pub fn answered<A: Ask>(reply: Reply) -> Result<Answered<A::Answer>, ChatError> {
    match A::answer(reply.outcome) {
        Some(answer) => Ok(Answered {
            answer,
            events: reply.events,
        }),
        None => Err(unanswered(A::UNANSWERED)),
    }
}

/// The error for a stack that did not answer: `server error: the chat stack opened no session`.
pub fn unanswered(what: &str) -> ChatError {
    ChatError::unavailable(format!("server error: the chat stack {what}"))
}

/// A chat message to a named room (`POST /message`), answered with its seq.
#[derive(Debug, Clone)]
pub struct Say {
    /// The room.
    pub room: RoomName,
    /// The text, checked by the route layer.
    pub text: String,
}

/// Opens a room's event stream: `Command::Replay`, answered with the first page and the end.
#[derive(Debug, Clone)]
pub struct OpenReplay {
    /// The room.
    pub room: RoomName,
    /// The last seq the client has, from `Last-Event-ID`.
    pub after: Option<u64>,
}

/// The next page of an event stream's replay: `Command::ReplayPage`.
#[derive(Debug, Clone)]
pub struct NextPage {
    /// The room.
    pub room: RoomName,
    /// The last seq the stream has sent (or accounted for).
    pub after: u64,
    /// The end of the replay.
    pub upto: u64,
    /// The most seqs to read.
    pub span: u64,
}

asks! {
    Connect => Connected, "opened no session",
    |connect| Action::Connect(connect),
    Outcome::Connected(connected) => connected;

    Say => Sent, "numbered no message",
    |Say { room, text }| Action::Command(Command::Say { room: Some(room), text }),
    Outcome::Sent(sent) => sent;

    OpenReplay => Replayed, "gave no replay",
    |OpenReplay { room, after }| Action::Command(Command::Replay { room, after }),
    Outcome::Replayed(replayed) => replayed;

    NextPage => ReplayPage, "gave no replay page",
    |NextPage { room, after, upto, span }| {
        Action::Command(Command::ReplayPage { room, after, upto, span })
    },
    Outcome::ReplayPage(page) => page;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ErrorKind, Protocol, end_of_pipeline};

    fn connect() -> Connect {
        Connect::sample(Protocol::Tcp, None, 4).0
    }

    #[tokio::test]
    async fn a_stack_that_opens_no_session_is_refused_as_unavailable_not_guessed() {
        let mut bottom = tower::service_fn(end_of_pipeline);
        let err = ask(&mut bottom, None, connect()).await.unwrap_err();
        let err = ChatError::from_box(&err);
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.message.contains("opens sessions"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_say_answered_without_a_seq_is_an_error_that_names_it() {
        let mut lines_only = tower::service_fn(|_req: Request| async {
            Ok::<_, BoxError>(Reply::notice("said nothing"))
        });
        let say = Say {
            room: RoomName::parse("general").unwrap(),
            text: "hi".into(),
        };
        let err = ask(&mut lines_only, Some(SessionId(1)), say)
            .await
            .unwrap_err();
        let err = ChatError::from_box(&err);
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert_eq!(
            err.message,
            "server error: the chat stack numbered no message"
        );
    }

    #[tokio::test]
    async fn a_connect_answered_with_a_session_gives_it_with_the_reply_lines() {
        let mut opens = tower::service_fn(|_req: Request| async {
            let connected = Connected {
                session: SessionId(7),
                nick: crate::core::Nick::parse("ann").unwrap(),
            };
            Ok::<_, BoxError>(Reply::notice("welcome").with(Outcome::Connected(connected)))
        });
        let answered = ask(&mut opens, None, connect()).await.unwrap();
        assert_eq!(answered.answer.session, SessionId(7));
        assert_eq!(answered.answer.nick.as_str(), "ann");
        assert_eq!(answered.events.len(), 1);
    }

    #[tokio::test]
    async fn a_names_ask_gets_the_members_with_their_ranks_and_a_kick_without_one_is_refused() {
        use crate::core::Rank;
        const OP: Rank = Rank {
            op: true,
            voice: false,
        };
        let room = RoomName::parse("general").unwrap();
        let ann = crate::core::Nick::parse("ann").unwrap();
        let names = Outcome::Names {
            room: room.clone(),
            secret: true,
            members: vec![(ann.clone(), OP)],
        };
        let mut answers = tower::service_fn(move |_req: Request| {
            let names = names.clone();
            async move { Ok::<_, BoxError>(Reply::default().with(names)) }
        });
        let asked = rooms::NamesOf(room.clone());
        let answered = ask(&mut answers, Some(SessionId(1)), asked).await.unwrap();
        assert_eq!(answered.answer, (true, vec![(ann.clone(), OP)]));
        let kick = rooms::Kick {
            room,
            nick: ann,
            reason: None,
        };
        let err = ask(&mut answers, Some(SessionId(1)), kick)
            .await
            .unwrap_err();
        let err = ChatError::from_box(&err);
        assert_eq!(
            (err.kind, err.message.as_str()),
            (
                ErrorKind::Unavailable,
                "server error: the chat stack kicked nobody"
            )
        );
    }
}
