//! Registration: what a client may do before it has a session, and how it gets one.
//!
//! A client registers with `NICK` and `USER` (in either order, `PASS` accepted and ignored: chatd
//! has no server password), unless it opened capability negotiation with `CAP LS` or `REQ`, in
//! which case registration waits for `CAP END`. Then the adapter opens a core session with the
//! nick (`Action::Connect`): the route layer checks it and claims it on every instance, exactly
//! as for `/nick`, and a nick in use is IRC's `433`, after which the client may try another.

use bytes::Bytes;

use super::caps::{self, Negotiation};
use super::connection::{Client, End};
use super::message::{Line, Message};
use super::refusals::erroneous_nick;
use super::welcome::welcome;
use crate::core::{Command, Connect, Connected, ErrorKind, Nick, Protocol, UserCommand, outbound};

impl Client {
    /// A line from a client that is not registered yet.
    pub(super) async fn unregistered(
        &mut self,
        command: &str,
        msg: &Message<'_>,
    ) -> Result<Vec<Bytes>, End> {
        let mut out = Vec::new();
        match command {
            "CAP" => {
                let (lines, negotiation) = caps::cap(
                    &self.options.server_name,
                    &self.nick,
                    &msg.params,
                    &mut self.caps,
                );
                out.extend(lines.iter().map(Line::bytes));
                match negotiation {
                    Negotiation::Started => self.negotiating = true,
                    Negotiation::Ended => self.negotiating = false,
                    Negotiation::Unchanged => {}
                }
            }
            "NICK" => match msg.param(0).filter(|n| !n.is_empty()) {
                None => out.push(self.numeric("431").trailing("No nickname given").bytes()),
                Some(nick) => match Nick::parse(nick) {
                    Ok(_) => self.nick = nick.to_string(),
                    Err(e) => out.push(erroneous_nick(self, nick, &e.message)),
                },
            },
            "USER" => match msg.params.as_slice() {
                [user, _, _, real, ..] if !user.is_empty() && !real.is_empty() => {
                    self.user = Some((user.to_string(), real.to_string()));
                }
                _ => out.push(
                    self.numeric("461")
                        .param("USER")
                        .trailing("Not enough parameters")
                        .bytes(),
                ),
            },
            "PASS" => {}
            "PING" | "PONG" | "QUIT" | "AUTHENTICATE" => return self.anytime(command, msg),
            _ => out.push(
                self.numeric("451")
                    .trailing("You have not registered")
                    .bytes(),
            ),
        }
        out.extend(self.try_register().await);
        Ok(out)
    }

    /// Commands that mean the same before and after registration.
    pub(super) fn anytime(&mut self, command: &str, msg: &Message<'_>) -> Result<Vec<Bytes>, End> {
        let server = self.server();
        Ok(match command {
            "PING" => match msg.param(0) {
                Some(token) => vec![
                    Line::new(server, "PONG")
                        .param(server)
                        .trailing(token)
                        .bytes(),
                ],
                None => vec![
                    self.numeric("461")
                        .param("PING")
                        .trailing("Not enough parameters")
                        .bytes(),
                ],
            },
            "QUIT" => return Err(End::Quit(msg.param(0).unwrap_or("").to_string())),
            // SASL is acknowledged (clients ask for it together with other capabilities, and a
            // refused request refuses them all), but chatd has no accounts to log into.
            "AUTHENTICATE" => vec![
                self.numeric("904")
                    .trailing("SASL authentication failed: chatd has no accounts")
                    .bytes(),
            ],
            _ => Vec::new(), // PONG: the timer was reset by the line itself
        })
    }

    /// Opens the session once `NICK` and `USER` are in and negotiation is over.
    async fn try_register(&mut self) -> Vec<Bytes> {
        let Some((user, _)) = &self.user else {
            return Vec::new();
        };
        if self.nick == "*" || self.negotiating {
            return Vec::new();
        }
        let user = user.clone();
        let (tx, queue) = outbound::bounded(&self.options.queue);
        let connect = Connect {
            protocol: Protocol::Irc,
            nick: Some(self.nick.clone()),
            peer: Some(self.peer),
            outbound: tx,
            closer: self.closer.clone(),
        };
        match self.ask(connect).await {
            Ok(Connected { session, nick }) => {
                self.nick = nick.to_string();
                self.registered_as(session, queue);
                // What `USER` said, for `WHOIS` and `WHO`.
                let profile = UserCommand::Profile {
                    user: Some(user.clone()),
                    realname: self.user.as_ref().map(|(_, real)| real.clone()),
                };
                let _ = self.call(Command::User(profile)).await;
                welcome(&self.options, &self.nick, &user)
                    .iter()
                    .map(Line::bytes)
                    .collect()
            }
            Err(e) => {
                let nick = std::mem::replace(&mut self.nick, "*".to_string());
                let line = match e.kind {
                    ErrorKind::Conflict => Line::new(self.server(), "433")
                        .param("*")
                        .param(&nick)
                        .trailing("Nickname is already in use")
                        .bytes(),
                    ErrorKind::Invalid => erroneous_nick(self, &nick, &e.message),
                    _ => Line::new(self.server(), "NOTICE")
                        .param("*")
                        .trailing(&format!("cannot register now: {}", e.message))
                        .bytes(),
                };
                vec![line]
            }
        }
    }
}
