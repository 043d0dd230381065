"""The request limiter shared by every thread of the process that talks to amoCRM.

amoCRM counts requests per rolling second (7 allowed). Two rules together keep us under it:
- pacing: consecutive sends are at least `(1 + margin) / rate` apart, so the rate is spread
  evenly instead of arriving in bursts;
- a sliding window over the *actual* send times: a send waits until the `rate`-th previous
  send is more than `1 + margin` seconds old. A thread that wakes late (GIL, a busy machine)
  therefore cannot squeeze an eighth request into amoCRM's second, which pacing by planned
  slots alone would allow.
No slot is reserved while a caller sleeps; it re-checks when it wakes. Many requests can be
in flight at once: only their start times are limited.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Protocol


class Limiter(Protocol):
    """Admits request starts towards amoCRM (this process's limiter, or the shared budget)."""

    def acquire(self) -> float: ...

    def pause(self, seconds: float) -> None: ...


class RateLimiter:
    def __init__(self, rate_per_second: float = 7.0, margin_seconds: float = 0.05,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate = max(1, int(rate_per_second))
        self.window = (1.0 + margin_seconds) * self.rate / rate_per_second
        self.interval = (1.0 + margin_seconds) / rate_per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sends: deque[float] = deque(maxlen=self.rate)
        self._next_slot = 0.0

    def acquire(self) -> float:
        """Block until this caller may send; returns the send time (on the limiter's clock)."""
        while True:
            with self._lock:
                now = self._clock()
                earliest = max(self._next_slot,
                               self._sends[0] + self.window if len(self._sends) == self.rate else now)
                if earliest <= now:
                    self._sends.append(now)
                    self._next_slot = now + self.interval
                    return now
            self._sleep(earliest - now)

    def pause(self, seconds: float) -> None:
        """Hold every later send back, e.g. after amoCRM answered 429 with Retry-After."""
        with self._lock:
            self._next_slot = max(self._next_slot, self._clock() + seconds)

