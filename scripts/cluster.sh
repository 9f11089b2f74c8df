#!/usr/bin/env bash
# Three chatd instances on this machine, sharing rooms: the seed's multi-instance lesson without
# Docker (compose.yaml does the same with containers).
#
#   scripts/cluster.sh            # phase 3: Valkey pub/sub (pipelines/phase3-valkey.toml)
#   scripts/cluster.sh phase2     # phase 2: database polling (pipelines/phase2-poll.toml)
#
# Instances a, b, c listen on 9001/3001/6667, 9002/3002/6668 and 9003/3003/6669 (line protocol,
# HTTP, IRC). They use DATABASE_URL and VALKEY_URL when set; otherwise this script starts
# throwaway PostgreSQL and Valkey servers of its own (in a temp dir, on free loopback ports) and
# removes them again. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

phase="${1:-phase3}"
case "$phase" in
  phase3) pipeline=pipelines/phase3-valkey.toml ;;
  phase2) pipeline=pipelines/phase2-poll.toml ;;
  *) echo "usage: scripts/cluster.sh [phase2|phase3]" >&2; exit 2 ;;
esac
[ -f "$pipeline" ] || { echo "scripts/cluster.sh: $pipeline is missing" >&2; exit 1; }

. scripts/lib/services.sh

work="$(mktemp -d /tmp/chatd-cluster.XXXXXX)"
pids=()

cleanup() {
  local rc=$?
  trap - EXIT
  trap "" INT TERM # a second Ctrl-C or TERM must not cut the clean-up short (stray servers)
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop_services
  rm -rf "$work"
  exit "$rc"
}
trap cleanup INT TERM EXIT

say "building chatd (cargo build --release)"
cargo build --release --quiet --bin chatd

[ -n "${DATABASE_URL:-}" ] || start_postgres
if [ "$phase" = phase3 ] && [ -z "${VALKEY_URL:-}" ]; then start_valkey; fi

for n in 1 2 3; do
  name="$(printf '%s' abc | cut -c"$n")"
  irc=$((6666 + n))
  say "starting instance $name: nc localhost 900$n, http://localhost:300$n, IRC localhost:$irc"
  CHATD_DATA_DIR="$work/$name" target/release/chatd --pipeline "$pipeline" --instance "$name" \
    --tcp "127.0.0.1:900$n" --http "127.0.0.1:300$n" --irc "127.0.0.1:$irc" >"$work/$name.log" 2>&1 &
  pids+=($!)
done

say "three instances up ($phase). Logs: $work/*.log. Ctrl-C stops them all."
wait -n "${pids[@]}" || true
say "a process exited; the last lines of each log:"
tail -n 20 "$work"/*.log || true
exit 1
