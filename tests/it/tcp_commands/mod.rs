//! Every slash command of the line protocol, and every error it can give, over a real socket.

mod social;

use crate::support::{Client, start};

#[tokio::test]
async fn welcome_names_the_instance_and_a_guest_nick() {
    let server = start().await;
    let client = Client::connect(server.tcp_addr()).await;
    assert!(
        client.welcome.contains("(instance test)"),
        "{}",
        client.welcome
    );
    assert!(
        client.welcome.contains("you are guest-"),
        "{}",
        client.welcome
    );
    assert!(client.welcome.contains("/join ROOM"), "{}", client.welcome);
    server.shutdown().await;
}

#[tokio::test]
async fn nick_rules_and_announcements() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    let mut bob = Client::connect(addr).await;
    bob.send("/nick ALICE").await;
    bob.expect("! nick ALICE is taken").await;
    bob.send("/nick b@d").await;
    bob.expect("! invalid nick \"b@d\": use 1 to 32 of A-Z a-z 0-9 _ -")
        .await;
    bob.send("/nick").await;
    bob.expect("! usage: /nick NAME").await;
    bob.send(&format!("/nick {}", "x".repeat(33))).await;
    bob.expect_prefix("! invalid nick").await;
    bob.send("/nick bob").await;
    bob.expect("* you are now bob").await;

    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    bob.send("/nick robert").await;
    bob.expect("* you are now robert").await;
    alice.expect("* bob is now known as robert").await;
    // The old nick is free again.
    let mut other = Client::connect(addr).await;
    other.send("/nick bob").await;
    other.expect("* you are now bob").await;
    server.shutdown().await;
}

#[tokio::test]
async fn join_creates_folds_and_selects() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    alice.send("/join #General").await;
    alice
        .expect("* you joined general (1 member); no messages yet")
        .await;
    alice.send("/join general").await;
    alice.expect("* general is now your current room").await;
    alice.send("/join").await;
    alice.expect("! usage: /join ROOM [KEY]").await;
    alice.send("/join no/way").await;
    alice.expect("! invalid room name \"no/way\": use 1 to 32 of a-z 0-9 _ - (an optional leading # is fine)").await;
    let mut bob = Client::named(addr, "bob").await;
    bob.send("/join general").await;
    bob.expect("* you joined general (2 members); no messages yet")
        .await;
    alice.expect("* bob joined general").await;
    server.shutdown().await;
}

#[tokio::test]
async fn several_rooms_and_the_current_room() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    let mut bob = Client::named(addr, "bob").await;
    for room in ["general", "random"] {
        alice.join(room).await;
        bob.join(room).await;
        alice.expect(&format!("* bob joined {room}")).await;
    }
    // Bob's current room is random (joined last): a plain line goes there.
    bob.send("to random").await;
    alice.expect("[random] bob: to random").await;
    bob.send("/join general").await;
    bob.expect("* general is now your current room").await;
    bob.send("to general").await;
    alice.expect("[general] bob: to general").await;
    server.shutdown().await;
}

#[tokio::test]
async fn leave_rules_and_announcements() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    let mut bob = Client::named(addr, "bob").await;
    bob.send("/leave").await;
    bob.expect("! you are not in any room").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    bob.join("random").await;
    bob.send("/leave general").await;
    bob.expect("* you left general; your current room is random")
        .await;
    alice.expect("* bob left general").await;
    bob.send("/leave general").await;
    bob.expect("! you are not in general").await;
    bob.send("/leave").await;
    bob.expect("* you left random; you are in no room now")
        .await;
    bob.send("/leave a b").await; // leave a, saying "b"
    bob.expect("! you are not in a").await;
    // Bob no longer hears general.
    alice.send("anyone?").await;
    bob.sync().await;
    server.shutdown().await;
}

#[tokio::test]
async fn rooms_lists_member_counts() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    alice.send("/rooms").await;
    alice.expect("* no rooms yet: /join ROOM creates one").await;
    let mut bob = Client::named(addr, "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    bob.join("random").await;
    alice.send("/rooms").await;
    alice.expect("* bob joined general").await;
    alice.expect("* rooms: general (2), random (1)").await;
    alice.send("/rooms now").await;
    alice.expect("! usage: /rooms").await;
    server.shutdown().await;
}

