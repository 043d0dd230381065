"""One run over an entity's pages (a `Run`) and what came of it (an `Outcome`).

- `limit` caps the items taken (0 = all); amoCRM is always paged with limit=250.
- A whole list is paged by number with several pages in flight (amo/pages.py); a changes-only
  window of a list amoCRM orders by `updated_at` is read by keyset (`keyset`, amo/keyset.py), so
  an item edited while the run reads does not make it skip another.
- A run that is about to exceed its time (Lambda's 15 minutes, API Gateway's 29 seconds)
  finishes the page in hand and stops; its Outcome names the page to continue from, which
  runs.py hands over to a continuation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from chalicelib import metrics
from chalicelib.amo.api import AmoApi
from chalicelib.amo.client import PAGE_LIMIT
from chalicelib.amo.filters import ListFilter
from chalicelib.amo.keyset import KeysetPages, KeysetState
from chalicelib.amo.pages import PageFetcher
from chalicelib.services.sync.entities import ENTITIES, PageWriter

RESERVE_SECONDS = 20  # stop starting pages when less than this is left
FULL_RUN_WINDOW = 4

TimeLeft = Callable[[], float]
Progress = Callable[[dict], None]


@dataclass(frozen=True)
class Run:
    """What one pass over an entity's pages is asked to do."""

    entity: str
    _: KW_ONLY
    where: ListFilter | None = None  # None: the whole list, unfiltered
    limit: int = 0  # items to take at most; 0: all
    first_page: int = 1
    already: int = 0  # items the job's earlier invocations synced (a continuation)
    time_left: TimeLeft | None = None  # None: run to the end
    progress: Progress | None = None
    check: Callable[[list[Any]], None] | None = None  # sees each page before it is written; may raise
    ready: Callable[[], object] | None = None  # awaited before the first page is written
    keyset: KeysetState | None = None  # read the window by `updated_at` from here (`first_page` counts steps)
    expected_items: int | None = None  # how many the whole list held when last read whole (None: unknown)

    @property
    def filter(self) -> ListFilter:
        """The filter the list is asked for with (an empty one for the whole list)."""
        return self.where if self.where is not None else ENTITIES[self.entity].filter_type()

    def out_of_time(self) -> bool:
        return self.time_left is not None and self.time_left() < RESERVE_SECONDS


@dataclass
class Outcome:
    synced: int = 0
    errors: list[dict] = field(default_factory=list)
    next_page: int | None = None  # None: complete
    keyset: dict | None = None  # a keyset run's state to continue from (with next_page)

    def as_result(self) -> dict:
        result: dict[str, Any] = {"synced": self.synced, "errors": self.errors}
        if self.next_page is not None:
            result["status"] = "continuing"
        return result


def sync_pages(amo: AmoApi, run: Run) -> Outcome:
    """Fetch the run's pages and write them, until the list ends, `limit` items are in or time
    runs low."""
    spec = ENTITIES[run.entity]
    began = time.monotonic()
    fetcher: PageFetcher | KeysetPages
    if run.keyset is not None:
        fetcher = spec.resource(amo).keyset_pages(run.keyset, first_step=run.first_page)
    else:
        last_page = math.ceil(run.limit / PAGE_LIMIT) if run.limit else None
        expected_last_page = _expected_last_page(run)
        fetcher = spec.resource(amo).pages(
            run.filter,
            first_page=run.first_page,
            last_page=last_page,
            initial_window=_expected_pages(run, min(filter(None, (last_page, expected_last_page)), default=None)),
            expected_last_page=expected_last_page,
        )
    writer = spec.writer(amo)
    outcome = Outcome()
    try:
        outcome.next_page = _consume(run, fetcher, writer)
    finally:
        writer.close()
    if isinstance(fetcher, KeysetPages) and outcome.next_page is not None:
        outcome.keyset = fetcher.state.as_dict()
    outcome.synced, outcome.errors = writer.synced, writer.errors
    metrics.count("SyncItems", outcome.synced, Entity=run.entity)
    metrics.measure("SyncDuration", time.monotonic() - began, "Seconds", Entity=run.entity)
    if run.progress:
        run.progress(
            {"entity": run.entity, "page": None, "synced": run.already + outcome.synced, "errors": len(outcome.errors)}
        )
    return outcome


def _expected_pages(run: Run, last_page: int | None) -> int:
    """Pages worth requesting before the first answer: a whole list (a full sync, or the rest
    of one) most likely has several, and at 400 ms waiting for the first alone costs a latency
    (at worst FULL_RUN_WINDOW - 1 requests answered 204 for a tiny account whose size is not
    known yet); a changes-only run usually has one."""
    where = run.filter
    if where.by_ids or (where.updated_from is not None and run.first_page == 1):
        return 1  # a continuation (first_page > 1) is known to have more
    return max(1, min(FULL_RUN_WINDOW, last_page - run.first_page + 1)) if last_page else FULL_RUN_WINDOW


def _expected_last_page(run: Run) -> int | None:
    """Where the list is expected to end: the page its items filled when it was last read whole
    (amo/pages.py asks no page past it before an answer says one follows)."""
    if run.expected_items is None or run.keyset is not None:
        return None
    return max(1, math.ceil(run.expected_items / PAGE_LIMIT))


def _consume(run: Run, fetcher: PageFetcher | KeysetPages, writer: PageWriter) -> int | None:
    """Write the pages as they come; the page to continue from, or None when the run is complete."""
    remaining = run.limit - run.already if run.limit else None
    ready = run.ready
    limit_reached = False
    for page in fetcher.pages(should_stop=run.out_of_time):
        if run.check is not None:
            run.check(page.items)
        if ready is not None:  # e.g. the pipelines a lead page is mapped with
            ready()
            ready = None
        items = page.items if remaining is None else page.items[:remaining]
        writer.add_page(items)
        if run.progress:
            run.progress(
                {
                    "entity": run.entity,
                    "page": page.number,
                    "synced": run.already + writer.synced,
                    "errors": len(writer.errors),
                }
            )
        if remaining is not None:
            remaining -= len(items)
            limit_reached = remaining <= 0
        if limit_reached or run.out_of_time():
            break
    next_page = None if fetcher.exhausted or limit_reached else fetcher.next_to_yield
    if ready is not None:
        ready()
    writer.flush()
    return next_page
