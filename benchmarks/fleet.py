"""`python -m benchmarks.fleet [--quick]`: several processes sharing one amoCRM budget.

1. N processes (1, 2, 4, 8) each run a full sync at once against one sandbox (amoCRM-side only:
   mirrored rows are not written, so the local DynamoDB emulator does not set the pace):
   aggregate requests per second while they all work, 429s, the most request starts in any
   rolling second, and the budget table calls per amoCRM request. One process is also run on
   the per-process limiter (`AMO_RATE_BUDGET=local`, the "before"), both against the floor.
2. Two services with three callers each asking `GET test` (one amoCRM request per call) for
   ten seconds: how much of the limit the fleet uses when the callers, not a sync, want it.
3. create-lead during a running full sync: how long the caller waits.

Prints one table per part; never part of the tests (the tests hold the limits, not speeds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.report import CORES, print_table
from scripts.local_stack import ROOT, Stack, free_port, http

LATENCY_MS = 50


def _stack(leads: int, budget: str, tag: str) -> Stack:
    return Stack(
        moto_port=free_port(),
        sandbox_port=free_port(),
        api_port=free_port(),
        seed={"leads": leads, "contacts": leads // 2, "tasks": 0, "pipelines": 2},
        extra_env={
            "TABLE_PREFIX": f"fleet-bench-{tag}-",
            "AMO_RATE_LIMIT_RPS": "7",
            "AMO_RATE_BUDGET": budget,
            **_margin_env(),
            "MALLOC_ARENA_MAX": "2",
            "AMO_BASE_URL": "",
            "MAIN_BACKEND_WEBHOOK_URL": "",
        },
        log_dir=ROOT / ".local" / "fleet-bench-logs",
    )


def _margin_env() -> dict[str, str]:
    """AMO_RATE_MARGIN_SECONDS of the caller's environment, if set (to compare margins)."""
    margin = os.environ.get("AMO_RATE_MARGIN_SECONDS")
    return {"AMO_RATE_MARGIN_SECONDS": margin} if margin else {}


def _sandbox(stack: Stack, method: str, path: str, body=None):
    return http(method, f"{stack.sandbox_url}{path}", body)[1]


def _busy_rate(stats: dict, start: float = 0.0, end: float = math.inf) -> float:
    """Requests per second over the whole wall-clock seconds inside [start, end] that saw
    requests, the first and last of them left out (partly idle)."""
    first, counts = stats["requests_by_second_from"], stats["requests_by_second"]
    busy = [s for s in range(first, first + len(counts)) if counts[s - first] and start <= s and s + 1 <= end]
    inner = [s for s in busy if busy[0] < s < busy[-1]] if len(busy) > 2 else busy
    return round(sum(counts[s - first] for s in inner) / max(1, len(inner)), 2)


