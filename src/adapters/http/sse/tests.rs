//! Unit tests of `adapters::http::sse`: the opening of a stream.

use super::*;
use crate::core::HistoryAnswer;
use crate::core::message::sample;

fn general() -> RoomName {
    RoomName::parse("general").unwrap()
}

/// A page of `seqs` covering from `from`, up to `until`, with holes `missing`.
fn page(
    seqs: impl IntoIterator<Item = u64>,
    from: u64,
    missing: Vec<(u64, u64)>,
    until: u64,
) -> ReplayPage {
    ReplayPage {
        answer: HistoryAnswer {
            messages: seqs
                .into_iter()
                .map(|s| sample("general", s, "a", "x"))
                .collect(),
            from,
            missing,
        },
        until,
    }
}

fn text(out: &BytesMut) -> &str {
    std::str::from_utf8(out).unwrap()
}

#[test]
fn a_resume_from_too_far_back_is_truncated() {
    let (out, _) = opening(&general(), Some(3), 50, page(41..=50, 41, vec![], 50), None);
    assert!(
        text(&out).contains("event: truncated\ndata: {\"first_seq\":41,\"room\":\"general\"}"),
        "{}",
        text(&out)
    );
    let (out, _) = opening(
        &general(),
        Some(40),
        50,
        page(41..=50, 41, vec![], 50),
        None,
    );
    assert!(!text(&out).contains("truncated"));
    let (out, rest) = opening(&general(), Some(50), 50, page([], 51, vec![], 50), None);
    assert!(!text(&out).contains("truncated"), "up to date");
    assert!(rest.is_none());
}

#[test]
fn a_hole_in_a_replay_is_announced_where_it_is() {
    let first = page([6, 7, 11, 12], 6, vec![(8, 10)], 12);
    let (out, _) = opening(&general(), Some(5), 12, first, None);
    let text = text(&out);
    let seven = text.find("id: 7\n").unwrap();
    let gap = text
        .find("event: gap\ndata: {\"from\":8,\"room\":\"general\",\"to\":10}")
        .unwrap();
    let eleven = text.find("id: 11\n").unwrap();
    assert!(seven < gap && gap < eleven, "{text}");
    assert!(!text.contains("truncated"));
}

#[test]
fn a_numbering_the_server_lost_is_a_reset_then_the_room_afresh() {
    let (out, _) = opening(&general(), Some(500), 3, page(1..=3, 1, vec![], 3), Some(3));
    let text = text(&out);
    assert!(
        text.contains("event: reset\ndata: {\"last_seq\":3,\"room\":\"general\"}"),
        "{text}"
    );
    assert!(text.find("event: reset").unwrap() < text.find("id: 1\n").unwrap());
}

#[test]
fn a_replay_longer_than_its_first_page_goes_on_after_it() {
    let (_, rest) = opening(
        &general(),
        Some(0),
        300,
        page(1..=100, 1, vec![], 100),
        None,
    );
    let rest = rest.expect("200 more to read");
    assert_eq!((rest.cursor, rest.upto), (100, 300));
}
