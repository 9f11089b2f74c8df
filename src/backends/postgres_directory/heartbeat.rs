//! The heartbeat of the PostgreSQL directory: what keeps this instance's rows alive, and what
//! removes everybody's dead ones (the rules are in [`crate::backends::directory`]).
//!
//! Every `ttl / 3` it takes a snapshot of this instance's sessions (id, nick, rooms) and:
//!
//! 1. refreshes `seen_at` of the rows that match the snapshot (same session, same nick);
//! 2. deletes this instance's rows that match no live session, if older than one period: a quit
//!    whose release failed (the database was away), or a nick left behind by a rename. Young rows
//!    are spared because a claim may have been made after the snapshot was taken;
//! 3. if fewer rows matched than there are sessions, inserts the missing ones (and leaves their
//!    rooms to step 4): this instance was out of reach for longer than the TTL and the others
//!    deleted its rows. A nick another instance gave out in the meantime stays with its new
//!    holder, and this instance's session that held it is disconnected with the reason, as an
//!    IRC server kills on a nick collision: otherwise two users would answer to one nick. Only a
//!    session whose claim was accepted counts (one whose claim is under way holds nothing yet),
//!    and one renamed since the snapshot is left alone. In normal operation this branch only
//!    meets sessions whose claim is in flight, which have no rooms yet;
//! 4. if a join or a leave could not be written since the last beat (the database was out of
//!    reach), or step 3 inserted nicks, makes this instance's memberships what its sessions
//!    hold: the missing ones are added, the ones no session holds any more deleted. Only
//!    sessions whose nick row matches their nick are repaired (a rename under way is left
//!    alone), and if a join or a leave ran meanwhile, whose write the repair may have
//!    overtaken, the next beat repairs again;
//! 5. deletes the expired rows of every instance, which is how a killed instance's members go.
//!
//! When `Background` stops (a clean shutdown) it deletes this instance's rows and ends.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_postgres::Client;

use super::{PostgresDirectory, db_session};
use crate::backends::directory::heartbeat_period;
use crate::backends::postgres::classify;
use crate::backends::{Background, StoreError};
use crate::core::SessionId;

/// Starts `directory`'s heartbeat on `background`.
pub(super) fn spawn(directory: PostgresDirectory, ttl: Duration, background: &Background) {
    let stop = background.stop.clone();
    background.tracker.spawn(async move {
        let mut tick = tokio::time::interval(heartbeat_period(ttl));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = beat(&directory).await {
                        tracing::warn!(error = %e, "presence heartbeat failed");
                    }
                }
            }
        }
        if let Err(e) = forget_me(&directory).await {
            tracing::warn!(error = %e, "could not delete this instance's presence rows");
        }
    });
}

/// This instance's sessions as the tables hold them, column by column.
#[derive(Default)]
struct Snapshot {
    ids: Vec<SessionId>,
    sessions: Vec<i64>,
    keys: Vec<String>,
    nicks: Vec<String>,
    /// One (room, nick key, session) triple per membership.
    member_rooms: Vec<String>,
    member_keys: Vec<String>,
    member_sessions: Vec<i64>,
}

fn snapshot(directory: &PostgresDirectory) -> Snapshot {
    let mut snap = Snapshot::default();
    for session in directory.hub.sessions().all() {
        let state = session.state();
        let key = state.nick.key();
        for room in &state.rooms {
            snap.member_rooms.push(room.as_str().to_string());
            snap.member_keys.push(key.clone());
            snap.member_sessions.push(db_session(session.id));
        }
        snap.ids.push(session.id);
        snap.sessions.push(db_session(session.id));
        snap.nicks.push(state.nick.as_str().to_string());
        snap.keys.push(key);
    }
    snap
}

/// One heartbeat; see the module docs.
async fn beat(directory: &PostgresDirectory) -> Result<(), StoreError> {
    let snap = snapshot(directory);
    let owner = &directory.owner;
    let period_ms = directory.ttl_ms / 3;
    let conn = directory.conn().await?;
    let refreshed = conn
        .execute(
            "UPDATE presence_nicks p SET seen_at = now() \
             FROM UNNEST($2::bigint[], $3::text[]) AS l(session, nick_key) \
             WHERE p.owner = $1 AND p.session = l.session AND p.nick_key = l.nick_key",
            &[owner, &snap.sessions, &snap.keys],
        )
        .await
        .map_err(classify)?;
    conn.execute(
        "DELETE FROM presence_nicks p WHERE p.owner = $1 \
         AND p.seen_at < now() - $4::bigint * interval '1 millisecond' \
         AND NOT EXISTS (SELECT 1 FROM UNNEST($2::bigint[], $3::text[]) AS l(session, nick_key) \
                         WHERE l.session = p.session AND l.nick_key = p.nick_key)",
        &[owner, &snap.sessions, &snap.keys, &period_ms],
    )
    .await
    .map_err(classify)?;
    if usize::try_from(refreshed).unwrap_or(usize::MAX) < snap.sessions.len() {
        let restored = conn
            .execute(
                "INSERT INTO presence_nicks (nick_key, nick, instance, owner, session) \
                 SELECT l.nick_key, l.nick, $4, $5, l.session \
                 FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS l(nick_key, nick, session) \
                 ON CONFLICT (nick_key) DO NOTHING",
                &[
                    &snap.keys,
                    &snap.nicks,
                    &snap.sessions,
                    &directory.hub.instance().as_ref(),
                    owner,
                ],
            )
            .await
            .map_err(classify)?;
        // Their rooms are written by step 4, which this marks as needed.
        if restored > 0 {
            directory.repair.needed.store(true, Ordering::SeqCst);
        }
        disconnect_collisions(directory, &conn, &snap).await?;
        tracing::warn!(
            sessions = snap.sessions.len(),
            refreshed,
            restored,
            "this instance's presence rows had gone (out of reach for longer than the TTL?); \
             restored them"
        );
    }
    repair_memberships(directory, &conn).await?;
    let expired = conn
        .execute(
            "DELETE FROM presence_nicks \
             WHERE seen_at < now() - $1::bigint * interval '1 millisecond'",
            &[&directory.ttl_ms],
        )
        .await
        .map_err(classify)?;
    if expired > 0 {
        tracing::info!(
            expired,
            "deleted presence rows of instances that stopped heartbeating"
        );
    }
    Ok(())
}

