"""Counts irctest's results from pytest's JUnit XML files, for scripts/test-irc.sh.

    summary.py table  DIR               the side-by-side table of one run
    summary.py tests  FILE STATUS       the tests with that status, one a line, with the reason
                                        pytest gave
    summary.py passed FILE [LIST]       how many passed

LIST is a file of pytest node ids (`--collect-only -q` output): only those tests are counted
(the RFC 1459/2812 subset is counted this way from the full run, not run twice).
"""

import json
import os
import sys
import xml.etree.ElementTree as ET


def results(path):
    """{node id: (status, reason)} from one JUnit file."""
    out = {}
    for case in ET.parse(path).iter("testcase"):
        # classname: irctest.server_tests.cap.CapTestCase -> irctest/server_tests/cap.py::CapTestCase
        module, _, cls = case.get("classname").rpartition(".")
        node = f"{module.replace('.', '/')}.py::{cls}::{case.get('name')}"
        status, reason = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                status, reason = "failed", child.get("message") or ""
            elif child.tag == "skipped":
                kind = child.get("type") or ""
                status = "xfailed" if "xfail" in kind else "skipped"
                reason = child.get("message") or ""
        out[node] = (status, reason.splitlines()[0] if reason else "")
    return out


def count(res, only=None):
    counts = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0}
    for node, (status, _) in res.items():
        if only is None or node in only:
            counts[status] += 1
    return counts


def fmt(c):
    return f"{c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped, {c['xfailed']} xfailed"


def table(directory):
    with open(os.path.join(directory, "selections.json")) as f:
        selections = json.load(f)
    print(f"| selection | {' | '.join(s for s in selections['servers'])} |")
    print("|---|" + "---|" * len(selections["servers"]))
    for row in selections["rows"]:
        cells = []
        for server in selections["servers"]:
            xml = os.path.join(directory, f"{row['run']}-{server}.xml")
            if not os.path.exists(xml):
                cells.append("not run")
                continue
            only = None
            if row.get("only"):
                with open(os.path.join(directory, row["only"])) as f:
                    only = {line.strip() for line in f if "::" in line}
            cells.append(fmt(count(results(xml), only)))
        print(f"| {row['name']} | {' | '.join(cells)} |")


def main():
    mode = sys.argv[1]
    if mode == "table":
        table(sys.argv[2])
    elif mode == "tests":
        for node, (status, reason) in sorted(results(sys.argv[2]).items()):
            if status == sys.argv[3]:
                print(f"{node}  -- {reason[:160]}")
    elif mode == "passed":
        only = None
        if len(sys.argv) > 3:
            with open(sys.argv[3]) as f:
                only = {line.strip() for line in f if "::" in line}
        print(count(results(sys.argv[2]), only)["passed"])
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
