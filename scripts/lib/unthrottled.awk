# Prints a pipeline file ready for a load test from one machine: without its `[[layer]]` table of
# kind "rate_limit" (the table and the lines up to the next table go), and with the per-address and
# total connection limits of `[server]` raised (every load-generator client comes from 127.0.0.1,
# and the defaults allow 64 per address). Everything else is kept as written:
#
#     awk -f scripts/lib/unthrottled.awk pipelines/phase1-single.toml >/tmp/unthrottled.toml
#
# For load tests and races, which measure the server, not the limits a person meets.
function flush() {
  if (!drop) printf "%s", block
  block = ""; drop = 0
}
/^[ \t]*\[/ { flush() }
/^[ \t]*max_connections(_per_ip)?[ \t]*=/ { next }
{ block = block $0 "\n" }
/^[ \t]*\[server\][ \t]*$/ { block = block "max_connections_per_ip = 1000000\nmax_connections = 1000000\n" }
/^[ \t]*kind[ \t]*=[ \t]*"rate_limit"/ { drop = 1 }
END { flush() }
