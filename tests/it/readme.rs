//! README.md, run: what a newcomer reads first must work as written.
//!
//! The README's first chat is two netcat transcripts and a curl block, each marked
//! `checked by tests/it/readme.rs: NAME` in an HTML comment above it. This test replays each
//! transcript on a TCP connection to the real `chatd` binary (lines starting with `* `, `! ` or
//! `[` are what the server must answer, the others are typed), runs the curl block with bash and a
//! real `curl` against the binary's port (docs/HTTP.md's longer curl block too), and feeds
//! docs/PROTOCOL.md's piped example to a real `nc`. The instance name and a guest's number differ per run: `myhost-9001` and `guest-4821` in
//! the README stand for them. `localhost:3001` and `localhost 9001` become the ephemeral ports.
//!
//! `nc` and `curl` must be installed (`scripts/test.sh` installs them on Debian and Ubuntu); a
//! missing one fails the test with that advice.

use crate::support;
use std::process::Command;

use crate::support::Client;
use crate::support::binary::Chatd;

const README: &str = include_str!("../../README.md");
const PROTOCOL: &str = include_str!("../../docs/PROTOCOL.md");
const HTTP: &str = include_str!("../../docs/HTTP.md");

/// Stand-ins in the README for what differs per run.
const WILDCARDS: [&str; 2] = ["myhost-9001", "guest-4821"];

/// The code block that follows the marker `checked by tests/it/readme.rs: NAME` in `markdown`.
fn block(markdown: &str, name: &str) -> String {
    let marker = format!("checked by tests/it/readme.rs: {name} ");
    let mut lines = markdown.lines().skip_while(|line| !line.contains(&marker));
    assert!(lines.next().is_some(), "no block marked {marker:?}");
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.starts_with("```"),
        "the marker {name:?} must precede a code block"
    );
    lines
        .take_while(|line| !line.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `got` is `expected` with each wildcard standing for one word.
fn matches(expected: &str, got: &str) -> bool {
    let mut pattern = expected.to_string();
    for wildcard in WILDCARDS {
        pattern = pattern.replace(wildcard, "\u{0}");
    }
    let parts: Vec<&str> = pattern.split('\u{0}').collect();
    let Some(mut rest) = got.strip_prefix(parts[0]) else {
        return false;
    };
    for part in &parts[1..] {
        // The wildcard is one word: it ends where the literal text resumes.
        let word_end = rest.find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'));
        let word_end = word_end.unwrap_or(rest.len());
        if word_end == 0 || !rest[word_end..].starts_with(part) {
            return false;
        }
        rest = &rest[word_end + part.len()..];
    }
    rest.is_empty()
}

fn is_output(line: &str) -> bool {
    line.starts_with("* ") || line.starts_with("! ") || line.starts_with('[')
}

/// Plays `transcript` on `client`: sends the typed lines, checks the answers in order. A first
/// line that is the welcome is checked against the welcome the client already read.
async fn replay(client: &mut Client, transcript: &str) {
    for (i, line) in transcript.lines().enumerate() {
        if i == 0 && line.starts_with("* welcome") {
            assert!(
                matches(line, &client.welcome),
                "welcome: {:?}",
                client.welcome
            );
        } else if is_output(line) {
            let got = client.line().await;
            assert!(
                matches(line, &got),
                "the README says {line:?}; chatd said {got:?}"
            );
        } else {
            client.send(line).await;
        }
    }
}

#[tokio::test]
async fn the_first_chat_goes_as_the_readme_shows() {
    let chatd = Chatd::start(&[], &support::data_dir());
    let mut alice = Client::connect(chatd.tcp).await;
    replay(&mut alice, &block(README, "the first terminal")).await;
    // The reader opens the second terminal after alice's `hello!` went out; here a round trip
    // says so, or bob's join could overtake it on a busy machine and find no messages yet.
    alice.sync().await;
    let mut bob = Client::connect(chatd.tcp).await;
    replay(&mut bob, &block(README, "the second terminal")).await;
    // "and alice reads `* bob joined general` and `[general] bob: hi alice`"
    alice.expect("* bob joined general").await;
    alice.expect("[general] bob: hi alice").await;
    chatd.terminate().await;
}

#[tokio::test]
async fn the_readme_curl_commands_work() {
    let out = run_curl_block(README).await;
    assert!(
        !out.contains("{\"status\":\"ok\"}"),
        "the README's block has no health check"
    );
}

#[tokio::test]
async fn the_http_pages_curl_commands_work() {
    let out = run_curl_block(HTTP).await;
    assert!(out.contains("{\"status\":\"ok\"}"), "GET /healthz: {out}");
}

/// Runs the curl block of `page` against a fresh chatd, checks what every such block shows (a
/// join, a message, the stream), and returns the output.
async fn run_curl_block(page: &str) -> String {
    installed("curl");
    let chatd = Chatd::start(&[], &support::data_dir());
    let script = block(page, "curl")
        .replace("localhost:3001", &chatd.http.to_string())
        // The stream never ends by itself: two seconds of it show the history.
        .replace("curl -N ", "curl -N --max-time 2 ");
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        r#""lines":["* you joined general (1 member); no messages yet"]"#,
        r#"{"room":"general","seq":1}"#,
        "event: message\nid: 1\ndata: {",
        r#""nick":"curly","room":"general","seq":1,"text":"hello from curl""#,
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from the curl output:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    chatd.terminate().await;
    stdout.into_owned()
}

#[tokio::test]
async fn piped_netcat_exits_by_itself_as_the_protocol_page_says() {
    installed("nc");
    let chatd = Chatd::start(&[], &support::data_dir());
    let script = block(PROTOCOL, "nc").replace(
        "localhost 9001",
        &format!("{} {}", chatd.tcp.ip(), chatd.tcp.port()),
    );
    // `timeout` turns an nc that never exits into a failure instead of a hung test.
    let out = Command::new("timeout")
        .args(["20", "bash", "-c", &script])
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "nc did not exit by itself: {out:?}");
    assert!(
        stdout.contains("* you joined general (1 member); no messages yet")
            && stdout.ends_with("* goodbye\n"),
        "{stdout}"
    );
    chatd.terminate().await;
}

/// Fails, saying how to install it, when `program` is not on PATH.
fn installed(program: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found,
        "{program} is missing: scripts/test.sh installs it (Debian/Ubuntu: apt-get install \
         netcat-openbsd curl)"
    );
}
