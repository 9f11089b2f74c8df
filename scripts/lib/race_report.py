"""Reads the loadgen JSON files of scripts/bench-vs-irc.sh and prints its lines and tables.

    race_report.py line FILE      one run on one line
    race_report.py clean FILE     exit 0 if the run delivered everything and cut nobody off
    race_report.py summary DIR    the tables (Markdown) and the chatd/ngircd ratios
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
        f"disconnects {r['disconnects']}  server cpu {fmt_pct(server(r, 'cpu_percent'))}  "
        f"machine busy {r.get('machine_busy_cpu_s', '?')} cpu-s"
    )


def fmt_pct(v):
    if isinstance(v, list):
        return "+".join(fmt_pct(x) for x in v)
    return "?" if v is None else f"{v:.0f}%"


def ratio(a, b):
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}x"


def runs(directory, prefix):
    out = {}
    for path in sorted(glob.glob(os.path.join(directory, prefix + "*.json"))):
        out[os.path.basename(path)[: -len(".json")]] = load(path)
    return out


def summary(directory):
    placements = ["unpinned", "pinned"]
    every = runs(directory, "")
    if not every:
        print("no results")
        return

    a = {k: v for k, v in every.items() if k.startswith("A-")}
    if a:
        print("\n### A: 50 clients, 1 room, 1,000 msg/s (49,000 deliveries/s)\n")
        print("| placement | server | p50 µs | p90 µs | p99 µs | max µs | delivered | server CPU | RSS connected |")
        print("|---|---|---:|---:|---:|---:|---|---:|---:|")
        for p in placements:
            for s in ["chatd", "ngircd"]:
                r = a.get(f"A-{p}-{s}")
                if r:
                    lat = r["latency_us"]
                    print(
                        f"| {p} | {s} | {lat['p50']} | {lat['p90']} | {lat['p99']} | {lat['max']} | "
                        f"{r['deliveries']}/{r['expected_deliveries']} | {fmt_pct(server(r, 'cpu_percent'))} | "
                        f"{kib(server(r, 'connected_kib'))} |"
                    )
        for p in placements:
            c, n = a.get(f"A-{p}-chatd"), a.get(f"A-{p}-ngircd")
            if c and n:
                print(
                    f"\nA {p}: p99 ngircd/chatd = {ratio(n['latency_us']['p99'], c['latency_us']['p99'])}, "
                    f"p50 ngircd/chatd = {ratio(n['latency_us']['p50'], c['latency_us']['p50'])}"
                )

    b = {k: v for k, v in every.items() if k.startswith("B-")}
    if b:
        print("\n### B: 1,000 clients, 1 room, 20 senders, rate raised until a step is not delivered completely\n")
        print("| placement | server | msg/s | deliveries/s | delivered | disconnects | p50 µs | p99 µs | server CPU |")
        print("|---|---|---:|---:|---|---:|---:|---:|---:|")
        best = {}
        for p in placements:
            for s in ["chatd", "ngircd"]:
                steps = sorted(
                    ((int(k.rsplit("-", 1)[1]), r) for k, r in b.items() if k.startswith(f"B-{p}-{s}-")),
                    key=lambda t: t[0],
                )
                for rate, r in steps:
                    lat = r["latency_us"]
                    print(
                        f"| {p} | {s} | {rate} | {r['deliveries_per_s']:.0f} | "
                        f"{r['deliveries']}/{r['expected_deliveries']} | {r['disconnects']} | {lat['p50']} | "
                        f"{lat['p99']} | {fmt_pct(server(r, 'cpu_percent'))} |"
                    )
                    if clean(r):
                        best[(p, s)] = (rate, r)
        for p in placements:
            c, n = best.get((p, "chatd")), best.get((p, "ngircd"))
            if not (c or n):
                continue
            describe = lambda t: "nothing clean" if not t else (
                f"{t[1]['deliveries_per_s']:.0f} deliveries/s at {t[0]} msg/s, p99 {t[1]['latency_us']['p99']} µs"
            )
            print(f"\nB {p}: highest complete step: chatd {describe(c)}; ngircd {describe(n)}")
            if c and n:
                print(
                    f"B {p}: deliveries/s chatd/ngircd = "
                    f"{ratio(c[1]['deliveries_per_s'], n[1]['deliveries_per_s'])}"
                )
                common = min(c[0], n[0])
                cc, nn = b.get(f"B-{p}-chatd-{common}"), b.get(f"B-{p}-ngircd-{common}")
                if cc and nn:
                    print(
                        f"B {p}: at {common} msg/s (both complete) p99 chatd {cc['latency_us']['p99']} µs, "
                        f"ngircd {nn['latency_us']['p99']} µs: ngircd/chatd = "
                        f"{ratio(nn['latency_us']['p99'], cc['latency_us']['p99'])}"
                    )

    c_runs = {k: v for k, v in every.items() if k.startswith("C-")}
    if c_runs:
        print("\n### C: 10,000 clients in 5 rooms of 2,000, 100 senders at 1 msg/s each\n")
        print("| placement | server | joined | RSS before | RSS connected | bytes per connection | p50 µs | p99 µs | delivered | disconnects |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---|---:|")
        for p in placements:
            for s in ["chatd", "ngircd"]:
                r = c_runs.get(f"C-{p}-{s}")
                if r:
                    lat = r["latency_us"]
                    print(
                        f"| {p} | {s} | {r['joined']} | {kib(server(r, 'before_kib'))} | "
                        f"{kib(server(r, 'connected_kib'))} | {server(r, 'per_connection_bytes')} | "
                        f"{lat['p50']} | {lat['p99']} | {r['deliveries']}/{r['expected_deliveries']} | "
                        f"{r['disconnects']} |"
                    )
        for p in placements:
            c, n = c_runs.get(f"C-{p}-chatd"), c_runs.get(f"C-{p}-ngircd")
            if c and n:
                print(
                    f"\nC {p}: memory per connection chatd/ngircd = "
                    f"{ratio(server(c, 'per_connection_bytes'), server(n, 'per_connection_bytes'))}; "
                    f"p99 ngircd/chatd = {ratio(n['latency_us']['p99'], c['latency_us']['p99'])}"
                )

    cl = {k: v for k, v in every.items() if k.startswith("cluster-")}
    if cl:
        print("\n### Cluster: workload A over 3 chatd instances, phase 3 (Valkey)\n")
        print("| pipeline | p50 µs | p90 µs | p99 µs | max µs | delivered | CPU of a, b, c |")
        print("|---|---:|---:|---:|---:|---|---|")
        for variant, label in [("sync", "phase3-valkey.toml (write-ahead, shipped)"), ("async", "same, write-behind")]:
            r = cl.get(f"cluster-valkey-{variant}")
            if r:
                lat = r["latency_us"]
                print(
                    f"| {label} | {lat['p50']} | {lat['p90']} | {lat['p99']} | {lat['max']} | "
                    f"{r['deliveries']}/{r['expected_deliveries']} | {fmt_pct(server(r, 'cpu_percent'))} |"
                )

    w = {k: v for k, v in every.items() if k.startswith("W-")}
    if w:
        print("\n### W: 50,000 msg/s, 200 clients in 100 rooms of 2, one chatd\n")
        print("| store | sent/s | p50 µs | p99 µs | max µs | delivered | server CPU | rows in PostgreSQL |")
        print("|---|---:|---:|---:|---:|---|---:|---:|")
        for variant in ["none", "postgres"]:
            r = w.get(f"W-{variant}")
            if r:
                lat = r["latency_us"]
                print(
                    f"| {variant} | {r['sent_per_s']:.0f} | {lat['p50']} | {lat['p99']} | {lat['max']} | "
                    f"{r['deliveries']}/{r['expected_deliveries']} | {fmt_pct(server(r, 'cpu_percent'))} | "
                    f"{r.get('rows_in_postgres', '-')} of {r['sent']} |"
                )


def main():
    mode, target = sys.argv[1], sys.argv[2]
    if mode == "line":
        print(line(load(target)))
    elif mode == "clean":
        sys.exit(0 if clean(load(target)) else 1)
    elif mode == "summary":
        summary(target)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
