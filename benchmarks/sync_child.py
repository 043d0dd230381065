"""Runs one sync in its own process and prints what it measured as JSON (wall time, CPU
seconds, peak RSS, DynamoDB write calls and items). The parent points it at a moto server and a
sandbox. `--profile FILE` writes a cProfile of the sync itself (connect-time work excluded)."""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from typing import Any

from chalicelib import logs, settings, wiring
from chalicelib.models import ALL_MODELS
from chalicelib.services import sync


def discard_entity_writes() -> None:
    """`--writes discard`: mirrored leads and contacts are neither read nor written, so the run
    measures the amoCRM side alone (the local DynamoDB emulator is slower than DynamoDB)."""
    from chalicelib.services import mirror

    mirror.batch_get_items = lambda model, keys: {}  # mirror.batch_get reads through it
    mirror.upsert_changed = lambda model, items, fields, **_: mirror.Upserted(written=[(None, i) for i in items])
    mirror.put_new = lambda model, items: mirror.NewItems()


def as_the_sync_lambda() -> None:
    """The sync function's budget trusts the process clock, as it does in Lambda (AWS keeps the
    clock; `wiring` asks `settings.deployed()`). Outside Lambda a process first measures its
    clock against the table's (about 2.5 s of probes before its first request: what `chalice
    local` and the CLI pay), which would put a cost into every run that no deployed sync has."""
    from chalicelib.amo.budget import SharedBudget

    class LambdaBudget(SharedBudget):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "trusted_clock": True})

    wiring.SharedBudget = LambdaBudget  # type: ignore[misc]


def without_sync_lease() -> None:
    """`--no-lease`: the fleet benchmark runs several syncs at once to load the shared budget;
    deployed, the sync lease would let only one of them run."""
    import contextlib
    from collections.abc import Callable, Iterator, Sequence

    from chalicelib.services.sync import lease

    @contextlib.contextmanager
    def exclusive(meanwhile: Sequence[Callable[[], object]] = ()) -> Iterator[lease.Lease]:
        for work in meanwhile:  # the start-up work (token, slots) as the lease would run it
            work()
        yield lease.Lease("benchmark")

    lease.exclusive = exclusive


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


class FirstRequest:
    """When the sync's first amoCRM request leaves (handed to the HTTP session), on the
    monotonic clock; everything before it (the lease, the token, the budget's claim, the wait
    for a slot) is the sync's start-up. `asked` is when a request first asked the budget for
    a slot (the start-up's own work is done by then: what follows is the wait for a slot)."""

    def __init__(self) -> None:
        from chalicelib.amo.budget import SharedBudget
        from chalicelib.amo.client import AmoClient

        self.at: float | None = None
        self.asked: float | None = None
        attempt, acquire = AmoClient._attempt, SharedBudget.acquire

        def timed(client: AmoClient, *args: Any, **kwargs: Any) -> Any:
            if self.at is None:
                self.at = time.monotonic()
            return attempt(client, *args, **kwargs)

        def asking(budget: SharedBudget, *args: Any, **kwargs: Any) -> float:
            if self.asked is None:
                self.asked = time.monotonic()
            return acquire(budget, *args, **kwargs)

        AmoClient._attempt = timed  # type: ignore[method-assign,assignment]
        SharedBudget.acquire = asking  # type: ignore[method-assign,assignment]

    def since(self, started: float) -> dict:
        def ms(moment: float | None) -> float | None:
            return round((moment - started) * 1000, 1) if moment is not None else None

        return {"first_request_ms": ms(self.at), "first_slot_asked_ms": ms(self.asked)}


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads): robust to a busy machine, unlike wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class DynamoCalls:
    """Every DynamoDB call the process makes: how many and how long, in all and per operation
    and table (`BatchWriteItem leads`: the table prefix left out), and the items batch writes
    carried. Hooked on each botocore client's events, so it sees what the code sends."""

    def __init__(self, table_prefix: str) -> None:
        self._prefix = table_prefix
        self._lock = threading.Lock()
        self._current = threading.local()  # this thread's call: (its keys, when it started)
        self.clear()

    def watch(self, client: Any) -> None:
        client.meta.events.register("provide-client-params.dynamodb.*", self._params)
        client.meta.events.register("before-call.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def clear(self) -> None:
        with self._lock:
            self.calls, self.seconds, self.batch_write_calls, self.batch_write_items = 0, 0.0, 0, 0
            self.operations: dict[str, list[float]] = {}

    def _params(self, params: dict, model: Any, **_: Any) -> None:
        tables = params["RequestItems"] if "RequestItems" in params else [params.get("TableName", "")]
        self._current.keys = [f"{model.name} {table.removeprefix(self._prefix)}" for table in tables]
        if model.name == "BatchWriteItem":
            with self._lock:
                self.batch_write_calls += 1
                self.batch_write_items += sum(len(requests) for requests in params["RequestItems"].values())

    def _before(self, **_: Any) -> None:
        self._current.started = time.perf_counter()

    def _after(self, **_: Any) -> None:
        took = time.perf_counter() - self._current.started
        with self._lock:
            self.calls += 1
            self.seconds += took
            for key in self._current.keys:
                entry = self.operations.setdefault(key, [0, 0.0])
                entry[0] += 1
                entry[1] += took

    def summary(self) -> dict:
        with self._lock:
            return {
                "batch_write_calls": self.batch_write_calls,
                "batch_write_items": self.batch_write_items,
                "dynamodb_calls": self.calls,
                "dynamodb_seconds": round(self.seconds, 2),
                "dynamodb_operations": {
                    key: {"calls": int(n), "ms_mean": round(1000 * seconds / n, 1)}
                    for key, (n, seconds) in sorted(self.operations.items())
                },
            }


def main() -> None:
    mode = sys.argv[1]  # full | incremental
    if "--writes" in sys.argv and sys.argv[sys.argv.index("--writes") + 1] == "discard":
        discard_entity_writes()
    if "--no-lease" in sys.argv:
        without_sync_lease()
    as_the_sync_lambda()
    logs.configure(40)
    calls = DynamoCalls(settings.table_prefix())
    for model in ALL_MODELS:
        calls.watch(model._get_connection().connection.client)
    wiring.token_store().get_access_token()  # connect-time work is not part of the sync
    profilers = profile_every_thread() if "--profile" in sys.argv else []
    calls.clear()
    first = FirstRequest()
    started, cpu_started = time.monotonic(), cpu_seconds()
    result = sync.sync_all(wiring.amo(), full=mode == "full")
    if profilers:
        save_profile(profilers, sys.argv[sys.argv.index("--profile") + 1])
    elapsed, cpu = time.monotonic() - started, cpu_seconds() - cpu_started
    limiter = wiring.amo().client.limiter
    print(
        json.dumps(
            {
                "seconds": elapsed,
                **first.since(started),
                "cpu_seconds": round(cpu, 2),
                "budget_calls": getattr(limiter, "store_calls", 0),
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "synced": result["leads"]["synced"],
                "errors": len(result["leads"]["errors"]),
                **calls.summary(),
            }
        )
    )


if __name__ == "__main__":
    main()
