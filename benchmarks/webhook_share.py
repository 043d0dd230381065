"""The webhook route at the API function's CPU share (`python -m benchmarks.webhook_share [--quick]`).

amoCRM counts an answer slower than 2 s as invalid and disables a hook after more than 100 of
them in 2 hours; a cold API container answering a burst is where that happens. Per CPU share
(0.29 / 0.58 / 1.0 of a CPU: Lambda's 512 / 1,024 / 1,769 MB), inside a cgroup quota
(benchmarks/cpu_share.py):

- cold: a fresh process (interpreter, `import app`, settings and their Secrets Manager
  references, the first one-event delivery acknowledged), timed from its spawn to the answer;
  COLD_STARTS of them, one after another;
- warm: one process answering deliveries of 100 `leads[status]` events each, after one
  delivery it is not timed for.

Every process is the deployed path: the webhook queue configured, the secrets read from
Secrets Manager. AWS is one moto server outside the quota, as is this parent.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from benchmarks import cpu_share
from benchmarks.report import print_table
from benchmarks.webhook_child import SECRET_VALUES, secret_references
from scripts.local_stack import ROOT, Stack, free_port

COLD_STARTS = 20
WARM_DELIVERIES = 100
EVENTS_PER_DELIVERY = 100
TARGETS = {"cold_p99_ms": 1000, "warm_p99_ms": 300}  # at 0.29 CPU (issue 27)


def p99(values: list[float]) -> float:
    """The 99th percentile, nearest rank (of 20 values: the largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def _run(
    args: list[str], env: dict, share: cpu_share.CpuShare | None, package: Path | None = None
) -> tuple[dict, float]:
    """One child's JSON line, and the wall time at which it was spawned. With `package` (an
    unzipped Lambda package), the child imports the service and its libraries from there, as
    Lambda does: from a read-only directory (nothing compiled is written back)."""
    command = [sys.executable, str(ROOT / "benchmarks" / "webhook_child.py"), *args]
    if package is not None:
        env = {**env, "PYTHONPATH": str(package), "PYTHONDONTWRITEBYTECODE": "1"}
    options: dict[str, Any] = {
        "cwd": package or ROOT,
        "env": env,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "text": True,
    }
    spawned = time.time()
    child = share.popen(command, **options) if share else subprocess.Popen(command, **options)
    stdout, stderr = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"webhook child {args} failed: {stderr[-2000:]}")
    return json.loads(stdout.strip().splitlines()[-1]), spawned


def _stack() -> Stack:
    stack = Stack(
        moto_port=free_port(),
        sandbox_port=free_port(),
        api_port=free_port(),
        extra_env={
            "TABLE_PREFIX": "bench-wh-share-",
            "AMO_BASE_URL": "https://bench.amocrm.ru",
            "AMO_CLIENT_ID": "bench-client-id",
            "AMO_REDIRECT_URI": "https://api.example.com/api/integrations/amo-crm/callback",
            "MAIN_BACKEND_WEBHOOK_URL": "",
            "MALLOC_ARENA_MAX": "2",
            **SECRET_VALUES,
        },
        log_dir=ROOT / ".local" / "bench-logs",
    )
    return stack.start(api=False)


def unzipped_package() -> tuple[Path | None, str]:
    """The Lambda package `make package` builds, unzipped under .local/; or None and why not."""
    target = ROOT / ".local" / "bench-package"
    with tempfile.TemporaryDirectory() as out:
        built = subprocess.run(
            [sys.executable, "scripts/package.py", "--stage", "prod", out], cwd=ROOT, capture_output=True, text=True
        )
        archive = Path(out) / "deployment.zip"
        if built.returncode != 0 or not archive.exists():
            return None, f"the package could not be built ({(built.stderr or built.stdout).strip()[-200:]})"
        shutil.rmtree(target, ignore_errors=True)
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(target)
    return target, "the Lambda package (scripts/package.py)"


