//! The real-browser end-to-end test: two headless Chromiums run the browser client from `static/`
//! against an in-process chatd, and a netcat-like TCP client chats with them in the same room.
//!
//! It proves the seed's central lesson from the outside: one core, two protocols, one
//! conversation. Browser to browser, browser to TCP and TCP to browser each carry a message; a
//! message made of HTML shows as text; the member list, a slash command, unread markers and room
//! switching work in a real browser. Screenshots land in `target/browser-e2e.png` (a laptop
//! window, 1280x800) and `target/browser-e2e-phone.png` (a phone, 390x844) for a person to look
//! at; `docs/screenshot-laptop.png` and `docs/screenshot-phone.png` are copies of them.
//!
//! The other tests here are what a newcomer met: the page comes back by itself after a server
//! restart (same nick, same rooms, nothing lost or shown twice), a closed tab's nick is free
//! again within seconds, old history is split by date, and the stream's rarer events (`gap`,
//! `reset`) are shown, against a scripted server (`support/scripted.rs`) that sends them on cue.
//!
//! It needs Chromium and ChromeDriver (`scripts/install-browser.sh`, which `scripts/test.sh` runs
//! first). Without them it fails and says so; it is never skipped.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/scripted.rs"]
mod scripted;
mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use browser::{BROWSER_PATIENCE, Browser, Driver, testid};
use chatd::adapters::http::sessions::STREAM_GRACE;
use chatd::backends::Store;
use chatd::backends::sqlite::SqliteStore;
use chatd::core::{ChatMessage, Nick, Origin, RoomName};
use chatd::pipeline::config::{LayerConfig, PersistConfig};
use support::Client;

/// The whole scenario's limit: a hung browser fails the test instead of hanging CI.
const SCENARIO_LIMIT: Duration = Duration::from_secs(240);

/// A message that would run script if the page ever rendered user text as HTML.
const XSS: &str = "<img src=x onerror=alert(1)>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_and_a_netcat_user_chat_in_one_room() {
    let driver = Driver::start();
    let server = support::start().await;
    let base = format!("http://{}/", server.http_addr());
    let tcp = server.tcp_addr();
    tokio::time::timeout(SCENARIO_LIMIT, async {
        let alice = driver.open().await;
        let bob = driver.open().await;
        scenario(&alice, &bob, &base, tcp).await;
        alice.close().await;
        bob.close().await;
    })
    .await
    .unwrap_or_else(|_| panic!("the browser scenario took over {SCENARIO_LIMIT:?}"));
}

