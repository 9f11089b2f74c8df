//! A cluster of real `chatd` processes for consistency runs: the shipped pipeline of a phase
//! (made unthrottled, with the durability asked for), the throwaway PostgreSQL and Valkey it
//! needs, and in front of each service one [`FaultProxy`] per instance, so that one instance's
//! link can be slowed or cut while the others' are not.
//!
//! Each instance has fixed ports: a restarted instance comes back where its clients look for
//! it. Every instance gets the same pipeline file; the per-instance urls travel as
//! `DATABASE_URL` and `VALKEY_URL`, which the shipped files read (`${DATABASE_URL:-...}`).
//! stderr of every instance goes to `NAME.log` in the run's directory, across restarts.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatd::pipeline::config::Durability;

use super::binary::{Chatd, Launch};
use super::check::Stored;
use super::postgres::{TestPostgres, free_port};
use super::proxy::FaultProxy;
use super::senders::Endpoint;
use super::valkey::TestValkey;
use super::{data_dir, postgres, scenarios, sqlite};

/// The shipped pipeline file `name` (`phase2-poll.toml`, ...), as text.
pub fn shipped(name: &str) -> String {
    let path = format!("{}/pipelines/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// `text` without its `rate_limit` layer and with the connection limits raised: every test
/// client comes from 127.0.0.1 (the same cut as `scripts/lib/unthrottled.awk`).
pub fn unthrottled(text: &str) -> String {
    let text = super::drop_layer(text, "rate_limit");
    let mut out = String::new();
    for line in text.lines() {
        let key = line.trim_start();
        if key.starts_with("max_connections_per_ip") || key.starts_with("max_connections ") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.trim() == "[server]" {
            out.push_str("max_connections_per_ip = 1000000\nmax_connections = 1000000\n");
        }
    }
    out
}

/// `text` with its persist layer's `durability` set.
pub fn with_durability(text: &str, durability: Durability) -> String {
    let want = match durability {
        Durability::Sync => "durability = \"sync\"",
        Durability::Async => "durability = \"async\"",
    };
    text.replace("durability = \"sync\"", want)
        .replace("durability = \"async\"", want)
}

/// `text` with option `key` set to `value` in the table whose first line is `first` (`[server]`,
/// `kind = "route"`, with or without a comment after it), in place of the line that set it, if
/// one did (the option names this is used with are found in one table only).
pub fn with_option(text: &str, first: &str, key: &str, value: &str) -> String {
    let mut out = String::new();
    let mut found = false;
    for line in text.lines() {
        let set = line.trim_start().strip_prefix(key);
        if set.is_some_and(|rest| rest.trim_start().starts_with('=')) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.split('#').next().unwrap_or_default().trim() == first {
            out.push_str(&format!("{key} = {value}\n"));
            found = true;
        }
    }
    assert!(found, "no table starts with {first}");
    out
}

/// `text` with a whole `[[layer]]` table (`block`, without the header) inserted before the
/// layer of kind `kind`.
pub fn with_layer_before(text: &str, kind: &str, block: &str) -> String {
    let at = text
        .find(&format!("[[layer]]\nkind = \"{kind}\""))
        .unwrap_or_else(|| panic!("no {kind} layer"));
    let mut out = text.to_string();
    out.insert_str(at, &format!("[[layer]]\n{block}\n\n"));
    out
}

/// One instance: its addresses, how to (re)start it, its proxies and its process.
pub struct Node {
    /// Its name and fixed addresses.
    pub endpoint: Endpoint,
    /// How it is started.
    pub launch: Launch,
    /// Its link to PostgreSQL, if the pipeline uses PostgreSQL.
    pub pg_proxy: Option<FaultProxy>,
    /// Its link to Valkey, if the pipeline uses Valkey.
    pub valkey_proxy: Option<FaultProxy>,
    process: tokio::sync::Mutex<Option<Chatd>>,
}

impl Node {
    /// Sets the running process's file-size limit (see [`Chatd::limit_file_size`]): `Some(0)`
    /// is a full disk, `None` its space back. Nothing if the process is down.
    pub async fn limit_file_size(&self, bytes: Option<u64>) {
        if let Some(chatd) = self.process.lock().await.as_ref() {
            chatd.limit_file_size(bytes);
        }
    }

    /// Starts the process; an error if it did not come up.
    pub async fn start(&self) -> Result<(), String> {
        let mut process = self.process.lock().await;
        if process.is_some() {
            return Ok(());
        }
        let launch = self.launch.clone();
        let chatd = tokio::task::spawn_blocking(move || Chatd::launch(&launch))
            .await
            .map_err(|e| e.to_string())??;
        *process = Some(chatd);
        Ok(())
    }

    /// Starts the process, trying again for up to `patience` (its database may be recovering).
    pub async fn start_retrying(&self, patience: Duration) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        loop {
            match self.start().await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): the process frozen as a whole, as a VM pause or a
    /// swap storm freezes it, and let go again. Nothing if the process is down.
    pub async fn freeze(&self, frozen: bool) {
        if let Some(chatd) = self.process.lock().await.as_ref() {
            let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
            let pid = libc::pid_t::try_from(chatd.pid()).expect("a pid");
            // SAFETY: kill(2) with our own child's pid.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// SIGKILL: a crash.
    pub async fn kill9(&self) {
        if let Some(chatd) = self.process.lock().await.take() {
            chatd.kill().await;
        }
    }

    /// SIGTERM, waiting up to `patience` for the exit (then SIGKILL); true if it exited by itself.
    pub async fn sigterm(&self, patience: Duration) -> bool {
        match self.process.lock().await.take() {
            Some(chatd) => chatd.stop(patience).await.is_some(),
            None => true,
        }
    }
}

/// The services and instances of one run; see the module docs.
pub struct Cluster {
    /// The run's directory: pipeline, SQLite file, logs.
    pub dir: PathBuf,
    /// The instances.
    pub nodes: Vec<Arc<Node>>,
    /// PostgreSQL, when the pipeline uses it.
    pub pg: Option<Arc<Mutex<TestPostgres>>>,
    /// Valkey, when the pipeline uses it.
    pub valkey: Option<Arc<Mutex<TestValkey>>>,
}

impl Cluster {
    /// Starts the services `pipeline` names, then `names.len()` instances of it, one after the
    /// other; `None` when a service is missing and its skip variable is set.
    pub async fn start(pipeline: &str, names: &[&str]) -> Option<Cluster> {
        let pg = match pipeline.contains("${DATABASE_URL") {
            true => Some(Arc::new(Mutex::new(
                tokio::task::spawn_blocking(TestPostgres::start)
                    .await
                    .expect("start PostgreSQL")?,
            ))),
            false => None,
        };
        let valkey = match pipeline.contains("${VALKEY_URL") {
            true => Some(Arc::new(Mutex::new(
                tokio::task::spawn_blocking(TestValkey::start)
                    .await
                    .expect("start Valkey")?,
            ))),
            false => None,
        };
        let pg_addr = pg.as_ref().map(|pg| lock(pg).addr());
        let valkey_addr = valkey.as_ref().map(|valkey| lock(valkey).addr());
        let dir = data_dir();
        let path = dir.join("pipeline.toml");
        std::fs::write(&path, pipeline).expect("write the pipeline");
        let mut nodes = Vec::new();
        for name in names {
            let mut env = vec![("CHATD_DATA_DIR".to_string(), dir.display().to_string())];
            let pg_proxy = match pg_addr {
                Some(addr) => Some(FaultProxy::start(addr).await),
                None => None,
            };
            if let Some(proxy) = &pg_proxy {
                env.push(("DATABASE_URL".into(), TestPostgres::url_via(proxy.addr())));
            }
            let valkey_proxy = match valkey_addr {
                Some(addr) => Some(FaultProxy::start(addr).await),
                None => None,
            };
            if let Some(proxy) = &valkey_proxy {
                env.push(("VALKEY_URL".into(), format!("redis://{}", proxy.addr())));
            }
            let endpoint = Endpoint {
                name: name.to_string(),
                tcp: format!("127.0.0.1:{}", free_port())
                    .parse()
                    .expect("an address"),
                http: format!("127.0.0.1:{}", free_port())
                    .parse()
                    .expect("an address"),
            };
            let launch = Launch {
                pipeline: path.clone(),
                instance: name.to_string(),
                tcp: endpoint.tcp,
                http: endpoint.http,
                env,
                log: dir.join(format!("{name}.log")),
            };
            let node = Arc::new(Node {
                endpoint,
                launch,
                pg_proxy,
                valkey_proxy,
                process: tokio::sync::Mutex::new(None),
            });
            node.start_retrying(Duration::from_secs(30))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            nodes.push(node);
        }
        Some(Cluster {
            dir,
            nodes,
            pg,
            valkey,
        })
    }

    /// Every instance's endpoint, in order.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.nodes.iter().map(|n| n.endpoint.clone()).collect()
    }

    /// Stops every instance cleanly (SIGTERM: a write-behind queue is written before the exit).
    pub async fn stop_all(&self) {
        for node in &self.nodes {
            node.sigterm(Duration::from_secs(60)).await;
        }
    }

    /// Every stored row of `rooms`, straight from the store (not through a proxy). For SQLite,
    /// stop the instances first.
    pub async fn stored(&self, rooms: &[String]) -> Stored {
        let store = match &self.pg {
            Some(pg) => postgres(&lock(pg).url(), Durability::Sync),
            None => sqlite(&self.dir.join("chatd.db"), Durability::Sync),
        };
        let db = scenarios::open_store(&store).await;
        let mut out = Stored::new();
        for room in rooms {
            let rows = scenarios::stored(&*db, room).await;
            out.insert(
                room.clone(),
                rows.iter().map(|m| (m.seq, m.text.clone())).collect(),
            );
        }
        out
    }
}

/// Locks a service, whatever a panicked holder left.
pub fn lock<T>(service: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    service.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on a service off the async threads (its commands block).
pub async fn with<T: Send + 'static, R: Send + 'static>(
    service: &Arc<Mutex<T>>,
    f: impl FnOnce(&mut T) -> R + Send + 'static,
) -> R {
    let service = service.clone();
    tokio::task::spawn_blocking(move || f(&mut lock(&service)))
        .await
        .expect("a service command does not panic")
}
