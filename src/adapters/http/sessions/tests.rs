//! Unit tests of `adapters::http::sessions`: taps, their bounds, and expiry.

use super::*;
use crate::core::message::sample;

#[test]
fn tokens_are_long_and_distinct() {
    let (a, b) = (new_token(), new_token());
    assert_eq!(a.len(), 64);
    assert_ne!(a, b);
}

/// A stream's queue: 256 events or 64 KiB, on its own budget.
fn tap() -> QueueLimits {
    QueueLimits {
        events: 256,
        bytes: 64 * 1024,
        budget: outbound::QueueBudget::default(),
    }
}

fn attach(s: &Arc<HttpSession>, room: &str) -> (TapGuard, Inbox) {
    s.attach(RoomName::parse(room).unwrap(), &tap(), 8, None)
        .unwrap()
}

#[test]
fn events_reach_only_their_rooms_taps_and_full_taps_are_cut() {
    let sessions = HttpSessions::default();
    let stats = Stats::default();
    let s = sessions.open(SessionId(1), None);
    let (_g, mut general_rx) = attach(&s, "general");
    let (_r, mut random_rx) = attach(&s, "random");
    s.dispatch(Event::Message(sample("general", 1, "a", "hi")), &stats);
    assert!(general_rx.try_recv().is_some());
    assert!(random_rx.try_recv().is_none());
    for seq in 0..=256 {
        s.dispatch(
            Event::Message(sample("general", seq + 2, "a", "flood")),
            &stats,
        );
    }
    assert_eq!(
        s.taps().len(),
        1,
        "the full general tap was cut, random stays"
    );
    assert_eq!(stats.slow_consumers.get(), 1);
}

#[test]
fn a_tap_is_cut_by_bytes_before_events() {
    let sessions = HttpSessions::default();
    let stats = Stats::default();
    let s = sessions.open(SessionId(1), None);
    let (_g, _rx) = attach(&s, "general");
    let long = "x".repeat(8000);
    for seq in 1..=8 {
        s.dispatch(Event::Message(sample("general", seq, "a", &long)), &stats);
        assert_eq!(s.taps().len(), 1, "{seq} long messages fit in 64 KiB");
    }
    s.dispatch(Event::Message(sample("general", 9, "a", &long)), &stats);
    assert!(s.taps().is_empty(), "the ninth does not");
}

#[test]
fn a_session_has_at_most_its_streams() {
    let sessions = HttpSessions::default();
    let s = sessions.open(SessionId(1), None);
    let general = RoomName::parse("general").unwrap();
    let first = s.attach(general.clone(), &tap(), 2, None).unwrap();
    let _second = s.attach(general.clone(), &tap(), 2, None).unwrap();
    let refused = s.attach(general.clone(), &tap(), 2, None).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "too many event streams for this session (max 2): close one first"
    );
    drop(first);
    assert!(s.attach(general, &tap(), 2, None).is_ok());
}

#[test]
fn sessions_expire_only_without_streams() {
    let sessions = HttpSessions::default();
    let s = sessions.open(SessionId(1), None);
    let guard = attach(&s, "general");
    assert!(
        sessions
            .take_expired(Duration::ZERO, Duration::ZERO)
            .is_empty(),
        "an open stream keeps it alive"
    );
    drop(guard);
    let expired = sessions.take_expired(Duration::ZERO, Duration::ZERO);
    assert_eq!(expired.len(), 1);
    assert!(sessions.get(&s.token).is_none());
}

#[test]
fn a_session_whose_streams_closed_expires_after_the_grace_not_the_idle_time() {
    let sessions = HttpSessions::default();
    let page = sessions.open(SessionId(1), None);
    let script = sessions.open(SessionId(2), None);
    drop(attach(&page, "general"));
    let hour = Duration::from_secs(3600);
    let expired = sessions.take_expired(hour, Duration::ZERO);
    assert_eq!(
        expired.iter().map(|s| s.id).collect::<Vec<_>>(),
        [SessionId(1)],
        "the closed page goes, the client that never streamed stays"
    );
    assert!(sessions.get(&script.token).is_some());
    assert!(
        sessions.take_expired(hour, hour).is_empty(),
        "within the grace nothing expires"
    );
}
