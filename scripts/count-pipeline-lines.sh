#!/usr/bin/env bash
# Counts the lines of code that describe, read, check and build a pipeline file: every file under
# src/pipeline/ and every `config.rs` under src/ (the config types each layer owns), without
# blank lines, comment lines (`//`, `///`, `//!`) and tests (a `#[cfg(test)]` module runs to the
# end of its file in this codebase; `*_tests.rs` and `tests.rs` files are left out).
#
#   scripts/count-pipeline-lines.sh          # per file, then the total
#   scripts/count-pipeline-lines.sh --total  # the total only
set -euo pipefail
cd "$(dirname "$0")/.."

files=$( { find src/pipeline -name '*.rs'; find src -name config.rs -not -path 'src/pipeline/*'; } \
  | grep -v -e '_tests\.rs$' -e '/tests\.rs$' | sort)

count() {
  awk '/^[[:space:]]*#\[cfg\(test\)\]/ { exit }
       /^[[:space:]]*$/ { next }
       /^[[:space:]]*\/\// { next }
       { n++ }
       END { print n + 0 }' "$1"
}

total=0
for file in $files; do
  n=$(count "$file")
  total=$((total + n))
  [ "${1:-}" = "--total" ] || printf '%6d  %s\n' "$n" "$file"
done
[ "${1:-}" = "--total" ] && echo "$total" || printf '%6d  total\n' "$total"
