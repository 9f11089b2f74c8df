//! What `chatd --check` prints about a valid pipeline, and this instance's name.
//!
//! The summary shows every option in effect, defaults included, so that a reader sees what the
//! running server would do without looking anything up: the `[server]` table first, then the
//! stack the way requests meet it, first layer first, so a reader can see what a reordering in
//! the file did. Options are printed by serializing each config through `toml::Value`, not by a
//! hand-written line per kind: a new kind or option shows up without touching this file.

use std::fmt::Write as _;

use super::config::{LayerConfig, PipelineConfig, ServerConfig, instance_char};

/// Where Linux keeps the host name; read directly so no extra crate is needed.
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

/// Lines of options are wrapped before this many characters.
const WIDTH: usize = 100;
/// Where a layer's options start: after `  1. ` and a kind padded to 9 characters and a space.
const OPTIONS_COLUMN: usize = 15;

impl PipelineConfig {
    /// A human-readable summary: the source, every `[server]` option and the stack in call
    /// order, each layer with every option in effect.
    ///
    /// ```text
    /// pipeline <embedded default: pipelines/phase1-single.toml> is valid
    /// server:        header_read_timeout_secs = 10, http = "127.0.0.1:3001",
    ///                instance = "myhost-9001" (derived), max_body_bytes = 65536, ...
    /// stack, in call order (a request meets layer 1 first):
    ///   1. parse
    ///   2. route     directory = "auto", max_message_chars = 2000, ...
    /// ```
    pub fn describe(&self) -> String {
        let mut out = format!("pipeline {} is valid\n", self.source);
        let mut server = options_of(&self.server);
        if self.server.instance.is_none() {
            // Shown in key order, marked: the name this process would take.
            let derived = format!("{:?} (derived)", self.server.instance_id());
            server.push(("instance".to_string(), derived));
            server.sort();
        }
        out.push_str(&wrapped("server:", &server));
        out.push_str("stack, in call order (a request meets layer 1 first):\n");
        for (i, layer) in self.layers.iter().enumerate() {
            let head = format!("  {}. {}", i + 1, layer.kind());
            out.push_str(&wrapped(&head, &layer_options(layer)));
        }
        out
    }

    /// The name of this instance; see [`ServerConfig::instance_id`].
    pub fn instance_id(&self) -> String {
        self.server.instance_id()
    }
}

/// `head`, then `key = value` pairs separated by commas from [`OPTIONS_COLUMN`] on, wrapped
/// before [`WIDTH`] onto lines indented to that column; one line with its newline per line.
fn wrapped(head: &str, options: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut line = format!("{head:<width$}", width = OPTIONS_COLUMN - 1);
    for (i, (key, value)) in options.iter().enumerate() {
        let item = format!(
            "{key} = {value}{}",
            if i + 1 < options.len() { "," } else { "" }
        );
        if line.len() + 1 + item.len() > WIDTH && line.len() > OPTIONS_COLUMN {
            // Writing to a String cannot fail, so the `fmt::Result` is safely ignored.
            let _ = writeln!(out, "{}", line.trim_end());
            line = " ".repeat(OPTIONS_COLUMN - 1);
        }
        line.push(' ');
        line.push_str(&item);
    }
    let _ = writeln!(out, "{}", line.trim_end());
    out
}

impl ServerConfig {
    /// The configured `instance`, or one derived from the host name and the TCP port, such as
    /// `myhost-9001`: unique per process on a host, and stable across restarts.
    pub fn instance_id(&self) -> String {
        match &self.instance {
            Some(name) => name.clone(),
            None => derived_instance(&host_name(), self.tcp.port()),
        }
    }
}

/// A layer's options as `key` and TOML-rendered `value` (strings quoted), without its `kind`,
/// in alphabetical order of the keys (the order of a `toml::Table`).
pub fn layer_options(layer: &LayerConfig) -> Vec<(String, String)> {
    let mut options = options_of(layer);
    options.retain(|(key, _)| key != "kind");
    options
}

/// The options of any config table, as [`layer_options`] renders them.
fn options_of<T: serde::Serialize>(config: &T) -> Vec<(String, String)> {
    match toml::Value::try_from(config) {
        Ok(toml::Value::Table(table)) => table
            .into_iter()
            .map(|(key, value)| (key, value.to_string()))
            .collect(),
        // Config types always serialize to a table; say so rather than hide the options.
        Ok(_) | Err(_) => vec![("options".to_string(), "(cannot be shown)".to_string())],
    }
}

