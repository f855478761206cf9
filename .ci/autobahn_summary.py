#!/usr/bin/env python3
"""Summarize an Autobahn|Testsuite fuzzingclient report (reports/index.json).

Usage:
    python3 .ci/autobahn_summary.py REPORT_DIR/index.json [--agent NAME]
                                    [--wstest-log wstest.log] [--expect N]

Prints, per agent, a per-section table (section, total, OK, NON-STRICT,
INFORMATIONAL, FAILED/other), then every failing case id with its behavior,
behaviorClose and the close code the server sent, then one closing line
"autobahn: N passed, N failed".

A case passes when both its "behavior" and its "behaviorClose" are one of
OK, NON-STRICT or INFORMATIONAL; anything else (FAILED, UNIMPLEMENTED,
WRONG CODE, UNCLEAN, FAILED BY CLIENT, missing) is a failure.

--wstest-log: the stdout of the wstest run; its "Cases = [...]" line gives
the case ids that were meant to run, and any id absent from index.json is a
failure (wstest stops early and still writes index.json when the server
becomes unreachable). --expect N: the same check by count only.

Exit status: 0 all passed; 1 any failure or missing case, or no case at all;
2 the index could not be read. Standard library only.
"""

import argparse
import ast
import json
import re
import sys

PASSING = ("OK", "NON-STRICT", "INFORMATIONAL")
COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED/other")


def case_key(case_id):
    """Sort key for case ids such as '9.10.2': numeric part by part."""
    parts = []
    for p in str(case_id).split("."):
        parts.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return parts


def classify(result):
    """Column for one case: worst of behavior and behaviorClose."""
    b = result.get("behavior")
    bc = result.get("behaviorClose")
    if b not in PASSING or bc not in PASSING:
        return "FAILED/other"
    if "INFORMATIONAL" in (b, bc):
        return "INFORMATIONAL"
    if "NON-STRICT" in (b, bc):
        return "NON-STRICT"
    return "OK"


def expected_from_log(path):
    """Case ids listed by wstest on its 'Cases = [...]' line, or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"\s*Cases = (\[.*\])\s*$", line)
                if m:
                    return [str(c) for c in ast.literal_eval(m.group(1))]
    except OSError as e:
        print("autobahn_summary: cannot read %s: %s" % (path, e), file=sys.stderr)
    return None


def summarize(agent, cases, expected_ids, expected_count):
    """Print the table and failures for one agent; return (passed, failed)."""
    sections = {}
    failures = []
    for case_id in sorted(cases, key=case_key):
        res = cases[case_id]
        col = classify(res)
        row = sections.setdefault(case_id.split(".")[0], dict.fromkeys(COLUMNS, 0))
        row[col] += 1
        if col == "FAILED/other":
            failures.append((case_id, res))

    missing = []
    if expected_ids is not None:
        missing = sorted(set(expected_ids) - set(cases), key=case_key)
    elif expected_count is not None and len(cases) < expected_count:
        missing = ["<%d case(s)>" % (expected_count - len(cases))]

    header = ("section", "total") + COLUMNS
    widths = [max(len(h), 7) for h in header]
    fmt = "  ".join("%%%ds" % w if i else "%%-%ds" % w for i, w in enumerate(widths))
    print("Autobahn fuzzingclient results for agent %r" % agent)
    print(fmt % header)
    print(fmt % tuple("-" * w for w in widths))
    totals = dict.fromkeys(COLUMNS, 0)
    for sec in sorted(sections, key=case_key):
        row = sections[sec]
        for c in COLUMNS:
            totals[c] += row[c]
        print(fmt % ((sec, sum(row.values())) + tuple(row[c] for c in COLUMNS)))
    print(fmt % tuple("-" * w for w in widths))
    print(fmt % (("all", sum(totals.values())) + tuple(totals[c] for c in COLUMNS)))

    if failures:
        print("\nFailing cases (%d):" % len(failures))
        for case_id, res in failures:
            print("  %-8s behavior=%-14s behaviorClose=%-14s remoteCloseCode=%s  (%s)" % (
                case_id, res.get("behavior"), res.get("behaviorClose"),
                res.get("remoteCloseCode"), res.get("reportfile", "")))
    if missing:
        shown = ", ".join(missing[:40]) + (" ..." if len(missing) > 40 else "")
        print("\nMissing from the report (%s): %s" % (
            len(missing) if expected_ids is not None else "count", shown))
        print("  (the server refused a connection or crashed; wstest skips the rest)")

    n_missing = len(missing) if expected_ids is not None else (
        expected_count - len(cases) if missing else 0)
    passed = len(cases) - len(failures)
    return passed, len(failures) + n_missing


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("index", help="path to the fuzzingclient reports/index.json")
    ap.add_argument("--agent", help="only this agent (default: every agent in the index)")
    ap.add_argument("--wstest-log", help="wstest stdout, to find cases that never ran")
    ap.add_argument("--expect", type=int, help="number of cases that should be in the index")
    args = ap.parse_args(argv)

    try:
        with open(args.index, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print("autobahn_summary: cannot read %s: %s" % (args.index, e), file=sys.stderr)
        return 2
    if not isinstance(index, dict):
        print("autobahn_summary: %s is not an index.json object" % args.index, file=sys.stderr)
        return 2

    expected_ids = expected_from_log(args.wstest_log) if args.wstest_log else None
    agents = [args.agent] if args.agent else sorted(index)
    if not agents:
        print("autobahn_summary: no agent in %s: wstest ran no case "
              "(server unreachable?)" % args.index)
        agents = ["<none>"]

    total_passed = total_failed = 0
    for agent in agents:
        passed, failed = summarize(agent, index.get(agent) or {}, expected_ids, args.expect)
        total_passed += passed
        total_failed += failed
        print()

    if total_passed + total_failed == 0:
        print("autobahn: no case ran")
        total_failed = 1
    print("autobahn: %d passed, %d failed" % (total_passed, total_failed))
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
