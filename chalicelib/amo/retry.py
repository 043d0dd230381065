"""When to send an amoCRM request again, and how long to wait first.

One attempt ends in an `Attempt`: a response, or a transport failure that either left before
any byte was sent (`reached_server=False`) or may have reached amoCRM. The rules:
- transient: 429, 502/503/504, a timeout or a connection failure; a 500 once (asked again once);
- safe to re-send: a read (GET, HEAD, PUT, DELETE, OPTIONS), or a write that amoCRM certainly
  did not process (a 429, or a connection that never opened). A write that timed out, lost
  its connection after sending or got a 5xx may have landed: it is never re-sent;
- the wait: amoCRM's Retry-After when it gives one (no retry when it asks for longer than
  `max_retry_after`), else capped exponential backoff with equal jitter;
- a 429 is retried at most MAX_429_RETRIES times: each one moves the account towards amoCRM's
  block (reference §3.4). The wait after a 429 is the budget's shared cool-down, not a backoff.

amoCRM's own 429 carries no Retry-After (reference §3.4); a proxy's might. One is believed only
up to MAX_RETRY_AFTER_SECONDS: a non-finite, negative or absurd value (more than a day), or an
unreadable date, is ignored, so one odd header cannot stop the deployment.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_500_ATTEMPTS = 2  # a read answered 500 is asked once more, not max_attempts times
MAX_429_RETRIES = 2  # reference §3.4: "retry 2-3 times at most"; a sync hands over instead
MAX_RETRY_AFTER_SECONDS = 120.0  # the longest pause a Retry-After may ask of the deployment
ABSURD_RETRY_AFTER_SECONDS = 86400.0  # beyond a day the header is taken for garbage and ignored


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
    """Retry-After as seconds (a number or an HTTP date), at most MAX_RETRY_AFTER_SECONDS; None
    when absent, unreadable, non-finite or absurd (see the module's docstring)."""
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds) or seconds > ABSURD_RETRY_AFTER_SECONDS:
        return None
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds))


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
        if attempt.status == 500 and number >= MAX_500_ATTEMPTS:
            return False  # a 500 that comes back is the request's own (a broken entity or filter)
        return number < self.max_attempts and self.is_transient(attempt) and self.may_resend(method, attempt)
