//! People through IRC: private messages to and from netcat users, away, WHO, WHOIS, WHOWAS,
//! server operators, wallops, LUSERS, and the capabilities that tell about people
//! (`away-notify`, `setname`).

use chatd::pipeline::config::{LayerConfig, OperConfig};

use super::{irc, irc_config, start};
use crate::support::irc::IrcClient;
use crate::support::{Client, start_with};

#[tokio::test]
async fn private_messages_cross_protocols_with_echo_tags_and_away_replies() {
    let server = start().await;
    let caps = ["echo-message", "message-tags", "labeled-response", "batch"];
    let mut ann = IrcClient::register(irc(&server), "ann", &caps).await;
    let mut nc = Client::named(server.tcp_addr(), "nc").await;
    ann.send("@label=L1 PRIVMSG nc :hi  there").await;
    let echo = ann.expect("PRIVMSG").await;
    assert_eq!(echo.tags.get("label").map(String::as_str), Some("L1"));
    assert_eq!(
        (echo.nick(), echo.params.as_slice()),
        (
            Some("ann"),
            ["nc".to_string(), "hi  there".to_string()].as_slice()
        )
    );
    assert!(echo.tags.contains_key("msgid"));
    nc.expect("*ann* hi  there").await;
    nc.send("/msg ann \u{1}not allowed").await;
    nc.expect_prefix("! control characters are not allowed")
        .await;
    nc.send("/msg ann /me waves back").await;
    nc.expect("* to ann: /me waves back").await;
    let got = ann.expect("PRIVMSG").await;
    assert_eq!(got.params, ["ann", "\u{1}ACTION waves back\u{1}"]);
    nc.send("/away out for lunch").await;
    nc.expect("* you are away: out for lunch").await;
    ann.send("PRIVMSG nc :still there?").await;
    ann.expect("PRIVMSG").await; // the echo
    assert_eq!(ann.expect("301").await.params[1..], ["nc", "out for lunch"]);
    ann.send("NOTICE nc :a notice gets no away reply").await;
    ann.expect("NOTICE").await; // the echo
    let after = ann.sync().await;
    assert!(after.iter().all(|m| m.command != "301"), "{after:?}");
    nc.expect("*ann* still there?").await;
    nc.expect("-ann- a notice gets no away reply").await;
    ann.send("PRIVMSG nobody :hello?").await;
    assert_eq!(ann.expect("401").await.params[1], "nobody");
    server.shutdown().await;
}

#[tokio::test]
async fn who_whois_and_whowas_describe_users_by_what_they_told() {
    let server = start().await;
    let mut cool = IrcClient::connect(irc(&server)).await;
    cool.send("NICK cool").await;
    cool.send("USER myuser 0 * :My Real Name").await;
    cool.expect("001").await;
    cool.send("JOIN #chan").await;
    cool.expect("366").await;
    cool.send("AWAY :brb").await;
    cool.expect("306").await;
    let mut other = IrcClient::register(irc(&server), "other", &[]).await;
    other.send("JOIN #chan").await;
    other.expect("366").await;
    other.send("WHO #CHAN").await;
    let who = other.expect("352").await;
    assert_eq!(
        who.params[1..7],
        ["#chan", "myuser", "chatd", "test", "cool", "G@"]
    );
    assert_eq!(who.last(), "0 My Real Name");
    other.expect("352").await;
    assert_eq!(other.expect("315").await.params[1], "#CHAN");
    other.send("WHO cool %tnuf,7").await;
    assert_eq!(
        other.expect("354").await.params[1..],
        ["7", "myuser", "cool", "G"]
    );
    other.send("WHOIS cool").await;
    let whois = other.expect("311").await;
    assert_eq!(whois.params[1..5], ["cool", "myuser", "chatd", "*"]);
    assert_eq!(whois.last(), "My Real Name");
    assert_eq!(other.expect("319").await.last(), "@#chan");
    other.expect("312").await;
    assert_eq!(other.expect("301").await.last(), "brb");
    other.expect("317").await;
    other.expect("318").await;
    other.send("USERHOST cool other").await;
    assert_eq!(
        other.expect("302").await.last(),
        "cool=-myuser@chatd other=+other@chatd"
    );
    cool.send("QUIT :bye").await;
    other.expect("QUIT").await;
    other.send("WHOWAS cool").await;
    let was = other.expect("314").await;
    assert_eq!(was.params[1..3], ["cool", "myuser"]);
    assert_eq!(was.last(), "My Real Name");
    other.expect("369").await;
    other.send("WHOWAS never").await;
    other.expect("406").await;
    server.shutdown().await;
}

