//! IRCv3 `CHATHISTORY` (draft/chathistory), and the history a joiner is shown.
//!
//! `CHATHISTORY LATEST|BEFORE|AFTER|BETWEEN|AROUND #room <ref> [<ref>] <limit>` asks for a window
//! of a room's messages, where a reference is `*`, `msgid=ROOM:SEQ` or `timestamp=<RFC 3339>`.
//! Each becomes one [`HistoryWindow`] (two for `AROUND`: the messages before the reference and
//! those from it on) that the route layer answers from the ring and the store, exactly like
//! `/history`; the answer comes back as a `chathistory` batch. `limit` is capped at 100
//! (`CHATHISTORY=100` in `005`).
//!
//! A join shows the room's last messages the same way, as a `chathistory` batch, so a client
//! that understands batches can tell history from live messages (and has their times).

use bytes::Bytes;

use super::caps::{Cap, Caps};
use super::message::Line;
use super::render;
use super::response::{Batches, batch};
use crate::core::message::ChatMessage;
use crate::core::{Bound, HistoryWindow, RoomName};
use crate::layers::parse::MAX_HISTORY;

/// A parsed `CHATHISTORY`: the room and the windows to read, oldest part first.
#[derive(Debug, PartialEq, Eq)]
pub struct Query {
    /// The target as the client wrote it (echoed in the batch).
    pub target: String,
    /// The windows; their answers are shown one after the other.
    pub windows: Vec<HistoryWindow>,
}

/// Why a `CHATHISTORY` was refused: the `FAIL` code, its parameters and a description.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `NEED_MORE_PARAMS`, `INVALID_PARAMS` or `INVALID_TARGET`.
    pub code: &'static str,
    /// What follows the code (the subcommand, the offending parameter).
    pub params: Vec<String>,
    /// For a person.
    pub description: String,
}

impl Refusal {
    /// A refusal with `code`, `params` and `description`.
    pub fn new(code: &'static str, params: &[&str], description: &str) -> Refusal {
        Refusal {
            code,
            params: params.iter().map(|p| p.to_string()).collect(),
            description: description.to_string(),
        }
    }

    /// The `FAIL CHATHISTORY ...` line.
    pub fn line(&self, server: &str) -> Bytes {
        let mut line = Line::new(server, "FAIL")
            .param("CHATHISTORY")
            .param(self.code);
        for param in &self.params {
            line = line.param(param);
        }
        line.trailing(&self.description).bytes()
    }
}

/// A reference to a point in a room's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ref {
    /// `*`: no bound.
    Open,
    /// `msgid=ROOM:SEQ`.
    Seq(u64),
    /// `timestamp=...`, in ms since the epoch.
    Time(i64),
}

/// Parses the parameters of `CHATHISTORY` (after the command).
///
/// # Errors
/// A [`Refusal`] to send as `FAIL CHATHISTORY ...`.
pub fn parse(params: &[&str]) -> Result<Query, Refusal> {
    let sub = params
        .first()
        .map(|s| s.to_ascii_uppercase())
        .unwrap_or_default();
    let needed = match sub.as_str() {
        "LATEST" | "BEFORE" | "AFTER" | "AROUND" => 4,
        "BETWEEN" => 5,
        "" => return Err(Refusal::new("NEED_MORE_PARAMS", &[], "Missing parameters")),
        _ => {
            return Err(Refusal::new(
                "INVALID_PARAMS",
                &[params[0]],
                "Unknown subcommand (LATEST, BEFORE, AFTER, BETWEEN, AROUND)",
            ));
        }
    };
    if params.len() < needed {
        return Err(Refusal::new(
            "NEED_MORE_PARAMS",
            &[&sub],
            "Missing parameters",
        ));
    }
    let target = params[1];
    let room = super::channels::channel(target)
        .ok_or_else(|| Refusal::new("INVALID_TARGET", &[&sub, target], "No such channel"))?;
    let limit = params[needed - 1]
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            Refusal::new(
                "INVALID_PARAMS",
                &[&sub, params[needed - 1]],
                "Invalid limit",
            )
        })?
        .min(MAX_HISTORY);
    let reference = |i: usize| {
        parse_ref(params[i], &room, sub == "LATEST").ok_or_else(|| {
            Refusal::new(
                "INVALID_PARAMS",
                &[&sub, params[i]],
                "Invalid message reference",
            )
        })
    };
    let window = |after: Ref, before: Ref, limit: usize, oldest_first: bool| HistoryWindow {
        room: room.clone(),
        after: bound(after),
        before: bound(before),
        limit,
        oldest_first,
    };
    let windows = match sub.as_str() {
        "LATEST" => vec![window(reference(2)?, Ref::Open, limit, false)],
        "BEFORE" => vec![window(Ref::Open, reference(2)?, limit, false)],
        "AFTER" => vec![window(reference(2)?, Ref::Open, limit, true)],
        "BETWEEN" => {
            let (a, b) = (reference(2)?, reference(3)?);
            match (a, b) {
                (Ref::Seq(x), Ref::Seq(y)) if x > y => vec![window(b, a, limit, false)],
                (Ref::Time(x), Ref::Time(y)) if x > y => vec![window(b, a, limit, false)],
                _ => vec![window(a, b, limit, true)],
            }
        }
        _ => {
            // AROUND: half before the reference, the rest from it on.
            let pivot = reference(2)?;
            let from = match pivot {
                Ref::Seq(seq) => Ref::Seq(seq.saturating_sub(1)),
                Ref::Time(ms) => Ref::Time(ms.saturating_sub(1)),
                Ref::Open => Ref::Open,
            };
            let before = limit / 2;
            let mut windows = Vec::with_capacity(2);
            if before > 0 {
                windows.push(window(Ref::Open, pivot, before, false));
            }
            windows.push(window(from, Ref::Open, limit - before, true));
            windows
        }
    };
    Ok(Query {
        target: target.to_string(),
        windows,
    })
}

