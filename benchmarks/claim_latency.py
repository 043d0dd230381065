"""`python -m benchmarks.claim_latency`: how long one shared-budget claim (the UpdateItem on the
rate-budget table that amo/budget/ makes, through services/budget_store.py) takes on the local
moto server: idle, and while four threads batch-write new leads as a first sync does (through
mirror.put_new), in another process or in the claiming process itself; with the leads table on
moto and on the fast stand-in (scripts/fast_tables.py). It tells the emulator's share of a
claim's time from the sync process's own (its threads share one interpreter lock).

Each measurement runs in a fresh process (`--measure moto|fast`), the writers in another
(`--write SECONDS THREADS`). Prints one table; never part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from benchmarks.report import print_table
from scripts.local_stack import ROOT, free_port, http, wait_until

BATCH = 25  # leads per write, as a sync's batches once were

CLAIMS = 60
CLAIM_EVERY = 0.1  # seconds; a sync claims about seven times a second
WRITERS = 4  # sync.lead_pages.WORKERS


def write_leads(seconds: float, threads: int, quiet: bool = False) -> int:
    """Batch-write new leads on `threads` threads for `seconds`; how many batches were written."""
    from chalicelib.models import Lead, utc_now
    from chalicelib.services import leads, mirror

    serialize = mirror.Serializer(Lead)
    if not quiet:
        print("writing", flush=True)
    stop_at = time.monotonic() + seconds
    written = [0] * threads

    def write(thread: int) -> None:
        first = thread * 10_000_000
        while time.monotonic() < stop_at:
            now = utc_now()
            batch = []
            for number in range(first, first + BATCH):
                custom_fields = [{"field_id": f, "values": [{"value": f"value {f} of {number}"}]} for f in range(5)]
                values = {
                    "id": leads.lead_id_for(number),
                    "amo_lead_id": number,
                    "guest_name": f"Guest {number}",
                    "guest_phone": f"+7900{number:07d}",
                    "custom_fields": custom_fields,
                    "created_at": now,
                    "updated_at": now,
                }
                batch.append((number, serialize(values)))
            mirror.put_new(Lead, batch)
            first += BATCH
            written[thread] += 1

    workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(written)


def claim_times() -> list[float]:
    """Milliseconds of CLAIMS claims, one every CLAIM_EVERY seconds."""
    from chalicelib.amo.budget import GENERAL
    from chalicelib.services.budget_store import DynamoBudgetStore

    store = DynamoBudgetStore()
    took = []
    for block in range(CLAIMS):
        started = time.perf_counter()
        store.claim(block, {GENERAL: (1, 0)}, time.time() + 60)
        took.append(1000 * (time.perf_counter() - started))
        time.sleep(CLAIM_EVERY)
    return took


def measure(dynamodb: str) -> list[dict]:
    """Start a moto server (with `dynamodb` "fast": the leads table on the stand-in), point this
    process at it and claim: idle, beside a writing process, beside writing threads."""
    port = free_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        TABLE_PREFIX=f"claims-{dynamodb}-",
    )
    fast = ["--fast-tables", "leads"] if dynamodb == "fast" else []
    server = subprocess.Popen(
        [sys.executable, "-m", "scripts.atomic_moto", "-p", str(port), *fast],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/moto-api/", timeout=2)[0] == 200, "moto server")
        from chalicelib.models import Lead, RateBudget

        for model in (Lead, RateBudget):
            model.create_table(wait=True)
        claim_times()  # connections, caches
        rows = [_row(dynamodb, "none", claim_times(), 0, 1)]
        seconds = CLAIMS * CLAIM_EVERY * 1.5 + 2
        writer = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.claim_latency", "--write", str(seconds), str(WRITERS)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        writer.stdout.readline()  # imports done: "writing"
        time.sleep(1)
        took = claim_times()
        written = int(writer.communicate()[0].split()[-1])
        rows.append(_row(dynamodb, f"{WRITERS} threads, another process", took, written, seconds))
        batches: list[int] = []
        same = threading.Thread(target=lambda: batches.append(write_leads(seconds, WRITERS, quiet=True)))
        same.start()
        time.sleep(1)
        took = claim_times()
        same.join()
        rows.append(_row(dynamodb, f"{WRITERS} threads, the claiming process", took, batches[0], seconds))
        return rows
    finally:
        server.terminate()
        server.wait()


def _row(dynamodb: str, writers: str, took: list[float], batches: int, seconds: float) -> dict:
    took = sorted(took)
    return {
        "leads_table": dynamodb,
        "batch_writers": writers,
        "claim_p50_ms": round(took[len(took) // 2], 1),
        "claim_p90_ms": round(took[len(took) * 9 // 10], 1),
        "batch_writes_per_s": round(batches / seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.claim_latency")
    parser.add_argument("--measure", choices=["moto", "fast"], help=argparse.SUPPRESS)
    parser.add_argument("--write", nargs=2, type=float, metavar=("SECONDS", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        print(write_leads(args.write[0], int(args.write[1])))
        return 0
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    rows = []
    for dynamodb in ("moto", "fast"):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.claim_latency", "--measure", dynamodb],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    print_table(
        "Shared-budget claim (UpdateItem on rate-budget) beside a first sync's batch writes",
        rows,
        ["leads_table", "batch_writers", "claim_p50_ms", "claim_p90_ms", "batch_writes_per_s"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