#[tokio::test]
async fn users_of_a_room() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut carol = Client::named(addr, "carol").await;
    carol.send("/users").await;
    carol.expect("! join a room first: /join ROOM").await;
    carol.send("/users nowhere").await;
    carol.expect("! no room named nowhere").await;
    carol.join("general").await;
    let mut alice = Client::named(addr, "alice").await;
    alice.join("general").await;
    carol.send("/users").await;
    carol.expect("* alice joined general").await;
    carol.expect("* users in general (2): alice, carol").await;
    alice.join("random").await;
    carol.send("/users random").await;
    carol.expect("* users in random (1): alice").await;
    carol.send("/users a b").await;
    carol.expect("! usage: /users [ROOM]").await;
    server.shutdown().await;
}

#[tokio::test]
async fn history_command() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    alice.send("/history").await;
    alice.expect("! join a room first: /join ROOM").await;
    alice.join("general").await;
    alice.send("/history").await;
    alice.expect("* no messages in general yet").await;
    for i in 1..=12 {
        alice.send(&format!("m{i}")).await;
    }
    alice.send("/history 1").await;
    alice.expect("* the last message in general:").await;
    alice.expect("[general] alice: m12").await;
    alice.send("/history 3").await;
    alice.expect("* the last 3 messages in general:").await;
    assert_eq!(
        alice.lines(3).await,
        [
            "[general] alice: m10",
            "[general] alice: m11",
            "[general] alice: m12"
        ]
    );
    alice.send("/history").await;
    alice.expect("* the last 10 messages in general:").await;
    let lines = alice.lines(10).await;
    assert_eq!(
        lines.first().map(String::as_str),
        Some("[general] alice: m3")
    );
    // The ring holds 10; beyond it the store (SQLite in the default pipeline) has them all, once
    // the writer has caught up: written behind, m1 and m2 can be out of the ring and not yet in
    // the store for a moment, and then the answer has 10 or 11 of them. Ask until it has caught up.
    let mut answer = String::new();
    for _ in 0..50 {
        alice.send("/history 100").await;
        answer = alice.expect_prefix("* the last ").await;
        let n: usize = answer
            .trim_start_matches("* the last ")
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count");
        let lines = alice.lines(n).await;
        if n == 12 {
            assert_eq!(lines[0], "[general] alice: m1");
            assert_eq!(lines[11], "[general] alice: m12");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(answer, "* the last 12 messages in general:");
    alice.send("/history 101").await;
    alice
        .expect("! usage: /history [N], with N from 1 to 100")
        .await;
    alice.send("/history zero").await;
    alice
        .expect("! usage: /history [N], with N from 1 to 100")
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn help_lists_every_command() {
    let server = start().await;
    let mut alice = Client::connect(server.tcp_addr()).await;
    alice.send("/help").await;
    let lines = alice.lines(chatd::layers::parse::HELP.len()).await;
    for command in [
        "/nick", "/join", "/leave", "/rooms", "/users", "/history", "/help", "/quit",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("*   {command} "))),
            "{command} missing from {lines:?}"
        );
    }
    alice.sync().await;
    server.shutdown().await;
}

#[tokio::test]
async fn quit_says_goodbye_closes_and_is_announced() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    let mut bob = Client::named(addr, "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    bob.send("/quit").await;
    bob.expect("* goodbye").await;
    assert!(bob.expect_closed().await.is_empty());
    alice.expect("* bob quit").await;
    // The nick is free again.
    let mut again = Client::connect(addr).await;
    again.send("/nick bob").await;
    again.expect("* you are now bob").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_is_a_quit() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    let mut bob = Client::named(addr, "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    drop(bob);
    alice.expect("* bob quit").await;
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_commands_and_plain_lines_outside_rooms() {
    let server = start().await;
    let mut alice = Client::connect(server.tcp_addr()).await;
    alice.send("/dance").await;
    alice.expect("! unknown command /dance (try /help)").await;
    alice.send("hello?").await;
    alice.expect("! join a room first: /join ROOM").await;
    // Empty and blank lines are ignored: the next reply is /rooms'.
    alice.send("").await;
    alice.send("   ").await;
    alice.sync().await;
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_says_goodbye() {
    let server = start().await;
    let mut alice = Client::connect(server.tcp_addr()).await;
    alice.sync().await;
    server.shutdown().await;
    assert_eq!(
        alice.expect_closed().await,
        ["* server shutting down, goodbye"]
    );
}
