//! The slash commands about rooms' rules and about people, as a netcat user types them (and an
//! HTTP client posts them): `/msg`, `/away`, `/whois`, `/topic`, `/mode`, `/kick`, `/invite`,
//! the reasons of `/leave` and `/quit`, and the server operators' `/oper`, `/kill`, `/wallops`.

use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::{LayerConfig, OperConfig};

use crate::support::http::HttpClient;
use crate::support::{Client, default_config, start, start_with};

/// The default pipeline with one server operator, `root` / `sesame`.
fn with_oper() -> PipelineConfig {
    let mut config = default_config();
    for layer in &mut config.layers {
        if let LayerConfig::Route(route) = layer {
            route.opers.push(OperConfig {
                name: "root".into(),
                password: "sesame".into(),
            });
        }
    }
    config
}

#[tokio::test]
async fn a_private_message_reaches_one_person_and_says_when_they_are_away() {
    let server = start().await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    alice.send("/msg bob are you  there?").await;
    alice.expect("* to bob: are you  there?").await;
    bob.expect("*alice* are you  there?").await;
    bob.send("/away gone fishing").await;
    bob.expect("* you are away: gone fishing").await;
    alice.send("/msg BOB hello?").await;
    alice.expect("* to bob: hello?").await;
    alice.expect("* bob is away: gone fishing").await;
    alice.send("/msg nobody hi").await;
    alice.expect("! nobody is called nobody").await;
    alice.send("/msg bob \u{1b}[2J").await;
    alice
        .expect_prefix("! control characters are not allowed")
        .await;
    bob.expect("*alice* hello?").await;
    bob.send("/away").await;
    bob.expect("* you are back").await;
    server.shutdown().await;
}

#[tokio::test]
async fn whois_tells_who_a_user_is_and_where() {
    let server = start().await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("general").await;
    alice.send("/setname Alice Liddell").await;
    alice.expect("* your real name is now Alice Liddell").await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    bob.send("/whois ALICE").await;
    bob.expect("* alice is alice!alice@chatd (Alice Liddell), on instance test, in general")
        .await;
    bob.send("/whois carol").await;
    bob.expect("! nobody is called carol").await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_first_member_operates_a_room_its_topic_and_modes() {
    let server = start().await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("general").await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    bob.send("/topic").await;
    bob.expect("* general has no topic").await;
    bob.send("/topic mine now").await;
    bob.expect("! only operators of general may set its topic (+t)")
        .await;
    alice.send("/topic Release on  Friday").await;
    alice
        .expect("* you set the topic of general: Release on  Friday")
        .await;
    bob.expect("* alice set the topic of general: Release on  Friday")
        .await;
    alice.send("/mode").await;
    alice.expect("* general has modes +nt").await;
    alice.send("/mode -t+o bob").await;
    alice.expect("* you set mode -t+o bob in general").await;
    bob.expect("* alice set mode -t+o bob in general").await;
    bob.send("/topic -").await;
    bob.expect("* you cleared the topic of general").await;
    alice.expect("* bob cleared the topic of general").await;
    bob.send("/mode +z").await;
    bob.expect("* refused: z is not a room mode chatd has")
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn operators_kick_ban_and_invite_and_everybody_meets_those_rules() {
    let server = start().await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("general").await;
    let mut carol = Client::named(server.tcp_addr(), "carol").await;
    carol.join("general").await;
    alice.expect("* carol joined general").await;
    carol.send("/kick alice").await;
    carol.expect("! only operators of general may kick").await;
    alice.send("/kick carol spam, again").await;
    alice
        .expect("* you kicked carol from general (spam, again)")
        .await;
    carol
        .expect("* carol was kicked from general by alice (spam, again)")
        .await;
    carol.send("still here?").await;
    carol.expect("! join a room first: /join ROOM").await;
    alice.send("/mode +b carol").await;
    alice.expect("* you set mode +b carol!*@* in general").await;
    carol.send("/join general").await;
    carol.expect("! cannot join general: you are banned").await;
    alice.send("/mode -b+ik carol!*@* sesame").await;
    alice
        .expect("* you set mode -b+ik carol!*@* sesame in general")
        .await;
    carol.send("/join general").await;
    carol
        .expect("! cannot join general: it is invite-only (+i)")
        .await;
    alice.send("/invite carol").await;
    alice.expect("* you invited carol to general").await;
    carol
        .expect("* alice invites you to general: /join general")
        .await;
    carol.send("/join general").await;
    carol
        .expect("! cannot join general: it needs the right key (+k)")
        .await;
    carol.send("/join general sesame").await;
    carol
        .expect_prefix("* you joined general (2 members)")
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn leaving_and_quitting_say_why() {
    let server = start().await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("general").await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    bob.send("/leave general gone  fishing").await;
    bob.expect("* you left general; you are in no room now")
        .await;
    alice.expect("* bob left general (gone  fishing)").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    bob.send("/quit see you").await;
    bob.expect("* goodbye").await;
    alice.expect("* bob quit (see you)").await;
    server.shutdown().await;
}

#[tokio::test]
async fn server_operators_kill_and_send_wallops_to_those_who_read_them() {
    let server = start_with(with_oper()).await;
    let mut root = Client::named(server.tcp_addr(), "root").await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    let mut carol = Client::named(server.tcp_addr(), "carol").await;
    root.send("/kill bob enough").await;
    root.expect("! only server operators may do this (/oper first)")
        .await;
    root.send("/oper root wrong").await;
    root.expect("! wrong operator name or password").await;
    root.send("/oper root sesame").await;
    root.expect("* you are now a server operator").await;
    carol.send("/umode +w").await;
    carol.expect("* your modes are +w").await;
    root.send("/wallops maintenance at noon").await;
    root.expect("* wallops from root: maintenance at noon")
        .await;
    carol
        .expect("* wallops from root: maintenance at noon")
        .await;
    root.send("/kill bob enough").await;
    root.expect("* you killed bob").await;
    let last = bob.expect_closed().await;
    assert_eq!(
        last.last().map(String::as_str),
        Some("! killed by root: enough")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_http_user_sends_with_a_command_and_reads_private_messages_on_its_streams() {
    let server = start().await;
    let web = HttpClient::connect(server.http_addr(), "web").await;
    let mut stream = web.stream("general", None).await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.send("/msg web hi there").await;
    alice.expect("* to web: hi there").await;
    let direct = loop {
        let event = stream.next().await;
        if event.event == "direct" {
            break event;
        }
    };
    assert_eq!(direct.data["from"], "alice");
    assert_eq!(direct.data["text"], "*alice* hi there");
    let answer = web.command("/msg alice hello back").await;
    assert_eq!(answer.json["lines"][0], "* to alice: hello back");
    alice.expect("*web* hello back").await;
    server.shutdown().await;
}