fn bound(reference: Ref) -> Bound {
    match reference {
        Ref::Open => Bound::Open,
        Ref::Seq(seq) => Bound::Seq(seq),
        Ref::Time(ms) => Bound::Time(ms),
    }
}

/// `*` (where allowed), `msgid=ROOM:SEQ` (of `room`; a bare `SEQ` too) or `timestamp=...`.
fn parse_ref(raw: &str, room: &RoomName, star_allowed: bool) -> Option<Ref> {
    if raw == "*" {
        return star_allowed.then_some(Ref::Open);
    }
    if let Some(id) = raw.strip_prefix("msgid=") {
        let seq = match id.rsplit_once(':') {
            Some((of, seq)) if of == room.as_str() => seq,
            Some(_) => return None,
            None => id,
        };
        return seq.parse().ok().map(Ref::Seq);
    }
    raw.strip_prefix("timestamp=")
        .and_then(parse_timestamp)
        .map(Ref::Time)
}

/// Parses `YYYY-MM-DDThh:mm:ss[.fff]Z` into ms since the epoch (the inverse of
/// `core::message::rfc3339`, by Howard Hinnant's days-from-civil).
pub fn parse_timestamp(raw: &str) -> Option<i64> {
    let raw = raw.strip_suffix('Z')?;
    let (date, time) = raw.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + m * 60 + s) * 1000) + millis)
}

/// `messages` as a `chathistory` batch for `target` (or as plain lines for a client without
/// `batch`), each in the client's message form.
pub fn batch_of(
    server: &str,
    caps: Caps,
    batches: &mut Batches,
    target: &str,
    messages: &[std::sync::Arc<ChatMessage>],
) -> Vec<Bytes> {
    let form = render::form(caps);
    let lines: Vec<Bytes> = messages.iter().map(|m| render::message(m, form)).collect();
    if caps.has(Cap::BATCH) {
        batch(server, batches, &["chathistory", target], &lines)
    } else {
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::rfc3339;

    fn general() -> RoomName {
        RoomName::parse("general").unwrap()
    }

    #[test]
    fn timestamps_round_trip_with_the_core_s_format() {
        for ms in [0, 951_782_400_123, 1_795_797_986_500] {
            assert_eq!(parse_timestamp(&rfc3339(ms)), Some(ms));
        }
        assert_eq!(
            parse_timestamp("2026-11-27T16:46:26Z"),
            Some(1_795_797_986_000)
        );
        assert_eq!(
            parse_timestamp("2026-11-27T16:46:26.5Z"),
            Some(1_795_797_986_500)
        );
        assert_eq!(parse_timestamp("2026-13-27T16:46:26Z"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn each_subcommand_becomes_windows() {
        let q = parse(&["LATEST", "#General", "*", "500"]).unwrap();
        assert_eq!(q.target, "#General");
        assert_eq!(q.windows.len(), 1);
        let w = &q.windows[0];
        assert_eq!(
            (w.after, w.before, w.limit, w.oldest_first),
            (Bound::Open, Bound::Open, 100, false)
        );
        assert_eq!(w.room, general());
        let w = &parse(&["AFTER", "#general", "msgid=general:4", "3"])
            .unwrap()
            .windows[0];
        assert_eq!(
            (w.after, w.before, w.oldest_first),
            (Bound::Seq(4), Bound::Open, true)
        );
        let w = &parse(&["BETWEEN", "#general", "msgid=9", "msgid=2", "3"])
            .unwrap()
            .windows[0];
        assert_eq!(
            (w.after, w.before, w.oldest_first),
            (Bound::Seq(2), Bound::Seq(9), false)
        );
        let around = parse(&["AROUND", "#general", "msgid=general:7", "3"])
            .unwrap()
            .windows;
        assert_eq!((around[0].before, around[0].limit), (Bound::Seq(7), 1));
        assert_eq!((around[1].after, around[1].limit), (Bound::Seq(6), 2));
        let around = parse(&[
            "around",
            "#general",
            "timestamp=1970-01-01T00:00:01.000Z",
            "1",
        ]);
        let around = around.unwrap().windows;
        assert_eq!(around.len(), 1);
        assert_eq!(around[0].after, Bound::Time(999));
    }

    #[test]
    fn bad_requests_are_refused_with_their_fail_code() {
        assert_eq!(
            parse(&["LATEST", "#general", "*"]).unwrap_err().code,
            "NEED_MORE_PARAMS"
        );
        assert_eq!(
            parse(&["LATEST", "nick", "*", "5"]).unwrap_err().code,
            "INVALID_TARGET"
        );
        assert_eq!(
            parse(&["BEFORE", "#general", "*", "5"]).unwrap_err().code,
            "INVALID_PARAMS"
        );
        let other_room = parse(&["AFTER", "#general", "msgid=random:3", "5"]);
        assert_eq!(other_room.unwrap_err().code, "INVALID_PARAMS");
        let fail = parse(&["NOPE"]).unwrap_err().line("srv");
        assert_eq!(
            &fail[..],
            b":srv FAIL CHATHISTORY INVALID_PARAMS NOPE :Unknown subcommand (LATEST, BEFORE, AFTER, BETWEEN, AROUND)\r\n"
        );
    }
}
