//! The real-browser harness: headless Chromium driven over WebDriver.
//!
//! [`Driver::start`] runs Debian's `chromedriver` as a child process on a free loopback port, and
//! [`Driver::open`] starts one Chromium per call, each with a fresh profile directory (so each
//! browser has its own cookies: its own chatd session). [`Browser`] wraps a `fantoccini` client
//! with the few verbs the tests need, looking elements up by their `data-testid`.
//!
//! Every wait polls for up to [`BROWSER_PATIENCE`] and then fails with what the page showed
//! instead; nothing asserts how fast anything happens. Reads go through small JavaScript
//! snippets (`textContent` of every match) rather than element handles, so a list the page
//! redraws between two polls cannot turn into a stale-element error.
//!
//! The machine has no internet: the Chromium flags below turn off everything that would phone
//! home (background networking, component updates, sync), or the log fills with refused
//! connections. A missing browser is a failure, never a skip: the message says to run
//! `scripts/install-browser.sh`, which `scripts/test.sh` runs first.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use super::postgres::free_port;

/// How long any single expected change on a page may take before the test fails.
pub const BROWSER_PATIENCE: Duration = Duration::from_secs(15);

/// Where Debian's `chromium` package puts the browser (`CHATD_CHROMIUM` overrides).
const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian's `chromium-driver` package puts the driver (`CHATD_CHROMEDRIVER` overrides).
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium's flags: headless, root-friendly (`--no-sandbox`), and silent on a machine without
/// internet. The profile directory is added per browser.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-crash-reporter",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--lang=en-US",
    "--window-size=1280,800",
];

/// A running `chromedriver`, killed (with every browser it started) on drop.
pub struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
    /// Holds the driver's log and one profile directory per browser; removed on drop.
    dir: PathBuf,
    profiles: AtomicUsize,
}

impl Driver {
    /// Starts `chromedriver` on a free port and waits until it accepts connections.
    ///
    /// Panics, saying to run `scripts/install-browser.sh`, when Chromium or ChromeDriver is
    /// missing.
    pub fn start() -> Driver {
        let chromium = installed("CHATD_CHROMIUM", CHROMIUM);
        let chromedriver = installed("CHATD_CHROMEDRIVER", CHROMEDRIVER);
        let dir = fresh_dir();
        // A port picked by binding :0 may be taken again before chromedriver binds it; then
        // chromedriver exits at once, and another port is tried.
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!(
                    "--log-path={}",
                    dir.join("chromedriver.log").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(dir.join("chromedriver.stderr")).expect("driver stderr file"))
                // Its own process group, so that `kill_group` ends the browsers it starts too.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromedriver.display()));
            if listening(&mut child, port) {
                return Driver {
                    child,
                    url: format!("http://127.0.0.1:{port}"),
                    chromium,
                    dir,
                    profiles: AtomicUsize::new(0),
                };
            }
            kill_group(&mut child);
        }
        let logs = read_logs(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        panic!("chromedriver did not start; its log:\n{logs}");
    }