async fn scenario(alice: &Browser, bob: &Browser, base: &str, tcp: std::net::SocketAddr) {
    // Everyone into #general: two browsers through the page, carol over TCP.
    alice.sign_in(base, "alice").await;
    alice.join("general").await;
    bob.sign_in(base, "bob").await;
    bob.join("general").await;
    let mut carol = Client::named(tcp, "carol").await;
    carol.join("general").await;
    for page in [alice, bob] {
        catch_alerts(page).await;
    }

    // Browser to browser and browser to TCP. The sender's own message comes back on its stream,
    // exactly once.
    alice.say("hello from alice").await;
    bob.wait_for_message("alice", "hello from alice").await;
    alice.wait_for_message("alice", "hello from alice").await;
    assert_eq!(
        next_chat_line(&mut carol).await,
        "[general] alice: hello from alice"
    );

    bob.say("hi alice, bob here").await;
    alice.wait_for_message("bob", "hi alice, bob here").await;
    assert_eq!(
        next_chat_line(&mut carol).await,
        "[general] bob: hi alice, bob here"
    );

    // TCP to both browsers.
    carol.send("carol on netcat").await;
    alice.wait_for_message("carol", "carol on netcat").await;
    bob.wait_for_message("carol", "carol on netcat").await;

    // Everyone sees everyone.
    alice.wait_for_members(&["alice", "bob", "carol"]).await;
    bob.wait_for_members(&["alice", "bob", "carol"]).await;

    // HTML in a message is text: the other browser shows the characters, makes no element and
    // runs nothing; netcat gets the line as typed.
    alice.say(XSS).await;
    bob.wait_for_message("alice", XSS).await;
    for page in [alice, bob] {
        let images = page
            .js(
                "return document.querySelectorAll('[data-testid=message-list] img').length;",
                vec![],
            )
            .await;
        assert_eq!(images, json!(0), "the message list must hold no <img>");
        assert_eq!(
            page.js("return window.__alerts;", vec![]).await,
            json!([]),
            "no script may run from a message"
        );
    }
    assert_eq!(
        next_chat_line(&mut carol).await,
        format!("[general] alice: {XSS}")
    );
    // Links are clickable, open in a new tab without handing the page over, and only http(s)
    // ones are links: `javascript:` stays text.
    alice.say(LINKS).await;
    bob.wait_for_message("alice", LINKS).await;
    assert_eq!(
        bob.links().await,
        [[
            "https://example.org/docs?a=1&b=2".to_string(),
            "_blank".to_string(),
            "noopener noreferrer".to_string(),
            "https://example.org/docs?a=1&b=2".to_string(),
        ]],
        "one link, the https one, without the sentence's comma"
    );

    let in_bob = bob.messages().await;
    assert_eq!(
        in_bob,
        [
            "alice: hello from alice",
            "bob: hi alice, bob here",
            "carol: carol on netcat",
            &format!("alice: {XSS}"),
            &format!("alice: {LINKS}"),
        ],
        "bob's page shows each message once, in order"
    );
    assert_eq!(bob.day_separators().await, ["Today"]);

    // The page has its own help, not the netcat command list.
    bob.say("/help").await;
    bob.wait_until(
        "the page's help",
        "const h = document.querySelector('[data-testid=help]'); \
         return !!h && h.textContent.includes('Sign out') && !h.textContent.includes('/quit');",
        vec![],
        "return [...document.querySelectorAll('[data-testid=notice]')].map(n => n.textContent);",
    )
    .await;

    // A slash command typed in the send box goes to POST /command; its reply is shown.
    bob.say("/users").await;
    bob.wait_until(
        "the /users reply",
        "return [...document.querySelectorAll('[data-testid=notice]')].some(n => n.textContent.startsWith('users in general (3): '));",
        vec![],
        "return [...document.querySelectorAll('[data-testid=notice]')].map(n => n.textContent);",
    )
    .await;

    alice.wait_for_connected().await;
    alice.resize_viewport(1280, 800).await;
    alice
        .screenshot(&target_dir().join("browser-e2e.png"))
        .await;

    // Unread markers: bob moves to #random, carol speaks in #general, and bob's room list marks
    // #general until he goes back to it.
    bob.say("/join random").await;
    bob.wait_for_text(&testid("room-title"), "random").await;
    bob.wait_for_connected().await;
    carol.send("are you there, bob?").await;
    let general_unread = "[data-testid=room][data-room=general] [data-testid=unread]";
    bob.wait_for_text(general_unread, "1").await;
    bob.click_css("[data-testid=room][data-room=general]").await;
    bob.wait_for_text(&testid("room-title"), "general").await;
    bob.wait_for_message("carol", "are you there, bob?").await;
    assert!(
        bob.texts(general_unread).await.is_empty(),
        "read once shown"
    );

    // The same page at a phone's size.
    bob.resize_viewport(390, 844).await;
    bob.wait_until(
        "the room list to slide away at phone width",
        "return document.getElementById('sidebar').getBoundingClientRect().right <= 0 \
           && document.getElementById('members-panel').getBoundingClientRect().left >= window.innerWidth;",
        vec![],
        "return [document.getElementById('sidebar').getBoundingClientRect(), window.innerWidth];",
    )
    .await;
    bob.js(
        "const list = document.querySelector('[data-testid=message-list]'); list.scrollTop = list.scrollHeight; return true;",
        vec![],
    )
    .await;
    bob.screenshot(&target_dir().join("browser-e2e-phone.png"))
        .await;

    // On a phone the rooms drawer has its own close button, and Sign out in plain sight.
    bob.click("toggle-rooms").await;
    bob.wait_until(
        "the rooms drawer to open with Sign out and a close button",
        "const visible = (id) => { const r = document.querySelector(`[data-testid=${id}]`).getBoundingClientRect(); \
           return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth; }; \
         return document.getElementById('sidebar').getBoundingClientRect().left >= 0 \
           && visible('drawer-quit-button') && visible('close-rooms');",
        vec![],
        "return document.getElementById('sidebar').getBoundingClientRect();",
    )
    .await;
    bob.click("close-rooms").await;
    bob.wait_until(
        "the rooms drawer to close",
        "return document.getElementById('sidebar').getBoundingClientRect().right <= 0;",
        vec![],
        "return document.getElementById('sidebar').getBoundingClientRect();",
    )
    .await;
}

