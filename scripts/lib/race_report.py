"""Reads the loadgen JSON files of scripts/bench-vs-irc.sh and prints its lines and tables.

    race_report.py line FILE          one run on one line
    race_report.py clean FILE         exit 0 if the run delivered everything and cut nobody off
    race_report.py clean-step PREFIX  exit 0 if most repetitions PREFIX~r*.json were clean
    race_report.py summary DIR        the tables (Markdown) and the chatd/ngircd ratios

A run repeated N times is stored as NAME~r1.json .. NAME~rN.json; the tables show, for each
NAME, the median of the repetitions (each figure on its own: the median p99, the median CPU)
and the spread (lowest-highest) of the p99 and of the CPU per delivery. A step counts as
complete when most of its repetitions were.
"""

import glob
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def clean(r):
    return (
        r["joined"] == r["tcp_clients"] + r["sse_clients"]
        and r["deliveries"] >= r["expected_deliveries"] > 0
        and r["disconnects"] == 0
        and r["errors"] == 0
    )


def clean_step(prefix):
    reps = [load(p) for p in glob.glob(glob.escape(prefix) + "~r*.json")]
    return bool(reps) and 2 * sum(clean(r) for r in reps) > len(reps)


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def combine(reps):
    """One run standing for its repetitions: every figure the median of its own, plus spreads."""
    if len(reps) == 1:
        r = dict(reps[0])
        r["_reps"] = [reps[0]]
        return r
    r = json.loads(json.dumps(reps[len(reps) // 2]))
    for q in r["latency_us"]:
        r["latency_us"][q] = median(x["latency_us"][q] for x in reps)
    for key in ["deliveries_per_s", "sent_per_s", "deliveries", "joined", "disconnects"]:
        r[key] = median(x[key] for x in reps)
    for i, srv in enumerate(r.get("servers", [])):
        for key in ["cpu_percent", "cpu_s_per_million", "before_kib", "connected_kib", "per_connection_bytes",
                    "per_connection_after_bytes"]:
            srv[key] = median(x["servers"][i].get(key) for x in reps)
    r["_reps"] = reps
    return r


def spread(r, get):
    values = [v for v in (get(x) for x in r.get("_reps", [r])) if v is not None]
    if not values:
        return "?"
    lo, hi = min(values), max(values)
    fmt = (lambda v: f"{v:.2f}") if isinstance(lo, float) else str
    return fmt(lo) if lo == hi else f"{fmt(lo)}-{fmt(hi)}"


def cpu_per_million(r):
    v = server(r, "cpu_s_per_million")
    if isinstance(v, list):
        return None if None in v else sum(v)
    return v


def clean_runs(r):
    reps = r.get("_reps", [r])
    return f"{sum(clean(x) for x in reps)}/{len(reps)}"


def server(r, key):
    values = [s.get(key) for s in r.get("servers", [])]
    return values[0] if len(values) == 1 else values


def kib(v):
    return "?" if v is None else f"{v / 1024:.1f} MiB"


def line(r):
    lat = r["latency_us"]
    return (
        f"p50 {lat['p50']} µs  p99 {lat['p99']} µs  max {lat['max']} µs  "
        f"delivered {r['deliveries']}/{r['expected_deliveries']} ({r['deliveries_per_s']:.0f}/s)  "
        f"disconnects {r['disconnects']}  server cpu {fmt_pct(server(r, 'cpu_percent'))} "
        f"({fmt_num(cpu_per_million(r))} cpu-s per M deliveries)  "
        f"machine busy {r.get('machine_busy_cpu_s', '?')} cpu-s"
    )


def fmt_num(v):
    return "?" if v is None else f"{v:.2f}"


def fmt_pct(v):
    if isinstance(v, list):
        return "+".join(fmt_pct(x) for x in v)
    return "?" if v is None else f"{v:.0f}%"


def ratio(a, b):
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}x"


def runs(directory, prefix):
    """NAME -> one run (the median of NAME's repetitions, see `combine`)."""
    reps = {}
    for path in sorted(glob.glob(os.path.join(directory, prefix + "*.json"))):
        name = os.path.basename(path)[: -len(".json")].split("~r")[0]
        reps.setdefault(name, []).append(load(path))
    return {name: combine(rs) for name, rs in reps.items()}


def is_clean(r):
    """A run, or most of the repetitions it stands for, delivered everything."""
    reps = r.get("_reps", [r])
    return 2 * sum(clean(x) for x in reps) > len(reps)


# The columns the tables draw from one run: (header, right-aligned, value).
COLUMNS = {
    "p50": ("p50 µs", True, lambda r: r["latency_us"]["p50"]),
    "p90": ("p90 µs", True, lambda r: r["latency_us"]["p90"]),
    "p99": ("p99 µs", True, lambda r: r["latency_us"]["p99"]),
    "max": ("max µs", True, lambda r: r["latency_us"]["max"]),
    "delivered": ("delivered", False, lambda r: f"{r['deliveries']}/{r['expected_deliveries']}"),
    "deliveries/s": ("deliveries/s", True, lambda r: f"{r['deliveries_per_s']:.0f}"),
    "sent/s": ("sent/s", True, lambda r: f"{r['sent_per_s']:.0f}"),
    "disconnects": ("disconnects", True, lambda r: r["disconnects"]),
    "joined": ("joined", True, lambda r: r["joined"]),
    "cpu": ("server CPU", True, lambda r: fmt_pct(server(r, "cpu_percent"))),
    "cpu/M": ("server CPU-s per M deliveries", True, lambda r: fmt_num(cpu_per_million(r))),
    "cpu/M spread": ("(spread)", True, lambda r: spread(r, cpu_per_million)),
    "p99 spread": ("p99 spread µs", True, lambda r: spread(r, lambda x: x["latency_us"]["p99"])),
    "clean": ("complete runs", True, clean_runs),
    "cpu of each": ("CPU of a, b, c", False, lambda r: fmt_pct(server(r, "cpu_percent"))),
    "rss before": ("RSS before", True, lambda r: kib(server(r, "before_kib"))),
    "rss": ("RSS connected", True, lambda r: kib(server(r, "connected_kib"))),
    "per connection": ("bytes per connection", True, lambda r: server(r, "per_connection_bytes")),
    "per connection after": ("bytes per connection at the end", True,
                             lambda r: server(r, "per_connection_after_bytes")),
    "rows": ("rows in PostgreSQL", True, lambda r: f"{r.get('rows_in_postgres', '-')} of {r['sent']}"),
}


def table(title, labels, columns, rows):
    """Prints a Markdown table: `labels` name the leading columns, `rows` are (label values, run)."""
    specs = [COLUMNS[c] for c in columns]
    print(f"\n### {title}\n")
    print("| " + " | ".join(list(labels) + [h for h, _, _ in specs]) + " |")
    print("|" + "---|" * len(labels) + "".join("---:|" if right else "---|" for _, right, _ in specs))
    for names, r in rows:
        print("| " + " | ".join([str(n) for n in names] + [str(get(r)) for _, _, get in specs]) + " |")


def pairs(group, placements, key, chatd="chatd"):
    """(placement, chatd run, ngircd run) for each placement both servers ran in; `chatd` is
    which chatd: "chatd" (its line protocol) or "chatd_irc" (its IRC listener)."""
    for p in placements:
        c, n = group.get(key(p, chatd)), group.get(key(p, "ngircd"))
        if c and n:
            yield p, c, n


def summary(directory):
    placements = ["unpinned", "pinned"]
    servers = ["chatd", "chatd_irc", "ngircd"]
    every = runs(directory, "")
    if not every:
        print("no results")
        return
    group = lambda prefix: {k: v for k, v in every.items() if k.startswith(prefix)}
    each = lambda runs, key: [((p, s), runs[key(p, s)]) for p in placements for s in servers if key(p, s) in runs]

    a = group("A-")
    if a:
        key = lambda p, s: f"A-{p}-{s}"
        table("A: 50 clients, 1 room, 1,000 msg/s (49,000 deliveries/s)", ["placement", "server"],
              ["p50", "p90", "p99", "p99 spread", "max", "delivered", "cpu", "cpu/M", "cpu/M spread", "rss"], each(a, key))
        for which in ["chatd", "chatd_irc"]:
            for p, c, n in pairs(a, placements, key, which):
                print(
                    f"\nA {p}: p99 ngircd/{which} = {ratio(n['latency_us']['p99'], c['latency_us']['p99'])}, "
                    f"p50 ngircd/{which} = {ratio(n['latency_us']['p50'], c['latency_us']['p50'])}"
                )

    b = group("B-")
    if b:
        steps = {}
        for k, r in b.items():
            _, p, s, rate = k.split("-")
            steps.setdefault((p, s), []).append((int(rate), r))
        rows = [((p, s, rate), r) for p in placements for s in servers for rate, r in sorted(steps.get((p, s), []), key=lambda t: t[0])]
        table("B: 1,000 clients, 1 room, 20 senders, rate raised until a step is not delivered completely",
              ["placement", "server", "msg/s"], ["deliveries/s", "clean", "disconnects", "p50", "p99", "p99 spread", "cpu", "cpu/M", "cpu/M spread"], rows)
        best = {ps: max(((rate, r) for rate, r in runs_ if is_clean(r)), default=None, key=lambda t: t[0])
                for ps, runs_ in steps.items()}
        describe = lambda t: "nothing clean" if not t else (
            f"{t[1]['deliveries_per_s']:.0f} deliveries/s at {t[0]} msg/s, p99 {t[1]['latency_us']['p99']} µs"
        )
        for p in placements:
            for which in ["chatd", "chatd_irc"]:
                c, n = best.get((p, which)), best.get((p, "ngircd"))
                if not (c or n):
                    continue
                print(f"\nB {p}: highest complete step: {which} {describe(c)}; ngircd {describe(n)}")
                if c and n:
                    print(f"B {p}: deliveries/s {which}/ngircd = {ratio(c[1]['deliveries_per_s'], n[1]['deliveries_per_s'])}")
                    common = min(c[0], n[0])
                    cc, nn = b.get(f"B-{p}-{which}-{common}"), b.get(f"B-{p}-ngircd-{common}")
                    for rate in sorted(r for r, _ in steps.get((p, which), []) if r <= common):
                        cc, nn = b.get(f"B-{p}-{which}-{rate}"), b.get(f"B-{p}-ngircd-{rate}")
                        if cc and nn and is_clean(cc) and is_clean(nn):
                            print(
                                f"B {p}: at {rate} msg/s (both complete) p99 {which} {cc['latency_us']['p99']} µs, "
                                f"ngircd {nn['latency_us']['p99']} µs: ngircd/{which} = "
                                f"{ratio(nn['latency_us']['p99'], cc['latency_us']['p99'])}; CPU-s per M deliveries "
                                f"{which} {fmt_num(cpu_per_million(cc))}, ngircd {fmt_num(cpu_per_million(nn))}: "
                                f"{which}/ngircd = {ratio(cpu_per_million(cc), cpu_per_million(nn))}"
                            )

    c_runs = group("C-")
    if c_runs:
        key = lambda p, s: f"C-{p}-{s}"
        table("C: 10,000 clients in 5 rooms of 2,000, 100 senders at 1 msg/s each", ["placement", "server"],
              ["joined", "rss before", "rss", "per connection", "per connection after", "p50", "p99", "p99 spread", "delivered", "disconnects", "cpu/M"],
              each(c_runs, key))
        for which in ["chatd", "chatd_irc"]:
            for p, c, n in pairs(c_runs, placements, key, which):
                print(
                    f"\nC {p}: memory per connection {which}/ngircd = "
                    f"{ratio(server(c, 'per_connection_bytes'), server(n, 'per_connection_bytes'))} "
                    f"(at the end: {ratio(server(c, 'per_connection_after_bytes'), server(n, 'per_connection_after_bytes'))}); "
                    f"p99 ngircd/{which} = {ratio(n['latency_us']['p99'], c['latency_us']['p99'])}"
                )

    cl = group("cluster-")
    if cl:
        labels = {"sync": "phase3-valkey.toml (write-ahead, shipped)", "async": "same, write-behind"}
        rows = [((labels[v],), cl[f"cluster-valkey-{v}"]) for v in labels if f"cluster-valkey-{v}" in cl]
        table("Cluster: workload A over 3 chatd instances, phase 3 (Valkey)", ["pipeline"],
              ["p50", "p90", "p99", "p99 spread", "max", "delivered", "cpu of each"], rows)

    w = group("W-")
    if w:
        rows = [((v,), w[f"W-{v}"]) for v in ["none", "postgres"] if f"W-{v}" in w]
        table("W: 50,000 msg/s, 200 clients in 100 rooms of 2, one chatd", ["store"],
              ["sent/s", "p50", "p99", "max", "delivered", "cpu", "rows"], rows)


def main():
    mode, target = sys.argv[1], sys.argv[2]
    if mode == "line":
        print(line(load(target)))
    elif mode == "clean":
        sys.exit(0 if clean(load(target)) else 1)
    elif mode == "clean-step":
        sys.exit(0 if clean_step(target) else 1)
    elif mode == "summary":
        summary(target)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
