//! The `chatd` binary: read a pipeline file, apply command-line overrides, run until Ctrl-C.
//!
//! Everything a person types here is checked with a message that says what to write instead:
//! `--tcp 9005` and `--tcp localhost:9005` are fine (a port alone listens on 127.0.0.1, a host
//! name is looked up), and `--help` lists the environment variables the shipped pipelines read.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use chatd::ops::logs::{self, LogFormat};
use chatd::pipeline::{PipelineConfig, load};
use chatd::server::Server;

/// chatd: a small, fast chat server for netcat, browsers and IRC clients.
///
/// The layer stack (parse, route, history, persist, fanout) and its backends come from a TOML
/// pipeline file. Without --pipeline, chatd runs its embedded copy of
/// pipelines/phase1-single.toml: one instance, no services needed, history kept in the SQLite
/// file $CHATD_DATA_DIR/chatd.db (default: data/chatd.db under the current directory).
///
/// Chat with: nc localhost 9001   (then /help)
///        or: a browser at http://localhost:3001
///        or: an IRC client on localhost:6667 (irssi -c localhost -p 6667)
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment, after_help = ENVIRONMENT)]
struct Cli {
    /// The pipeline file to run (default: the embedded pipelines/phase1-single.toml).
    #[arg(long, value_name = "FILE")]
    pipeline: Option<PathBuf>,

    /// Validate the pipeline, print the layer stack in call order with each layer's options, and
    /// exit: 0 when valid, 2 when not.
    #[arg(long)]
    check: bool,

    /// Listen for the line protocol (netcat) here, overriding [server] tcp: IP:PORT
    /// (0.0.0.0:9001 for every interface), HOST:PORT (localhost:9001) or a PORT alone
    /// (127.0.0.1:PORT).
    #[arg(long, value_name = "ADDR", value_parser = listen_address)]
    tcp: Option<SocketAddr>,

    /// Listen for HTTP (browsers, curl) here, overriding [server] http; written as for --tcp.
    #[arg(long, value_name = "ADDR", value_parser = listen_address)]
    http: Option<SocketAddr>,

    /// Listen for IRC clients here, overriding [server] irc (absent from both: no IRC listener).
    #[arg(long, value_name = "ADDR")]
    irc: Option<SocketAddr>,

    /// This instance's name, overriding [server] instance (default: host name and TCP port).
    #[arg(long, value_name = "ID")]
    instance: Option<String>,