def measure(shares: list[float], cold_starts: int, deliveries: int, package: Path | None = None) -> list[dict]:
    stack = _stack()
    try:
        setup, _ = _run(["setup"], {**stack.env, "PYTHONPATH": str(ROOT)}, None)
        # what a deployed API function has: references, the queue, its name (settings.deployed())
        env = {
            **stack.env,
            **secret_references(),
            "WEBHOOK_QUEUE_URL": setup["queue_url"],
            "AWS_LAMBDA_FUNCTION_NAME": "amocrm-integration-prod",
        }
        rows = []
        for share in shares:
            with cpu_share.CpuShare(share) as group:
                colds = []
                for _ in range(cold_starts):
                    measured, spawned = _run(["cold"], env, group, package)
                    colds.append({**measured, "total_ms": (measured["answered_at"] - spawned) * 1000})
                warm, _ = _run(["warm", str(deliveries), str(EVENTS_PER_DELIVERY)], env, group, package)
            totals = [c["total_ms"] for c in colds]
            rows.append(
                {
                    "cpu": cpu_share.label(share),
                    "share": share,
                    "cold_p50_ms": round(statistics.median(totals)),
                    "cold_p99_ms": round(p99(totals)),
                    "import_p50_ms": round(statistics.median(c["import_ms"] for c in colds)),
                    "first_delivery_p50_ms": round(statistics.median(c["first_delivery_ms"] for c in colds)),
                    "cold_cpu_s": round(statistics.median(c["cpu_seconds"] for c in colds), 2),
                    "warm_p50_ms": round(statistics.median(warm["latencies_ms"]), 1),
                    "warm_p99_ms": round(p99(warm["latencies_ms"]), 1),
                    "warm_aws_wait_p50_ms": round(statistics.median(warm["aws_wait_ms"]), 1),
                    "warm_cpu_ms": round(warm["cpu_seconds_per_delivery"] * 1000, 1),
                }
            )
        return rows
    finally:
        stack.stop()


COLUMNS = [
    "cpu",
    "cold_p50_ms",
    "cold_p99_ms",
    "import_p50_ms",
    "first_delivery_p50_ms",
    "cold_cpu_s",
    "warm_p50_ms",
    "warm_p99_ms",
    "warm_aws_wait_p50_ms",
    "warm_cpu_ms",
]


def run(quick: bool = False, package_dir: str | None = None) -> dict:
    """Every share's row, or why there are none (`skipped`)."""
    why = cpu_share.unavailable()
    if why:
        print(f"\n7. Webhook at the API function's CPU share: skipped, {why}")
        return {"skipped": why}
    cold_starts = 10 if quick else COLD_STARTS
    deliveries = 30 if quick else WARM_DELIVERIES
    package: Path | None
    if package_dir:
        package, source = Path(package_dir), f"the unzipped package in {package_dir}"
    else:
        package, source = unzipped_package()
    if package is None:
        print(f"\n7. Webhook at a CPU share: {source}; measuring the source tree instead")
        source = "the source tree (compiled modules cached in __pycache__, unlike Lambda)"
    rows = measure(list(cpu_share.SHARES), cold_starts, deliveries, package)
    print_table(
        f"7. Webhook at a CPU share: cold p99 of {cold_starts} fresh processes (spawn to first answer), "
        f"warm p99 of {deliveries} deliveries of {EVENTS_PER_DELIVERY} events; code from {source}",
        rows,
        COLUMNS,
    )
    at_api = next(r for r in rows if r["share"] == 0.29)
    for key, limit in TARGETS.items():
        verdict = "met" if at_api[key] <= limit else "NOT met"
        print(f"   at 0.29 CPU: {key} {at_api[key]} ms (target ≤ {limit} ms): {verdict}")
    return {"rows": rows, "cold_starts": cold_starts, "deliveries": deliveries, "code": source, "targets": TARGETS}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhook_share")
    parser.add_argument("--quick", action="store_true", help="10 cold starts, 30 deliveries")
    parser.add_argument("--share", type=float, action="append", help="only these CPU shares (repeatable)")
    parser.add_argument("--package", help="an unzipped Lambda package to run (default: build one)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.share:
        cpu_share.SHARES = {s: cpu_share.SHARES.get(s, 0) for s in args.share}
    result = run(args.quick, args.package)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
