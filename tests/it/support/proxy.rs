//! A fault-injecting TCP proxy: what a chatd instance dials instead of PostgreSQL or Valkey, so
//! that a test can slow, cut or silence that one instance's link while the others stay healthy.
//!
//! It runs in-process on the test's tokio runtime, on a free loopback port, and forwards bytes to
//! one target. Its [`Mode`] can change at any moment, and every open connection follows:
//!
//! * [`Mode::Pass`]: bytes go through as they come;
//! * [`Mode::Latency`]: each chunk is held for a fixed time per direction before it is written
//!   (order is kept), as on a slow or distant link;
//! * [`Mode::Cut`]: every open connection is reset (RST, not a polite FIN) and every new one is
//!   reset as soon as it is accepted, until the mode changes: a broken network or a dead host;
//! * [`Mode::Blackhole`]: connections are accepted and held but nothing is forwarded either way
//!   until the mode changes (then the held bytes flow): a partition where packets vanish, which
//!   is what makes clients hang on their timeouts instead of failing fast.
//!
//! One proxy per (instance, service) is what lets a schedule cut instance `b` from PostgreSQL
//! while `a` keeps talking to it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

/// What the proxy does to the bytes; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward as they come.
    Pass,
    /// Hold each chunk this long: `up` towards the target, `down` back to the client.
    Latency {
        /// Client to target.
        up: Duration,
        /// Target to client.
        down: Duration,
    },
    /// Reset every connection, refuse (reset) new ones.
    Cut,
    /// Accept and hold, forward nothing.
    Blackhole,
}

impl Mode {
    fn delay(self, up: bool) -> Duration {
        match self {
            Mode::Latency { up: u, down: d } => {
                if up {
                    u
                } else {
                    d
                }
            }
            _ => Duration::ZERO,
        }
    }
}

/// A running proxy; dropping it resets its connections and closes its port.
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `target` on a free loopback port, in [`Mode::Pass`].
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, watcher) = watch::channel(Mode::Pass);
        let accept = tokio::spawn(accept_loop(listener, target, watcher));
        FaultProxy { addr, mode, accept }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the mode for every open and future connection.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Back to [`Mode::Pass`].
    pub fn heal(&self) {
        self.set(Mode::Pass);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Cut);
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, mode: watch::Receiver<Mode>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if *mode.borrow() == Mode::Cut {
            reset(&client);
            continue;
        }
        tokio::spawn(connection(client, target, mode.clone()));
    }
}

/// Closes `stream` with a RST: linger zero, then drop.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// How a pump ended.
enum End {
    /// A side closed or failed: close the other politely.
    Closed,
    /// The mode says cut: reset both sides.
    Cut,
}

async fn connection(mut client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    // A blackholed newcomer is held before anything is dialled.
    while *mode.borrow() == Mode::Blackhole {
        if mode.changed().await.is_err() {
            return;
        }
    }
    if *mode.borrow() == Mode::Cut {
        reset(&client);
        return;
    }
    let mut server = match TcpStream::connect(target).await {
        Ok(server) => server,
        Err(_) => {
            reset(&client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        tokio::select! {
            end = pump(client_read, server_write, mode.clone(), true) => end,
            end = pump(server_read, client_write, mode.clone(), false) => end,
        }
    };
    if matches!(end, End::Cut) {
        reset(&client);
        reset(&server);
    }
}

/// Copies `from` to `to` under the current mode until one side ends or the mode says cut.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    mut mode: watch::Receiver<Mode>,
    up: bool,
) -> End {
    let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut eof = false;
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Cut => return End::Cut,
            Mode::Blackhole => {
                if mode.changed().await.is_err() {
                    return End::Closed;
                }
                continue;
            }
            Mode::Pass | Mode::Latency { .. } => {}
        }
        if eof && held.is_empty() {
            let _ = to.shutdown().await;
            return End::Closed;
        }
        let due = held.front().map(|(at, _)| *at);
        let delay = current.delay(up);
        tokio::select! {
            changed = mode.changed() => if changed.is_err() { return End::Closed },
            _ = async {
                match due {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some((_, bytes)) = held.pop_front() && to.write_all(&bytes).await.is_err() {
                    return End::Closed;
                }
            }
            read = from.read(&mut buf), if !eof => match read {
                Err(_) => return End::Closed,
                Ok(0) => eof = true,
                Ok(n) if delay.is_zero() && held.is_empty() => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return End::Closed;
                    }
                }
                Ok(n) => held.push_back((Instant::now() + delay, buf[..n].to_vec())),
            },
        }
    }
}