    /// Starts a new headless Chromium with an empty profile.
    pub async fn open(&self) -> Browser {
        let n = self.profiles.fetch_add(1, Ordering::Relaxed);
        let profile = self.dir.join(format!("profile-{n}"));
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": self.chromium, "args": args }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start Chromium through chromedriver: {e}\n{}",
                    read_logs(&self.dir)
                )
            });
        Browser { client }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        kill_group(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The executable at `default` (or at `$env`), or a panic that says how to install it.
fn installed(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    if !path.is_file() {
        panic!(
            "the browser test needs Chromium and ChromeDriver, and {} is missing: run \
             scripts/install-browser.sh (Debian/Ubuntu: apt-get install chromium chromium-driver), \
             or point {env} at the executable",
            path.display()
        );
    }
    path
}

/// Waits until the freshly started driver accepts connections on `port`; false if it exited.
fn listening(child: &mut Child, port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + BROWSER_PATIENCE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Ends chromedriver and every browser it started: they share its process group. (Killing the
/// driver alone would leave its Chromiums running.)
fn kill_group(child: &mut Child) {
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: `kill` has no memory-safety preconditions; a negative pid names the process
        // group that this child leads (it was spawned with `process_group(0)`).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn fresh_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("chatd-browser-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the browser test's temp dir");
    dir
}

fn read_logs(dir: &Path) -> String {
    ["chromedriver.stderr", "chromedriver.log"]
        .iter()
        .map(|name| std::fs::read_to_string(dir.join(name)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// One browser window.
pub struct Browser {
    client: Client,
}

/// The CSS selector of the elements marked `data-testid="id"`.
pub fn testid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

impl Browser {
    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("open the page");
    }

    /// Types `text` into the element marked `data-testid=id`, after clearing it.
    pub async fn fill(&self, id: &str, text: &str) {
        let field = self.find(id).await;
        field.clear().await.expect("clear the field");
        field.send_keys(text).await.expect("type into the field");
    }

    /// Types `text` into the element marked `data-testid=id`, then presses Enter.
    pub async fn type_and_enter(&self, id: &str, text: &str) {
        let enter = char::from(fantoccini::key::Key::Enter);
        self.fill(id, &format!("{text}{enter}")).await;
    }

    /// Clicks the element marked `data-testid=id`.
    pub async fn click(&self, id: &str) {
        self.click_css(&testid(id)).await;
    }

    /// Clicks the first element matching `css`. A page may redraw the element between finding
    /// and clicking it (a stale element); then it is found again, until the patience runs out.
    pub async fn click_css(&self, css: &str) {
        let deadline = Instant::now() + BROWSER_PATIENCE;
        loop {
            let clicked = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.click().await,
                Err(e) => Err(e),
            };
            match clicked {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("could not click {css} within {BROWSER_PATIENCE:?}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn find(&self, id: &str) -> fantoccini::elements::Element {
        let css = testid(id);
        self.client
            .wait()
            .at_most(BROWSER_PATIENCE)
            .for_element(Locator::Css(&css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} within {BROWSER_PATIENCE:?}: {e}"))
    }

    /// Runs `script` (a function body; `arguments[0..]` are `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The `textContent` of every element matching `css`, in document order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let value = self
            .js(
                "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);",
                vec![json!(css)],
            )
            .await;
        serde_json::from_value(value).expect("a list of strings")
    }

    /// Waits until `script` returns `true`; on timeout fails with `what` and what `show`
    /// (another script) returns at that moment.
    pub async fn wait_until(&self, what: &str, script: &str, args: Vec<Value>, show: &str) {
        let deadline = Instant::now() + BROWSER_PATIENCE;
        loop {
            if self.js(script, args.clone()).await == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let seen = self.js(show, args).await;
                panic!("waited {BROWSER_PATIENCE:?} for {what}; the page shows: {seen}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until some element matching `css` has exactly the text `expected`.
    pub async fn wait_for_text(&self, css: &str, expected: &str) {
        self.wait_until(
            &format!("{css} to show {expected:?}"),
            "return [...document.querySelectorAll(arguments[0])].some(e => e.textContent === arguments[1]);",
            vec![json!(css), json!(expected)],
            "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);",
        )
        .await;
    }

    /// Waits until the element matching `css` has `attr` equal to `expected`.
    pub async fn wait_for_attr(&self, css: &str, attr: &str, expected: &str) {
        self.wait_until(
            &format!("{css} to have {attr}={expected:?}"),
            "const e = document.querySelector(arguments[0]); return !!e && e.getAttribute(arguments[1]) === arguments[2];",
            vec![json!(css), json!(attr), json!(expected)],
            "const e = document.querySelector(arguments[0]); return e && e.outerHTML;",
        )
        .await;
    }

    /// Resizes the window (the viewport follows).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
    }

    /// Resizes the window so that the page itself (the viewport) is `width` x `height`, as a
    /// screenshot of that size needs: what the window's frame takes is measured and added.
    pub async fn resize_viewport(&self, width: u32, height: u32) {
        self.resize(width, height).await;
        let inner = self
            .js("return [window.innerWidth, window.innerHeight];", vec![])
            .await;
        let short = |i: usize, want: u32| {
            let got = inner[i].as_u64().and_then(|v| u32::try_from(v).ok());
            want.saturating_sub(got.unwrap_or(want))
        };
        self.resize(width + short(0, width), height + short(1, height))
            .await;
    }

    /// Saves a PNG of the visible page at `path`, creating its directory.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("take a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the screenshot directory");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Ends the browser.
    pub async fn close(self) {
        self.client.close().await.expect("close the browser");
    }
}

/// The chat page's verbs, by the `data-testid`s that `static/index.html` and `static/js/` put on
/// what a person sees.
impl Browser {
    /// Opens the client at `base` and connects as `nick`; waits until the chat shows that nick.
    pub async fn sign_in(&self, base: &str, nick: &str) {
        self.goto(base).await;
        self.fill("nick-input", nick).await;
        self.click("connect-button").await;
        self.wait_for_text(&testid("my-nick"), nick).await;
    }

    /// Joins `room` with the join form; waits until it is the current room and its stream is up.
    pub async fn join(&self, room: &str) {
        self.fill("room-input", room).await;
        self.click("join-button").await;
        self.wait_for_text(&testid("room-title"), room).await;
        self.wait_for_connected().await;
    }

    /// Waits until the connection indicator says every stream is connected.
    pub async fn wait_for_connected(&self) {
        self.wait_for_attr(&testid("connection-state"), "data-state", "connected")
            .await;
    }

    /// Types `line` into the send box and presses Enter.
    pub async fn say(&self, line: &str) {
        self.type_and_enter("send-input", line).await;
    }

    /// Waits until the message list shows a message from `nick` whose text is exactly `text`.
    pub async fn wait_for_message(&self, nick: &str, text: &str) {
        self.wait_until(
            &format!("a message from {nick}: {text:?}"),
            "return [...document.querySelectorAll('[data-testid=message]')].some(m => \
               m.dataset.nick === arguments[0] && \
               m.querySelector('[data-testid=message-text]').textContent === arguments[1]);",
            vec![json!(nick), json!(text)],
            MESSAGES_AS_TEXT,
        )
        .await;
    }

    /// Every chat message in the list as `nick: text`.
    pub async fn messages(&self) -> Vec<String> {
        serde_json::from_value(self.js(MESSAGES_AS_TEXT, vec![]).await).expect("strings")
    }

    /// Waits until the member list shows exactly `nicks` (in any order).
    pub async fn wait_for_members(&self, nicks: &[&str]) {
        let mut want: Vec<&str> = nicks.to_vec();
        want.sort_unstable();
        self.wait_until(
            &format!("the member list to show {want:?}"),
            "const got = [...document.querySelectorAll('[data-testid=member]')].map(m => m.dataset.nick).sort(); \
             return JSON.stringify(got) === JSON.stringify(arguments[0]);",
            vec![json!(want)],
            "return [...document.querySelectorAll('[data-testid=member]')].map(m => m.dataset.nick);",
        )
        .await;
    }
}

/// What the newer parts of the page show: the offline banner, links, date separators, help.
impl Browser {
    /// Waits until the offline banner is shown (`true`) or hidden (`false`), and the send box is
    /// disabled or enabled with it.
    pub async fn wait_for_offline(&self, offline: bool) {
        self.wait_until(
            &format!(
                "the offline banner to be {}",
                if offline { "shown" } else { "hidden" }
            ),
            "const b = document.querySelector('[data-testid=offline-banner]'); \
             const input = document.querySelector('[data-testid=send-input]'); \
             return !!b && b.hidden === !arguments[0] && input.disabled === arguments[0];",
            vec![json!(offline)],
            "const b = document.querySelector('[data-testid=offline-banner]'); \
             return [b && b.hidden, document.querySelector('[data-testid=send-input]').disabled];",
        )
        .await;
    }

    /// The names of the rooms in the "Your rooms" list, in order.
    pub async fn joined_rooms(&self) -> Vec<String> {
        let value = self
            .js(
                "return [...document.querySelectorAll('[data-testid=room]')].map(r => r.dataset.room);",
                vec![],
            )
            .await;
        serde_json::from_value(value).expect("a list of room names")
    }

    /// Every link in the message list as `[href, target, rel, text]`.
    pub async fn links(&self) -> Vec<[String; 4]> {
        let value = self
            .js(
                "return [...document.querySelectorAll('[data-testid=message-link]')].map(a => \
                   [a.getAttribute('href'), a.getAttribute('target'), a.getAttribute('rel'), a.textContent]);",
                vec![],
            )
            .await;
        serde_json::from_value(value).expect("a list of links")
    }

    /// The labels of the date separators in the message list, in order.
    pub async fn day_separators(&self) -> Vec<String> {
        self.texts(&testid("day-separator")).await
    }
}

/// A script listing the page's chat messages as `nick: text`.
const MESSAGES_AS_TEXT: &str = "return [...document.querySelectorAll('[data-testid=message]')].map(m => \
     m.dataset.nick + ': ' + m.querySelector('[data-testid=message-text]').textContent);";
