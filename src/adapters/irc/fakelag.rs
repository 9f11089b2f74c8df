//! Calling the stack for a client, and IRC's "fakelag".
//!
//! **Fakelag.** When the stack's `rate_limit` layer refuses a command (the client sends faster
//! than `per_second`), netcat users read `! slow down` and HTTP clients get a 429. IRC clients
//! expect something else: servers have always *delayed* a flooding client's commands rather than
//! refused them ("fakelag"), and clients pace themselves on that assumption, so an error would
//! surprise them and lose what they typed. Here the command waits out the `retry_after` the
//! layer gives and is sent again; lines behind it wait in the socket (TCP pushes back on the
//! client), and the client's queued events keep flowing meanwhile. The limit is the same for
//! every protocol (`rate_limit` counts each refusal), only its face differs.

use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceExt};

use super::connection::{Client, End, next_events};
use crate::core::ask::answered;
use crate::core::{Action, Ask, ChatError, Command, ErrorKind, Reply, Request, ask};

impl Client {
    /// Calls the stack with `command` for the session, waiting out rate limits (fakelag, see
    /// the module docs). The outer error ends the connection; the inner one is the refusal.
    pub(super) async fn call(&mut self, command: Command) -> Result<Result<Reply, ChatError>, End> {
        self.lagged(|| Action::Command(command.clone())).await
    }

    /// Asks the stack for a typed answer (see `core::ask`) for the session, waiting out rate
    /// limits as [`Client::call`] does; a reply without the answer is an `Unavailable` refusal.
    pub(super) async fn ask_lagged<A: Ask + Clone>(
        &mut self,
        asked: A,
    ) -> Result<Result<A::Answer, ChatError>, End> {
        let reply = self.lagged(|| asked.clone().action()).await?;
        Ok(reply.and_then(|reply| answered::<A>(reply).map(|answered| answered.answer)))
    }

    /// Calls the stack with the action `action` makes, again after each rate-limit refusal.
    async fn lagged(
        &mut self,
        action: impl Fn() -> Action,
    ) -> Result<Result<Reply, ChatError>, End> {
        let Some(id) = self.session else {
            return Ok(Err(crate::core::session::unknown_session()));
        };
        loop {
            let request = Request::from(id, action());
            let result = match self.stack.ready().await {
                Ok(stack) => stack.call(request).await,
                Err(err) => Err(err),
            };
            let err = match result {
                Ok(reply) => return Ok(Ok(reply)),
                Err(err) => ChatError::from_box(&err),
            };
            match err.kind {
                ErrorKind::RateLimited { retry_after } => self.lag(retry_after).await?,
                _ => return Ok(Err(err)),
            }
        }
    }

    /// Calls the stack with a request that is not a command (a `QUIT` on the way out, the
    /// disconnect).
    pub(super) async fn call_raw(&mut self, request: Request) -> Result<Reply, ChatError> {
        match self.stack.ready().await {
            Ok(stack) => stack.call(request).await,
            Err(err) => Err(err),
        }
        .map_err(|err| ChatError::from_box(&err))
    }

    /// Asks the stack for a typed answer (see `core::ask`), with no lag: a registration.
    pub(super) async fn ask<A: Ask>(&mut self, asked: A) -> Result<A::Answer, ChatError> {
        let session = self.session;
        match ask(&mut self.stack, session, asked).await {
            Ok(answered) => Ok(answered.answer),
            Err(err) => Err(ChatError::from_box(&err)),
        }
    }

    /// Waits `wait` before a refused command is sent again, writing queued events meanwhile.
    async fn lag(&mut self, wait: Duration) -> Result<(), End> {
        let until = Instant::now() + wait;
        loop {
            let out = tokio::select! {
                biased;
                _ = &mut self.closed => return Err(self.closed_end(false)),
                _ = tokio::time::sleep_until(until) => return Ok(()),
                Some((events, charged)) = next_events(&mut self.queue) => self.events(events, charged),
            };
            self.flush(&out).await?;
        }
    }
}