def syncing_processes(processes: int, leads: int, budget: str = "shared") -> dict:
    stack = _stack(leads, budget, f"{processes}-{budget}")
    try:
        stack.start(api=False, sandbox_args=["--latency-ms", str(LATENCY_MS)])
        stack.connect_without_api()
        _sandbox(stack, "POST", "/_sandbox/stats/reset", {})
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.sync_child", "full", "--writes", "discard", "--no-lease"],
                cwd=ROOT,
                env=stack.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        results = []
        for child in children:
            out, err = child.communicate(timeout=1800)
            if child.returncode != 0:
                raise RuntimeError(f"sync child failed: {err[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        stats = _sandbox(stack, "GET", "/_sandbox/stats")
        floor_requests = math.ceil(leads / 250) + math.ceil(leads / 2 / 250)
        seconds = max(r["seconds"] for r in results)
        return {
            "processes": processes,
            "budget": budget,
            "amo_requests": stats["requests"],
            "seconds": round(seconds, 2),
            "agg_rps": _busy_rate(stats),
            "429s": stats["rate_limited"],
            "peak_rps": stats["peak_rps"],
            "tightest_ms": stats["tightest_span_ms"],
            "budget_calls_per_request": round(sum(r["budget_calls"] for r in results) / max(1, stats["requests"]), 2),
            "ratio_to_floor": round(seconds / (processes * floor_requests / 7), 3),
        }
    finally:
        stack.stop()


def services(leads: int, tries: int) -> dict:
    stack = _stack(leads, "shared", "services")
    try:
        stack.start(sandbox_args=["--latency-ms", str(LATENCY_MS)])
        apis = [stack.api_url, stack.start_api(free_port(), name="api-2")]
        stack.connect()
        headers = {"X-API-Key": stack.api_key}

        _sandbox(stack, "POST", "/_sandbox/stats/reset", {})
        started = time.time()
        busy_until = started + 10

        def live_checks(api: str):
            while time.time() < busy_until:
                http("GET", f"{api}/test", None, headers)

        workers = [threading.Thread(target=live_checks, args=(api,)) for api in apis for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        stats = _sandbox(stack, "GET", "/_sandbox/stats")
        callers = {
            "agg_rps": _busy_rate(stats, started, busy_until),
            "429s": stats["rate_limited"],
            "peak_rps": stats["peak_rps"],
            "tightest_ms": stats["tightest_span_ms"],
        }

        def create_lead(attempt: int) -> float:
            asked = time.monotonic()
            status, _ = http(
                "POST",
                f"{apis[attempt % 2]}/create-lead",
                {
                    "leadData": {"name": f"Бронь під час синхронізації {attempt}"},
                    "contact": {"name": "Гість Тест", "phone": f"+38050000{attempt:04d}"},
                },
                headers,
                300,
            )
            if status != 200:
                raise RuntimeError(f"create-lead answered {status}")
            return time.monotonic() - asked

        idle = [create_lead(100 + attempt) for attempt in range(tries)]
        waits = []
        for attempt in range(tries):
            # the sync's own DynamoDB writes are left out: on the local stack they queue create-lead's
            # writes behind them in the one emulator process, which DynamoDB does not do
            sync = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.sync_child", "full", "--writes", "discard"],
                cwd=ROOT,
                env=stack.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            before = _sandbox(stack, "GET", "/_sandbox/stats")["requests"]
            while _sandbox(stack, "GET", "/_sandbox/stats")["requests"] < before + 10:
                time.sleep(0.1)
            waits.append(create_lead(attempt))
            sync.wait(1800)
        create = {
            "tries": tries,
            "idle_median_s": round(statistics.median(idle), 2),
            "median_s": round(statistics.median(waits), 2),
            "max_s": round(max(waits), 2),
            "bound_s": round(1 + 3 * LATENCY_MS / 1000, 2),
        }
        return {"callers": callers, "create_lead": create}
    finally:
        stack.stop()


def run(quick: bool = False) -> dict:
    """Every part, each printed as a table; the figures returned."""
    leads = 2500 if quick else 5000
    counts = (1, 2) if quick else (1, 2, 4, 8)
    rows = [syncing_processes(1, leads, budget="local")] + [syncing_processes(n, leads) for n in counts]
    print_table(
        f"Fleet 1. Processes each running a full sync of {leads} leads at once (amoCRM side, {LATENCY_MS} ms latency)",
        rows,
        [
            "processes",
            "budget",
            "amo_requests",
            "seconds",
            "agg_rps",
            "429s",
            "peak_rps",
            "tightest_ms",
            "budget_calls_per_request",
            "ratio_to_floor",
        ],
    )
    both = services(leads, tries=3 if quick else 5)
    print_table(
        "Fleet 2. Two services, three callers each, one amoCRM request per call, 10 s",
        [both["callers"]],
        ["agg_rps", "429s", "peak_rps", "tightest_ms"],
    )
    print_table(
        "Fleet 3. create-lead alone and during a full sync (three amoCRM calls)",
        [both["create_lead"]],
        ["tries", "idle_median_s", "median_s", "max_s", "bound_s"],
    )
    return {"syncing": rows, **both}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet")
    parser.add_argument("--quick", action="store_true", help="1 and 2 processes, 2,500 leads each")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    figures = run(args.quick)
    if args.json:
        args.json.write_text(json.dumps({"cores": CORES, **figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
