//! A throwaway PostgreSQL server for tests and benches: `initdb` into a temp dir, `pg_ctl start`
//! on a free loopback port with its unix socket inside the temp dir, torn down on drop.
//!
//! [`TestPostgres::stop`] and [`TestPostgres::restart`] stop it (fast: connections are cut) and
//! start it again with its data; [`TestPostgres::pause`] and [`TestPostgres::resume`] freeze and
//! thaw the postmaster and every backend (SIGSTOP, SIGCONT): connections stay open, queries hang.
//! [`TestPostgres::set_read_only`] makes it refuse every write while it answers reads.
//!
//! It never touches a system instance or port 5432. The server binaries are looked up as
//! `initdb` on `PATH`, then in `/usr/lib/postgresql/*/bin` (Debian and Ubuntu keep them there).
//! `initdb` refuses to run as root, so when the tests run as root the cluster belongs to the
//! `postgres` user (or `nobody`) and every server command runs through `runuser`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long the server may take to start or stop.
const PATIENCE: Duration = Duration::from_secs(60);

/// Set this to skip the PostgreSQL tests on a machine without PostgreSQL (they fail otherwise).
pub const SKIP_VAR: &str = "CHATD_SKIP_POSTGRES";

/// A running throwaway server; see the module docs.
pub struct TestPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Who runs the server when the tests run as root.
    run_as: Option<String>,
    running: bool,
}

impl TestPostgres {
    /// Creates and starts a fresh server. Panics with the reason when that fails, or returns
    /// `None` (after saying so) when PostgreSQL is not installed and [`SKIP_VAR`] is set.
    pub fn start() -> Option<TestPostgres> {
        let Some(bin) = server_bin_dir() else {
            let note = "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in \
                        /usr/lib/postgresql/*/bin; install PostgreSQL (scripts/test.sh does on \
                        Debian/Ubuntu)";
            if std::env::var_os(SKIP_VAR).is_some() {
                eprintln!("skipping a PostgreSQL test: {note}");
                return None;
            }
            panic!("{note}, or set {SKIP_VAR}=1 to skip these tests");
        };
        let dir = tempfile::Builder::new()
            .prefix("chatd-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        let run_as = if is_root() {
            Some(unprivileged_user())
        } else {
            None
        };
        if let Some(user) = &run_as {
            run(Command::new("chown").args(["-R", user]).arg(dir.path()));
        }
        let mut pg = TestPostgres {
            dir,
            bin,
            port: free_port(),
            run_as,
            running: false,
        };
        let data = pg.data_dir();
        let mut initdb = pg.command("initdb");
        pg.check(initdb.arg("-D").arg(&data).args([
            "-U",
            "chatd",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]));
        pg.restart();
        Some(pg)
    }

