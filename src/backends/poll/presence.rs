//! Presence events between instances: a row per change in `presence_events` (migration 0004),
//! read by the other instances' poll task. See the module docs of `poll` for why reading by
//! `id > last_id` is good enough here.

use std::sync::Arc;

use crate::backends::postgres::classify;
use crate::backends::{StoreError, presence_codec};
use crate::core::{Presence, RoomName};
use tower::BoxError;

/// How long an event is kept. Far longer than any poll interval: an instance whose polls are
/// that late has bigger problems than a missed join notice.
pub(super) const KEEP: &str = "5 minutes";

/// The most events one poll reads; the rest come with the next one.
pub(super) const MAX_ROWS: i64 = 1000;

/// Writes one change; `$5` is the instance whose user it was, `$6` the change's detail (a
/// reason, a topic, a mode change: migration 0007).
pub(super) const INSERT: &str = "INSERT INTO presence_events (room, nick, kind, new_nick, instance, detail) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// The newest event's id (0 for none): where reading starts, and how far one poll reads.
pub(super) const NEWEST: &str = "SELECT COALESCE(max(id), 0) FROM presence_events";

/// The events of the open rooms in `($2, $3]`, written by other instances, oldest first.
pub(super) const SINCE: &str = "SELECT id, room, nick, kind, new_nick, detail FROM presence_events \
     WHERE room = ANY($1::text[]) AND id > $2 AND id <= $3 AND instance <> $4 \
     ORDER BY id LIMIT $5";

/// Forgets the events older than [`KEEP`].
pub(super) const CLEAN: &str =
    "DELETE FROM presence_events WHERE created_at < now() - $1::text::interval";

/// A stored event as a remote presence change (see `backends::presence_codec`).
///
/// # Errors
/// When a column does not hold what chatd writes (another program, a newer chatd).
pub(super) fn decode(
    room: &RoomName,
    nick: &str,
    kind: &str,
    new_nick: Option<&str>,
    detail: Option<&str>,
) -> Result<Arc<Presence>, BoxError> {
    presence_codec::decode(room.as_str(), nick, kind, new_nick, detail)
}

/// Writes `presence`, a change of one of `instance`'s users.
pub(super) async fn insert(
    conn: &tokio_postgres::Client,
    presence: &Presence,
    instance: &str,
) -> Result<(), StoreError> {
    let (kind, new_nick, detail) = presence_codec::encode(presence);
    conn.execute(
        INSERT,
        &[
            &presence.room.as_str(),
            &presence.nick.as_str(),
            &kind,
            &new_nick,
            &instance,
            &detail,
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
    fn a_row_decodes_through_the_shared_codec() {
        let room = RoomName::parse("general").unwrap();
        let got = decode(&room, "ann", "left", None, Some("lunch")).unwrap();
        assert_eq!(got.text(), "ann left general (lunch)");
        assert!(decode(&room, "ann", "danced", None, None).is_err());
    }
}
