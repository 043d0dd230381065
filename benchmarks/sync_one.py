"""`python -m benchmarks.sync_one LEADS LATENCY_MS [--dynamodb moto|fast] [--writes dynamodb|discard]
[--incremental] [--repeat] [--profile FILE] [--share CPU] [--json FILE]`: one row of `make bench`'s sync table (its own
stack, as there), printed as the table and as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.__main__ import SYNC_COLUMNS, SYNC_TITLE, sync_scenario
from benchmarks.report import print_table


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sync_one")
    parser.add_argument("leads", type=int)
    parser.add_argument("latency_ms", type=int)
    parser.add_argument("--dynamodb", choices=["moto", "fast"], default="moto")
    parser.add_argument("--writes", choices=["dynamodb", "discard"], default="dynamodb")
    parser.add_argument("--incremental", action="store_true", help="then change 1%% of the leads and sync again")
    parser.add_argument("--repeat", action="store_true", help="then a second full sync (it knows the list's length)")
    parser.add_argument("--profile", type=Path, help="cProfile of the sync (benchmarks/sync_child.py)")
    parser.add_argument("--share", type=float, help="run the sync at this share of a CPU (cpu_share.py)")
    parser.add_argument("--json", type=Path, help="also write the row to this file")
    args = parser.parse_args()
    row = sync_scenario(
        args.leads,
        args.latency_ms,
        with_incremental=args.incremental,
        writes=args.writes,
        profile=args.profile,
        dynamodb=args.dynamodb,
        share=args.share,
        with_repeat=args.repeat,
    )
    print_table(SYNC_TITLE, [row], SYNC_COLUMNS)
    print(json.dumps(row, indent=2))
    if args.json:
        args.json.write_text(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
