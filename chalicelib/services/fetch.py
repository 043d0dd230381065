"""Fetch amoCRM list pages with several requests in flight, in page order.

One page of 250 leads can take longer than amoCRM's 1/7 s request slot, so fetching one page
at a time cannot reach the rate limit. Pages are addressable by number, so the fetcher keeps
a window of page requests in flight (all paced by the shared limiter) and hands pages to the
caller in order. A finished request immediately starts the next one, so the caller's own
work on a page never leaves the connection idle. The window adapts to the observed wire
latency: wide enough to keep the limiter busy, no wider, because requests past the last page
are wasted (amoCRM answers them 204). Memory is bounded by the window plus a small buffer.
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

from chalicelib.amo.client import AmoClient

MAX_WINDOW = 6
BUFFERED_PAGES = 2  # fetched pages waiting for the caller, on top of the requests in flight


@dataclass
class Page:
    number: int
    items: list[dict]
    has_next: bool


class PageFetcher:
    def __init__(self, client: AmoClient, path: str, embedded_key: str, params: dict | None = None,
                 first_page: int = 1, last_page: int | None = None, max_window: int = MAX_WINDOW):
        self.client = client
        self.path = path
        self.key = embedded_key
        self.params = dict(params or {})
        self.next_to_yield = first_page
        self.last_page = last_page
        self.max_window = max_window
        self.exhausted = False  # True once the last page has been handed out
        self._latency = 0.0
        self._lock = threading.RLock()
        self._futures: dict[int, Future] = {}
        self._running = 0
        self._next_to_request = first_page
        self._end_seen = False
        self._closed = False
        self._pool: ThreadPoolExecutor | None = None
        self._should_stop: Callable[[], bool] = lambda: False

    def _fetch(self, number: int) -> Page:
        try:
            items, has_next = self.client.get_page(self.path, self.key, number, self.params)
        finally:
            with self._lock:
                self._running -= 1
        latency = self.client.last_latency
        with self._lock:
            self._latency = latency if not self._latency else 0.7 * self._latency + 0.3 * latency
            if not items or not has_next:
                self._end_seen = True
        return Page(number, items, has_next)

    def _window(self) -> int:
        """Pages in flight: enough to cover one page's latency with send slots, at least one."""
        interval = getattr(self.client.limiter, "interval", 0.15) or 0.15
        return max(1, min(self.max_window, math.ceil(self._latency / interval)))

    def _fill(self, _done: Future | None = None) -> None:
        with self._lock:
            window = self._window()
            while (not self._closed and not self._end_seen and self._running < window
                   and len(self._futures) < window + BUFFERED_PAGES and not self._should_stop()
                   and (self.last_page is None or self._next_to_request <= self.last_page)):
                number = self._next_to_request
                try:
                    future = self._pool.submit(self._fetch, number)
                except RuntimeError:  # the pool is shutting down
                    return
                self._running += 1
                self._next_to_request += 1
                self._futures[number] = future
                future.add_done_callback(self._fill)

    def pages(self, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Page]:
        """Yield pages in order until the last one (or `should_stop()` before a page is started)."""
        self._should_stop = should_stop
        with ThreadPoolExecutor(max_workers=self.max_window, thread_name_prefix="amo-page") as pool:
            self._pool = pool
            try:
                self._fill()
                while True:
                    with self._lock:
                        future = self._futures.pop(self.next_to_yield, None)
                    if future is None:  # stopped before requesting it (or past `last_page`)
                        self.exhausted = self.last_page is not None and self.next_to_yield > self.last_page
                        return
                    page = future.result()
                    self.next_to_yield += 1
                    if page.items:
                        yield page
                    if not page.items or not page.has_next:
                        self.exhausted = True
                        return
                    self._fill()
            finally:
                with self._lock:
                    self._closed = True
                    for future in self._futures.values():
                        future.cancel()
