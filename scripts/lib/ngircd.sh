# Shared by scripts/bench-vs-irc.sh and scripts/test-irc.sh (sourced, not run): finds ngircd, and
# installs it from the distribution's packages when it is missing (Debian/Ubuntu, as root),
# without letting the package start its own daemon on the standard port.

ngircd_bin() { command -v ngircd 2>/dev/null || { [ -x /usr/sbin/ngircd ] && echo /usr/sbin/ngircd; } || true; }

# Sets NGIRCD to the binary, installing the package first if needed; fails when it cannot.
ensure_ngircd() {
  if [ -z "$(ngircd_bin)" ]; then
    printf '==> %s\n' "installing ngircd (apt-get)"
    [ "$(id -u)" = 0 ] || { echo "$0: ngircd is missing; install it (apt-get install ngircd) or run as root" >&2; return 1; }
    # Keep the package's own service from starting on the standard port.
    local policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; policy_added=1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ngircd >/dev/null
    [ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d
    command -v systemctl >/dev/null 2>&1 && systemctl stop ngircd >/dev/null 2>&1 || true
  fi
  NGIRCD="$(ngircd_bin)"
  [ -x "$NGIRCD" ] || { echo "$0: ngircd did not install" >&2; return 1; }
}