/// The host name from the kernel, else `$HOSTNAME`, else `chatd`.
fn host_name() -> String {
    let from_file = std::fs::read_to_string(HOSTNAME_FILE).ok();
    let from_env = || std::env::var("HOSTNAME").ok();
    from_file
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| from_env().filter(|name| !name.is_empty()))
        .unwrap_or_else(|| "chatd".to_string())
}

/// `host-port`, made of the characters a configured instance may use ([`instance_char`]) and
/// at most 32 of them, so a derived name passes the same check as a written one. Only the first
/// label of a dotted host name is kept: `db1.example.org` becomes `db1`.
fn derived_instance(host: &str, port: u16) -> String {
    let short = host.split('.').next().unwrap_or(host);
    let fix = |c| if instance_char(c) { c } else { '-' };
    // 26 + "-" + a five-digit port = 32
    let clean: String = short.chars().map(fix).take(26).collect();
    let clean = if clean.is_empty() { "chatd" } else { &clean };
    format!("{clean}-{port}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::load::{EMBEDDED_DEFAULT, EMBEDDED_SOURCE};

    #[test]
    fn describe_lists_the_layers_in_call_order_with_every_option() {
        let config = crate::pipeline::load::parse(EMBEDDED_SOURCE, EMBEDDED_DEFAULT, &|_| None);
        let text = config.unwrap().describe();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "pipeline <embedded default: pipelines/phase1-single.toml> is valid"
        );
        let start = lines.iter().position(|l| l.starts_with("stack, ")).unwrap();
        let server = lines[1..start].join(" ");
        for option in [
            "header_read_timeout_secs = 10,",
            "http = \"127.0.0.1:3001\",",
            "ipv6_prefix = 64,",
            "join_timeout_secs = 60,",
            "max_body_bytes = 65536,",
            "max_connections = 10000,",
            "max_connections_per_ip = 64,",
            "max_line_bytes = 4096,",
            "max_queued_bytes = 134217728,",
            "max_streams_per_ip = 32,",
            "max_streams_per_session = 8,",
            "outbound_queue = 2048,",
            "outbound_queue_bytes = 262144,",
            "session_idle_secs = 300,",
            "tcp = \"127.0.0.1:9001\"",
        ] {
            assert!(server.contains(option), "{option} missing: {server}");
        }
        assert!(server.contains("(derived), ipv6_prefix"), "{server}");
        assert_eq!(
            lines[start..],
            [
                "stack, in call order (a request meets layer 1 first):",
                "  1. parse",
                "  2. rate_limit burst = 20, per_address_burst = 200, per_address_per_second = 50, per_second = 10",
                "  3. route     directory = \"auto\", max_message_chars = 2000, max_rooms = 10000,",
                "               max_rooms_per_ip = 500, max_rooms_per_session = 50, presence_ttl_secs = 15,",
                "               room_idle_secs = 300",
                "  4. history   capacity = 10",
                "  5. persist   batch = 500, durability = \"async\", path = \"data/chatd.db\", queue = 10000,",
                "               store = \"sqlite\", sync_timeout_ms = 5000",
                "  6. fanout    backend = \"local\"",
            ]
        );
        assert!(lines.iter().all(|l| l.len() < WIDTH), "{text}");
    }

    #[test]
    fn describe_follows_the_file_order_and_shows_a_configured_instance() {
        let text = "[server]\ninstance = \"a\"\n\
                    [[layer]]\nkind = \"parse\"\n[[layer]]\nkind = \"route\"\n\
                    [[layer]]\nkind = \"persist\"\nstore = \"none\"\n\
                    [[layer]]\nkind = \"history\"\ncapacity = 3\n\
                    [[layer]]\nkind = \"fanout\"\nbackend = \"local\"\n";
        let config = crate::pipeline::load::parse("t.toml", text, &|_| None).unwrap();
        let described = config.describe();
        assert!(described.contains(" instance = \"a\","), "{described}");
        let persist = described.find("3. persist").unwrap();
        let history = described.find("4. history   capacity = 3").unwrap();
        assert!(persist < history, "{described}");
        assert_eq!(config.instance_id(), "a");
    }

    #[test]
    fn a_derived_instance_is_the_short_host_name_and_the_port() {
        assert_eq!(derived_instance("myhost", 9001), "myhost-9001");
        assert_eq!(derived_instance("db1.example.org", 9001), "db1-9001");
        assert_eq!(derived_instance("we!rd host", 1), "we-rd-host-1");
        assert_eq!(derived_instance("", 1), "chatd-1");
        assert_eq!(derived_instance(&"x".repeat(100), 65535).len(), 32);
    }

    #[test]
    fn the_derived_instance_uses_the_tcp_port() {
        let server = ServerConfig::default();
        assert!(
            server.instance_id().ends_with("-9001"),
            "{}",
            server.instance_id()
        );
    }
}
