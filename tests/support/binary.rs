//! The real `chatd` binary as a child process: started on ephemeral ports, stopped with SIGTERM
//! (a clean stop) or SIGKILL (a crash: nothing runs after it).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `chatd` process and the addresses it announced.
pub struct Chatd {
    child: Child,
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
            child,
            tcp,
            http,
            irc,
        }
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
    pub async fn terminate(self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let mut child = self.child;
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "chatd exits cleanly on SIGTERM: {status}");
    }

    /// Sends SIGKILL, as a crash or the OOM killer would, and reaps the process.
    pub async fn kill(self) {
        let mut child = self.child;
        tokio::task::spawn_blocking(move || {
            child.kill().expect("SIGKILL chatd"); // std sends SIGKILL on Unix
            child.wait()
        })
        .await
        .unwrap()
        .unwrap();
    }
}
