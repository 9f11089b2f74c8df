use super::*;
use crate::core::modes::parse;

fn room() -> RoomName {
    RoomName::parse("general").unwrap()
}

fn nick(n: &str) -> Nick {
    Nick::parse(n).unwrap()
}

fn person<'a>(mask: &'a str, key: &'a str) -> Person<'a> {
    Person { mask, key }
}

fn set(channels: &Channels, args: &[&str]) -> Vec<String> {
    let (changes, refused) = parse(args);
    assert!(refused.is_empty(), "{refused:?}");
    crate::core::modes::render(&channels.apply(&room(), &changes, &nick("op")))
}

#[test]
fn the_first_member_operates_the_room_and_it_starts_as_nt() {
    let channels = Channels::default();
    channels.joined(&room(), person("ann!ann@chatd", "ann"), true);
    channels.joined(&room(), person("bob!bob@chatd", "bob"), false);
    let channel = channels.get(&room()).unwrap();
    assert!(channel.rank("ann").op);
    assert!(!channel.rank("bob").op);
    assert_eq!(channel.letters(true), ["+nt"]);
}

#[test]
fn bans_keys_limits_and_invitations_decide_who_joins() {
    let channels = Channels::default();
    let bob = person("bob!bob@chatd", "bob");
    channels.joined(&room(), person("ann!ann@chatd", "ann"), true);
    set(&channels, &["+b", "bob"]);
    let refusal = |r: Result<(), ChatError>| r.unwrap_err().refusal.unwrap();
    assert_eq!(
        refusal(channels.admit(&room(), bob, None, 1)),
        Refusal::Banned
    );
    set(&channels, &["+e", "b*!*@*"]);
    assert!(channels.admit(&room(), bob, None, 1).is_ok(), "excepted");
    set(&channels, &["+ik", "sesame"]);
    assert_eq!(
        refusal(channels.admit(&room(), bob, None, 1)),
        Refusal::InviteOnly
    );
    channels.invite(&room(), "bob");
    assert_eq!(channels.invitations("bob"), vec![room()]);
    assert_eq!(
        refusal(channels.admit(&room(), bob, Some("x"), 1)),
        Refusal::BadKey
    );
    set(&channels, &["+l", "1"]);
    let admitted = channels.admit(&room(), bob, Some("sesame"), 1);
    assert_eq!(refusal(admitted), Refusal::RoomFull);
    assert!(channels.admit(&room(), bob, Some("sesame"), 0).is_ok());
    channels.joined(&room(), bob, false);
    assert!(
        channels.invitations("bob").is_empty(),
        "an invitation is used once"
    );
}

#[test]
fn moderated_and_no_external_rooms_decide_who_talks() {
    let channels = Channels::default();
    let bob = person("bob!bob@chatd", "bob");
    channels.joined(&room(), person("ann!ann@chatd", "ann"), true);
    assert!(channels.may_send(&room(), bob, false).is_err(), "+n");
    set(&channels, &["-n+m"]);
    assert!(channels.may_send(&room(), bob, false).is_err(), "+m");
    set(&channels, &["+v", "bob"]);
    assert!(channels.may_send(&room(), bob, false).is_ok());
    set(&channels, &["+b", "bob"]);
    assert!(
        channels.may_send(&room(), bob, true).is_ok(),
        "voiced, so heard"
    );
    set(&channels, &["-v", "bob"]);
    assert!(channels.may_send(&room(), bob, true).is_err(), "banned");
}

#[test]
fn only_real_changes_are_reported() {
    let channels = Channels::default();
    channels.joined(&room(), person("ann!ann@chatd", "ann"), true);
    assert_eq!(set(&channels, &["+nti"]), ["+i"], "n and t were set");
    assert_eq!(
        set(&channels, &["+o-o", "bob", "ann"]),
        ["+o-o", "bob", "ann"]
    );
    assert_eq!(set(&channels, &["-o", "ann"]), [""], "nothing changed");
    channels.renamed("bob", "robert");
    assert!(channels.get(&room()).unwrap().rank("robert").op);
}

#[test]
fn the_last_member_takes_the_state_along() {
    let channels = Channels::default();
    channels.joined(&room(), person("ann!ann@chatd", "ann"), true);
    set(&channels, &["+s"]);
    channels.left(&room(), "ann", true);
    assert!(channels.get(&room()).is_none());
}