#[tokio::test]
async fn operators_kill_and_send_wallops_and_lusers_counts_everybody() {
    let mut config = irc_config();
    for layer in &mut config.layers {
        if let LayerConfig::Route(route) = layer {
            route.opers.push(OperConfig {
                name: "boss".into(),
                password: "hunter2".into(),
            });
        }
    }
    let server = start_with(config).await;
    let mut boss = IrcClient::register(irc(&server), "boss", &[]).await;
    let mut ann = IrcClient::register(irc(&server), "ann", &[]).await;
    let _nc = Client::named(server.tcp_addr(), "nc").await;
    boss.send("KILL ann :bye").await;
    boss.expect("481").await;
    boss.send("OPER boss wrong").await;
    boss.expect("464").await;
    boss.send("OPER boss hunter2").await;
    boss.expect("381").await;
    boss.send("LUSERS").await;
    assert_eq!(
        boss.expect("251").await.last(),
        "There are 3 users and 0 invisible on 1 servers"
    );
    assert_eq!(boss.expect("252").await.params[1], "1");
    assert_eq!(boss.expect("265").await.params[1..3], ["3", "3"]);
    ann.send("MODE ann +w").await;
    ann.expect("MODE").await;
    boss.send("WALLOPS :restart at noon").await;
    let wallops = ann.expect("WALLOPS").await;
    assert_eq!(
        (wallops.nick(), wallops.last()),
        (Some("boss"), "restart at noon")
    );
    boss.send("KILL ann :enough").await;
    let farewell = ann.closed().await;
    assert_eq!(
        farewell.last().map(|m| m.last()),
        Some("Closing link: ann (killed by boss: enough)")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn away_notify_and_setname_reach_the_clients_that_asked() {
    let server = start().await;
    let mut watcher =
        IrcClient::register(irc(&server), "watcher", &["away-notify", "setname"]).await;
    let mut plain = IrcClient::register(irc(&server), "plain", &[]).await;
    let mut ann = IrcClient::register(irc(&server), "ann", &["setname"]).await;
    for client in [&mut watcher, &mut plain, &mut ann] {
        client.send("JOIN #room").await;
        client.expect("366").await;
    }
    ann.send("AWAY :tea").await;
    ann.expect("306").await;
    let away = watcher.expect("AWAY").await;
    assert_eq!((away.nick(), away.last()), (Some("ann"), "tea"));
    ann.send("SETNAME :Ann Other").await;
    assert_eq!(ann.expect("SETNAME").await.last(), "Ann Other");
    assert_eq!(watcher.expect("SETNAME").await.last(), "Ann Other");
    let seen = plain.sync().await;
    assert!(seen.iter().all(|m| m.command == "JOIN"), "{seen:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn monitor_tells_when_watched_nicks_come_and_go_on_any_protocol() {
    let server = start().await;
    let mut ann = IrcClient::register(irc(&server), "ann", &[]).await;
    ann.send("MONITOR + bob,*!x@y").await;
    assert_eq!(ann.expect("731").await.last(), "bob,*!x@y");
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    assert_eq!(ann.expect("730").await.last(), "bob!bob@chatd");
    bob.send("/nick Bob").await;
    bob.expect("* you are now Bob").await;
    bob.send("/nick robert").await;
    bob.expect("* you are now robert").await;
    assert_eq!(
        ann.expect("731").await.last(),
        "Bob",
        "a change of case is no news"
    );
    bob.send("/watch ann nobody").await;
    bob.expect("* online: ann").await;
    bob.expect("* offline: nobody").await;
    ann.send("MONITOR L").await;
    assert_eq!(ann.expect("732").await.last(), "bob");
    ann.expect("733").await;
    ann.send("QUIT").await;
    bob.expect("* ann went offline").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_bot_says_so_in_whois_who_and_a_tag_on_what_it_sends() {
    let server = start().await;
    let mut bot = IrcClient::register(irc(&server), "beep", &[]).await;
    bot.send("MODE beep +B").await;
    assert_eq!(bot.expect("MODE").await.params, ["beep", "+B"]);
    let mut ann = IrcClient::register(irc(&server), "ann", &["message-tags"]).await;
    for client in [&mut bot, &mut ann] {
        client.send("JOIN #lab").await;
        client.expect("366").await;
    }
    bot.send("PRIVMSG #lab :beep boop").await;
    let heard = ann.expect("PRIVMSG").await;
    assert!(heard.tags.contains_key("bot"), "{heard:?}");
    bot.send("PRIVMSG ann :psst").await;
    assert!(ann.expect("PRIVMSG").await.tags.contains_key("bot"));
    ann.send("WHOIS beep").await;
    ann.expect("335").await;
    ann.send("WHO #lab").await;
    ann.expect("352").await; // ann's own line comes first (sorted by nick)
    let who = ann.expect("352").await;
    assert_eq!(who.params[5..7], ["beep", "HB@"]);
    server.shutdown().await;
}
