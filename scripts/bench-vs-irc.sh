#!/usr/bin/env bash
# The race: chatd against ngircd (a real IRC server), same machine, same run, same workloads,
# same load generator (examples/loadgen, `--protocol irc` for ngircd). Prints one table per
# workload and the chatd/ngircd ratios. See docs/BENCHMARKS.md for the figures and their reading.
#
# Workloads A, B and C run three servers: `chatd` (its line protocol), `chatd_irc` (chatd's IRC
# listener, driven by loadgen's IRC client: the very same client code as for ngircd, so that pair
# is apples to apples) and `ngircd`. SERVERS="chatd_irc ngircd" runs a subset.
#
#   scripts/bench-vs-irc.sh                 # everything, each run 3 times: ~45 min on 2 cores
#   scripts/bench-vs-irc.sh --quick         # short runs, once each (a smoke check, ~4 min)
#   WORKLOADS="A B" PLACEMENTS=pinned REPEAT=1 scripts/bench-vs-irc.sh
#   CHATD=/tmp/old/target/release/chatd SERVERS=chatd RESULTS=target/race-old scripts/bench-vs-irc.sh
#
# REPEAT (default 3): every run is made that many times, each against a fresh server; the tables
# show the median of each figure and the spread (lowest-highest) of the p99 and of the server's
# CPU per delivery, and a B step counts as complete when most of its repetitions were (a single
# run at saturation is a coin toss between "complete" and "cascade"). The CPU per delivery is
# the server's CPU-seconds (user + system, /proc/PID/stat) while sending and draining, per
# million deliveries counted in the same window: unlike the latencies, it does not depend on how
# the load generator shares the cores.
#
# Workloads (issue 6):
#   A        50 clients, 1 room, 1,000 msg/s for 20 s (the seed's load test)
#   B        1,000 clients, 1 room: the rate is raised step by step (from 500 msg/s, so that both
#            servers have complete steps to compare at); each server's figure is the highest step
#            it delivered completely, with no client cut off
#   C        10,000 clients, 2,000 per room over 5 rooms, 100 of them sending 1 msg/s each
#   cluster  workload A spread over 3 chatd instances (phase 3, Valkey pub/sub), with the shipped
#            write-ahead pipeline and with write-behind (chatd only: ngircd does not cluster here;
#            run once, not REPEAT times, as is W)
#   W        chatd only: 50,000 msg/s (200 clients in 100 rooms of 2, all sending) with
#            pipelines/phase1-postgres.toml (write-behind) against the same with `store = "none"`;
#            after a SIGTERM (which flushes the writer) the rows in PostgreSQL are counted
# Placements: `unpinned` (the kernel places both processes on the 2 cores) and `pinned` (server on
# core 0, loadgen on core 1, with taskset).
# Limits: every chatd run uses its pipeline WITHOUT the `rate_limit` layer and with the connection
# limits raised (a copy made by scripts/lib/unthrottled.awk), as ngircd runs with its flood
# control off: the race measures the servers, not the limits a person meets (10 lines a second
# and 64 connections per address in the shipped files; workload A's senders send 20 a second, and
# every loadgen client comes from 127.0.0.1).
#
# It installs ngircd from the distribution's packages when it is missing (Debian/Ubuntu, as root),
# builds chatd and loadgen in release mode, starts every server itself on free loopback ports in a
# temp dir, and removes everything afterwards. Results (one loadgen JSON per run) stay in
# $RESULTS (default target/bench-vs-irc/).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/services.sh

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,42p' "$0"; exit 0 ;;
    *) echo "usage: scripts/bench-vs-irc.sh [--quick]" >&2; exit 2 ;;
  esac
done
WORKLOADS="${WORKLOADS:-A B C cluster W}"
SERVERS="${SERVERS:-chatd chatd_irc ngircd}"
PLACEMENTS="${PLACEMENTS:-unpinned pinned}"
RESULTS="${RESULTS:-target/bench-vs-irc}"
if [ "$quick" = 1 ]; then
  dur_a=5; dur_b=4; dur_c=5; b_rates="${B_RATES:-500 1000 2000}"; REPEAT="${REPEAT:-1}"
