"""A pacing limiter shared by every thread of the process that talks to amoCRM.

amoCRM counts requests per rolling second (7 allowed). Requests reach it after network
latency that varies, so sending exactly 7 evenly spaced requests per second still draws
429s. The limiter hands out send slots spaced `(1 + margin) / rate` seconds apart, which
keeps any rolling second at or under `rate` sends even when arrival times jitter by up to
about `margin` seconds. Slots are reserved under a lock and slept on outside it, so many
requests can be in flight at once: only their start times are paced.
"""
from __future__ import annotations

import threading
import time
from typing import Callable


class RateLimiter:
    def __init__(self, rate_per_second: float = 7.0, margin_seconds: float = 0.08,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = (1.0 + margin_seconds) / rate_per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0

    def acquire(self) -> float:
        """Wait for this caller's send slot; returns the slot time (on the limiter's clock)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        if slot > now:
            self._sleep(slot - now)
        return slot

    def pause(self, seconds: float) -> None:
        """Push every later slot back, e.g. after amoCRM answered 429 with Retry-After."""
        with self._lock:
            self._next_slot = max(self._next_slot, self._clock() + seconds)


_shared: dict[float, RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(rate_per_second: float) -> RateLimiter:
    """The process-wide limiter for a given rate (one amoCRM account per deployment)."""
    with _shared_lock:
        if rate_per_second not in _shared:
            _shared[rate_per_second] = RateLimiter(rate_per_second)
        return _shared[rate_per_second]
