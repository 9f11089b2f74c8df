//! The core's refusals as IRC numerics.
//!
//! Every rule of rooms and users names itself in the refusal (`core::Refusal`); IRC has a
//! numeric for each, which clients act on (a `475` makes a client ask for the channel key).
//! The text after the numeric is the core's own sentence, the one netcat and HTTP users read,
//! so every protocol gives the same reason.

use bytes::Bytes;

use super::connection::Client;
use crate::core::{ChatError, Refusal};

/// The numeric for `refusal` of something about `target` (a channel or a nick), and the
/// parameters that follow the client's nick.
pub fn numeric(refusal: &Refusal, target: &str) -> (&'static str, Vec<String>) {
    let t = || vec![target.to_string()];
    match refusal {
        Refusal::NoSuchNick | Refusal::OtherInstance => ("401", t()),
        Refusal::NoSuchRoom => ("403", t()),
        Refusal::CannotSend => ("404", t()),
        Refusal::UserNotInRoom(nick) => ("441", vec![nick.clone(), target.to_string()]),
        Refusal::NotInRoom => ("442", t()),
        Refusal::AlreadyInRoom(nick) => ("443", vec![nick.clone(), target.to_string()]),
        Refusal::BadPassword => ("464", Vec::new()),
        Refusal::RoomFull => ("471", t()),
        Refusal::UnknownMode(letter) => ("472", vec![letter.to_string()]),
        Refusal::InviteOnly => ("473", t()),
        Refusal::Banned => ("474", t()),
        Refusal::BadKey => ("475", t()),
        Refusal::NoPrivileges => ("481", Vec::new()),
        Refusal::NotOperator => ("482", t()),
        Refusal::InvalidModeParam { mode, param } => (
            "696",
            vec![target.to_string(), mode.to_string(), param.clone()],
        ),
    }
}

impl Client {
    /// The line for `err`, a refusal of something about `target`: its numeric with the core's
    /// words, or a `NOTICE` for a refusal that names no rule.
    pub(super) fn refusal(&self, err: &ChatError, target: &str) -> Bytes {
        let Some(refusal) = &err.refusal else {
            return self.notice(err);
        };
        let (code, params) = numeric(refusal, target);
        let mut line = self.numeric(code);
        for param in &params {
            line = line.param(param);
        }
        line.trailing(&err.message).bytes()
    }
}

/// `432`: a nick chatd does not accept, with the core's reason (when
/// registering, and for a `NICK` later).
pub(super) fn erroneous_nick(client: &Client, nick: &str, why: &str) -> Bytes {
    client
        .numeric("432")
        .param(nick)
        .trailing(&format!("Erroneous nickname: {why}"))
        .bytes()
}

#[cfg(test)]
mod tests {
    use super::numeric;
    use crate::core::Refusal;

    #[test]
    fn every_rule_has_its_numeric_and_parameters() {
        assert_eq!(
            numeric(&Refusal::Banned, "#a"),
            ("474", vec!["#a".to_string()])
        );
        assert_eq!(
            numeric(&Refusal::UserNotInRoom("bob".into()), "#a"),
            ("441", vec!["bob".to_string(), "#a".to_string()])
        );
        let bad_key = Refusal::InvalidModeParam {
            mode: 'k',
            param: "*".into(),
        };
        assert_eq!(numeric(&bad_key, "#a").1, ["#a", "k", "*"]);
        assert_eq!(numeric(&Refusal::NoPrivileges, "x"), ("481", Vec::new()));
    }
}