else
  dur_a=20; dur_b=10; dur_c=20; b_rates="${B_RATES:-500 750 1000 1500 2000 3000 4000 5000 6000}"
fi
REPEAT="${REPEAT:-3}"

# --- tools -------------------------------------------------------------------------------------
. scripts/lib/ngircd.sh
ensure_ngircd || exit 1
command -v taskset >/dev/null || { echo "$0: taskset (util-linux) is missing" >&2; exit 1; }

say "building chatd and loadgen (release)"
cargo build --release --quiet --bin chatd --example loadgen
# CHATD=PATH races another build of chatd (an earlier commit's, say) with the same loadgen.
CHATD="${CHATD:-target/release/chatd}"
LOADGEN=target/release/examples/loadgen

# 10,000 clients need 10,000 descriptors in loadgen and as many in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10300 ]; then
  echo "$0: the open-file limit is $(ulimit -n); workload C needs ~10,300 (raise the hard limit: ulimit -Hn, /etc/security/limits.conf, or LimitNOFILE)" >&2
  WORKLOADS="${WORKLOADS//C/}"
fi

work="$(mktemp -d /tmp/chatd-race.XXXXXX)"
mkdir -p "$RESULTS"
# The shipped pipelines without their rate limit (see the header), in $work/pipelines/.
mkdir -p "$work/pipelines"
for file in pipelines/*.toml; do
  awk -f scripts/lib/unthrottled.awk "$file" >"$work/pipelines/$(basename "$file")"
  if grep -q '^kind = "rate_limit"' "$work/pipelines/$(basename "$file")"; then
    echo "$0: could not remove the rate_limit layer from $file" >&2; exit 1
  fi
done
server_pids=()
cleanup() {
  local rc=$?
  trap - EXIT
  trap "" INT TERM # a second Ctrl-C or TERM must not cut the clean-up short (stray servers)
  for pid in "${server_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop_services
  rm -rf "$work"
  exit "$rc"
}
trap cleanup INT TERM EXIT

# --- servers -----------------------------------------------------------------------------------
pin_server() { [ "$1" = pinned ] && echo "taskset -c 0" || true; }
pin_loadgen() { [ "$1" = pinned ] && echo "taskset -c 1" || true; }

# start_chatd PLACEMENT [PIPELINE] -> sets $addr (line protocol), $irc_addr and $pid
start_chatd() {
  local port http irc pipeline="${2:-$work/pipelines/phase1-single.toml}"
  port="$(free_port)"; http="$(free_port)"; irc="$(free_port)"
  rm -rf "$work/chatd-data"
  CHATD_DATA_DIR="$work/chatd-data" $(pin_server "$1") "$CHATD" --pipeline "$pipeline" \
    --tcp "127.0.0.1:$port" --http "127.0.0.1:$http" --irc "127.0.0.1:$irc" >"$work/chatd.log" 2>&1 &
  pid=$!; server_pids+=("$pid"); addr="127.0.0.1:$port"; irc_addr="127.0.0.1:$irc"
  wait_port "$port" || { echo "$0: chatd did not start:" >&2; cat "$work/chatd.log" >&2; exit 1; }
}

# ngircd with every flood limit off that it lets us turn off (see docs/BENCHMARKS.md).
start_ngircd() {
  local port
  port="$(free_port)"
  cat >"$work/ngircd.conf" <<CONF
[Global]
Name = race.chatd.test
Info = chatd race
Listen = 127.0.0.1
Ports = $port
ServerUID = $(id -u)
ServerGID = $(id -g)
PidFile = $work/ngircd.pid
MotdPhrase = race
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 16
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600
[Options]
DNS = no
Ident = no
PAM = no
OperCanUseMode = no
CONF
  $(pin_server "$1") "$NGIRCD" --nodaemon --config "$work/ngircd.conf" >"$work/ngircd.log" 2>&1 &
  pid=$!; server_pids+=("$pid"); addr="127.0.0.1:$port"
  wait_port "$port" || { echo "$0: ngircd did not start:" >&2; cat "$work/ngircd.log" >&2; exit 1; }
}

# A count from the throwaway PostgreSQL (or DATABASE_URL's), via psql.
psql_count() {
  local psql
  psql="$(command -v psql 2>/dev/null || echo "$(dirname "${pg_ctl:-/nonexistent}")/psql")"
  "$psql" -At "$DATABASE_URL" -c "$1" 2>/dev/null || echo "?"
}

stop_server() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Busy CPU-seconds of the whole machine so far (all cores), from /proc/stat.
machine_busy() { awk '/^cpu /{ printf "%.2f\n", ($2+$3+$4+$7+$8) / 100 }' /proc/stat; }

# run NAME PLACEMENT PROTOCOL SERVER-PIDS ADDRS -- LOADGEN-ARGS...
# Writes $RESULTS/NAME.json (loadgen's report plus the machine's busy CPU-seconds during the run).
run() {
  local name="$1" placement="$2" protocol="$3" pids="$4" addrs="$5"; shift 6
  local args=(--protocol "$protocol" --json) before after
  for p in $pids; do args+=(--pid "$p"); done
  for a in $addrs; do args+=(--tcp "$a"); done
  before="$(machine_busy)"
  $(pin_loadgen "$placement") "$LOADGEN" "${args[@]}" "$@" >"$work/out.json" 2>"$work/loadgen.err" || {
    echo "$0: loadgen failed for $name:" >&2; cat "$work/loadgen.err" >&2; return 1; }
  after="$(machine_busy)"
  python3 - "$work/out.json" "$RESULTS/$name.json" "$before" "$after" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
report["machine_busy_cpu_s"] = round(float(sys.argv[4]) - float(sys.argv[3]), 2)
json.dump(report, open(sys.argv[2], "w"), indent=1)
PY
  printf '    %-34s %s\n' "$name" "$(python3 scripts/lib/race_report.py line "$RESULTS/$name.json")"
}

# one SERVER PLACEMENT NAME -- LOADGEN-ARGS: REPEAT runs (NAME~r1 ..), each against a fresh
# server. SERVER is chatd (line protocol), chatd_irc (chatd's IRC listener, loadgen's IRC
# client) or ngircd (the same client).
one() {
  local server="$1" placement="$2" name="$3" k; shift 4
  for k in $(seq "$REPEAT"); do
    case "$server" in
      chatd) start_chatd "$placement"; proto=chatd ;;
      chatd_irc) start_chatd "$placement"; proto=irc; addr="$irc_addr" ;;
      *) start_ngircd "$placement"; proto=irc ;;
    esac
    run "$name~r$k" "$placement" "$proto" "$pid" "$addr" -- "$@" || true
    stop_server "$pid"
  done
}

rm -f "$RESULTS"/*.json
say "results in $RESULTS; machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
for placement in $PLACEMENTS; do
  for workload in $WORKLOADS; do
    case "$workload" in
      A)
        say "workload A ($placement): 50 clients, 1 room, 1,000 msg/s for $dur_a s"
        for server in $SERVERS; do
          one "$server" "$placement" "A-$placement-$server" -- \
            --clients 50 --senders 50 --rate 1000 --duration "$dur_a"
        done ;;
      B)
        say "workload B ($placement): 1,000 clients, 1 room, 20 senders; rates $b_rates msg/s, $dur_b s each"
        for server in $SERVERS; do
          for rate in $b_rates; do
            # B measures fan-out, not registration: the ramp may take up to a minute, so that a
            # server slow to register 1,000 clients (ngircd, unpinned) is not failed by its ramp.
            one "$server" "$placement" "B-$placement-$server-$rate" -- \
              --clients 1000 --senders 20 --rate "$rate" --duration "$dur_b" --ramp-per-sec 1000 \
              --ramp-timeout 60
            # Stop raising the rate at the first step that most repetitions did not deliver
            # completely.
            python3 scripts/lib/race_report.py clean-step "$RESULTS/B-$placement-$server-$rate" || break
          done
        done ;;
      C)
        say "workload C ($placement): 10,000 clients in 5 rooms, 100 senders at 1 msg/s each, $dur_c s"
        for server in $SERVERS; do
          one "$server" "$placement" "C-$placement-$server" -- \
            --clients 10000 --rooms 5 --senders 100 --rate 100 --duration "$dur_c" \
            --ramp-per-sec 1000 --drain 2
        done ;;
      cluster)
        [ "$placement" = unpinned ] || continue # five processes on two cores: pinning means nothing
        say "cluster: workload A over 3 chatd instances (phase 3, Valkey), $dur_a s"
        [ -n "${DATABASE_URL:-}" ] || start_postgres
        [ -n "${VALKEY_URL:-}" ] || start_valkey
        sed 's/^durability = "sync".*/durability = "async"/' "$work/pipelines/phase3-valkey.toml" >"$work/phase3-behind.toml"
        for variant in sync async; do
          pipeline="$work/pipelines/phase3-valkey.toml"
          [ "$variant" = async ] && pipeline="$work/phase3-behind.toml"
          pids=""; addrs=""; started=()
          for name in a b c; do
            port="$(free_port)"; http="$(free_port)"
            CHATD_DATA_DIR="$work/$name" "$CHATD" --pipeline "$pipeline" --instance "$name-$variant" \
              --tcp "127.0.0.1:$port" --http "127.0.0.1:$http" --irc "127.0.0.1:$(free_port)" \
              >"$work/$name.log" 2>&1 &
            started+=($!); server_pids+=($!); pids="$pids $!"; addrs="$addrs 127.0.0.1:$port"
            wait_port "$port" || { echo "$0: instance $name did not start:" >&2; cat "$work/$name.log" >&2; exit 1; }
          done
          run "cluster-valkey-$variant" unpinned chatd "$pids" "$addrs" -- \
            --clients 50 --senders 50 --rate 1000 --duration "$dur_a" || true
          for p in "${started[@]}"; do stop_server "$p"; done
        done ;;
      W)
        [ "$placement" = unpinned ] || continue
        say "W: write-behind into PostgreSQL at 50,000 msg/s against no store, $dur_a s"
        [ -n "${DATABASE_URL:-}" ] || start_postgres
        sed -e 's/^store = .*/store = "none"/' -e '/^url = /d' -e '/^pool_size = /d' \
          -e '/^durability = /d' -e '/^queue = /d' -e '/^batch = /d' \
          "$work/pipelines/phase1-postgres.toml" >"$work/phase1-none.toml"
        for variant in none postgres; do
          pipeline="$work/pipelines/phase1-postgres.toml"
          [ "$variant" = none ] && pipeline="$work/phase1-none.toml"
          rows_before="$(psql_count 'SELECT count(*) FROM messages')" # the cluster runs wrote some
          start_chatd unpinned "$pipeline"
          run "W-$variant" unpinned chatd "$pid" "$addr" -- \
            --clients 200 --rooms 100 --senders 200 --rate 50000 --duration "$dur_a" || true
          stop_server "$pid"
          if [ "$variant" = postgres ]; then
            rows="$(psql_count 'SELECT count(*) FROM messages')"
            python3 - "$RESULTS/W-postgres.json" "$rows" "$rows_before" <<'PY'
import json, sys
path, rows, before = sys.argv[1], sys.argv[2], sys.argv[3]
report = json.load(open(path))
if rows.isdigit() and not before.isdigit():
    before = "0"  # the table did not exist yet: this chatd created it
rows = str(int(rows) - int(before)) if rows.isdigit() else rows
report["rows_in_postgres"] = int(rows) if rows.isdigit() else None
json.dump(report, open(path, "w"), indent=1)
print(f"    rows in PostgreSQL after SIGTERM: {rows} of {report['sent']} sent")
PY
          fi
        done ;;
      "") ;;
      *) echo "$0: unknown workload $workload (A B C cluster W)" >&2; exit 2 ;;
    esac
  done
done

say "summary"
python3 scripts/lib/race_report.py summary "$RESULTS"
