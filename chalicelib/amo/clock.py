"""amoCRM's clock, as its answers show it.

The syncs filter on amoCRM's `updated_at` and the events log on its `created_at`, so their
windows are drawn on amoCRM's clock (services/sync/state.py): drawn on ours, with amoCRM's
clock behind ours by more than the windows' overlap, they skipped what changed between runs.
"""

from __future__ import annotations

import email.utils
import time

import requests

from chalicelib.memo import memoize


class AmoClock:
    """amoCRM's clock against ours, from the `Date` header of its latest answer (to the second;
    none heard yet: taken as ours)."""

    def __init__(self) -> None:
        self.offset: float | None = None  # amoCRM's time minus ours, in seconds

    def heard(self, response: requests.Response) -> None:
        value = response.headers.get("Date")
        try:
            stamp = email.utils.parsedate_to_datetime(value).timestamp() if value else None
        except (TypeError, ValueError, IndexError, OverflowError):
            stamp = None
        if stamp is not None:  # the header is truncated to its second: amoCRM's time is at most a second past it
            self.offset = stamp + 1.0 - time.time()  # so a window's top is never short of amoCRM's now

    def now(self, ours: float | None = None) -> float:
        """amoCRM's time when ours is `ours` (default: now)."""
        return (time.time() if ours is None else ours) + (self.offset or 0.0)


@memoize()
def amo_clock() -> AmoClock:
    """The process's view of amoCRM's clock (one amoCRM account per deployment)."""
    return AmoClock()
