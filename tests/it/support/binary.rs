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
        Chatd::start_logging(args, data, &[], Stderr::Drained)
    }

    /// [`Chatd::start`] with extra environment (`RUST_LOG`, ...) and its stderr sent where
    /// `stderr` says.
    pub fn start_logging(
        args: &[&str],
        data: &Path,
        env: &[(&str, &str)],
        stderr: Stderr,
    ) -> Chatd {
        Chatd::spawn(
            Command::new(env!("CARGO_BIN_EXE_chatd")),
            args,
            data,
            env,
            stderr,
        )
    }

    /// [`Chatd::start`] with SIGHUP ignored from the start, as `nohup chatd ...` does.
    pub fn start_nohup(args: &[&str], data: &Path) -> Chatd {
        use std::os::unix::process::CommandExt as _;
        let mut command = Command::new(env!("CARGO_BIN_EXE_chatd"));
        // SAFETY: between fork and exec, only signal(2), which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                Ok(())
            });
        }
        Chatd::spawn(command, args, data, &[], Stderr::Drained)
    }

    fn spawn(
        mut command: Command,
        args: &[&str],
        data: &Path,
        env: &[(&str, &str)],
        stderr: Stderr,
    ) -> Chatd {
        command
            .args(["--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--irc", "127.0.0.1:0"])
            .args(args)
            .env("CHATD_DATA_DIR", data)
            .envs(env.iter().copied())
            .stdout(Stdio::null());
        match &stderr {
            Stderr::File(path) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("open the log file");
                command.stderr(log)
            }
            Stderr::Drained | Stderr::ClosedAfterBanner => command.stderr(Stdio::piped()),
        };
        let mut child = command.spawn().expect("start chatd");
        let addresses = match &stderr {
            Stderr::File(path) => banner_in_file(path, &mut child),
            Stderr::Drained | Stderr::ClosedAfterBanner => {
                let mut reader = BufReader::new(child.stderr.take().expect("piped stderr"));
                let addresses = loop {
                    let mut line = String::new();
                    assert!(
                        reader.read_line(&mut line).unwrap() > 0,
                        "chatd exited before listening"
                    );
                    if let Some(addresses) = banner(&line) {
                        break addresses;
                    }
                };
                if let Stderr::Drained = stderr {
                    // Keep draining stderr so the child never blocks on a full pipe.
                    std::thread::spawn(move || for _ in reader.lines() {});
                } // else the reader is dropped here: the pipe's reading end is closed.
                addresses
            }
        };
        let (tcp, http, irc) = addresses;
        Chatd {
            child: Reaped::new(child),
            tcp,
            http,
            irc,
        }
    }

    /// Sets the process's file-size limit (`RLIMIT_FSIZE`, what `ulimit -f` sets) to `bytes`
    /// (`None`: no limit). At 0, every write(2) to a regular file fails (`EFBIG`), the data
    /// files and a log file alike, as on a full disk; chatd ignores `SIGXFSZ`, so it gets the
    /// error instead of being killed.
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        let limit = bytes.unwrap_or(libc::RLIM_INFINITY);
        let limit = libc::rlimit {
            rlim_cur: limit,
            rlim_max: libc::RLIM_INFINITY,
        };
        let pid = libc::pid_t::try_from(self.pid()).expect("a pid");
        // SAFETY: prlimit(2) on our own child, with a valid new limit and no old one asked for.
        let done = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
        assert_eq!(done, 0, "prlimit: {}", std::io::Error::last_os_error());
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
        let (up, came_up) = std::sync::mpsc::channel();
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
        match came_up.recv_timeout(LAUNCH_PATIENCE) {
            Ok(line) => Ok(Chatd {
                child: Reaped::new(child),
                tcp: launch.tcp,
                http: launch.http,
                irc: banner(&line)
                    .map(|(_, _, irc)| irc)
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
    pub async fn terminate(self) {
        self.terminate_with("TERM").await;
    }

    /// Sends `SIG{signal}` (`"TERM"`, `"INT"`, `"HUP"`) and asserts a clean exit.
    pub async fn terminate_with(mut self, signal: &str) {
        let pid = self.pid().to_string();
        assert!(
            Command::new("kill")
                .args([&format!("-{signal}"), &pid])
                .status()
                .unwrap()
                .success()
        );
        let mut child = self.child.take();
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(
            status.success(),
            "chatd exits cleanly on SIG{signal}: {status}"
        );
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

/// Where a [`Chatd::start_logging`] process's stderr (its log) goes.
pub enum Stderr {
    /// A pipe the harness reads to the end.
    Drained,
    /// A pipe whose reading end the harness closes once the banner is read: every later write
    /// to it fails (`EPIPE`), as when a log collector goes away.
    ClosedAfterBanner,
    /// Appended to this file.
    File(PathBuf),
}

/// The TCP, HTTP and IRC addresses of the banner "chatd NAME is up: nc IP PORT  or
/// http://IP:PORT/  or  irc IP:PORT (Ctrl-C stops it)", if `line` is it.
fn banner(line: &str) -> Option<(SocketAddr, SocketAddr, SocketAddr)> {
    let rest = line.split("is up: nc ").nth(1)?;
    let mut parts = rest.split_whitespace();
    let (ip, port) = (parts.next()?, parts.next()?);
    let http = rest.split("http://").nth(1)?.split('/').next()?;
    let irc = rest.split("  or  irc ").nth(1)?.split_whitespace().next()?;
    Some((
        format!("{ip}:{port}").parse().ok()?,
        http.parse().ok()?,
        irc.parse().ok()?,
    ))
}

/// Waits for the banner to appear in the log file at `path`.
fn banner_in_file(path: &Path, child: &mut Child) -> (SocketAddr, SocketAddr, SocketAddr) {
    let deadline = std::time::Instant::now() + LAUNCH_PATIENCE;
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(addresses) = log.lines().find_map(banner) {
            return addresses;
        }
        assert!(
            child.try_wait().expect("poll chatd").is_none(),
            "chatd exited before listening:\n{log}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no banner in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
