#!/usr/bin/env bash
# The soak: chatd with its shipped default pipeline (limits and rate limit as an outsider meets
# them) under a long mixed run of abusive clients from several loopback addresses beside normal
# users (examples/soak: the mix is the table MIX in examples/soak/main.rs). Prints the server's
# resident memory before, at its peak, at the end and after the clients left; the normal users'
# round trips (p50, p99, max) and how many of their messages were lost; and every refusal and
# cut-off, by kind of client. Fails if, 30 s after the clients left, a connection is still open
# or a byte still counted as queued. docs/RELIABILITY.md ("Abuse and soak") has the figures of a run.
#
#   scripts/soak.sh                 # 10 minutes
#   scripts/soak.sh --minutes 2     # shorter
#   CHATD=/path/to/other/chatd scripts/soak.sh --minutes 3   # the same mix against another build
#
# It builds chatd and the soak in release mode, starts chatd on free loopback ports with its data
# in a temp dir, and removes everything afterwards. Linux only (it reads /proc/PID/status, and
# the clients bind 127.0.0.2 to 127.0.0.8).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/services.sh

minutes=10
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="${2:?--minutes needs a number}"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "usage: scripts/soak.sh [--minutes N]" >&2; exit 2 ;;
  esac
done

say "building chatd and the soak (release)"
cargo build --release --quiet --bin chatd --example soak
work="$(mktemp -d /tmp/chatd-soak.XXXXXX)"
pid=""
cleanup() {
  local rc=$?
  trap - EXIT
  trap "" INT TERM
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup INT TERM EXIT

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
tcp="$(free_port)"; http="$(free_port)"
CHATD_DATA_DIR="$work/data" "${CHATD:-target/release/chatd}" --tcp "127.0.0.1:$tcp" --http "127.0.0.1:$http" \
  >"$work/chatd.log" 2>&1 &
pid=$!
wait_port "$tcp" || { echo "$0: chatd did not start:" >&2; cat "$work/chatd.log" >&2; exit 1; }
say "chatd (pid $pid) on 127.0.0.1:$tcp and :$http; soaking for $minutes min"
target/release/examples/soak --tcp "127.0.0.1:$tcp" --http "127.0.0.1:$http" --pid "$pid" \
  --minutes "$minutes"
errors="$(grep -c ' ERROR ' "$work/chatd.log" || true)"
say "chatd logged $errors lines at error level"
