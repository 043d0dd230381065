"""Admitting request starts towards amoCRM: the `Limiter` protocol, its lanes, and this process's own limiter.

amoCRM counts requests per rolling second (7 allowed per integration). The deployment-wide
limiter is the shared budget (shared.py); `RateLimiter` paces one process and is what the
budget falls back to when its table cannot be reached. Two rules together keep it under
the rate:
- pacing: consecutive sends are at least `(1 + margin) / rate` apart, so the rate is spread
  evenly instead of arriving in bursts;
- a sliding window over the *actual* send times: a send waits until the `rate`-th previous
  send is more than `1 + margin` seconds old. A thread that wakes late (GIL, a busy machine)
  therefore cannot squeeze an eighth request into amoCRM's second, which pacing by planned
  slots alone would allow.
No slot is reserved while a caller sleeps; it re-checks when it wakes. Many requests can be
in flight at once: only their start times are limited.

A cool-down after a 429 (1, 2, 4 … 60 s for consecutive ones, or a bounded Retry-After) or a
block (amoCRM's HTML 403) holds every later send back; a caller that would have to wait longer
than MAX_WAIT_SECONDS gets the error at once instead.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from chalicelib.amo.budget.tuning import FIRST_COOL_DOWN_SECONDS, LONGEST_COOL_DOWN_SECONDS, MAX_WAIT_SECONDS
from chalicelib.amo.errors import AmoBlocked, AmoRateLimited

INTERACTIVE, BULK = "interactive", "bulk"

# Called (when set in the caller's context) each time the API client admits an attempt of that
# caller, just before sending it (again on a retry; never for OAuth token requests): lets
# concurrent callers take their turns in a chosen order (pages.py). What it raises withdraws
# the attempt unsent and reaches the caller (a page that turned out to lie past its list's end).
ADMITTED: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("amo_admitted", default=None)


class Limiter(Protocol):
    """Admits request starts towards amoCRM (this process's limiter, or the shared budget)."""

    @property
    def interval(self) -> float:
        """Seconds between request starts at full pace."""

    def acquire(self, lane: str = INTERACTIVE) -> float: ...

    def rate_limited(self, retry_after: float | None) -> None:
        """amoCRM answered 429: cool down (longer for each one in a row)."""

    def claim_ahead(self, lane: str = INTERACTIVE) -> None: ...

    def succeeded(self) -> None:
        """amoCRM answered without a 429 or a block page."""

    def block(self, seconds: float) -> None:
        """amoCRM's HTML 403 block page: nothing is sent for `seconds`, then one probe."""

    def describe(self) -> dict: ...


def refuse_long_wait(until: float, now: float, blocked: bool) -> None:
    """Raise when honouring a pause would take longer than a caller should wait."""
    if until - now <= MAX_WAIT_SECONDS:
        return
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until)) if math.isfinite(until) else "further notice"
    if blocked:
        raise AmoBlocked(
            f"amoCRM has blocked this integration (HTML 403); no request is sent before {when} (or `budget clear`)",
            403,
        )
    raise AmoRateLimited(
        f"amoCRM answered 429: every process cools down; no request is sent before {when}; retry then", 429
    )


class RateLimiter:
    def __init__(
        self,
        rate_per_second: float,
        *,
        margin: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.rate = max(1, int(rate_per_second))
        self.window = (1.0 + margin) * self.rate / rate_per_second
        self.interval = (1.0 + margin) / rate_per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sends: deque[float] = deque(maxlen=self.rate)
        self._next_slot = 0.0
        self._blocked_until = 0.0
        self._streak = 0

    def acquire(self, lane: str = INTERACTIVE) -> float:
        """Block until this caller may send; returns the send time (on the limiter's clock)."""
        sent = self.acquire_before(math.inf)
        assert sent is not None  # nothing is later than math.inf
        return sent

    def acquire_before(self, deadline: float) -> float | None:
        """As `acquire`, but None (at the deadline) when the send would not start before it."""
        while True:
            with self._lock:
                now = self._clock()
                refuse_long_wait(self._next_slot, now, blocked=self._blocked_until > now)
                earliest = max(self._next_slot, self._sends[0] + self.window if len(self._sends) == self.rate else now)
                if earliest <= now < deadline:
                    self._sends.append(now)
                    self._next_slot = now + self.interval
                    return now
            if min(earliest, deadline) <= now:
                return None
            self._sleep(min(earliest, deadline) - now)

    def claim_ahead(self, lane: str = INTERACTIVE) -> None:
        """Nothing to claim: this process's own pace has no table to ask."""

    def pause(self, seconds: float) -> None:
        """Hold every later send back."""
        with self._lock:
            self._next_slot = max(self._next_slot, self._clock() + seconds)

    def rate_limited(self, retry_after: float | None) -> None:
        with self._lock:
            self._streak += 1
            cool = min(LONGEST_COOL_DOWN_SECONDS, FIRST_COOL_DOWN_SECONDS * 2 ** (self._streak - 1))
        self.pause(max(cool, retry_after or 0.0))

    def succeeded(self) -> None:
        self._streak = 0

    def block(self, seconds: float) -> None:
        """amoCRM's block page: nothing is sent for `seconds`; callers fail fast meanwhile."""
        with self._lock:
            self._blocked_until = self._clock() + seconds
            self._next_slot = max(self._next_slot, self._blocked_until)

    def describe(self) -> dict:
        return {"mode": "this process only", "ratePerSecond": self.rate}
