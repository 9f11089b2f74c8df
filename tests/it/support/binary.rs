//! The real `chatd` binary as a child process: started on ephemeral ports, stopped with SIGTERM
//! (a clean stop) or SIGKILL (a crash: nothing runs after it).
//!
//! [`Chatd::start`] is the simple form (ephemeral ports, asserts it comes up). [`Chatd::launch`]
//! takes a full [`Launch`]: fixed ports (so that a restarted instance is found where its clients
//! expect it), environment variables such as `DATABASE_URL`, and a log file that collects stderr
//! across restarts; it returns an error instead of panicking, for schedules that restart an
//! instance while its database may still be recovering.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// How long a launched instance may take to print its banner.
const LAUNCH_PATIENCE: Duration = Duration::from_secs(60);

/// Everything [`Chatd::launch`] needs.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// `--instance`.
    pub instance: String,
    /// The line protocol's fixed address.
    pub tcp: SocketAddr,
    /// The HTTP fixed address.
    pub http: SocketAddr,
    /// Extra environment (`CHATD_DATA_DIR`, `DATABASE_URL`, `VALKEY_URL`, ...).
    pub env: Vec<(String, String)>,
    /// Where stderr is appended.
    pub log: PathBuf,
}

/// A child process that is killed and reaped if it is dropped still running (a test that
/// panicked): no test leaves a server or a client program behind. A method that ends the
/// process itself [`take`](Reaped::take)s it first, and then the drop has nothing left to do.
pub struct Reaped(Option<Child>);

impl Reaped {
    /// Owns `child` until it is taken.
    pub fn new(child: Child) -> Reaped {
        Reaped(Some(child))
    }

    /// The process, until it is taken.
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("a running process")
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("a running process").id()
    }

    /// The process, for a method that ends it.
    pub fn take(&mut self) -> Child {
        self.0.take().expect("a running process")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `chatd` process and the addresses it announced (killed if dropped running: see
/// [`Reaped`]).
pub struct Chatd {
    child: Reaped,
    /// The line protocol listener.
    pub tcp: SocketAddr,
    /// The HTTP listener.
    pub http: SocketAddr,
    /// The IRC listener.
    pub irc: SocketAddr,
}

impl Chatd {
    /// Starts `chatd` with `args` plus ephemeral `--tcp`/`--http`/`--irc` ports and
    /// `CHATD_DATA_DIR=data`, and waits until it says it is up.
    pub fn start(args: &[&str], data: &Path) -> Chatd {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatd"))
            .args(["--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--irc", "127.0.0.1:0"])
            .args(args)
            .env("CHATD_DATA_DIR", data)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start chatd");
        let mut reader = BufReader::new(child.stderr.take().expect("piped stderr"));
        // The banner: "chatd NAME is up: nc IP PORT  or  http://IP:PORT/  or  irc IP:PORT
        // (Ctrl-C stops it)".
        let (tcp, http, irc) = loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "chatd exited before listening"
            );
            if let Some(rest) = line.split("is up: nc ").nth(1) {
                let mut parts = rest.split_whitespace();
                let (ip, port) = (parts.next().unwrap(), parts.next().unwrap());
                let http = rest
                    .split("http://")
                    .nth(1)
                    .and_then(|r| r.split('/').next())
                    .unwrap();
                let irc = rest
                    .split("  or  irc ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .expect("an IRC address in the banner");
                break (
                    format!("{ip}:{port}").parse().unwrap(),
                    http.parse().unwrap(),
                    irc.parse().unwrap(),
                );
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        Chatd {
            child: Reaped::new(child),
            tcp,
            http,
            irc,
        }
    }

    /// Starts `chatd` as `launch` says and waits for its banner; an error says why it did not
    /// come up (it exited, or said nothing in time: then it is killed).
    pub fn launch(launch: &Launch) -> Result<Chatd, String> {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .map_err(|e| format!("open {}: {e}", launch.log.display()))?;
        let _ = writeln!(log, "=== launching {}", launch.instance);
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatd"))
            .arg("--pipeline")
            .arg(&launch.pipeline)
            .args(["--instance", &launch.instance])
            .args(["--tcp", &launch.tcp.to_string()])
            .args(["--http", &launch.http.to_string()])
            .args(["--irc", "127.0.0.1:0"]) // not used here; the shipped 6667 could clash
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn chatd: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (up, banner) = std::sync::mpsc::channel();
        // One thread reads stderr for the life of the process: the banner, then the log.
        std::thread::spawn(move || {
            let mut up = Some(up);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "{line}");
                if line.contains(" is up: nc ")
                    && let Some(up) = up.take()
                {
                    let _ = up.send(line);
                }
            }
        });
        match banner.recv_timeout(LAUNCH_PATIENCE) {
            Ok(line) => Ok(Chatd {
                child: Reaped::new(child),
                tcp: launch.tcp,
                http: launch.http,
                irc: line
                    .split("  or  irc ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|addr| addr.parse().ok())
                    .ok_or_else(|| format!("no IRC address in the banner: {line}"))?,
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(format!(
                    "chatd {} did not come up ({status}); see {}",
                    launch.instance,
                    launch.log.display()
                ))
            }
        }
    }

    /// Sends SIGTERM and waits up to `patience` for the exit, then SIGKILL; asserts nothing.
    /// Returns the exit status of a process that stopped by itself.
    pub async fn stop(mut self, patience: Duration) -> Option<ExitStatus> {
        let pid = i32::try_from(self.pid()).expect("a pid");
        // SAFETY: kill(2) with our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let mut child = self.child.take();
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + patience;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return Some(status);
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await
        .expect("the wait does not panic")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The resident set size in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("a VmRSS line")
    }

    /// Sends SIGTERM and asserts a clean exit.
    pub async fn terminate(mut self) {
        let pid = self.pid().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let mut child = self.child.take();
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "chatd exits cleanly on SIGTERM: {status}");
    }

    /// Sends SIGKILL, as a crash or the OOM killer would, and reaps the process.
    pub async fn kill(mut self) {
        let mut child = self.child.take();
        tokio::task::spawn_blocking(move || {
            child.kill().expect("SIGKILL chatd"); // std sends SIGKILL on Unix
            child.wait()
        })
        .await
        .unwrap()
        .unwrap();
    }
}
