//! IRC users on different instances: phase 3 (Valkey pub/sub) and phase 2 (polling PostgreSQL).
//! Set `CHATD_SKIP_VALKEY=1` or `CHATD_SKIP_POSTGRES=1` to skip these on a machine without those
//! servers.

use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::Durability;
use chatd::server::Server;

use super::irc;
use crate::support::irc::IrcClient;
use crate::support::postgres::TestPostgres;
use crate::support::valkey::TestValkey;
use crate::support::{Client, start_with};

/// `config` as instance `name`, with an IRC listener.
fn instance(mut config: PipelineConfig, name: &str) -> PipelineConfig {
    config.server.instance = Some(name.to_string());
    config.server.irc = Some("127.0.0.1:0".parse().unwrap());
    config
}

/// The shipped phase 2 pipeline on `url`, without its rate limit, as instance `name`.
fn phase2(url: &str, name: &str) -> PipelineConfig {
    let text = include_str!("../../../pipelines/phase2-poll.toml");
    let mut config = chatd::pipeline::load::parse("pipelines/phase2-poll.toml", text, &|var| {
        (var == "DATABASE_URL").then(|| url.to_string())
    })
    .expect("the phase 2 pipeline is valid");
    config.server.tcp = "127.0.0.1:0".parse().unwrap();
    config.server.http = "127.0.0.1:0".parse().unwrap();
    instance(crate::support::without_rate_limit(config), name)
}

/// An IRC user on `a` and one on `b`, and a netcat user on `b`, chat in `#general`; the msgid
/// of a message is the same on both instances, and `CHATHISTORY` on `b` reads what was said
/// on `a`.
async fn chat_across(a: &Server, b: &Server) {
    let caps = ["message-tags", "batch", "draft/chathistory"];
    let mut ann = IrcClient::register(irc(a), "ann", &caps).await;
    let mut ben = IrcClient::register(irc(b), "ben", &caps).await;
    let mut cat = Client::named(b.tcp_addr(), "cat").await;
    cat.join("general").await;
    for client in [&mut ann, &mut ben] {
        client.send("JOIN #general").await;
        client.expect("366").await;
    }
    // Presence crosses instances through the bus; messages are what must not be missed.
    ann.send("PRIVMSG #general :hello from a").await;
    let at_b = ben.expect("PRIVMSG").await;
    assert_eq!((at_b.nick(), at_b.last()), (Some("ann"), "hello from a"));
    assert_eq!(at_b.tags["msgid"], "general:1");
    loop {
        if cat.line().await == "[general] ann: hello from a" {
            break;
        }
    }
    cat.send("hello from b").await;
    let at_a = ann.expect("PRIVMSG").await;
    assert_eq!((at_a.nick(), at_a.last()), (Some("cat"), "hello from b"));
    assert_eq!(at_a.tags["msgid"], "general:2");
    ben.send("CHATHISTORY LATEST #general * 10").await;
    let start = ben.expect("BATCH").await;
    assert_eq!(start.params[1], "chathistory");
    let first = ben.expect("PRIVMSG").await;
    let second = ben.expect("PRIVMSG").await;
    assert_eq!(
        [first.last(), second.last()],
        ["hello from a", "hello from b"]
    );
    assert_eq!(
        ben.expect("BATCH").await.params[0],
        format!("-{}", &start.params[0][1..])
    );
    // A nick held on one instance is taken on the other.
    let mut late = IrcClient::connect(irc(b)).await;
    late.send("NICK ann").await;
    late.send("USER a 0 * :Another ann").await;
    late.expect("433").await;
}

/// A room's rules across instances: its operator on `a` sets a topic and modes and kicks a
/// member on `b`, who sees each change and is put out of the room where it is connected. A
/// private message or a WHOIS reaches across as far as chatd goes: a user of the other instance
/// is found (its instance named), but private messages stay on their instance.
async fn rules_across(a: &Server, b: &Server) {
    let mut op = IrcClient::register(irc(a), "op", &[]).await;
    let mut guest = IrcClient::register(irc(b), "guest", &[]).await;
    op.send("JOIN #ops").await;
    assert_eq!(op.expect("353").await.last(), "@op");
    guest.send("JOIN #ops").await;
    guest.expect("366").await;
    op.expect("JOIN").await; // guest's join, through the bus
    op.send("TOPIC #ops :across instances").await;
    op.expect("TOPIC").await;
    let topic = guest.expect("TOPIC").await;
    assert_eq!(topic.nick(), Some("op"));
    assert_eq!(topic.params, ["#ops", "across instances"]);
    op.send("MODE #ops +v guest").await;
    op.expect("MODE").await;
    assert_eq!(guest.expect("MODE").await.params, ["#ops", "+v", "guest"]);
    op.send("KICK #ops guest :be gone").await;
    op.expect("KICK").await;
    let kick = guest.expect("KICK").await;
    assert_eq!(kick.params, ["#ops", "guest", "be gone"]);
    guest.send("PRIVMSG #ops :still here?").await;
    assert_eq!(guest.expect("404").await.params[1], "#ops");
    op.send("WHOIS guest").await;
    let whois = op.expect("311").await;
    assert_eq!(whois.last(), "a user of instance b");
    assert_eq!(op.expect("312").await.params[2], "b");
    op.send("PRIVMSG guest :psst").await;
    let refusal = op.expect("401").await;
    assert!(refusal.last().contains("another instance"), "{refusal:?}");
}

#[tokio::test]
async fn irc_users_on_two_valkey_instances_share_a_room_its_history_and_its_rules() {
    let Some(valkey) = TestValkey::start() else {
        return;
    };
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let config = |name| {
        let pipeline = crate::support::valkey::pipeline(&pg.url(), &valkey.url(), Durability::Sync);
        instance(pipeline, name)
    };
    let a = start_with(config("a")).await;
    let b = start_with(config("b")).await;
    chat_across(&a, &b).await;
    rules_across(&a, &b).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn irc_users_on_two_polling_instances_share_a_room_its_history_and_its_rules() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let a = start_with(phase2(&pg.url(), "a")).await;
    let b = start_with(phase2(&pg.url(), "b")).await;
    chat_across(&a, &b).await;
    rules_across(&a, &b).await;
    a.shutdown().await;
    b.shutdown().await;
}
