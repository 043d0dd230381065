"""HAL list pages, and fetching them with several requests in flight, in page order.

amoCRM lists are HAL pages: `_embedded.<key>` holds the items, `_links.next` says whether
another page follows, and a page past the end is a 204 with no body (reference §3.3).

One page of 250 leads can take longer than amoCRM's 1/7 s request slot, so fetching one page
at a time cannot reach the rate limit. Pages are addressable by number, so `PageFetcher`
keeps a window of page requests in flight and hands pages to the caller in order.

The fetcher is a bounded producer/consumer around one condition variable:
- workers take the next page number while fewer than `window` requests run, fewer than
  `window + BUFFERED_PAGES` pages are unconsumed, the end has not been seen and the caller
  has not asked to stop; a worker that finishes a page takes the next number at once, so the
  caller's own work on a page never leaves the connection idle;
- the window adapts to the observed wire latency: wide enough to keep the limiter busy, no
  wider, because requests past the last page are wasted (amoCRM answers them 204);
- the caller receives pages strictly in order and stops at the first empty page or the
  first page without a next link;
- a page request still waiting for its slot when an answer shows the list ends before it is
  withdrawn at admission (the ADMITTED hook raises; nothing is sent). Pages already sent by
  then are answered 204: amoCRM's lead lists give no total, so the end is known only once the
  last page has arrived;
- so where the caller expects the list to end (`expected_last_page`, from how long it was the
  last time it was read whole), no page past it is asked until the page before says another
  follows: a list as long as last time costs no request past its end at any latency. A list
  that has grown pays about two latencies: the first page past the expected end is asked once
  the page before has answered, and once that one says more follow, the estimate is known to
  be wrong and the window opens again;
- requests are admitted by the limiter in page order: a worker asks for its slot only once the
  page before has been admitted (`ADMITTED`), or has finished or failed, or the fetcher has
  closed. Otherwise a thread that wakes late loses its slot to a later page, and the caller,
  who needs the earlier page first, waits for it.
Memory is bounded by the window plus a small buffer.
"""

from __future__ import annotations

import contextvars
import functools
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.amo.budget import ADMITTED

MAX_WINDOW = 6
BUFFERED_PAGES = 2  # fetched pages waiting for the caller, on top of the requests in flight


class _PastTheEnd(Exception):
    """Raised from the ADMITTED hook: the page lies past the list's end (or the caller has
    stopped), so nothing is sent."""


@dataclass
class Page:
    number: int
    items: list[dict]
    has_next: bool


def embedded(body: Any, key: str) -> list[dict]:
    """The `_embedded[key]` items of a HAL body (an empty list for 204 or an odd body)."""
    if not isinstance(body, dict):
        return []
    items = (body.get("_embedded") or {}).get(key) if isinstance(body.get("_embedded"), dict) else None
    return items if isinstance(items, list) else []


def next_href(body: Any) -> str | None:
    """`_links.next.href` of a HAL body, if any."""
    links = body.get("_links") if isinstance(body, dict) else None
    nxt = links.get("next") if isinstance(links, dict) else None
    href = nxt.get("href") if isinstance(nxt, dict) else None
    return href if isinstance(href, str) and href else None


