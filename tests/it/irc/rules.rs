//! A room's rules through IRC: operators, topics, modes, keys, limits, bans, kicks and
//! invitations, met by IRC, netcat and browser users alike.

use super::{irc, start};
use crate::support::Client;
use crate::support::irc::IrcClient;

#[tokio::test]
async fn keys_limits_bans_and_invite_only_each_refuse_with_their_numeric() {
    let server = start().await;
    let mut op = IrcClient::register(irc(&server), "op", &[]).await;
    op.send("JOIN #club").await;
    op.expect("366").await;
    op.send("MODE #club +kl sesame 2").await;
    assert_eq!(
        op.expect("MODE").await.params,
        ["#club", "+kl", "sesame", "2"]
    );
    op.send("MODE #club").await;
    assert_eq!(
        op.expect("324").await.params[1..],
        ["#club", "+ntkl", "sesame", "2"]
    );
    let mut eve = IrcClient::register(irc(&server), "eve", &[]).await;
    eve.send("MODE #club").await;
    assert_eq!(
        eve.expect("324").await.params[2..],
        ["+ntkl", "*", "2"],
        "outsiders see no key"
    );
    eve.send("JOIN #club").await;
    assert_eq!(eve.expect("475").await.params[1], "#club");
    eve.send("JOIN #club wrong").await;
    eve.expect("475").await;
    let mut netcat = Client::named(server.tcp_addr(), "nc").await;
    netcat.send("/join club sesame").await;
    netcat.expect_prefix("* you joined club (2 members)").await;
    eve.send("JOIN #club sesame").await;
    assert_eq!(eve.expect("471").await.params[1], "#club");
    op.send("MODE #club -l+b eve").await;
    assert_eq!(op.expect("MODE").await.params, ["#club", "-l+b", "eve!*@*"]);
    op.send("MODE #club +b").await;
    let ban = op.expect("367").await;
    assert_eq!(
        (ban.params[2].as_str(), ban.params[3].as_str()),
        ("eve!*@*", "op")
    );
    op.expect("368").await;
    eve.send("JOIN #club sesame").await;
    eve.expect("474").await;
    op.send("MODE #club -b+i eve!*@*").await;
    op.expect("MODE").await;
    eve.send("JOIN #club sesame").await;
    eve.expect("473").await;
    op.send("MODE #club +I eve").await;
    op.expect("MODE").await;
    eve.send("JOIN #club sesame").await;
    assert_eq!(
        eve.expect("JOIN").await.params,
        ["#club"],
        "an invite exception lets her in"
    );
    eve.send("MODE #club -i").await;
    assert_eq!(eve.expect("482").await.params[1], "#club");
    eve.send("MODE #club +x").await;
    assert_eq!(eve.expect("472").await.params[1], "x");
    server.shutdown().await;
}

#[tokio::test]
async fn kicks_and_invitations_reach_the_right_people_on_every_protocol() {
    let server = start().await;
    let mut op = IrcClient::register(irc(&server), "op", &[]).await;
    op.send("JOIN #hall").await;
    op.expect("366").await;
    let mut ann = IrcClient::register(irc(&server), "ann", &[]).await;
    ann.send("JOIN #hall").await;
    ann.expect("366").await;
    let mut nc = Client::named(server.tcp_addr(), "nc").await;
    nc.join("hall").await;
    ann.expect("JOIN").await;
    ann.send("KICK #hall nc").await;
    assert_eq!(ann.expect("482").await.params[1], "#hall");
    op.send("KICK #hall nc,nobody :off topic").await;
    let kick = op.expect("KICK").await;
    assert_eq!(kick.nick(), Some("op"));
    assert_eq!(kick.params, ["#hall", "nc", "off topic"]);
    assert_eq!(op.expect("441").await.params[1..3], ["nobody", "#hall"]);
    assert_eq!(
        ann.expect("KICK").await.params,
        ["#hall", "nc", "off topic"]
    );
    nc.expect("* nc was kicked from hall by op (off topic)")
        .await;
    op.send("KICK #hall ann").await;
    assert_eq!(
        ann.expect("KICK").await.params,
        ["#hall", "ann", "op"],
        "the kicker's nick by default"
    );
    op.send("INVITE nc #hall").await;
    assert_eq!(op.expect("341").await.params[1..], ["nc", "#hall"]);
    nc.expect("* op invites you to hall: /join hall").await;
    op.send("INVITE ann #hall").await;
    op.expect("341").await;
    let invite = ann.expect("INVITE").await;
    assert_eq!(invite.nick(), Some("op"));
    assert_eq!(invite.params, ["ann", "#hall"]);
    ann.send("INVITE").await;
    assert_eq!(ann.expect("336").await.params[1], "#hall");
    ann.expect("337").await;
    op.send("INVITE op #hall").await;
    assert_eq!(op.expect("443").await.params[1..3], ["op", "#hall"]);
    ann.send("INVITE nc #hall").await;
    assert_eq!(ann.expect("442").await.params[1], "#hall");
    op.send("KICK #nowhere ann").await;
    op.expect("403").await;
    server.shutdown().await;
}

#[tokio::test]
async fn topics_moderation_and_secrecy_apply_to_netcat_users_too() {
    let server = start().await;
    let mut op = IrcClient::register(irc(&server), "op", &["multi-prefix"]).await;
    op.send("JOIN #den").await;
    op.expect("366").await;
    let mut nc = Client::named(server.tcp_addr(), "nc").await;
    nc.join("den").await;
    op.expect("JOIN").await;
    nc.send("/topic tea time").await;
    nc.expect("! only operators of den may set its topic (+t)")
        .await;
    op.send("TOPIC #den :tea time").await;
    assert_eq!(op.expect("TOPIC").await.params, ["#den", "tea time"]);
    nc.expect("* op set the topic of den: tea time").await;
    let mut late = IrcClient::register(irc(&server), "late", &[]).await;
    late.send("JOIN #den").await;
    assert_eq!(late.expect("332").await.params[1..], ["#den", "tea time"]);
    assert_eq!(late.expect("333").await.params[2], "op");
    nc.expect("* late joined den").await;
    op.send("MODE #den +mv late").await;
    op.expect("MODE").await;
    nc.expect("* op set mode +mv late in den").await;
    nc.send("may I?").await;
    nc.expect("! cannot send to den: it is moderated (+m) and you have no voice")
        .await;
    late.send("PRIVMSG #den :voiced, so heard").await;
    let heard = op.expect("PRIVMSG").await;
    assert_eq!(heard.last(), "voiced, so heard");
    op.send("MODE #den +o late").await;
    op.expect("MODE").await;
    op.send("NAMES #den").await;
    let names = op.expect("353").await;
    let mut members: Vec<&str> = names.last().split(' ').collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["@+late", "@op", "nc"],
        "every rank with multi-prefix"
    );
    op.send("MODE #den -nm+s").await;
    op.expect("MODE").await;
    let mut outsider = IrcClient::register(irc(&server), "outsider", &[]).await;
    outsider.send("LIST").await;
    let listed = outsider.sync().await;
    assert!(
        !listed.iter().any(|m| m.command == "322"),
        "a secret room is not listed: {listed:?}"
    );
    outsider.send("PRIVMSG #den :from outside").await;
    assert_eq!(
        op.expect("PRIVMSG").await.last(),
        "from outside",
        "-n takes outsiders' messages"
    );
    server.shutdown().await;
}
