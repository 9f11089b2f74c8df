//! The `chatd` binary as a user runs it: `--help`, `--check` on good and bad pipelines, and a real
//! start, chat and SIGTERM.

use crate::support;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support::Client;
use crate::support::binary::Chatd;

fn chatd(args: &[&str]) -> Output {
    chatd_with(args, &[])
}

/// `chatd` with environment variables set (`Some`) or removed (`None`).
fn chatd_with(args: &[&str], env: &[(&str, Option<&str>)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatd"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CHATD_DATA_DIR", "data-from-tests"); // --check never creates it
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.output().expect("run chatd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `contents` to a fresh file and returns its path.
fn pipeline_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chatd-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(contents.as_bytes())
        .unwrap();
    path
}

#[test]
fn help_explains_every_flag() {
    let out = chatd(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in [
        "--pipeline",
        "--check",
        "--tcp",
        "--irc",
        "--instance",
        "phase1-single.toml",
        "nc localhost 9001",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn help_names_the_environment_the_pipelines_read() {
    let help = text(&chatd(&["--help"]).stdout);
    for variable in ["DATABASE_URL", "VALKEY_URL", "CHATD_DATA_DIR", "RUST_LOG"] {
        assert!(help.contains(variable), "--help lacks {variable}:\n{help}");
    }
}

#[test]
fn a_port_alone_or_a_host_name_is_an_address() {
    let out = chatd(&["--tcp", "9005", "--http", "localhost:3005", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("tcp = \"127.0.0.1:9005\""), "{stdout}");
    assert!(stdout.contains("http = \"127.0.0.1:3005\""), "{stdout}");
    let out = chatd(&["--tcp", "ninety", "--check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("\"ninety\" is not an address: write IP:PORT"),
        "{stderr}"
    );
}

#[test]
fn check_prints_every_effective_option() {
    let stdout = text(&chatd(&["--check"]).stdout);
    for option in [
        "session_idle_secs = 300",
        "max_connections = 10000",
        "header_read_timeout_secs = 10",
        "max_rooms = 10000",
        "max_rooms_per_session = 50",
        "sync_timeout_ms = 5000",
        "presence_ttl_secs = 15",
    ] {
        assert!(stdout.contains(option), "--check lacks {option}:\n{stdout}");
    }
}

#[test]
fn a_negative_number_is_out_of_range_with_its_range() {
    let path = pipeline_file(
        "negative",
        &chatd::pipeline::load::EMBEDDED_DEFAULT.replace("capacity = 10", "capacity = -1"),
    );
    let out = chatd(&["--pipeline", path.to_str().unwrap(), "--check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "(history): option `capacity` = -1 is out of range; it must be from 1 to 10000"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_postgres_is_named_with_what_to_do() {
    // Port 1 on the loopback address: nothing listens there.
    let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["--pipeline", "pipelines/phase1-postgres.toml"])
        .args(["--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", "postgres://127.0.0.1:1/chatd")
        .output()
        .expect("run chatd");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot reach PostgreSQL at 127.0.0.1:1, database \"chatd\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("createdb -h 127.0.0.1 -p 1 chatd"),
        "{stderr}"
    );
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .env("CHATD_DATA_DIR", support::data_dir())
        .env("RUST_LOG", "debug")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chatd");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut logs = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("a line of stderr");
        logs.push_str(&line);
        logs.push('\n');
        if line.contains(" is up: ") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(logs.contains("chatd is listening"), "a log line: {logs}");
    assert!(!logs.contains('\u{1b}'), "no escape codes: {logs:?}");
}

#[test]
fn check_prints_the_embedded_stack_in_call_order() {
    let out = chatd(&["--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let positions: Vec<usize> = ["parse", "route", "history", "persist", "fanout"]
        .iter()
        .map(|kind| {
            stdout
                .find(&format!(". {kind}"))
                .unwrap_or_else(|| panic!("{kind} missing:\n{stdout}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "layers out of order:\n{stdout}"
    );
    assert!(stdout.contains("capacity = 10"), "{stdout}");
    assert!(
        stdout.contains("path = \"data-from-tests/chatd.db\"")
            && stdout.contains("store = \"sqlite\""),
        "the default stores in $CHATD_DATA_DIR/chatd.db:\n{stdout}"
    );
}

#[test]
fn check_accepts_the_shipped_pipeline_files() {
    for file in [
        "pipelines/phase1-single.toml",
        "pipelines/phase1-postgres.toml",
        "pipelines/phase1-sync.toml",
        "pipelines/phase2-poll.toml",
        "pipelines/phase3-valkey.toml",
    ] {
        let out = chatd(&["--pipeline", file, "--check"]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out.stderr));
    }
}

#[test]
fn check_reports_every_problem_at_once_with_exit_code_2() {
    let path = pipeline_file(
        "three-problems",
        r#"
[[layer]]
kind = "fanout"
backend = "local"

[[layer]]
kind = "parse"

[[layer]]
kind = "route"

[[layer]]
kind = "history"
capcity = 10

[[layer]]
kind = "teleport"
"#,
    );
    let out = chatd(&["--pipeline", path.to_str().unwrap(), "--check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(path.to_str().unwrap()),
        "names the file:\n{stderr}"
    );
    assert!(
        stderr.contains("layer 5 (teleport)") && stderr.contains("unknown layer kind"),
        "{stderr}"
    );
    assert!(
        stderr.contains("layer 4 (history)") && stderr.contains("capcity"),
        "{stderr}"
    );
    assert!(
        stderr.contains("layer 1 (fanout)") && stderr.contains("must come after"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn broken_files_exit_2_without_a_panic() {
    let syntax = pipeline_file("syntax", "[[layer]\nkind = ");
    let missing = PathBuf::from("/nonexistent/chatd.toml");
    for path in [syntax, missing] {
        let out = chatd(&["--pipeline", path.to_str().unwrap(), "--check"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_bad_override_is_refused() {
    let out = chatd(&["--instance", "no spaces please", "--check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("instance"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn the_binary_serves_netcat_and_stops_on_sigterm() {
    let chatd = Chatd::start(&["--instance", "cli"], &support::data_dir());
    let mut alice = Client::named(chatd.tcp, "alice").await;
    let mut bob = Client::named(chatd.tcp, "bob").await;
    assert!(alice.welcome.contains("(instance cli)"));
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    alice.send("hello from the binary").await;
    bob.expect("[general] alice: hello from the binary").await;
    // An HTTP session must not keep the process alive at shutdown.
    let http = support::http::HttpClient::connect(chatd.http, "dana").await;
    assert_eq!(http.command("/join general").await.status, 200);
    alice.expect("* dana joined general").await;

    let closed = tokio::spawn(async move { alice.expect_closed().await });
    chatd.terminate().await;
    assert_eq!(closed.await.unwrap(), ["* server shutting down, goodbye"]);
}

/// Golden tests of `--check`: its whole output (exit code, stdout, stderr) on the embedded
/// default, on every shipped pipeline and on files with problems of every kind, compared with
/// the files in `tests/golden/check/`. A change to what `--check` prints shows up here as a diff;
/// when the change is wanted, `CHATD_BLESS=1 cargo test --test cli golden` writes the new output
/// and the diff is reviewed with the code.
mod golden {
    use super::{chatd_with, text};
    use std::path::Path;

    const DIR: &str = "tests/golden/check";

    /// What `--check` did, as one text: the exit code, then stdout and stderr. The instance is
    /// named (a name derived from the host would change the output from machine to machine).
    fn run(args: &[&str]) -> String {
        let args = [args, &["--instance", "golden"]].concat();
        let out = chatd_with(&args, &[("DATABASE_URL", None), ("VALKEY_URL", None)]);
        let code = out
            .status
            .code()
            .map_or("signal".to_string(), |c| c.to_string());
        let stdout = text(&out.stdout);
        let stderr = text(&out.stderr);
        format!("exit: {code}\n--- stdout\n{stdout}--- stderr\n{stderr}")
    }

    fn compare(name: &str, actual: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(DIR)
            .join(format!("{name}.out"));
        if std::env::var_os("CHATD_BLESS").is_some() {
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (CHATD_BLESS=1 writes it)", path.display()));
        assert!(
            expected == actual,
            "--check's output for {name} changed (CHATD_BLESS=1 rewrites {}):\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }

    #[test]
    fn the_embedded_default() {
        compare("default", &run(&["--check"]));
    }

    #[test]
    fn every_shipped_pipeline() {
        for name in [
            "phase1-single",
            "phase1-sync",
            "phase1-postgres",
            "phase2-poll",
            "phase3-valkey",
        ] {
            let file = format!("pipelines/{name}.toml");
            compare(name, &run(&["--pipeline", &file, "--check"]));
        }
    }

    #[test]
    fn files_with_problems() {
        for name in [
            "many-problems",
            "order",
            "cluster-without-postgres",
            "shared-directory",
            "syntax",
            "missing",
            "more-problems",
            "stores",
            "tags",
        ] {
            let file = format!("{DIR}/{name}.toml");
            compare(name, &run(&["--pipeline", &file, "--check"]));
        }
    }
}
