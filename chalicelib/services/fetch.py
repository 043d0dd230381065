"""Fetch amoCRM list pages with several requests in flight, in page order.

One page of 250 leads can take longer than amoCRM's 1/7 s request slot, so fetching one page
at a time cannot reach the rate limit. Pages are addressable by number, so the fetcher keeps
a small window of page requests in flight (all paced by the shared limiter) and hands pages
to the caller in order as they complete. The window adapts to the observed latency: wide
enough to keep the limiter busy, no wider, because the speculative requests past the last
page are wasted (amoCRM answers them 204). Memory is bounded by the window.
"""
from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

from chalicelib.amo.client import AmoClient

MAX_WINDOW = 6


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

    def _fetch(self, number: int) -> Page:
        items, has_next = self.client.get_page(self.path, self.key, number, self.params)
        latency = self.client.last_latency
        self._latency = latency if not self._latency else 0.7 * self._latency + 0.3 * latency
        return Page(number, items, has_next)

    def _window(self) -> int:
        """Pages in flight: enough to cover one page's latency with send slots, at least one."""
        interval = getattr(self.client.limiter, "interval", 0.15) or 0.15
        return max(1, min(self.max_window, math.ceil(self._latency / interval)))

    def pages(self, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Page]:
        """Yield pages in order until the last one (or `should_stop()` before a page is started)."""
        in_flight: dict[int, Future] = {}
        next_to_request = self.next_to_yield
        finished = False
        with ThreadPoolExecutor(max_workers=self.max_window, thread_name_prefix="amo-page") as pool:
            try:
                while True:
                    while (not finished and len(in_flight) < self._window() and not should_stop()
                           and (self.last_page is None or next_to_request <= self.last_page)):
                        in_flight[next_to_request] = pool.submit(self._fetch, next_to_request)
                        next_to_request += 1
                    future = in_flight.pop(self.next_to_yield, None)
                    if future is None:  # stopped before requesting it (or past `last_page`)
                        self.exhausted = self.last_page is not None and self.next_to_yield > self.last_page
                        return
                    page = future.result()
                    self.next_to_yield += 1
                    if not page.items or not page.has_next:
                        finished = True
                    if page.items:
                        yield page
                    if finished:
                        self.exhausted = True
                        return
            finally:
                for future in in_flight.values():
                    future.cancel()
