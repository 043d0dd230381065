"""Printing a benchmark's figures: one plain-text table per part, headed with the machine's cores."""

from __future__ import annotations

import os

CORES = os.cpu_count()


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    print(f"\n{title}  (machine: {CORES} cores)")
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.rjust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).rjust(widths[c]) for c in columns))
