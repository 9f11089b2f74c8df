//! One room, three protocols; presence; IRCv3 echo, labels, tags, history on join and
//! CHATHISTORY.

use super::{irc, start};
use crate::support::Client;
use crate::support::http::HttpClient;
use crate::support::irc::{IrcClient, Msg};

/// Every chathistory message in the batch the server sends next (after skipping to it).
async fn batch(client: &mut IrcClient, target: &str) -> Vec<Msg> {
    let start = client.expect("BATCH").await;
    assert_eq!(start.params[1..], ["chathistory", target], "{start:?}");
    let id = start.params[0].trim_start_matches('+').to_string();
    let mut messages = Vec::new();
    loop {
        let msg = client.next().await;
        if msg.command == "BATCH" {
            assert_eq!(msg.params[0], format!("-{id}"));
            return messages;
        }
        assert_eq!(msg.tags.get("batch"), Some(&id), "{msg:?}");
        messages.push(msg);
    }
}

fn texts(messages: &[Msg]) -> Vec<String> {
    messages.iter().map(|m| m.last().to_string()).collect()
}

#[tokio::test]
async fn netcat_a_browser_and_irc_clients_chat_in_one_room_and_see_each_other_come_and_go() {
    let server = start().await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("general").await;
    let bob = HttpClient::connect(server.http_addr(), "bob").await;
    let mut stream = bob.stream("general", None).await;
    alice.expect("* bob joined general").await;
    let mut carol = IrcClient::register(irc(&server), "carol", &[]).await;
    carol.send("JOIN #General").await;
    let join = carol.expect("JOIN").await;
    assert_eq!(
        (join.nick(), join.params[0].as_str()),
        (Some("carol"), "#general")
    );
    let names = carol.expect("353").await;
    let mut members: Vec<&str> = names.last().split(' ').collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["@alice", "bob", "carol"],
        "the first member operates the room"
    );
    carol.expect("366").await;
    alice.expect("* carol joined general").await;

    alice.send("hi from netcat").await;
    let got = carol.expect("PRIVMSG").await;
    assert_eq!(got.source.as_deref(), Some("alice!alice@chatd"));
    assert_eq!(got.params, ["#general", "hi from netcat"]);
    assert_eq!(stream.next_message().await.data["text"], "hi from netcat");

    carol.send("PRIVMSG #general :hello from IRC").await;
    alice.expect("[general] carol: hello from IRC").await;
    let sse = stream.next_message().await;
    assert_eq!(
        (sse.data["nick"].as_str(), sse.data["text"].as_str()),
        (Some("carol"), Some("hello from IRC"))
    );
    carol.send("PRIVMSG #general :\u{1}ACTION waves\u{1}").await;
    alice.expect("[general] carol: /me waves").await;

    bob.say("general", "and from the browser").await;
    let got = carol.expect("PRIVMSG").await;
    assert_eq!(
        (got.nick(), got.last()),
        (Some("bob"), "and from the browser")
    );

    alice.send("/nick alicia").await;
    let nick = carol.expect("NICK").await;
    assert_eq!((nick.nick(), nick.last()), (Some("alice"), "alicia"));
    alice.send("/leave").await;
    let part = carol.expect("PART").await;
    assert_eq!(
        (part.nick(), part.params[0].as_str()),
        (Some("alicia"), "#general")
    );

    carol.send("NICK caroline").await;
    let own = carol.expect("NICK").await;
    assert_eq!((own.nick(), own.last()), (Some("carol"), "caroline"));
    carol.send("QUIT :bye now").await;
    let rest = carol.closed().await;
    assert_eq!(rest.last().map(|m| m.command.as_str()), Some("ERROR"));
    // The browser saw the IRC user's rename and quit, like everything else.
    let mut events = Vec::new();
    while events.last().is_none_or(|(kind, _)| kind != "quit") {
        let event = stream.next().await;
        if event.event == "presence" {
            let (kind, nick) = (&event.data["kind"], &event.data["nick"]);
            events.push((
                kind.as_str().unwrap_or("").to_string(),
                nick.as_str().unwrap_or("").to_string(),
            ));
        }
    }
    let tail: Vec<(&str, &str)> = events[events.len() - 2..]
        .iter()
        .map(|(k, n)| (k.as_str(), n.as_str()))
        .collect();
    assert_eq!(tail, [("renamed", "carol"), ("quit", "caroline")]);
    server.shutdown().await;
}

