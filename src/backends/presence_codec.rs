//! A presence change as text fields, the form both buses carry it in: a row of
//! `presence_events` for the poll (`backends::poll::presence`) and a JSON publish on Valkey
//! (`backends::valkey::wire`). One encoding for both, so that they cannot drift apart.
//!
//! | kind | `new_nick` | `detail` |
//! |---|---|---|
//! | `joined` | | |
//! | `left`, `quit` | | the reason, if one was given |
//! | `renamed` | the new nick | |
//! | `kicked` | the operator who kicked | the reason |
//! | `topic` | | the new topic (empty: cleared) |
//! | `mode` | | the change, as IRC writes it (`+o bob`) |
//! | `away` | | the away message (none: back) |
//! | `realname` | | the new real name |

use std::sync::Arc;

use tower::BoxError;

use crate::core::{Nick, Presence, PresenceKind, RoomName};

/// `presence` as `(kind, new_nick, detail)`.
pub fn encode(presence: &Presence) -> (&'static str, Option<String>, Option<String>) {
    let reason = presence.reason.clone();
    match &presence.kind {
        PresenceKind::Joined => ("joined", None, None),
        PresenceKind::Left => ("left", None, reason),
        PresenceKind::Quit => ("quit", None, reason),
        PresenceKind::Renamed(new) => ("renamed", Some(new.to_string()), None),
        PresenceKind::Kicked { by, reason } => {
            ("kicked", Some(by.to_string()), Some(reason.clone()))
        }
        PresenceKind::Topic(text) => ("topic", None, Some(text.clone())),
        PresenceKind::Mode(change) => ("mode", None, Some(change.clone())),
        PresenceKind::Away(text) => ("away", None, text.clone()),
        PresenceKind::Realname(name) => ("realname", None, Some(name.clone())),
    }
}

/// The fields of another instance's change, as a remote presence change (no session: it is
/// nobody's here).
///
/// # Errors
/// When a field does not hold what chatd writes (another program, a newer chatd).
pub fn decode(
    room: &str,
    nick: &str,
    kind: &str,
    new_nick: Option<&str>,
    detail: Option<&str>,
) -> Result<Arc<Presence>, BoxError> {
    let text = || detail.unwrap_or_default().to_string();
    let (kind, reason) = match (kind, new_nick) {
        ("joined", _) => (PresenceKind::Joined, None),
        ("left", _) => (PresenceKind::Left, detail),
        ("quit", _) => (PresenceKind::Quit, detail),
        ("renamed", Some(new)) => (PresenceKind::Renamed(Nick::parse(new)?), None),
        ("kicked", Some(by)) => {
            let by = Nick::parse(by)?;
            (PresenceKind::Kicked { by, reason: text() }, None)
        }
        ("topic", _) => (PresenceKind::Topic(text()), None),
        ("mode", _) => (PresenceKind::Mode(text()), None),
        ("away", _) => (PresenceKind::Away(detail.map(str::to_string)), None),
        ("realname", _) => (PresenceKind::Realname(text()), None),
        (other, _) => return Err(format!("unknown presence kind {other:?}").into()),
    };
    let presence = Presence::new(RoomName::parse(room)?, Nick::parse(nick)?, kind, None);
    Ok(Arc::new(presence.with_reason(reason.map(str::to_string))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_without_its_session() {
        let nick = |n: &str| Nick::parse(n).unwrap();
        let kicked = PresenceKind::Kicked {
            by: nick("op"),
            reason: "spam".into(),
        };
        for (kind, reason) in [
            (PresenceKind::Joined, None),
            (PresenceKind::Left, Some("bye")),
            (PresenceKind::Quit, None),
            (PresenceKind::Renamed(nick("anna")), None),
            (kicked, None),
            (PresenceKind::Topic(String::new()), None),
            (PresenceKind::Mode("+o bob".into()), None),
            (PresenceKind::Away(Some("lunch".into())), None),
            (PresenceKind::Away(None), None),
            (PresenceKind::Realname("Ann Lee".into()), None),
        ] {
            let room = RoomName::parse("general").unwrap();
            let sent = Presence::new(room, nick("ann"), kind, Some(crate::core::SessionId(3)))
                .with_reason(reason.map(str::to_string));
            let (name, new_nick, detail) = encode(&sent);
            let got = decode(
                "general",
                "ann",
                name,
                new_nick.as_deref(),
                detail.as_deref(),
            );
            let got = got.unwrap();
            assert_eq!(
                (&got.kind, &got.reason, got.session),
                (&sent.kind, &sent.reason, None)
            );
        }
    }

    #[test]
    fn an_unknown_kind_or_a_rename_without_its_new_nick_is_an_error() {
        assert!(decode("general", "ann", "danced", None, None).is_err());
        assert!(decode("general", "ann", "renamed", None, None).is_err());
        assert!(decode("general", "not a nick!", "joined", None, None).is_err());
    }
}
