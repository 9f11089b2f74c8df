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

// The newer scenarios, in the same test crate: coming back by itself, and the timeline.
mod comeback;
mod timeline;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::support::browser::{self, Browser, Driver, testid};
use crate::support::{self, Client, scripted};

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
