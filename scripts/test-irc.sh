#!/usr/bin/env bash
# irctest, the IRC conformance suite, against chatd's IRC listener and against ngircd, in one run,
# with both counts printed side by side: `scripts/test-irc.sh` (about 12 minutes on 2 cores,
# release build included).
#
# irctest (MIT) is expected, unmodified, in ../shared/irctest (IRCTEST_DIR overrides). This
# script installs its Python dependencies from PyPI into a venv (target/irctest-venv, plus
# pytest-xdist to run tests in parallel), builds chatd in release mode, installs ngircd when it is
# missing (scripts/lib/ngircd.sh), and runs:
#
#   main         irctest/server_tests with -m 'not Ergo and not deprecated and not strict and not
#                services', against chatd (our controller, scripts/irctest/chatd_controller.py,
#                on PYTHONPATH) and ngircd (irctest's own controller);
#   rfc          the RFC 1459/2812 tests of that selection, counted from the same runs;
#   chathistory  irctest's chathistory tests (marked `services`, so selected with -k), without
#                the private_chathistory ones (direct messages), against chatd.
#
# Results (JUnit XML per run, the lists of tests) stay in $RESULTS (default target/irctest/).
# It exits non-zero if a chathistory test fails or chatd passes fewer of the main selection than
# MIN_MAIN_PASSED (the count docs/IRC.md reports, so that a regression shows).
#   JOBS=4             pytest-xdist workers
#   SERVERS="chatd"    skip ngircd
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

IRCTEST_DIR="${IRCTEST_DIR:-$root/../shared/irctest}"
RESULTS="${RESULTS:-$root/target/irctest}"
VENV="${VENV:-$root/target/irctest-venv}"
JOBS="${JOBS:-4}"
SERVERS="${SERVERS:-chatd ngircd}"
MIN_MAIN_PASSED="${MIN_MAIN_PASSED:-248}"
MAIN_MARKS='not Ergo and not deprecated and not strict and not services'

say() { printf '\n==> %s\n' "$*"; }

[ -f "$IRCTEST_DIR/conftest.py" ] || {
  echo "$0: irctest is not in $IRCTEST_DIR (set IRCTEST_DIR to a checkout of https://github.com/progval/irctest)" >&2
  exit 1
}
IRCTEST_DIR="$(cd "$IRCTEST_DIR" && pwd)"

if [ ! -x "$VENV/bin/python" ]; then
  say "installing irctest's Python dependencies (pip, into $VENV)"
  python3 -m venv "$VENV" || {
    echo "$0: python3 -m venv failed; install python3-venv (apt-get install python3-venv)" >&2
    exit 1
  }
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r "$IRCTEST_DIR/requirements.txt" pytest-xdist

if [[ " $SERVERS " == *" ngircd "* ]]; then
  . scripts/lib/ngircd.sh
  ensure_ngircd
  PATH="$PATH:$(dirname "$NGIRCD")"
fi

say "building chatd (cargo build --release --bin chatd)"
cargo build --release --quiet --bin chatd
export CHATD_BIN="$root/target/release/chatd"

rm -rf "$RESULTS"
mkdir -p "$RESULTS"
# The output of every chatd that exited before irctest stopped it (see chatd_controller.py).
export CHATD_IRCTEST_STOPPED="$RESULTS/stopped"
started=$(date +%s)

# pytest in irctest's directory (its conftest.py and pytest.ini), writing nothing there: no cache
# directory, no bytecode.
irctest() {
  (cd "$IRCTEST_DIR" && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$root/scripts/irctest" \
    "$VENV/bin/python" -m pytest -p no:cacheprovider -q "$@")
}
controller() {
  case "$1" in
    chatd) echo chatd_controller ;;
    ngircd) echo irctest.controllers.ngircd ;;
  esac
}

say "collecting the RFC 1459/2812 subset"
irctest --controller irctest.controllers.external_server --collect-only irctest/server_tests \
  -m "(RFC1459 or RFC2812) and $MAIN_MARKS" >"$RESULTS/rfc-tests.txt" 2>/dev/null || true

# irctest's ngircd controller leaves a few servers running (tests whose teardown never runs);
# they are stopped at the end, by pid: the ngircd processes that were not there before.
ngircd_before=" $( (pgrep -x ngircd || true) | tr '\n' ' ') "
stop_leaked_ngircd() {
  local pid
  for pid in $(pgrep -x ngircd || true); do
    [[ "$ngircd_before" == *" $pid "* ]] || kill "$pid" 2>/dev/null || true
  done
}
trap stop_leaked_ngircd EXIT

for server in $SERVERS; do
  say "irctest main selection against $server (-n $JOBS)"
  irctest --controller "$(controller "$server")" irctest/server_tests -m "$MAIN_MARKS" \
    -n "$JOBS" --junitxml="$RESULTS/main-$server.xml" >"$RESULTS/main-$server.log" 2>&1 || true
  tail -n 1 "$RESULTS/main-$server.log"
done

say "irctest chathistory tests against chatd"
irctest --controller chatd_controller irctest/server_tests/chathistory.py \
  -k ChathistoryTestCase -m 'not private_chathistory and not Sable' \
  -n "$JOBS" --junitxml="$RESULTS/chathistory-chatd.xml" >"$RESULTS/chathistory-chatd.log" 2>&1 || true
tail -n 1 "$RESULTS/chathistory-chatd.log"

cat >"$RESULTS/selections.json" <<JSON
{"servers": [$(printf '"%s",' $SERVERS | sed 's/,$//')],
 "rows": [
  {"name": "main: server_tests, -m '$MAIN_MARKS'", "run": "main"},
  {"name": "rfc: the RFC 1459/2812 tests of main", "run": "main", "only": "rfc-tests.txt"},
  {"name": "chathistory: -k ChathistoryTestCase, not private_chathistory", "run": "chathistory"}
 ]}
JSON

say "irctest results, chatd and ngircd side by side ($(( $(date +%s) - started )) s)"
python3 scripts/irctest/summary.py table "$RESULTS"
for server in $SERVERS; do
  for status in failed skipped; do
    python3 scripts/irctest/summary.py tests "$RESULTS/main-$server.xml" "$status" \
      >"$RESULTS/main-$server-$status.txt"
  done
done
echo
echo "Per-test lists: $RESULTS/main-<server>-{failed,skipped}.txt"

status=0
if [ -d "$CHATD_IRCTEST_STOPPED" ]; then
  echo "$0: chatd exited on its own during $(ls "$CHATD_IRCTEST_STOPPED" | wc -l) test(s); its output:" >&2
  cat "$CHATD_IRCTEST_STOPPED"/* >&2
fi
chathistory_failed="$(python3 scripts/irctest/summary.py tests "$RESULTS/chathistory-chatd.xml" failed)"
if [ -n "$chathistory_failed" ]; then
  echo "$0: chathistory tests failed:" >&2
  echo "$chathistory_failed" >&2
  status=1
fi
passed="$(python3 scripts/irctest/summary.py passed "$RESULTS/main-chatd.xml")"
if [ "$passed" -lt "$MIN_MAIN_PASSED" ]; then
  echo "$0: chatd passed $passed tests of the main selection, fewer than the $MIN_MAIN_PASSED it passed before" >&2
  status=1
fi
exit "$status"