/// A message with a link among other text, and a `javascript:` URL that must stay text.
const LINKS: &str = "docs at https://example.org/docs?a=1&b=2, not javascript:alert(1)";

/// Replaces `window.alert`, so that a script smuggled in through a message would leave a trace
/// in `window.__alerts` instead of blocking the page.
async fn catch_alerts(page: &Browser) {
    page.js(
        "window.__alerts = []; window.alert = (m) => window.__alerts.push(String(m)); return true;",
        vec![],
    )
    .await;
}

/// The next chat line on TCP, skipping notices (joins and leaves) that may come first.
async fn next_chat_line(client: &mut Client) -> String {
    loop {
        let line = client.line().await;
        if !line.starts_with("* ") {
            return line;
        }
    }
}

/// Cargo's target directory, where the screenshots go.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A browser holds at most six HTTP/1.1 connections per origin and every open event stream keeps
/// one: a page with a stream per room would stall from the sixth room on. The page pauses the
/// streams of rooms not shown lately and resumes them, without gaps, when they are shown again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rooms_stay_within_the_browsers_connection_limit() {
    let driver = Driver::start();
    let server = support::start().await;
    let base = format!("http://{}/", server.http_addr());
    let mut carol = Client::named(server.tcp_addr(), "carol").await;
    carol.join("r1").await;
    tokio::time::timeout(SCENARIO_LIMIT, async {
        let alice = driver.open().await;
        alice.sign_in(&base, "alice").await;
        for i in 1..=8 {
            alice.join(&format!("r{i}")).await; // each join waits for its stream to be up
        }
        // r1 has not been shown for a while: its stream is paused. Carol talks there meanwhile.
        carol.send("said while r1 was paused").await;
        // Requests still get through (a stalled page would hang here).
        alice.say("hello r8").await;
        alice.wait_for_message("alice", "hello r8").await;
        // Showing r1 again resumes its stream from where it stopped.
        alice.click_css("[data-testid=room][data-room=r1]").await;
        alice.wait_for_text(&testid("room-title"), "r1").await;
        alice
            .wait_for_message("carol", "said while r1 was paused")
            .await;
        alice.say("back in r1").await;
        assert_eq!(next_chat_line(&mut carol).await, "[r1] alice: back in r1");
        alice.close().await;
    })
    .await
    .unwrap_or_else(|_| panic!("the many-rooms scenario took over {SCENARIO_LIMIT:?}"));
}

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