#[tokio::test]
async fn echo_message_is_per_client_and_a_labeled_message_comes_back_labeled_with_its_msgid() {
    let server = start().await;
    let caps = [
        "echo-message",
        "labeled-response",
        "batch",
        "message-tags",
        "server-time",
    ];
    let mut dave = IrcClient::register(irc(&server), "dave", &caps).await;
    let mut erin = IrcClient::register(irc(&server), "erin", &["message-tags"]).await;
    for client in [&mut dave, &mut erin] {
        client.send("JOIN #echo").await;
        client.expect("366").await;
    }
    dave.expect("JOIN").await; // erin's
    dave.send("@label=l1 PRIVMSG #echo :labeled").await;
    let echo = dave.expect("PRIVMSG").await;
    assert_eq!(echo.tags.get("label").map(String::as_str), Some("l1"));
    assert_eq!(echo.tags.get("msgid").map(String::as_str), Some("echo:1"));
    assert!(echo.tags.contains_key("time"));
    let seen = erin.expect("PRIVMSG").await;
    assert_eq!(seen.tags.get("msgid"), echo.tags.get("msgid"));
    assert!(!seen.tags.contains_key("label"));
    // Erin did not ask for echo-message: her own message does not come back.
    erin.send("PRIVMSG #echo :unechoed").await;
    assert_eq!(dave.expect("PRIVMSG").await.last(), "unechoed");
    assert!(erin.sync().await.is_empty());
    // A labeled command with several lines of answer is one labeled-response batch; one with
    // none is a labeled ACK.
    dave.send("@label=l2 NAMES #echo").await;
    let start = dave.expect("BATCH").await;
    assert_eq!(start.tags.get("label").map(String::as_str), Some("l2"));
    assert_eq!(start.params[1], "labeled-response");
    dave.send("@label=l3 PONG x").await;
    let ack = dave.expect("ACK").await;
    assert_eq!(ack.tags.get("label").map(String::as_str), Some("l3"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_joiner_gets_the_last_ten_messages_as_a_chathistory_batch_with_their_times() {
    let server = start().await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("general").await;
    for i in 1..=12 {
        alice.send(&format!("message {i}")).await;
    }
    alice.sync().await;
    let mut frank = IrcClient::register(
        irc(&server),
        "frank",
        &["batch", "server-time", "message-tags"],
    )
    .await;
    frank.send("JOIN #general").await;
    frank.expect("366").await;
    let history = batch(&mut frank, "#general").await;
    let expected: Vec<String> = (3..=12).map(|i| format!("message {i}")).collect();
    assert_eq!(texts(&history), expected);
    assert!(history.iter().all(|m| m.tags.contains_key("time")));
    assert_eq!(history[0].tags["msgid"], "general:3");
    // A client without `batch` gets the same messages as plain lines.
    let mut plain = IrcClient::register(irc(&server), "plain", &[]).await;
    plain.send("JOIN #general").await;
    plain.expect("366").await;
    let lines = plain.sync().await;
    let privmsgs: Vec<&Msg> = lines.iter().filter(|m| m.command == "PRIVMSG").collect();
    assert_eq!(privmsgs.len(), 10);
    assert!(privmsgs.iter().all(|m| m.tags.is_empty()));
    server.shutdown().await;
}

#[tokio::test]
async fn chathistory_reads_windows_by_msgid_and_by_timestamp_beyond_the_ring() {
    let server = start().await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("hist").await;
    for i in 1..=30 {
        alice.send(&format!("m{i}")).await;
    }
    alice.sync().await;
    let caps = ["batch", "server-time", "message-tags", "draft/chathistory"];
    let mut gina = IrcClient::register(irc(&server), "gina", &caps).await;
    gina.send("JOIN #hist").await;
    batch(&mut gina, "#hist").await; // the join's last 10
    let m = |range: std::ops::RangeInclusive<u32>| -> Vec<String> {
        range.map(|i| format!("m{i}")).collect()
    };
    let ask = async |gina: &mut IrcClient, query: &str| -> Vec<Msg> {
        gina.send(&format!("CHATHISTORY {query}")).await;
        batch(gina, "#hist").await
    };
    let all = ask(&mut gina, "LATEST #hist * 100").await;
    assert_eq!(
        texts(&all),
        m(1..=30),
        "past the ring of 10, from the store"
    );
    assert_eq!(texts(&ask(&mut gina, "LATEST #hist * 3").await), m(28..=30));
    assert_eq!(
        texts(&ask(&mut gina, "LATEST #hist msgid=hist:25 100").await),
        m(26..=30)
    );
    assert_eq!(
        texts(&ask(&mut gina, "BEFORE #hist msgid=hist:7 4").await),
        m(3..=6)
    );
    assert_eq!(
        texts(&ask(&mut gina, "AFTER #hist msgid=hist:4 3").await),
        m(5..=7)
    );
    assert_eq!(
        texts(&ask(&mut gina, "BETWEEN #hist msgid=hist:2 msgid=hist:20 3").await),
        m(3..=5)
    );
    assert_eq!(
        texts(&ask(&mut gina, "BETWEEN #hist msgid=hist:20 msgid=hist:2 3").await),
        m(17..=19)
    );
    assert_eq!(
        texts(&ask(&mut gina, "AROUND #hist msgid=hist:15 3").await),
        m(14..=16)
    );
    // By time: several messages may share a millisecond, so the expectation is computed from
    // the times the server gave.
    let time = |msg: &Msg| msg.tags["time"].clone();
    let pivot = time(&all[14]);
    let before: Vec<String> = all
        .iter()
        .filter(|x| time(x) < pivot)
        .map(|x| x.last().to_string())
        .collect();
    let got = ask(&mut gina, &format!("BEFORE #hist timestamp={pivot} 100")).await;
    assert_eq!(texts(&got), before);
    let after: Vec<String> = all
        .iter()
        .filter(|x| time(x) > pivot)
        .map(|x| x.last().to_string())
        .collect();
    let got = ask(&mut gina, &format!("AFTER #hist timestamp={pivot} 100")).await;
    assert_eq!(texts(&got), after);
    // A room the client is not in is refused.
    gina.send("CHATHISTORY LATEST #elsewhere * 10").await;
    let fail = gina.expect("FAIL").await;
    assert_eq!(
        fail.params[..3],
        ["CHATHISTORY", "INVALID_TARGET", "LATEST"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_quit_or_rename_seen_in_two_shared_rooms_is_shown_once() {
    let server = start().await;
    let mut hank = IrcClient::register(irc(&server), "hank", &[]).await;
    hank.send("JOIN #one,#two").await;
    hank.expect("366").await;
    hank.expect("366").await;
    let mut ivy = Client::named(server.tcp_addr(), "ivy").await;
    ivy.join("one").await;
    ivy.join("two").await;
    hank.expect("JOIN").await;
    hank.expect("JOIN").await;
    ivy.send("/nick ivan").await;
    ivy.send("/quit").await;
    let mut lines = vec![hank.expect("NICK").await];
    lines.push(hank.next().await);
    lines.extend(hank.sync().await);
    let commands: Vec<&str> = lines.iter().map(|m| m.command.as_str()).collect();
    assert_eq!(commands, ["NICK", "QUIT"], "{lines:?}");
    server.shutdown().await;
}
