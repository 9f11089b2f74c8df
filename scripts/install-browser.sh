#!/usr/bin/env bash
# Installs the headless browser that the real-browser end-to-end test (`tests/it/browser/`) drives:
# Debian's `chromium` and `chromium-driver` packages, which put `/usr/bin/chromium` and
# `/usr/bin/chromedriver` in place. `scripts/test.sh` runs this first; it does nothing when both
# are already there.
#
# Only Debian and Ubuntu are installed automatically (apt-get, as root or through sudo); anywhere
# else it says what to install and exits 1, and the browser test fails with the same advice rather
# than being skipped.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

if [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]; then
  exit 0
fi

if command -v apt-get >/dev/null 2>&1; then
  sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "scripts/install-browser.sh: run as root (or install sudo) to apt-get install chromium chromium-driver" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  echo "scripts/install-browser.sh: installing chromium and chromium-driver (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends chromium chromium-driver
  if [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]; then
    exit 0
  fi
  echo "scripts/install-browser.sh: apt-get finished but $CHROMIUM or $CHROMEDRIVER is still missing" >&2
  exit 1
fi

cat >&2 <<MSG
scripts/install-browser.sh: cannot install a browser automatically on this system (no apt-get).
The browser test needs Chromium and its matching ChromeDriver at:
  $CHROMIUM        (Debian/Ubuntu package: chromium)
  $CHROMEDRIVER    (Debian/Ubuntu package: chromium-driver)
Install them with your package manager, then run scripts/test.sh again.
MSG
exit 1
