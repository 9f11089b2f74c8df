//! The `chatd` binary: read a pipeline file, apply command-line overrides, run until Ctrl-C.

use std::net::SocketAddr;
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
#[command(version, verbatim_doc_comment)]
struct Cli {
    /// The pipeline file to run (default: the embedded pipelines/phase1-single.toml).
    #[arg(long, value_name = "FILE")]
    pipeline: Option<PathBuf>,

    /// Validate the pipeline, print the layer stack in call order with each layer's options, and
    /// exit: 0 when valid, 2 when not.
    #[arg(long)]
    check: bool,

    /// Listen for the line protocol (netcat) here, overriding [server] tcp.
    #[arg(long, value_name = "ADDR")]
    tcp: Option<SocketAddr>,

    /// Listen for HTTP (browsers, curl) here, overriding [server] http.
    #[arg(long, value_name = "ADDR")]
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    logs::init(cli.log_format);

    let loaded = match &cli.pipeline {
        Some(path) => load::load_file(path),
        None => load::embedded_default(),
    };
    let mut config = match loaded {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    apply_overrides(&mut config, &cli);
    if let Err(errors) = load::revalidate(&config) {
        eprintln!("chatd: the command-line flags make the pipeline invalid:\n{errors}");
        return ExitCode::from(2);
    }
    if cli.check {
        println!("{}", config.describe());
        return ExitCode::SUCCESS;
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("chatd: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, cli.log_format)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("chatd: {err:#}");
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
        LogFormat::Text => eprintln!("{banner}"),
        LogFormat::Json => tracing::info!("{banner}"),
    }
    wait_for_signal().await;
    match format {
        LogFormat::Text => eprintln!("chatd: shutting down"),
        LogFormat::Json => tracing::info!("shutting down"),
    }
    server.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
