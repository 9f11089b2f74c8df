#!/usr/bin/env bash
# Runs every test chatd has, on a fresh machine or yours: `scripts/test.sh`.
#
# It checks formatting and lints, then runs the unit tests, the integration tests (which start
# chatd on ephemeral loopback ports, and a real headless Chromium for the browser client) and each
# criterion bench once in test mode. It installs what the tests need when it is missing, and exits
# non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/test.sh: cargo is missing; install Rust from https://rustup.rs first" >&2
  exit 1
fi

say "formatting (cargo fmt --check)"
cargo fmt --all -- --check

say "lints (cargo clippy, warnings are errors)"
cargo clippy --all-targets --locked -- -D warnings

say "headless browser for the end-to-end test (scripts/install-browser.sh)"
scripts/install-browser.sh

say "tests (unit, integration, benches in test mode)"
cargo test --all-targets --locked

say "doc tests and API docs (cargo doc, warnings are errors)"
cargo test --doc --locked
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked

say "all tests passed"
