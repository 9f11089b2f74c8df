//! Chatting over the line protocol: delivery, history, ordering, many clients, bad input and slow
//! readers, all over real sockets.

use std::collections::HashMap;

use crate::support::{Client, default_config, start, start_with};

#[tokio::test]
async fn two_clients_chat_without_echo() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    let mut bob = Client::named(addr, "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    alice.send("hi bob").await;
    bob.expect("[general] alice: hi bob").await;
    bob.send("hi alice, with spaces  and\ttabs").await;
    alice
        .expect("[general] bob: hi alice, with spaces  and\ttabs")
        .await;
    // Neither got its own line back.
    alice.sync().await;
    bob.sync().await;
    // `//` escapes a leading slash; CRLF line endings work.
    alice.send_raw(b"//shrug\r\n").await;
    bob.expect("[general] alice: /shrug").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_joiner_gets_exactly_the_last_10_in_order() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    alice.join("general").await;
    for i in 1..=25 {
        alice.send(&format!("message {i}")).await;
    }
    alice.sync().await;
    let mut bob = Client::named(addr, "bob").await;
    bob.send("/join general").await;
    bob.expect("* you joined general (2 members); its last 10 messages follow")
        .await;
    let history = bob.lines(10).await;
    let expected: Vec<String> = (16..=25)
        .map(|i| format!("[general] alice: message {i}"))
        .collect();
    assert_eq!(history, expected);
    // Then live traffic, and nothing replayed twice.
    alice.send("live").await;
    bob.expect("[general] alice: live").await;
    bob.sync().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_room_with_few_messages_replays_them_all() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    alice.join("small").await;
    alice.send("one").await;
    alice.sync().await;
    let mut bob = Client::named(addr, "bob").await;
    bob.send("/join small").await;
    bob.expect("* you joined small (2 members); its last message follows")
        .await;
    bob.expect("[small] alice: one").await;
    alice.expect("* bob joined small").await;
    alice.send("two").await;
    alice.sync().await;
    let mut carol = Client::named(addr, "carol").await;
    assert_eq!(
        carol.join("small").await,
        ["[small] alice: one", "[small] alice: two"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn fifty_clients_in_one_room_all_receive() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut clients = Vec::new();
    for i in 0..50 {
        let mut c = Client::named(addr, &format!("user{i}")).await;
        c.join("crowd").await;
        clients.push(c);
    }
    // Each earlier member hears each later join; drain those first.
    for (i, c) in clients.iter_mut().enumerate() {
        for j in i + 1..50 {
            c.expect(&format!("* user{j} joined crowd")).await;
        }
    }
    clients[7].send("hello crowd").await;
    for (i, c) in clients.iter_mut().enumerate() {
        if i != 7 {
            c.expect("[crowd] user7: hello crowd").await;
        }
        c.sync().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn concurrent_senders_are_seen_in_one_order_by_everybody() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut readers = Vec::new();
    for name in ["r1", "r2"] {
        let mut r = Client::named(addr, name).await;
        r.join("race").await;
        readers.push(r);
    }
    let mut senders = Vec::new();
    for name in ["s1", "s2", "s3"] {
        let mut s = Client::named(addr, name).await;
        s.join("race").await;
        senders.push(s);
    }
    let per_sender = 200;
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let lines: Vec<String> = (0..per_sender).map(|i| format!("n{i}")).collect();
                s.send_many(lines).await;
                s
            })
        })
        .collect();
    let mut seen = Vec::new();
    for r in readers.iter_mut() {
        let mut got = Vec::new();
        while got.len() < 3 * per_sender {
            let line = r.line().await;
            if line.starts_with("[race]") {
                got.push(line);
            }
        }
        seen.push(got);
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(seen[0], seen[1], "both readers saw the same order");
    // And each sender's own messages are in the order it sent them.
    let mut next: HashMap<String, usize> = HashMap::new();
    for line in &seen[0] {
        let (who, text) = line.trim_start_matches("[race] ").split_once(": ").unwrap();
        let expected = next.entry(who.to_string()).or_default();
        assert_eq!(text, format!("n{expected}"));
        *expected += 1;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_over_long_line_is_refused_and_the_session_goes_on() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    let mut bob = Client::named(addr, "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    let mut long = vec![b'x'; 100_000];
    long.push(b'\n');
    alice.send_raw(&long).await;
    alice.expect("! line too long (max 4096 bytes)").await;
    alice.send("still here").await;
    bob.expect("[general] alice: still here").await;
    // Exactly at the limit is fine... as a line; as a message it is over 2000 characters.
    alice.send(&"y".repeat(4096)).await;
    alice
        .expect("! message too long (max 2000 characters)")
        .await;
    bob.sync().await;
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_utf8_and_control_characters_are_refused() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    let mut bob = Client::named(addr, "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    alice.send_raw(b"caf\xe9\n").await;
    alice
        .expect("! invalid UTF-8: lines must be UTF-8 text")
        .await;
    alice.send("paint \u{1b}[2J the screen").await;
    alice
        .expect("! control characters are not allowed in messages (found U+001B)")
        .await;
    alice.send("café, properly").await;
    bob.expect("[general] alice: café, properly").await;
    bob.sync().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_without_stalling_others() {
    let mut config = default_config();
    config.server.outbound_queue = 32;
    let server = start_with(config).await;
    let addr = server.tcp_addr();
    let mut sleepy = Client::connect_small_buffer(addr).await;
    sleepy.send("/nick sleepy").await;
    sleepy.expect("* you are now sleepy").await;
    sleepy.join("busy").await;
    let mut talker = Client::named(addr, "talker").await;
    talker.join("busy").await;
    let mut reader = Client::named(addr, "reader").await;
    reader.join("busy").await;
    talker.expect("* reader joined busy").await;
    // Sleepy stops reading. 8,000 lines of 1,000 bytes are more than the kernel buffers between
    // the server and sleepy hold, so its queue fills and it is kicked; meanwhile the reader gets
    // every line. The talker sends in chunks the reader has caught up with, so the reader never
    // has more than one chunk queued.
    let text = "z".repeat(1000);
    let (total, chunk) = (8000, 20);
    let mut received = 0;
    for start in (0..total).step_by(chunk) {
        talker
            .send_many((start..start + chunk).map(|i| format!("{i} {text}")))
            .await;
        while received < start + chunk {
            let line = reader.line().await;
            if line.starts_with("[busy] talker: ") {
                assert!(
                    line.starts_with(&format!("[busy] talker: {received} ")),
                    "in order: {received}"
                );
                received += 1;
            }
        }
    }
    assert_eq!(
        server.hub().stats().slow_consumers.get(),
        1,
        "sleepy, and only sleepy, was cut off"
    );
    // Sleepy finally reads: what was buffered, then the reason, then the end.
    let rest = sleepy.expect_closed().await;
    assert_eq!(
        rest.last().map(String::as_str),
        Some("! disconnected: you were not reading fast enough (32 events waiting)")
    );
    reader.send("/users").await;
    reader.expect("* sleepy quit").await;
    reader.expect("* users in busy (2): reader, talker").await;
    server.shutdown().await;
}
