"""Accounts that ignore amoCRM's list filters (reference §13): noticed, remembered, and syncs
that never re-read the whole account every 15 minutes because of them.

Filtering by `updated_at` or id works only on accounts enrolled in API filtering; elsewhere
amoCRM silently answers the unfiltered list. An incremental run notices it on its first page
(items changed outside the range it asked for), a contact batch fetch by ids it did not ask
for. Either way the account is marked (a `SyncState` item), and from then on an incremental
run of an entity is a full run at most every FULL_SYNC_INTERVAL and skipped in between:
blind full iteration every 15 minutes is what amoCRM blocks accounts for. `status` says so.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from chalicelib import metrics
from chalicelib.amo.filters import ListFilter
from chalicelib.models import SyncState

log = logging.getLogger(__name__)

KEY = "filters"
FULL_SYNC_INTERVAL = 4 * 3600


class FiltersIgnored(Exception):
    """amoCRM answered a filtered list with items outside the filter."""


def _state() -> SyncState | None:
    try:
        return SyncState.get(KEY, consistent_read=True)
    except SyncState.DoesNotExist:
        return None


def ignored() -> bool:
    state = _state()
    return bool(state and (state.last_result or {}).get("ignored"))


def record_ignored(what: str, now: float | None = None) -> None:
    """Remember that this account ignores filters (`what` noticed it)."""
    if ignored():
        return
    metrics.count("FiltersIgnored")
    log.warning("amoCRM ignored a filter on %s: this account is not enrolled in API filtering", what)
    state = SyncState(
        entity=KEY, last_result={"ignored": True, "noticedOn": what, "noticedAt": int(now or time.time())}
    )
    state.touch()
    state.save()


def check_page(where: ListFilter, items: list[Any]) -> None:
    """Raise FiltersIgnored when a page of an `updated_at`-filtered list holds items outside it."""
    low, high = where.updated_from, where.updated_to
    if low is None:
        return
    for item in items:
        changed = item.get("updated_at") if isinstance(item, dict) else None
        if isinstance(changed, int) and (changed < low or (high is not None and changed > high)):
            raise FiltersIgnored(f"item updated at {changed} is outside [{low}, {high}]")


def full_sync_due(last_complete_start: float | None, now: float | None = None) -> bool:
    """On an account without filters: is it time for the next full run of an entity?"""
    return last_complete_start is None or (now or time.time()) - last_complete_start >= FULL_SYNC_INTERVAL


def describe() -> dict:
    """What `status` shows: nothing on an account whose filters work."""
    state = _state()
    result = (state.last_result or {}) if state else {}
    if not result.get("ignored"):
        return {}
    return {
        "filters": (
            f"ignored by this account (noticed on {result.get('noticedOn')} at {result.get('noticedAt')}): "
            f"incremental syncs run as full syncs at most every {FULL_SYNC_INTERVAL // 3600} h"
        )
    }