    /// The connection URL chatd uses: user `chatd`, database `postgres`, over TCP.
    pub fn url(&self) -> String {
        format!("postgres://chatd@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: open connections are cut), keeping its data.
    pub fn stop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let mut stop = self.command("pg_ctl");
            self.check(stop.arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]));
            self.running = false;
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        let data = self.data_dir();
        let sockets = self.dir.path().join("sock");
        std::fs::create_dir_all(&sockets).expect("socket dir");
        if let Some(user) = &self.run_as {
            run(Command::new("chown").args(["-R", user]).arg(&sockets));
        }
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c full_page_writes=off -c max_connections=50",
            self.port,
            sockets.display()
        );
        let log = self.dir.path().join("postgres.log");
        let mut start = self.command("pg_ctl");
        self.check(
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &options, "-w", "-t", "60", "start"]),
        );
        self.running = true;
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not listen in time"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address chatd (or a proxy in front of it) dials.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The connection URL for `addr` instead of the server's own port (a proxy in front of it).
    pub fn url_via(addr: std::net::SocketAddr) -> String {
        format!("postgres://chatd@{addr}/postgres")
    }

    /// Sets the whole server read-only, or writable again, the way an operator does it
    /// (`ALTER SYSTEM SET default_transaction_read_only` and a reload), and waits until a new
    /// connection sees it: by then the server has passed the reload on to every connection
    /// already open, which applies it before its next statement. Reads go on; every write fails
    /// with SQLSTATE 25006.
    pub async fn set_read_only(url: &str, on: bool) -> Result<(), String> {
        let connect = || async {
            let (db, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("connect to PostgreSQL: {e}"))?;
            tokio::spawn(connection);
            Ok::<_, String>(db)
        };
        let value = if on { "on" } else { "off" };
        let db = connect().await?;
        // This session writes the setting, so it must not be read-only itself; ALTER SYSTEM
        // runs outside a transaction, so one statement at a time.
        let statements = [
            "SET default_transaction_read_only = off".to_string(),
            format!("ALTER SYSTEM SET default_transaction_read_only = {value}"),
            "SELECT pg_reload_conf()".to_string(),
        ];
        for statement in &statements {
            let done = db.batch_execute(statement).await;
            done.map_err(|e| format!("{statement}: {e}"))?;
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let shown = connect()
                .await?
                .query_one("SHOW default_transaction_read_only", &[])
                .await
                .map_err(|e| format!("SHOW: {e}"))?;
            if shown.get::<_, String>(0) == value {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("read-only = {value} not seen after the reload"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Freezes the postmaster and all its backends (SIGSTOP): connections stay open and every
    /// query hangs until [`TestPostgres::resume`].
    pub fn pause(&self) {
        let pids = self.pids();
        for pid in &pids {
            signal(*pid, libc::SIGSTOP);
        }
    }

    /// Thaws what [`TestPostgres::pause`] froze (SIGCONT), backends first.
    pub fn resume(&self) {
        let pids = self.pids();
        for pid in pids.iter().rev() {
            signal(*pid, libc::SIGCONT);
        }
    }

    /// The postmaster (first, from `postmaster.pid`) and its children (from `/proc`); none
    /// while the server is stopped.
    fn pids(&self) -> Vec<i32> {
        // No file (the server is stopped): nothing to signal.
        let Ok(file) = std::fs::read_to_string(self.data_dir().join("postmaster.pid")) else {
            return Vec::new();
        };
        let Some(postmaster) = file
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
        else {
            return Vec::new();
        };
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "PID (comm) STATE PPID ...": the command may hold spaces and parentheses.
            let ppid = stat
                .rfind(')')
                .and_then(|end| stat[end + 1..].split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<i32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A server command, run as the unprivileged user when needed, from the temp dir.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(path);
                cmd
            }
            None => Command::new(path),
        };
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn check(&self, cmd: &mut Command) {
        let out = run(cmd);
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
            panic!(
                "{cmd:?} failed: {}\n{}\nserver log:\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if self.running {
            // A test that failed while the server was paused must not leave it frozen.
            self.resume();
            let data = self.data_dir();
            // Immediate: the data is thrown away anyway. Errors are ignored: this is cleanup.
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
        // The TempDir removes the directory when it drops, right after this.
    }
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a pid read from the server's own files and a plain signal number.
    // A backend that exited meanwhile is no error: ESRCH is ignored.
    unsafe { libc::kill(pid, signal) };
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// The directory of `initdb`, `pg_ctl` and `postgres`.
pub fn server_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("initdb"))
            .collect::<Vec<_>>()
    });
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|version| version.path().join("bin/initdb"))
        .collect();
    debian.sort(); // the newest version last: prefer it among the Debian ones
    debian.reverse();
    on_path
        .chain(debian)
        .filter(|initdb| initdb.is_file())
        // Resolve symlinks (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb) so that
        // pg_ctl and postgres are found next to it.
        .filter_map(|initdb| initdb.canonicalize().ok())
        .filter_map(|initdb| initdb.parent().map(Path::to_path_buf))
        .find(|dir| dir.join("pg_ctl").is_file() && dir.join("postgres").is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `postgres` if that user exists, else `nobody`.
fn unprivileged_user() -> String {
    let exists = Command::new("id")
        .arg("postgres")
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if exists { "postgres" } else { "nobody" }.to_string()
}

/// A port nobody listens on right now, for a server started after this returns and perhaps
/// restarted on it later (PostgreSQL, Valkey, a chatd of a cluster, ChromeDriver).
///
/// It is taken below the kernel's ephemeral range (32768 and up on Linux), never by binding port
/// 0: a port the kernel hands out (to a port-0 listener, or as the local end of any outgoing
/// connection, of which the tests make thousands) could otherwise be taken between this check and
/// the server's bind, or while the server is down for a restart, and the server would fail with
/// "Address already in use". Each call gives the next port of a block of this process's own
/// (picked by its pid, so that two test runs at once rarely share one), skipping ports in use.
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const BLOCK: u32 = 1_500;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = FIRST + (std::process::id() % 8) * BLOCK;
    for _ in 0..BLOCK {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(base + n % BLOCK).expect("a port below 32768");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {base}-{}", base + BLOCK - 1);
}
