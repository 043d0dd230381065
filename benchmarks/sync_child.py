"""Runs one sync in its own process and prints what it measured as JSON (wall time, CPU
seconds, peak RSS, DynamoDB write calls and items). The parent points it at a moto server and a
sandbox. `--profile FILE` writes a cProfile of the sync itself (connect-time work excluded)."""

from __future__ import annotations

import json
import resource
import sys
import threading
import time

from chalicelib import logs, wiring
from chalicelib.models import ALL_MODELS
from chalicelib.services import sync


def discard_entity_writes() -> None:
    """`--writes discard`: mirrored leads and contacts are neither read nor written, so the run
    measures the amoCRM side alone (the local DynamoDB emulator is slower than DynamoDB)."""
    from chalicelib.services import mirror

    mirror.batch_get_items = lambda model, keys: {}  # mirror.batch_get reads through it
    mirror.upsert_changed = lambda model, items, fields, **_: mirror.Upserted(written=[(None, i) for i in items])
    mirror.put_new = lambda model, items: []


def without_sync_lease() -> None:
    """`--no-lease`: the fleet benchmark runs several syncs at once to load the shared budget;
    deployed, the sync lease would let only one of them run."""
    import contextlib
    from collections.abc import Iterator

    from chalicelib.services import sync_lease

    @contextlib.contextmanager
    def exclusive() -> Iterator[sync_lease.Lease]:
        yield sync_lease.Lease("benchmark")

    sync_lease.exclusive = exclusive


def profile_every_thread() -> list:
    """cProfile sees one thread; the sync runs on several (page fetchers, the write pool), so
    every thread started from now on gets its own profiler, merged at the end."""
    import cProfile

    profilers = [cProfile.Profile(time.thread_time)]
    run = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profiler = cProfile.Profile(time.thread_time)
        profilers.append(profiler)
        profiler.enable()
        try:
            run(thread)
        finally:
            profiler.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign,assignment]
    profilers[0].enable()
    return profilers


def save_profile(profilers: list, path: str) -> None:
    import pstats

    profilers[0].disable()
    stats = pstats.Stats(profilers[0])
    for profiler in profilers[1:]:
        profiler.disable()
        if profiler.getstats():
            stats.add(profiler)
    stats.dump_stats(path)


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads): robust to a busy machine, unlike wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    mode = sys.argv[1]  # full | incremental
    if "--writes" in sys.argv and sys.argv[sys.argv.index("--writes") + 1] == "discard":
        discard_entity_writes()
    if "--no-lease" in sys.argv:
        without_sync_lease()
    logs.configure(40)
    writes = {"calls": 0, "items": 0}

    def count(params, **_):
        writes["calls"] += 1
        writes["items"] += sum(len(v) for v in params["RequestItems"].values())

    dynamo = {"seconds": 0.0, "calls": 0}
    starts: dict[int, float] = {}

    def before(**kwargs):
        starts[threading.get_ident()] = time.perf_counter()

    def after(**kwargs):
        dynamo["seconds"] += time.perf_counter() - starts.pop(threading.get_ident(), time.perf_counter())
        dynamo["calls"] += 1

    for model in ALL_MODELS:
        events = model._get_connection().connection.client.meta.events
        events.register("provide-client-params.dynamodb.BatchWriteItem", count)
        events.register("before-call.dynamodb.*", before)
        events.register("after-call.dynamodb.*", after)
    wiring.token_store().get_access_token()  # connect-time work is not part of the sync
    profilers = profile_every_thread() if "--profile" in sys.argv else []
    started, cpu_started = time.monotonic(), cpu_seconds()
    result = sync.sync_all(wiring.amo(), 0, full=mode == "full")
    if profilers:
        save_profile(profilers, sys.argv[sys.argv.index("--profile") + 1])
    elapsed, cpu = time.monotonic() - started, cpu_seconds() - cpu_started
    limiter = wiring.amo().client.limiter
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "cpu_seconds": round(cpu, 2),
                "budget_calls": getattr(limiter, "store_calls", 0),
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "synced": result["leads"]["synced"],
                "errors": len(result["leads"]["errors"]),
                "batch_write_calls": writes["calls"],
                "batch_write_items": writes["items"],
                "dynamodb_calls": dynamo["calls"],
                "dynamodb_seconds": round(dynamo["seconds"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
