# Prints a pipeline file without its `[[layer]]` table of kind "rate_limit" (the table and the
# lines up to the next table go; everything else is kept as written):
#
#     awk -f scripts/lib/unthrottled.awk pipelines/phase1-single.toml >/tmp/unthrottled.toml
#
# For load tests and races, which measure the server, not the per-session limit a person meets.
function flush() {
  if (!drop) printf "%s", block
  block = ""; drop = 0
}
/^[ \t]*\[/ { flush() }
{ block = block $0 "\n" }
/^[ \t]*kind[ \t]*=[ \t]*"rate_limit"/ { drop = 1 }
END { flush() }