    /// How log lines on stderr look: `text` for a terminal, `json` (one object per line) for a
    /// log shipper. RUST_LOG filters them (default: info).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// What `--help` says after the flags: the environment the binary and the shipped pipelines read.
const ENVIRONMENT: &str = "\
Environment:
  RUST_LOG        which log lines to show (default: info; e.g. RUST_LOG=chatd=debug)
  CHATD_DATA_DIR  where the default pipeline keeps chatd.db (default: data)
  DATABASE_URL    the PostgreSQL database of pipelines/phase1-postgres.toml, phase2-poll.toml
                  and phase3-valkey.toml (default: postgres://localhost/chatd)
  VALKEY_URL      the Valkey (or Redis) server of pipelines/phase3-valkey.toml
                  (default: redis://127.0.0.1:6379)
  A pipeline file may read any other variable as ${VAR} or ${VAR:-default}.

More: README.md, and docs/CONFIG.md for every option of a pipeline file.";

/// Parses a listen address: `IP:PORT`, `HOST:PORT` (looked up, an IPv4 address preferred, as
/// `nc localhost` tries it first) or a `PORT` alone, which listens on 127.0.0.1 like the default.
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let advice = "write IP:PORT (127.0.0.1:9001, or 0.0.0.0:9001 for every interface), \
                  HOST:PORT (localhost:9001) or a PORT alone (9001)";
    if !text.contains(':') {
        return Err(format!("{text:?} is not an address: {advice}"));
    }
    let found: Vec<SocketAddr> = match text.to_socket_addrs() {
        Ok(found) => found.collect(),
        Err(err) => return Err(format!("cannot use {text:?} ({err}): {advice}")),
    };
    found
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| found.first())
        .copied()
        .ok_or_else(|| format!("{text:?} names no address: {advice}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logs::init(cli.log_format);
    ignore_file_size_signal();

    let loaded = match &cli.pipeline {
        Some(path) => load::load_file(path),
        None => load::embedded_default(),
    };
    let mut config = match loaded {
        Ok(config) => config,
        Err(errors) => {
            logs::stderr_line(&errors);
            return ExitCode::from(2);
        }
    };
    apply_overrides(&mut config, &cli);
    if let Err(errors) = load::revalidate(&config) {
        logs::stderr_line(format_args!(
            "chatd: the command-line flags make the pipeline invalid:\n{errors}"
        ));
        return ExitCode::from(2);
    }
    if cli.check {
        println!("{}", config.describe());
        return ExitCode::SUCCESS;
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            logs::stderr_line(format_args!("chatd: cannot start the async runtime: {err}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, cli.log_format)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            logs::stderr_line(format_args!("chatd: {err:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Command-line flags win over the file.
fn apply_overrides(config: &mut PipelineConfig, cli: &Cli) {
    if let Some(tcp) = cli.tcp {
        config.server.tcp = tcp;
    }
    if let Some(http) = cli.http {
        config.server.http = http;
    }
    if let Some(irc) = cli.irc {
        config.server.irc = Some(irc);
    }
    if let Some(instance) = &cli.instance {
        config.server.instance = Some(instance.clone());
    }
}

/// Runs until a signal. The banner and the goodbye are plain lines for a person at a terminal;
/// with JSON logs they are log events too, so that every line on stderr parses.
async fn run(config: PipelineConfig, format: LogFormat) -> anyhow::Result<()> {
    let server = Server::start(&config).await?;
    let irc = match server.irc_addr() {
        Some(addr) => format!("  or  irc {addr}"),
        None => String::new(),
    };
    let banner = format!(
        "chatd {} is up: nc {} {}  or  http://{}/{irc}  (Ctrl-C stops it)",
        server.hub().instance(),
        server.tcp_addr().ip(),
        server.tcp_addr().port(),
        server.http_addr()
    );
    match format {
        LogFormat::Text => logs::stderr_line(&banner),
        LogFormat::Json => tracing::info!("{banner}"),
    }
    let signal = wait_for_signal().await;
    match format {
        LogFormat::Text => logs::stderr_line(format!("chatd: shutting down ({signal})")),
        LogFormat::Json => tracing::info!(signal, "shutting down"),
    }
    server.shutdown().await;
    Ok(())
}

/// Whether this process was started with SIGHUP ignored (`nohup`), before chatd set a handler.
#[cfg(unix)]
fn hangup_ignored() -> bool {
    // SAFETY: sigaction(2) with no new action only reads the current one into `old`, a zeroed
    // (valid) struct of the right type.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// A write that would take a file past the process's file-size limit (`ulimit -f`) gets an
/// error (`EFBIG`) instead of killing the process with `SIGXFSZ`, as PostgreSQL does: to chatd
/// it is then a disk that takes no more, which the store and the log survive (see
/// `docs/RELIABILITY.md`).
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" runs no code of ours in a handler; it
    // happens before the runtime starts any thread.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Resolves on Ctrl-C (SIGINT), SIGTERM or SIGHUP, with the signal's name.
///
/// SIGHUP (the terminal chatd runs in was closed, or an operator asked for the reload many
/// servers do on it) would otherwise end the process on the spot, losing the write-behind
/// queue. chatd has no reload: the signal stops it cleanly, as the others do, unless chatd was
/// started with it ignored (`nohup chatd ...`): then it stays ignored.
async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let hangup = async {
            match hangup_ignored() {
                true => std::future::pending::<()>().await,
                false => match signal(SignalKind::hangup()) {
                    Ok(mut hangup) => drop(hangup.recv().await),
                    Err(_) => std::future::pending::<()>().await,
                },
            }
        };
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
                () = hangup => "SIGHUP: chatd has no reload; restart it to apply a change",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::listen_address;

    #[test]
    fn a_port_alone_listens_on_the_loopback_address() {
        assert_eq!(
            listen_address("9005").unwrap().to_string(),
            "127.0.0.1:9005"
        );
    }

    #[test]
    fn addresses_and_host_names_are_accepted() {
        assert_eq!(
            listen_address("0.0.0.0:9005").unwrap().to_string(),
            "0.0.0.0:9005"
        );
        assert_eq!(
            listen_address("localhost:9005").unwrap().to_string(),
            "127.0.0.1:9005"
        );
    }

    #[test]
    fn a_bad_address_says_what_to_write() {
        let error = listen_address("nine-thousand").unwrap_err();
        assert!(error.contains("HOST:PORT (localhost:9001)"), "{error}");
        let error = listen_address("localhost:99999").unwrap_err();
        assert!(error.contains("cannot use \"localhost:99999\""), "{error}");
    }
}
