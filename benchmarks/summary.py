"""Every goal recorded by the benchmarks of one ``make bench`` run, in one table.

    python benchmarks/summary.py RESULTS.jsonl

Each ``bench_*.py`` calls ``common.goal(...)`` for the ratios the issues set; with
``BENCH_RESULTS`` naming a file those lines are collected there, and this script
prints them together, each ratio beside its goal, so one look says what is met.
Not a benchmark itself (``make bench`` runs ``bench_*.py``); it never fails a run.
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> int:
    try:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        rows = []
    if not rows:
        print("bench: no goals were recorded")
        return 0
    print(f"\n{'goal':<54}{'ratio':>9}  {'limit':>7}  verdict")
    for row in rows:
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        print(f"{row['name']:<54}{ratio:>9}  <= {row['limit']:.2f}x  {row['verdict']}"
              + (f"  [{row['detail']}]" if row.get("detail") else ""))
    met = sum(r["verdict"] == "met" for r in rows)
    print(f"{met} of {len(rows)} goals met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
