"""Run every in-scope ONNX backend node case through mlc and report.

    python tests/conformance_report.py                 # summary, failures by reason, per-op table
    python tests/conformance_report.py --write         # also rewrite tests/conformance_expected.txt
    python tests/conformance_report.py --all           # every node case (all 1884), not only core ops
    python tests/conformance_report.py -k conv         # only cases whose name contains "conv"
    python tests/conformance_report.py --list-passing  # print the passing names

``--write`` refuses to drop a name that is in the expected file (the list only grows):
a case that passed before and fails now is a regression to fix, not a line to delete.
Outcomes: see tests/_conformance.py:run_case.  A "wrong" (values differ without an mlc
error), "shape", "dtype", "internal" or "crash" outcome is an mlc bug.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _conformance as C  # noqa: E402

BUGS = ("wrong", "shape", "dtype", "internal", "crash")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="all node cases, not only core_ops.txt")
    ap.add_argument("-k", default=None, help="only cases whose name contains this")
    ap.add_argument("--write", action="store_true", help="rewrite tests/conformance_expected.txt")
    ap.add_argument("--list-passing", action="store_true")
    ap.add_argument("--json", default=None, help="write per-case outcomes to this JSON file")
    ap.add_argument("--quiet", action="store_true", help="no per-case progress")
    ap.add_argument("--import", dest="preload", default="", metavar="MODULES",
                    help="comma-separated modules to import first (kernels not yet in "
                         "mlc/kernels/__init__.py, e.g. mlc.kernels.rnn)")
    args = ap.parse_args(argv)
    import importlib

    import mlc.api  # noqa: F401  (the operator library)
    for module in filter(None, args.preload.split(",")):
        importlib.import_module(module.strip())

    cases = C.node_cases()
    ops = C.case_ops()
    if args.all:
        names = sorted(n for n in cases if n not in C.EXCLUDED)
    else:
        names = C.runnable()
    if args.k:
        names = [n for n in names if args.k in n]
    scope = "all node cases" if args.all else f"core ops ({C.core_ops_file()})"

    results: dict[str, tuple[str, str]] = {}
    times: dict[str, float] = {}
    t_all = time.perf_counter()
    for k, name in enumerate(names):
        t0 = time.perf_counter()
        results[name] = C.run_case(cases[name])
        times[name] = time.perf_counter() - t0
        if not args.quiet:
            outcome, detail = results[name]
            print(f"[{k + 1}/{len(names)}] {name}: {outcome} ({times[name]:.2f}s) {detail[:160]}",
                  file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t_all

    by = defaultdict(list)
    for name, (outcome, detail) in results.items():
        by[outcome].append(name)
    passed = sorted(by["pass"])
    total = len(names) + (0 if args.all or args.k else len(C.EXCLUDED))

    print(f"== mlc ONNX backend node tests: {scope}")
    print(f"passed {len(passed)} / {total}   ({len(names)} run, {total - len(names)} excluded: "
          f"{', '.join(C.EXCLUDED) if total > len(names) else '-'})   in {elapsed:.0f} s")
    counts = Counter(o for o, _ in results.values())
    print("outcomes: " + ", ".join(f"{o} {counts[o]}" for o in
                                   ("pass", "unsupported", "mlc-error", "deviation", *BUGS) if counts[o]))
    bugs = [n for n in names if results[n][0] in BUGS]
    if bugs:
        print(f"\n!! {len(bugs)} case(s) fail without a clean mlc error (bugs):")
        for n in bugs:
            print(f"   {n} [{results[n][0]}] {results[n][1]}")

    for n in by["deviation"]:
        print(f"\n~~ deviation (mlc follows onnxruntime): {n}: {results[n][1]}")
    for outcome in ("unsupported", "mlc-error"):
        if not by[outcome]:
            continue
        print(f"\n-- {outcome}: {len(by[outcome])}, by message:")
        groups = defaultdict(list)
        for n in by[outcome]:
            groups[_reason_key(results[n][1])].append(n)
        for reason, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            print(f"   {len(members):3d}  {reason}")
            print(f"        {', '.join(sorted(members))}")

    print("\n-- per op: passed / cases")
    table = defaultdict(lambda: [0, 0])
    for n in names:
        table[ops[n]][1] += 1
        table[ops[n]][0] += results[n][0] == "pass"
    for op in sorted(table, key=str):
        p, t = table[op]
        print(f"   {str(op):28s} {p:4d} / {t:<4d}{'' if p == t else '  <'}")

    slow = sorted(times.items(), key=lambda kv: -kv[1])[:8]
    print("\n-- slowest cases: " + ", ".join(f"{n} {t:.2f}s" for n, t in slow))

    expected = set(C.read_expected())
    lost = sorted(expected & set(names) - set(passed))
    if lost:
        print(f"\n!! {len(lost)} case(s) of {C.EXPECTED_FILE.name} no longer pass: {', '.join(lost)}")
    gained = sorted(set(passed) - expected)
    if gained and not args.all:
        print(f"\n++ {len(gained)} passing case(s) not yet in {C.EXPECTED_FILE.name}: {', '.join(gained)}")

    if args.list_passing:
        print("\n-- passing:")
        print("\n".join(passed))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({n: {"outcome": o, "detail": d, "op": ops[n], "seconds": round(times[n], 3)}
                       for n, (o, d) in results.items()}, f, indent=1)
    if args.write:
        if args.all or args.k:
            print("--write needs the full core-op run (no --all, no -k)", file=sys.stderr)
            return 2
        if lost:
            print(f"--write refused: {len(lost)} expected case(s) regressed (the list only grows)",
                  file=sys.stderr)
            return 1
        C.EXPECTED_FILE.write_text("\n".join(sorted(set(passed) | expected)) + "\n")
        print(f"\nwrote {C.EXPECTED_FILE} ({len(set(passed) | expected)} cases)")
    return 1 if bugs or lost else 0


def _reason_key(detail: str) -> str:
    """A failure message with node names and numbers blurred, so like failures group."""
    import re
    text = re.sub(r"'[^']*'", "'…'", detail)
    text = re.sub(r"\d+", "N", text)
    return text[:200]


if __name__ == "__main__":
    sys.exit(main())
