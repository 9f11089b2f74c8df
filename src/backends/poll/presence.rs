//! Presence events between instances: a row per change in `presence_events` (migration 0004),
//! read by the other instances' poll task. See the module docs of `poll` for why reading by
//! `id > last_id` is good enough here.

use std::sync::Arc;

use crate::backends::StoreError;
use crate::backends::postgres::classify;
use crate::core::{Nick, Presence, PresenceKind, RoomName};
use tower::BoxError;

/// How long an event is kept. Far longer than any poll interval: an instance whose polls are
/// that late has bigger problems than a missed join notice.
pub(super) const KEEP: &str = "5 minutes";

/// The most events one poll reads; the rest come with the next one.
pub(super) const MAX_ROWS: i64 = 1000;

/// Writes one change; `$5` is the instance whose user it was.
pub(super) const INSERT: &str = "INSERT INTO presence_events (room, nick, kind, new_nick, instance) \
     VALUES ($1, $2, $3, $4, $5)";

/// The newest event's id (0 for none): where reading starts, and how far one poll reads.
pub(super) const NEWEST: &str = "SELECT COALESCE(max(id), 0) FROM presence_events";

/// The events of the open rooms in `($2, $3]`, written by other instances, oldest first.
pub(super) const SINCE: &str = "SELECT id, room, nick, kind, new_nick FROM presence_events \
     WHERE room = ANY($1::text[]) AND id > $2 AND id <= $3 AND instance <> $4 \
     ORDER BY id LIMIT $5";

/// Forgets the events older than [`KEEP`].
pub(super) const CLEAN: &str =
    "DELETE FROM presence_events WHERE created_at < now() - $1::text::interval";

/// A change as the columns `kind` and `new_nick`.
pub(super) fn encode(kind: &PresenceKind) -> (&'static str, Option<&str>) {
    match kind {
        PresenceKind::Joined => ("joined", None),
        PresenceKind::Left => ("left", None),
        PresenceKind::Quit => ("quit", None),
        PresenceKind::Renamed(new) => ("renamed", Some(new.as_str())),
    }
}

/// A stored event as a remote presence change (no session: it is nobody's here).
///
/// # Errors
/// When a column does not hold what chatd writes (another program, a newer chatd).
pub(super) fn decode(
    room: &RoomName,
    nick: &str,
    kind: &str,
    new_nick: Option<&str>,
) -> Result<Arc<Presence>, BoxError> {
    let kind = match (kind, new_nick) {
        ("joined", _) => PresenceKind::Joined,
        ("left", _) => PresenceKind::Left,
        ("quit", _) => PresenceKind::Quit,
        ("renamed", Some(new)) => PresenceKind::Renamed(Nick::parse(new)?),
        (other, _) => return Err(format!("unknown presence kind {other:?}").into()),
    };
    Ok(Arc::new(Presence::new(
        room.clone(),
        Nick::parse(nick)?,
        kind,
        None,
    )))
}

/// Writes `presence`, a change of one of `instance`'s users.
pub(super) async fn insert(
    conn: &tokio_postgres::Client,
    presence: &Presence,
    instance: &str,
) -> Result<(), StoreError> {
    let (kind, new_nick) = encode(&presence.kind);
    conn.execute(
        INSERT,
        &[
            &presence.room.as_str(),
            &presence.nick.as_str(),
            &kind,
            &new_nick,
            &instance,
        ],
    )
    .await
    .map_err(classify)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_without_its_session() {
        let room = RoomName::parse("general").unwrap();
        for kind in [
            PresenceKind::Joined,
            PresenceKind::Left,
            PresenceKind::Quit,
            PresenceKind::Renamed(Nick::parse("anna").unwrap()),
        ] {
            let (name, new_nick) = encode(&kind);
            let got = decode(&room, "ann", name, new_nick).unwrap();
            assert_eq!((got.kind.clone(), got.session), (kind, None));
            assert_eq!(got.nick.as_str(), "ann");
        }
    }

    #[test]
    fn an_unknown_kind_or_a_rename_without_its_new_nick_is_an_error() {
        let room = RoomName::parse("general").unwrap();
        assert!(decode(&room, "ann", "danced", None).is_err());
        assert!(decode(&room, "ann", "renamed", None).is_err());
        assert!(decode(&room, "not a nick!", "joined", None).is_err());
    }
}
