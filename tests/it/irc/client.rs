//! A real IRC client against the real binary: `weechat-headless` (Debian's package of that name;
//! `scripts/test.sh` installs it). WeeChat is driven the way its users script it: commands
//! through its FIFO pipe, what it shows read back from its logger's files. Set
//! `CHATD_SKIP_WEECHAT=1` to skip this test on a machine without WeeChat (it fails otherwise).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::binary::{Chatd, Reaped};
use crate::support::http::HttpClient;
use crate::support::{Client, PATIENCE, data_dir};

/// Set this to skip the WeeChat test on a machine without `weechat-headless`.
const SKIP_VAR: &str = "CHATD_SKIP_WEECHAT";

/// A running `weechat-headless` in a directory of its own.
struct Weechat {
    child: Reaped,
    dir: PathBuf,
}

impl Weechat {
    /// Starts WeeChat connected to chatd's IRC listener at `irc` as `nick`, joining `#general`.
    /// `None` (after saying so) when WeeChat is missing and [`SKIP_VAR`] is set.
    fn start(irc: SocketAddr, nick: &str) -> Option<Weechat> {
        let dir = data_dir().join("weechat");
        std::fs::create_dir_all(&dir).expect("WeeChat's directory");
        let setup = [
            "/set logger.file.flush_delay 0".to_string(),
            format!(
                "/server add chatd {}/{} -notls -nicks={nick} -username={nick} \
                 -realname=WeeChat -autojoin=#general",
                irc.ip(),
                irc.port()
            ),
            "/connect chatd".to_string(),
        ];
        let started = Command::new("weechat-headless")
            .arg("--dir")
            .arg(&dir)
            .arg("--run-command")
            .arg(setup.join(";"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match started {
            Ok(child) => Some(Weechat {
                child: Reaped::new(child),
                dir,
            }),
            Err(e) if std::env::var_os(SKIP_VAR).is_some() => {
                eprintln!("skipped: weechat-headless cannot run ({e}) and {SKIP_VAR} is set");
                None
            }
            Err(e) => panic!(
                "weechat-headless cannot run ({e}): install it (apt-get install weechat-headless, \
                 as scripts/test.sh does) or set {SKIP_VAR}=1"
            ),
        }
    }

    /// Types `input` (a command, or text to say) into WeeChat's buffer `buffer`, through its
    /// FIFO pipe (`<dir>/weechat_fifo_<pid>`, lines `BUFFER *INPUT`).
    async fn run(&self, buffer: &str, input: &str) {
        let fifo = self.dir.join(format!("weechat_fifo_{}", self.child.id()));
        let what = "WeeChat's FIFO (made by its fifo plugin: on Debian, package weechat-plugins)";
        wait_for(|| fifo.exists().then_some(()), what).await;
        let command = format!("{buffer} *{input}\n");
        tokio::task::spawn_blocking(move || std::fs::write(fifo, command))
            .await
            .expect("the FIFO write ends")
            .expect("write to WeeChat's FIFO");
    }

    /// Waits until WeeChat's log of `#general` has a line containing `text`.
    async fn shows(&self, text: &str) {
        let log = self.dir.join("logs").join("irc.chatd.#general.weechatlog");
        wait_for(|| read(&log).contains(text).then_some(()), text).await;
    }

    /// Waits for WeeChat to exit (after `/quit`).
    async fn exited(mut self) {
        wait_for(
            || self.child.child().try_wait().ok().flatten(),
            "WeeChat to exit",
        )
        .await;
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Polls `check` until it gives a value, for at most [`PATIENCE`].
async fn wait_for<T>(mut check: impl FnMut() -> Option<T>, what: &str) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited too long for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn weechat_joins_general_hears_netcat_speaks_to_netcat_and_a_browser_and_quits() {
    let chatd = Chatd::start(&[], &data_dir());
    let mut alice = Client::named(chatd.tcp, "alice").await;
    alice.join("general").await;
    let bob = HttpClient::connect(chatd.http, "bob").await;
    let mut stream = bob.stream("general", None).await;
    let Some(weechat) = Weechat::start(chatd.irc, "wee") else {
        return;
    };
    alice.expect("* bob joined general").await;
    alice.expect("* wee joined general").await;

    alice.send("hello weechat").await;
    weechat.shows("alice\thello weechat").await;

    weechat
        .run("irc.chatd.#general", "hello from weechat")
        .await;
    alice.expect("[general] wee: hello from weechat").await;
    // The browser's stream has alice's message, then WeeChat's.
    let texts = [stream.next_message().await, stream.next_message().await]
        .map(|m| format!("{}: {}", m.data["nick"], m.data["text"]));
    assert_eq!(
        texts,
        [
            "\"alice\": \"hello weechat\"",
            "\"wee\": \"hello from weechat\""
        ]
    );

    weechat.run("irc.chatd.#general", "/quit").await;
    // WeeChat quits with a reason of its own (its version), which the room is told.
    let quit = alice.expect_prefix("* wee quit").await;
    assert!(quit.starts_with("* wee quit (WeeChat"), "{quit}");
    weechat.exited().await;
    chatd.terminate().await;
}
