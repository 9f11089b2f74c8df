//! The `chatd` binary as a user runs it: `--help`, `--check` on good and bad pipelines, and a real
//! start, chat and SIGTERM.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

use support::Client;
use support::binary::Chatd;

fn chatd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CHATD_DATA_DIR", "data-from-tests") // --check never creates it
        .output()
        .expect("run chatd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `contents` to a fresh file and returns its path.
fn pipeline_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chatd-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(contents.as_bytes())
        .unwrap();
    path
}

#[test]
fn help_explains_every_flag() {
    let out = chatd(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in [
        "--pipeline",
        "--check",
        "--tcp",
        "--irc",
        "--instance",
        "phase1-single.toml",
        "nc localhost 9001",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn check_prints_the_embedded_stack_in_call_order() {
    let out = chatd(&["--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let positions: Vec<usize> = ["parse", "route", "history", "persist", "fanout"]
        .iter()
        .map(|kind| {
            stdout
                .find(&format!(". {kind}"))
                .unwrap_or_else(|| panic!("{kind} missing:\n{stdout}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "layers out of order:\n{stdout}"
    );
    assert!(stdout.contains("capacity = 10"), "{stdout}");
    assert!(
        stdout.contains("path = \"data-from-tests/chatd.db\"")
            && stdout.contains("store = \"sqlite\""),
        "the default stores in $CHATD_DATA_DIR/chatd.db:\n{stdout}"
    );
}

#[test]
fn check_accepts_the_shipped_pipeline_files() {
    for file in [
        "pipelines/phase1-single.toml",
        "pipelines/phase1-postgres.toml",
        "pipelines/phase1-sync.toml",
        "pipelines/phase2-poll.toml",
        "pipelines/phase3-valkey.toml",
    ] {
        let out = chatd(&["--pipeline", file, "--check"]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out.stderr));
    }
}

#[test]
fn check_reports_every_problem_at_once_with_exit_code_2() {
    let path = pipeline_file(
        "three-problems",
        r#"
[[layer]]
kind = "fanout"
backend = "local"

[[layer]]
kind = "parse"

[[layer]]
kind = "route"

[[layer]]
kind = "history"
capcity = 10

[[layer]]
kind = "teleport"
"#,
    );
    let out = chatd(&["--pipeline", path.to_str().unwrap(), "--check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(path.to_str().unwrap()),
        "names the file:\n{stderr}"
    );
    assert!(
        stderr.contains("layer 5 (teleport)") && stderr.contains("unknown layer kind"),
        "{stderr}"
    );
    assert!(
        stderr.contains("layer 4 (history)") && stderr.contains("capcity"),
        "{stderr}"
    );
    assert!(
        stderr.contains("layer 1 (fanout)") && stderr.contains("must come after"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn broken_files_exit_2_without_a_panic() {
    let syntax = pipeline_file("syntax", "[[layer]\nkind = ");
    let missing = PathBuf::from("/nonexistent/chatd.toml");
    for path in [syntax, missing] {
        let out = chatd(&["--pipeline", path.to_str().unwrap(), "--check"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_bad_override_is_refused() {
    let out = chatd(&["--instance", "no spaces please", "--check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("instance"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn the_binary_serves_netcat_and_stops_on_sigterm() {
    let chatd = Chatd::start(&["--instance", "cli"], &support::data_dir());
    let mut alice = Client::named(chatd.tcp, "alice").await;
    let mut bob = Client::named(chatd.tcp, "bob").await;
    assert!(alice.welcome.contains("(instance cli)"));
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    alice.send("hello from the binary").await;
    bob.expect("[general] alice: hello from the binary").await;
    // An HTTP session must not keep the process alive at shutdown.
    let http = support::http::HttpClient::connect(chatd.http, "dana").await;
    assert_eq!(http.command("/join general").await.status, 200);
    alice.expect("* dana joined general").await;

    let closed = tokio::spawn(async move { alice.expect_closed().await });
    chatd.terminate().await;
    assert_eq!(closed.await.unwrap(), ["* server shutting down, goodbye"]);
}