/// Old history is split by day: a separator before the first message of each calendar day,
/// "Yesterday" and "Today" by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_history_is_separated_by_date() {
    let driver = Driver::start();
    let config = support::default_config();
    let path = config
        .layers
        .iter()
        .find_map(|layer| match layer {
            LayerConfig::Persist(PersistConfig::Sqlite { path, .. }) => Some(path.clone()),
            _ => None,
        })
        .expect("the default pipeline stores in SQLite");
    // Two messages stored on earlier days, as a previous run of chatd would have left them.
    let day_ms = 24 * 60 * 60 * 1000;
    let now_ms = chatd::core::message::now_ms();
    let store = SqliteStore::open(std::path::Path::new(&path), false)
        .await
        .expect("open the store");
    let old = |seq, text: &str, ts_ms| {
        Arc::new(ChatMessage::at(
            RoomName::parse("history").unwrap(),
            seq,
            Nick::parse("carol").unwrap(),
            text.to_string(),
            Origin::Remote(Arc::from("earlier")),
            ts_ms,
        ))
    };
    let batch = [
        old(1, "three days ago", now_ms - 3 * day_ms),
        old(2, "a day ago", now_ms - day_ms),
    ];
    store.append(&batch).await.expect("store the old messages");
    drop(store);

    let server = support::start_with(config).await;
    let base = format!("http://{}/", server.http_addr());
    tokio::time::timeout(SCENARIO_LIMIT, async {
        let alice = driver.open().await;
        alice.sign_in(&base, "alice").await;
        alice.join("history").await;
        alice.wait_for_message("carol", "a day ago").await;
        alice.say("today").await;
        alice.wait_for_message("alice", "today").await;
        let days = alice.day_separators().await;
        assert_eq!(days.len(), 3, "{days:?}");
        assert_eq!(days[1..], ["Yesterday", "Today"]);
        assert!(
            days[0].split(", ").count() == 3,
            "the full date, e.g. \"Monday, March 2, 2026\": {days:?}"
        );
        alice.close().await;
    })
    .await
    .unwrap_or_else(|_| panic!("the history scenario took over {SCENARIO_LIMIT:?}"));
}

/// `event: gap` (messages that will never come on this stream) is shown as a quiet notice and
/// skipped; `event: reset` (the server lost the numbering) empties the room's timeline, so that
/// the history sent afresh after it, with seqs the page has seen before, is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gap_and_reset_events_are_shown() {
    use scripted::{ScriptedServer, frame, message};
    let ts = "2026-01-01T12:00:00Z";
    let mut streams = HashMap::new();
    streams.insert(
        "gappy".to_string(),
        [
            message("gappy", 1, "bob", "one", ts),
            message("gappy", 2, "bob", "two", ts),
            frame("gap", None, json!({ "room": "gappy", "from": 3, "to": 4 })),
            message("gappy", 5, "bob", "five", ts),
        ]
        .concat(),
    );
    streams.insert(
        "lost".to_string(),
        [
            message("lost", 1, "bob", "old one", ts),
            message("lost", 2, "bob", "old two", ts),
            frame("reset", None, json!({ "room": "lost", "last_seq": 2 })),
            message("lost", 1, "bob", "new one", ts),
            message("lost", 2, "bob", "new two", ts),
        ]
        .concat(),
    );
    let server = ScriptedServer::start("alice", streams).await;
    let driver = Driver::start();
    let base = format!("http://{}/", server.addr);
    tokio::time::timeout(SCENARIO_LIMIT, async {
        let alice = driver.open().await;
        alice.sign_in(&base, "alice").await;
        alice.join("gappy").await;
        alice.wait_for_message("bob", "five").await;
        assert_eq!(
            alice.messages().await,
            ["bob: one", "bob: two", "bob: five"]
        );
        alice
            .wait_for_text(
                "[data-testid=notice] .note-text",
                "some messages could not be delivered (#3 to #4)",
            )
            .await;

        alice.join("lost").await;
        alice.wait_for_message("bob", "new two").await;
        assert_eq!(alice.messages().await, ["bob: new one", "bob: new two"]);
        alice.close().await;
    })
    .await
    .unwrap_or_else(|_| panic!("the scripted scenario took over {SCENARIO_LIMIT:?}"));
}