/// Step 3's other half (see the module docs): this instance's sessions whose nick another
/// instance holds now are disconnected.
async fn disconnect_collisions(
    directory: &PostgresDirectory,
    conn: &Client,
    snap: &Snapshot,
) -> Result<(), StoreError> {
    let taken: HashSet<i64> = conn
        .query(
            "SELECT l.session FROM UNNEST($1::text[], $2::bigint[]) AS l(nick_key, session) \
             JOIN presence_nicks p ON p.nick_key = l.nick_key \
             WHERE p.owner <> $3 AND p.seen_at >= now() - $4::bigint * interval '1 millisecond'",
            &[
                &snap.keys,
                &snap.sessions,
                &directory.owner,
                &directory.ttl_ms,
            ],
        )
        .await
        .map_err(classify)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let collided = (0..snap.sessions.len()).filter(|i| taken.contains(&snap.sessions[*i]));
    for i in collided {
        let Some(session) = directory.hub.sessions().get(snap.ids[i]) else {
            continue;
        };
        let nick = session.nick();
        if nick.key() != snap.keys[i] {
            continue; // renamed since the snapshot: the nick it lost is not its nick any more
        }
        let quit = format!(
            "nick collision: {nick} went to another user while this server was out of reach"
        );
        // A session gets its profile once its claim is accepted (`layers::route`): one without
        // holds no nick yet, its claim under way, and is left to it.
        let users = directory.hub.users();
        if users
            .update(session.id, |profile| profile.quit_reason = Some(quit))
            .is_none()
        {
            continue;
        }
        // Its adapter shows the reason and closes; the disconnect tells its rooms.
        session.disconnect(format!(
            "your nick {nick} was given to another user while this server could not reach the \
             others; reconnect and pick a nick"
        ));
        tracing::warn!(%nick, session = %session.id, "a nick given out elsewhere while this instance was out of reach: its session here is disconnected");
    }
    Ok(())
}

/// Step 4 of the module docs, when a membership write failed since the last repair.
async fn repair_memberships(
    directory: &PostgresDirectory,
    conn: &Client,
) -> Result<(), StoreError> {
    let repair = &directory.repair;
    if !repair.needed.swap(false, Ordering::SeqCst) {
        return Ok(());
    }
    let writes = repair.writes.load(Ordering::SeqCst);
    let snap = snapshot(directory);
    let owner = &directory.owner;
    // Both statements touch only this run's sessions whose nick row is the nick they hold now.
    let written = async {
        let deleted = conn
            .execute(
                "DELETE FROM presence_members m USING presence_nicks n \
                 WHERE m.nick_key = n.nick_key AND n.owner = $1 \
                   AND (n.session, n.nick_key) IN \
                       (SELECT * FROM UNNEST($2::bigint[], $3::text[])) \
                   AND (m.room, m.nick_key) NOT IN \
                       (SELECT * FROM UNNEST($4::text[], $5::text[]))",
                &[
                    owner,
                    &snap.sessions,
                    &snap.keys,
                    &snap.member_rooms,
                    &snap.member_keys,
                ],
            )
            .await?;
        let added = conn
            .execute(
                "INSERT INTO presence_members (room, nick_key) \
                 SELECT l.room, l.nick_key \
                 FROM UNNEST($2::text[], $3::text[], $4::bigint[]) AS l(room, nick_key, session) \
                 JOIN presence_nicks n \
                   ON n.owner = $1 AND n.session = l.session AND n.nick_key = l.nick_key \
                 ON CONFLICT DO NOTHING",
                &[
                    owner,
                    &snap.member_rooms,
                    &snap.member_keys,
                    &snap.member_sessions,
                ],
            )
            .await?;
        Ok::<_, tokio_postgres::Error>((deleted, added))
    }
    .await;
    let raced = repair.writes.load(Ordering::SeqCst) != writes;
    if raced || written.is_err() {
        repair.needed.store(true, Ordering::SeqCst);
    }
    let (deleted, added) = written.map_err(classify)?;
    tracing::info!(
        added,
        deleted,
        "repaired this instance's memberships in the presence directory after writes that failed"
    );
    Ok(())
}

/// Deletes every row of this run (a clean stop).
async fn forget_me(directory: &PostgresDirectory) -> Result<(), StoreError> {
    let conn = directory.conn().await?;
    conn.execute(
        "DELETE FROM presence_nicks WHERE owner = $1",
        &[&directory.owner],
    )
    .await
    .map_err(classify)?;
    Ok(())
}
