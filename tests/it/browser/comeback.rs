//! Coming back by itself: after a server restart (same nick, same rooms, nothing lost or twice),
//! and letting go: a closed tab's session ends within seconds.

use std::time::{Duration, Instant};

use super::browser::{BROWSER_PATIENCE, Driver, testid};
use super::support::{self, Client};
use super::{SCENARIO_LIMIT, next_chat_line};
use chatd::adapters::http::sessions::STREAM_GRACE;

/// The server stops and starts again on the same ports (its SQLite file kept): the page shows
/// that it is offline and refuses to send meanwhile, then comes back by itself with the same nick
/// and rooms, every room resumed after the last message it showed: nothing lost, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_comes_back_by_itself_after_a_server_restart() {
    let driver = Driver::start();
    let config = support::default_config();
    let server = support::start_with(config.clone()).await;
    let (tcp, http) = (server.tcp_addr(), server.http_addr());
    let mut again = config;
    again.server.tcp = tcp;
    again.server.http = http;
    let base = format!("http://{http}/");
    tokio::time::timeout(SCENARIO_LIMIT, async {
        let alice = driver.open().await;
        alice.sign_in(&base, "alice").await;
        alice.join("random").await;
        alice.join("general").await;
        let mut carol = Client::named(tcp, "carol").await;
        carol.join("general").await;
        carol.send("before the restart").await;
        alice.wait_for_message("carol", "before the restart").await;
        alice.say("alice before").await;
        assert_eq!(
            next_chat_line(&mut carol).await,
            "[general] alice: alice before"
        );

        server.shutdown().await;
        alice.wait_for_offline(true).await;
        alice
            .wait_for_attr(&testid("connection-state"), "data-state", "offline")
            .await;

        let server = support::start_with(again).await;
        // Said before the page is back: it must arrive through the resumed stream.
        let mut carol = Client::named(tcp, "carol").await;
        carol.join("general").await;
        carol.send("right after the restart").await;

        alice.wait_for_offline(false).await;
        alice
            .wait_for_message("carol", "right after the restart")
            .await;
        alice.wait_for_connected().await;
        alice.wait_for_text(&testid("my-nick"), "alice").await;
        alice.wait_for_text(&testid("room-title"), "general").await;
        assert_eq!(alice.joined_rooms().await, ["random", "general"]);
        alice.say("alice after").await;
        assert_eq!(
            next_chat_line(&mut carol).await,
            "[general] alice: alice after"
        );
        alice.wait_for_message("alice", "alice after").await;
        assert_eq!(
            alice.messages().await,
            [
                "carol: before the restart",
                "alice: alice before",
                "carol: right after the restart",
                "alice: alice after",
            ],
            "each message once, in order, across the restart"
        );
        alice.close().await;
        server.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("the restart scenario took over {SCENARIO_LIMIT:?}"));
}

/// A tab that is closed releases its session within the grace after its last stream closed
/// (`STREAM_GRACE`), not after the idle time of minutes: the room sees it quit, and the nick can
/// be taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_tabs_nick_is_free_again_within_the_grace() {
    let driver = Driver::start();
    let server = support::start().await;
    let base = format!("http://{}/", server.http_addr());
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    bob.join("general").await;
    tokio::time::timeout(SCENARIO_LIMIT, async {
        let alice = driver.open().await;
        alice.sign_in(&base, "alice").await;
        alice.join("general").await;
        bob.expect("* alice joined general").await;
        alice.close().await;

        // Nothing is asserted about how fast, only that it happens within the grace and a
        // generous margin.
        let deadline = Instant::now() + STREAM_GRACE + BROWSER_PATIENCE;
        loop {
            bob.send("/users general").await;
            let reply = loop {
                let line = bob.line().await; // "* alice quit" may come first
                if line.starts_with("* users in general") {
                    break line;
                }
            };
            if reply == "* users in general (1): bob" {
                break;
            }
            assert!(Instant::now() < deadline, "alice is still listed: {reply}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let again = Client::named(server.tcp_addr(), "alice").await;
        assert!(again.welcome.starts_with("* welcome"));
    })
    .await
    .unwrap_or_else(|_| panic!("the closed-tab scenario took over {SCENARIO_LIMIT:?}"));
}
