#!/usr/bin/env bash
# Runs every test chatd has, on a fresh machine or yours: `scripts/test.sh`.
#
# It checks formatting and lints, then runs the unit tests, the integration tests (which start
# chatd on ephemeral loopback ports) and each criterion bench once in test mode. It exits non-zero
# on the first failure. Later phases add the services their tests need (PostgreSQL, Valkey, a
# headless browser) here, installed when missing.
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

say "tests (unit, integration, benches in test mode)"
cargo test --all-targets --locked

say "doc tests and API docs (cargo doc, warnings are errors)"
cargo test --doc --locked
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked

say "all tests passed"
