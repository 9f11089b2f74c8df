//! IRC users on different instances: phase 3 (Valkey pub/sub) and phase 2 (polling PostgreSQL).
//! Set `CHATD_SKIP_VALKEY=1` or `CHATD_SKIP_POSTGRES=1` to skip these on a machine without those
//! servers.

use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::Durability;
use chatd::server::Server;

use crate::irc;
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
    let text = include_str!("../../pipelines/phase2-poll.toml");
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

#[tokio::test]
async fn irc_users_on_two_valkey_instances_share_a_room_and_its_history() {
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
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn irc_users_on_two_polling_instances_share_a_room_and_its_history() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let a = start_with(phase2(&pg.url(), "a")).await;
    let b = start_with(phase2(&pg.url(), "b")).await;
    chat_across(&a, &b).await;
    a.shutdown().await;
    b.shutdown().await;
}
