"""Traffic: the rolling-second rate limit, throttling (429) and the self-imposed block, and keeping the counters
behind `GET /_sandbox/stats` (stats.py)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sandbox.account import Account
from sandbox.errors import problem
from sandbox.stats import Stats

if TYPE_CHECKING:
    from sandbox.webhooks import Dispatcher

BLOCK_WINDOW = 60.0  # seconds over which 429s count towards the account block


class Traffic(Account):
    arrivals: list[float]  # monotonic times of the requests admitted in the last second
    recent: list[float]  # monotonic times of every request in the last second (for peak_rps)
    last_starts: deque[float]  # monotonic times of the last rate_limit + 1 requests (for tightest_span_ms)
    throttled: tuple[float, int | None]  # the last POST /_sandbox/throttle: (until, its Retry-After)
    refusals: list[float]  # monotonic times of the 429s answered in the last BLOCK_WINDOW
    dispatcher: Dispatcher

    def admit(self, path_key: str) -> bool:
        """Count one API request; False when it is refused (→ 429): throttled, or over the rate limit."""
        moment, wall = time.monotonic(), time.time()
        with self.lock:
            self._count(path_key, moment, wall)
            self.arrivals = [t for t in self.arrivals if moment - t < 1.0]
            allowed = wall >= self.config.rate_limited_until and len(self.arrivals) < self.config.rate_limit
            if allowed:
                self.arrivals.append(moment)
            else:
                self.stats.rate_limited += 1
            return allowed

    def _count(self, path_key: str, moment: float, wall: float) -> None:
        stats = self.stats
        stats.requests += 1
        stats.by_path[path_key] = stats.by_path.get(path_key, 0) + 1
        stats.first_request_at = stats.first_request_at or wall
        stats.last_request_at = wall
        stats.per_second[int(wall)] = stats.per_second.get(int(wall), 0) + 1
        # the busiest rolling second always ends at an arrival, so checking at each arrival finds it
        self.recent = [t for t in self.recent if moment - t < 1.0] + [moment]
        stats.peak_rps = max(stats.peak_rps, len(self.recent))
        starts, window = self.last_starts, max(1, int(self.config.rate_limit)) + 1
        starts.append(moment)
        while len(starts) > window:
            starts.popleft()
        if len(starts) == window:
            span = round((starts[-1] - starts[0]) * 1000, 1)
            stats.tightest_span_ms = span if stats.tightest_span_ms is None else min(stats.tightest_span_ms, span)

    def refuse(self) -> int | None:
        """Count one 429 answer; the Retry-After to send with it, None for none (amoCRM sends none,
        reference §3.4). The `block_after_429s`-th 429 within a rolling minute blocks the account:
        `blocked` is set, as by hand, until `POST /_sandbox/config {blocked: false}` (§3.4, §13)."""
        moment = time.monotonic()
        with self.lock:
            self.stats.statuses["429"] = self.stats.statuses.get("429", 0) + 1
            self.refusals = [t for t in self.refusals if moment - t < BLOCK_WINDOW] + [moment]
            if self.config.block_after_429s and len(self.refusals) >= self.config.block_after_429s:
                self.config.blocked = True
                self.stats.blocks += 1
                self.refusals = []  # a lifted block starts counting afresh
            until, given = self.throttled
            if given is not None and until == self.config.rate_limited_until > time.time():
                return given
            return self.config.retry_after

    def throttle(self, body: Any) -> dict:
        """Control action: every API request answers 429 for `seconds` (0 lifts it), with
        Retry-After `retry_after` when given (else Config.retry_after, by default none)."""
        seconds = body.get("seconds") if isinstance(body, dict) else None
        given = body.get("retry_after") if isinstance(body, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise problem(400, "Bad Request", "seconds must be a number >= 0")
        if given is not None and (isinstance(given, bool) or not isinstance(given, int) or given < 0):
            raise problem(400, "Bad Request", "retry_after must be a whole number of seconds >= 0")
        with self.lock:
            self.config.rate_limited_until = time.time() + seconds if seconds else 0.0
            self.throttled = (self.config.rate_limited_until, given)
            return {"rate_limited_until": self.config.rate_limited_until, "retry_after": given}

    def record_status(self, status: int) -> None:
        with self.lock:
            key = str(status)
            self.stats.statuses[key] = self.stats.statuses.get(key, 0) + 1

    def record_fault(self) -> None:
        with self.lock:
            self.stats.injected_faults += 1

    def reset_stats(self) -> None:
        with self.lock:
            self.stats = Stats()
            self.recent = []
            self.last_starts.clear()

    def stats_view(self) -> dict:
        """The counters; `requests_by_second[i]` counts API requests in wall-clock second
        `requests_by_second_from + i` (from the first request since the reset to the last)."""
        with self.lock:
            view = asdict(self.stats)
            per_second = view.pop("per_second")
            if per_second:
                start = min(per_second)
                view["requests_by_second_from"] = start
                view["requests_by_second"] = [per_second.get(second, 0) for second in range(start, max(per_second) + 1)]
            else:
                view["requests_by_second_from"], view["requests_by_second"] = None, []
            return {**view, "deliveries": len(self.dispatcher.deliveries)}
