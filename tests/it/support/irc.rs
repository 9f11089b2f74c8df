//! An IRC client for tests: registers, sends raw lines and reads parsed ones, each read bounded
//! by [`PATIENCE`].

use std::collections::HashMap;
use std::net::SocketAddr;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, LinesCodec};

use super::PATIENCE;

/// One line from the server, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// The line as received (without CRLF).
    pub raw: String,
    /// Its tags, unescaped only for the common cases tests use (none needs more).
    pub tags: HashMap<String, String>,
    /// The source (`server` or `nick!user@host`), if any.
    pub source: Option<String>,
    /// The command or numeric.
    pub command: String,
    /// The parameters, the trailing one last.
    pub params: Vec<String>,
}

impl Msg {
    /// Parses one line.
    pub fn parse(raw: &str) -> Msg {
        let mut rest = raw;
        let mut tags = HashMap::new();
        if let Some(tagged) = rest.strip_prefix('@') {
            let (t, after) = tagged.split_once(' ').expect("tags then a command");
            for pair in t.split(';') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                tags.insert(k.to_string(), v.replace("\\s", " ").replace("\\:", ";"));
            }
            rest = after;
        }
        let mut source = None;
        if let Some(s) = rest.strip_prefix(':') {
            let (src, after) = s.split_once(' ').expect("a source then a command");
            source = Some(src.to_string());
            rest = after;
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut params = Vec::new();
        while !rest.is_empty() {
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_string());
                break;
            }
            let (p, after) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(p.to_string());
            rest = after;
        }
        Msg {
            raw: raw.to_string(),
            tags,
            source,
            command: command.to_string(),
            params,
        }
    }

    /// The nick of the source.
    pub fn nick(&self) -> Option<&str> {
        self.source
            .as_deref()
            .map(|s| s.split('!').next().unwrap_or(s))
    }

    /// The last parameter.
    pub fn last(&self) -> &str {
        self.params.last().map(String::as_str).unwrap_or("")
    }
}

/// An IRC client connection.
pub struct IrcClient {
    lines: FramedRead<OwnedReadHalf, LinesCodec>,
    write: OwnedWriteHalf,
    /// The nick it registered with.
    pub nick: String,
}

impl IrcClient {
    /// Connects without registering.
    pub async fn connect(addr: SocketAddr) -> IrcClient {
        let stream = TcpStream::connect(addr).await.expect("connect to IRC");
        let (read, write) = stream.into_split();
        IrcClient {
            lines: FramedRead::new(read, LinesCodec::new_with_max_length(1 << 20)),
            write,
            nick: String::new(),
        }
    }

    /// Connects with a tiny receive buffer, so that a client that does not read backs up into
    /// the server quickly (see `Client::connect_small_buffer`).
    pub async fn connect_small_buffer(addr: SocketAddr) -> IrcClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(addr).await.expect("connect to IRC");
        let (read, write) = stream.into_split();
        IrcClient {
            lines: FramedRead::new(read, LinesCodec::new_with_max_length(1 << 20)),
            write,
            nick: String::new(),
        }
    }

    /// Connects, asks for `caps` (if any), registers as `nick` and reads up to the end of the
    /// welcome (`376` or `422`) and the user mode.
    pub async fn register(addr: SocketAddr, nick: &str, caps: &[&str]) -> IrcClient {
        let mut client = IrcClient::connect(addr).await;
        if !caps.is_empty() {
            client.send("CAP LS 302").await;
            client.expect("CAP").await;
            client.send(&format!("CAP REQ :{}", caps.join(" "))).await;
            let ack = client.expect("CAP").await;
            assert_eq!(ack.params[1], "ACK", "{ack:?}");
        }
        client.send(&format!("NICK {nick}")).await;
        client
            .send(&format!("USER {nick} 0 * :Test user {nick}"))
            .await;
        if !caps.is_empty() {
            client.send("CAP END").await;
        }
        client.expect("001").await;
        client.expect("221").await;
        client.nick = nick.to_string();
        client
    }

    /// Sends one line (CRLF added).
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.expect("write to IRC");
    }

    /// The next line, parsed.
    pub async fn next(&mut self) -> Msg {
        match tokio::time::timeout(PATIENCE, self.lines.next()).await {
            Ok(Some(Ok(line))) => Msg::parse(line.trim_end_matches('\r')),
            Ok(Some(Err(e))) => panic!("IRC read failed: {e}"),
            Ok(None) => panic!("the IRC server closed the connection"),
            Err(_) => panic!("no IRC line within {PATIENCE:?}"),
        }
    }

    /// Skips lines until one with `command`, and returns it.
    pub async fn expect(&mut self, command: &str) -> Msg {
        loop {
            let msg = self.next().await;
            if msg.command == command {
                return msg;
            }
        }
    }

    /// Everything up to the `PONG` for a `PING` sent now: what the server had to say first.
    pub async fn sync(&mut self) -> Vec<Msg> {
        self.send("PING sync").await;
        let mut before = Vec::new();
        loop {
            let msg = self.next().await;
            if msg.command == "PONG" && msg.last() == "sync" {
                return before;
            }
            before.push(msg);
        }
    }

    /// Asserts the server closes the connection, and returns the lines before it did.
    pub async fn closed(&mut self) -> Vec<Msg> {
        let mut rest = Vec::new();
        loop {
            match tokio::time::timeout(PATIENCE, self.lines.next()).await {
                Ok(None) | Ok(Some(Err(_))) => return rest,
                Ok(Some(Ok(line))) => rest.push(Msg::parse(line.trim_end_matches('\r'))),
                Err(_) => panic!("the IRC server did not close the connection; got {rest:?}"),
            }
        }
    }
}
