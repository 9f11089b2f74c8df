//! Registration, numerics, errors, limits, pings, fakelag and slow readers.

use chatd::pipeline::config::PipelineConfig;

use super::{irc, irc_config, start};
use crate::support::irc::IrcClient;
use crate::support::{Client, start_with};

#[tokio::test]
async fn registration_welcomes_with_isupport_and_a_nick_taken_on_another_protocol_gets_433() {
    let server = start().await;
    let _bob = Client::named(server.tcp_addr(), "bob").await;
    let mut client = IrcClient::connect(irc(&server)).await;
    client.send("NICK bob").await;
    client.send("USER b 0 * :Bob Two").await;
    let taken = client.expect("433").await;
    assert_eq!(taken.params[..2], ["*", "bob"]);
    client.send("NICK carol").await;
    let welcome = client.expect("001").await;
    assert_eq!(welcome.params[0], "carol");
    assert!(welcome.last().contains("carol!b@chatd"), "{welcome:?}");
    let mut isupport = Vec::new();
    loop {
        let msg = client.next().await;
        if msg.command == "005" {
            isupport.extend(msg.params[1..msg.params.len() - 1].to_vec());
        }
        if msg.command == "376" {
            break;
        }
    }
    for token in [
        "CHANTYPES=#",
        "CASEMAPPING=ascii",
        "NICKLEN=32",
        "CHANNELLEN=33",
        "CHATHISTORY=100",
        "MSGREFTYPES=msgid,timestamp",
    ] {
        assert!(
            isupport.iter().any(|t| t == token),
            "{token} in {isupport:?}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn before_registration_commands_get_451_and_cap_negotiation_holds_the_welcome() {
    let server = start().await;
    let mut client = IrcClient::connect(irc(&server)).await;
    client.send("JOIN #general").await;
    assert_eq!(client.expect("451").await.params[0], "*");
    client.send("CAP LS 302").await;
    let ls = client.expect("CAP").await;
    assert!(ls.last().contains("draft/chathistory"), "{ls:?}");
    client.send("NICK dana").await;
    client.send("USER d 0 * :Dana").await;
    let before_end = client.sync().await;
    assert!(
        before_end.is_empty(),
        "no welcome before CAP END: {before_end:?}"
    );
    client.send("CAP REQ :server-time nonsense").await;
    let nak = client.expect("CAP").await;
    assert_eq!(nak.params[1..], ["NAK", "server-time nonsense"]);
    client.send("CAP END").await;
    client.expect("001").await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_server_pings_a_silent_client_and_cuts_off_one_that_does_not_answer() {
    let mut config = irc_config();
    config.server.irc_ping_secs = 1;
    let server = start_with(config).await;
    let mut answers = IrcClient::register(irc(&server), "answers", &[]).await;
    let mut silent = IrcClient::register(irc(&server), "silent", &[]).await;
    let ping = answers.expect("PING").await;
    answers.send(&format!("PONG :{}", ping.last())).await;
    let rest = silent.closed().await;
    let error = rest.last().expect("a last line");
    assert_eq!(error.command, "ERROR");
    assert!(error.last().contains("Ping timeout"), "{error:?}");
    assert!(
        rest.iter().any(|m| m.command == "PING"),
        "pinged first: {rest:?}"
    );
    // The one that answered is still there, and pinged again.
    answers.expect("PING").await;
    answers.send("PONG :again").await;
    assert!(answers.sync().await.iter().all(|m| m.command != "ERROR"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_flooding_client_is_slowed_down_never_refused() {
    // The shipped rate limit (10 a second, 20 at once) with an IRC listener.
    let mut config = crate::support::shipped_config();
    config.server.irc = Some("127.0.0.1:0".parse().unwrap());
    let server = start_with(config).await;
    let mut reader = Client::named(server.tcp_addr(), "reader").await;
    reader.join("flood").await;
    let mut flooder = IrcClient::register(irc(&server), "flooder", &[]).await;
    flooder.send("JOIN #flood").await;
    flooder.expect("366").await;
    let burst: String = (0..30)
        .map(|i| format!("PRIVMSG #flood :line {i}\r\n"))
        .collect();
    flooder.send_raw(burst.as_bytes()).await;
    reader.expect("* flooder joined flood").await;
    for i in 0..30 {
        reader.expect(&format!("[flood] flooder: line {i}")).await;
    }
    let answers = flooder.sync().await;
    assert!(answers.is_empty(), "no refusal, no error: {answers:?}");
    assert!(
        server.hub().stats().rate_limited.get() > 0,
        "the limit did apply: the lines beyond the burst were delayed"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_lines_get_their_numeric_and_the_session_goes_on() {
    let server = start().await;
    let mut client = IrcClient::register(irc(&server), "erin", &[]).await;
    client
        .send(&format!("PRIVMSG #x :{}", "a".repeat(600)))
        .await;
    assert_eq!(client.expect("417").await.params[0], "erin");
    client
        .send(&format!("@+t={} PING x", "b".repeat(5000)))
        .await;
    client.expect("417").await;
    client.send_raw(b"PRIVMSG #x :caf\xe9\r\n").await;
    let fail = client.expect("FAIL").await;
    assert_eq!(fail.params[..2], ["*", "INVALID_UTF8"]);
    client.send("FROBNICATE").await;
    assert_eq!(client.expect("421").await.params[1], "FROBNICATE");
    client.send("NICK bad!nick").await;
    assert_eq!(client.expect("432").await.params[1], "bad!nick");
    client.send("JOIN #!!").await;
    assert_eq!(client.expect("403").await.params[1], "#!!");
    client.send("PRIVMSG someone :psst").await;
    let refusal = client.expect("401").await;
    assert_eq!(refusal.params[1], "someone", "nobody is called that");
    client.send("PRIVMSG #general :not a member").await;
    assert_eq!(client.expect("404").await.params[1], "#general");
    client.send("PART #general").await;
    assert_eq!(client.expect("403").await.params[1], "#general");
    client.send("PRIVMSG #general :").await;
    client.expect("412").await;
    assert!(client.sync().await.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_new_room_is_nt_its_creator_operates_it_and_user_modes_are_ones_own() {
    let server = start().await;
    let mut client = IrcClient::register(irc(&server), "frank", &[]).await;
    client.send("JOIN #lobby").await;
    assert_eq!(client.expect("353").await.last(), "@frank");
    client.send("TOPIC #lobby").await;
    client.expect("331").await;
    client.send("MODE #lobby").await;
    assert_eq!(client.expect("324").await.params[1..], ["#lobby", "+nt"]);
    client.expect("329").await;
    client.send("MODE #lobby +m").await;
    assert_eq!(client.expect("MODE").await.params, ["#lobby", "+m"]);
    client.send("MODE frank +i").await;
    assert_eq!(client.expect("MODE").await.params, ["frank", "+i"]);
    client.send("MODE frank").await;
    assert_eq!(client.expect("221").await.params[1], "+i");
    client.send("MODE someone +i").await;
    client.expect("502").await;
    client.send("NOTICE someone :no reply to a notice").await;
    assert!(client.sync().await.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn an_irc_client_that_never_reads_is_cut_off_without_stalling_others() {
    let mut config = irc_config();
    config.server.outbound_queue = 32;
    never_reading_is_cut(config, "32 events waiting").await;
}

/// IRC queues have the byte bound (and the instance's budget) of the other adapters' queues,
/// not only the event bound: with room for 65,536 events, 16 KiB of long lines is what cuts.
#[tokio::test]
async fn an_irc_client_that_never_reads_is_cut_off_at_the_byte_bound() {
    let mut config = irc_config();
    config.server.outbound_queue = 65_536;
    config.server.outbound_queue_bytes = 16 * 1024;
    never_reading_is_cut(config, "16 KiB waiting").await;
}

/// An IRC client that never reads, in a room where long lines flow, is cut off with a farewell
/// that ends in `why`, while a netcat reader in the same room gets every line.
async fn never_reading_is_cut(config: PipelineConfig, why: &str) {
    let server = start_with(config).await;
    let mut sleepy = IrcClient::connect_small_buffer(irc(&server)).await;
    sleepy.send("NICK sleepy").await;
    sleepy.send("USER s 0 * :Sleepy").await;
    sleepy.send("JOIN #busy").await;
    sleepy.expect("366").await;
    let mut talker = Client::named(server.tcp_addr(), "talker").await;
    talker.join("busy").await;
    let mut reader = Client::named(server.tcp_addr(), "reader").await;
    reader.join("busy").await;
    talker.expect("* reader joined busy").await;
    // As in tcp_chat.rs: more than the kernel buffers hold, in chunks the reader keeps up
    // with.
    let text = "z".repeat(1000);
    let (total, chunk) = (8000, 20);
    let mut received = 0;
    for start in (0..total).step_by(chunk) {
        talker
            .send_many((start..start + chunk).map(|i| format!("{i} {text}")))
            .await;
        while received < start + chunk {
            if reader.line().await.starts_with("[busy] talker: ") {
                received += 1;
            }
        }
    }
    assert_eq!(server.hub().stats().slow_consumers.get(), 1);
    let rest = sleepy.closed().await;
    let last = rest.last().expect("a farewell");
    assert_eq!(last.command, "ERROR");
    assert!(
        last.last()
            .contains(&format!("not reading fast enough ({why})")),
        "{last:?}"
    );
    reader.expect("* sleepy quit").await;
    server.shutdown().await;
}
