"""When to send an amoCRM request again, and how long to wait first.

One attempt ends in an `Attempt`: a response, or a transport failure that either left before
any byte was sent (`reached_server=False`) or may have reached amoCRM. The rules:
- transient: 429, 502/503/504, a timeout or a connection failure;
- safe to re-send: a read (GET, HEAD, PUT, DELETE, OPTIONS), or a write that amoCRM certainly
  did not process (a 429, or a connection that never opened). A write that timed out, lost
  its connection after sending or got a 5xx may have landed: it is never re-sent;
- the wait: amoCRM's Retry-After when it gives one (no retry when it asks for longer than
  `max_retry_after`), else capped exponential backoff with equal jitter.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Attempt:
    """What one send produced: a response, or a transport failure described in words."""

    response: requests.Response | None = None
    failure: str | None = None
    reached_server: bool = True

    @property
    def status(self) -> int | None:
        return self.response.status_code if self.response is not None else None


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Retry-After as seconds (a number or an HTTP date), or None when absent or unreadable."""
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 4.0
    max_retry_after: float = 30.0

    def is_transient(self, attempt: Attempt) -> bool:
        return attempt.response is None or attempt.status in RETRYABLE_STATUSES

    def may_resend(self, method: str, attempt: Attempt) -> bool:
        """True when sending again cannot apply a write twice."""
        return method in IDEMPOTENT_METHODS or attempt.status == 429 or not attempt.reached_server

    def backoff(self, number: int, rand: Callable[[], float]) -> float:
        """Equal jitter: half the capped exponential delay, plus a random share of the other half."""
        delay = min(self.max_delay, self.base_delay * (2 ** (number - 1)))
        return delay / 2 + rand() * delay / 2

    def delay(self, attempt: Attempt, number: int, rand: Callable[[], float]) -> float | None:
        """Seconds to wait before attempt `number + 1`; None when amoCRM asks for too long."""
        asked = retry_after_seconds(attempt.response)
        if asked is None:
            return self.backoff(number, rand)
        return asked if asked <= self.max_retry_after else None

    def should_retry(self, method: str, attempt: Attempt, number: int) -> bool:
        return number < self.max_attempts and self.is_transient(attempt) and self.may_resend(method, attempt)