class PageFetcher:
    """Pages `first_page`, `first_page + 1`, … (up to `last_page`) of one list, in order.

    `fetch(number)` requests one page; `latency()` reports the last request's wire time and
    `interval` the limiter's spacing between request starts (both size the window). With
    `in_turn`, `fetch` goes through a limiter that calls `ADMITTED`, and pages are admitted in order.
    """

    def __init__(
        self,
        fetch: Callable[[int], Page],
        *,
        first_page: int = 1,
        last_page: int | None = None,
        max_window: int = MAX_WINDOW,
        latency: Callable[[], float] = lambda: 0.0,
        interval: float = 0.15,
        in_turn: bool = False,
        initial_window: int = 1,
        expected_last_page: int | None = None,
    ):
        self._fetch_page = fetch
        self._latency_of_last = latency
        self._interval = interval or 0.15
        self._initial_window = max(1, min(max_window, initial_window))
        self._in_turn = in_turn  # `fetch` goes through a limiter that reports admissions (ADMITTED)
        self.next_to_yield = first_page
        self.last_page = last_page
        self.expected_last_page = expected_last_page
        self.max_window = max_window
        self.exhausted = False  # True once the last page has been handed out
        self._cond = threading.Condition()
        self._results: dict[int, Page | BaseException] = {}
        self._next_to_request = first_page
        self._running = 0
        self._admitted = first_page - 1  # the highest page whose request the limiter has admitted
        self._latency = 0.0
        self._end_seen = False
        self._end_page: int | None = None  # a worker whose turn comes after the end skips its request
        self._continues_after = first_page - 1  # the highest page whose answer said another follows
        self._closed = False
        self._should_stop: Callable[[], bool] = lambda: False

    # -- rules ----------------------------------------------------------------------------------

    def window(self) -> int:
        """Requests in flight: enough to cover one page's latency with send slots, plus one waiting
        for the next slot once pages are known to follow (a shared budget hands out slots at fixed
        times: a request that is not ready at its slot waits for the next one); at least one.
        Before any latency is known, `initial_window`: a caller that expects many pages
        (a full sync) need not pay one whole latency for the first page alone."""
        if not self._latency:  # nothing measured yet
            return self._initial_window
        return max(1, min(self.max_window, math.ceil(self._latency / self._interval) + 1))

    def _may_start_another(self) -> bool:
        """Called under the lock: may a worker request the next page number now?"""
        return (
            not self._closed
            and not self._end_seen
            and self._running < self.window()
            and len(self._results) + self._running < self.window() + BUFFERED_PAGES
            and (self.last_page is None or self._next_to_request <= self.last_page)
            and self._known_or_expected(self._next_to_request)
            and not self._should_stop()
        )

    def _known_or_expected(self, number: int) -> bool:
        """Is page `number` worth asking now: not past the expected end, or an answer already
        says it exists, or the list has outgrown the expectation (see the module's rules)?"""
        expected = self.expected_last_page
        return expected is None or number <= expected or self._continues_after >= min(number - 1, expected + 1)

    # -- workers --------------------------------------------------------------------------------

    def _start_workers(self) -> None:
        """Called under the lock: one worker per request the rules allow now."""
        while self._may_start_another():
            number = self._next_to_request
            self._next_to_request += 1
            self._running += 1
            # in a copy of the caller's context: the worker's log lines keep the correlation id
            threading.Thread(
                target=contextvars.copy_context().run, args=(self._work, number), name=f"amo-page-{number}", daemon=True
            ).start()

    def _work(self, number: int) -> None:
        ADMITTED.set(functools.partial(self._admit, number))  # this worker's own context
        with self._cond:
            while self._in_turn and self._admitted < number - 1 and not self._closed:
                self._cond.wait(0.5)
            closed = self._closed or (self._end_page is not None and number > self._end_page)
        result: Page | BaseException | None = None
        if not closed:
            try:
                result = self._fetch_page(number)
            except _PastTheEnd:
                result = None  # withdrawn before it was sent, like a closed fetcher's
            except BaseException as error:  # handed to the caller, who re-raises it in order
                result = error
        latency = self._latency_of_last()
        with self._cond:
            self._running -= 1
            self._admitted = max(self._admitted, number)  # failed before it was sent: the next goes on
            if result is None:
                self._cond.notify_all()
                return
            self._latency = latency if not self._latency else 0.7 * self._latency + 0.3 * latency
            if isinstance(result, Page) and (not result.items or not result.has_next):
                self._end_seen = True
                self._end_page = number if self._end_page is None else min(self._end_page, number)
            elif isinstance(result, Page):
                self._continues_after = max(self._continues_after, number)
            if not self._closed:
                self._results[number] = result
                self._start_workers()
            self._cond.notify_all()

    def _admit(self, number: int) -> None:
        """The limiter admitted page `number`'s request: the next page may ask for its slot. A page
        that nobody will take any more (past an end an answer showed while it waited for its slot,
        or the caller has stopped) is withdrawn unsent."""
        with self._cond:
            self._admitted = max(self._admitted, number)
            self._cond.notify_all()
            if self._closed or (self._end_page is not None and number > self._end_page):
                raise _PastTheEnd(number)

    # -- the caller -----------------------------------------------------------------------------

    def pages(self, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Page]:
        """Yield pages in order until the last one (or `should_stop()` before a page is started)."""
        self._should_stop = should_stop
        try:
            with self._cond:
                self._start_workers()
            while True:
                with self._cond:
                    while self.next_to_yield not in self._results:
                        if self._running == 0 and not self._may_start_another():
                            # stopped before requesting it (or past `last_page`)
                            self.exhausted = self.last_page is not None and self.next_to_yield > self.last_page
                            return
                        self._start_workers()
                        if self.next_to_yield not in self._results:
                            self._cond.wait(0.5)
                    result = self._results.pop(self.next_to_yield)
                    self._start_workers()
                if isinstance(result, BaseException):
                    raise result
                self.next_to_yield += 1
                if result.items:
                    yield result
                if not result.items or not result.has_next:
                    self.exhausted = True
                    return
        finally:
            with self._cond:
                self._closed = True
                self._results.clear()
