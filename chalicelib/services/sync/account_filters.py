"""Accounts that ignore amoCRM's list filters (reference §13): noticed twice before believed,
re-checked cheaply, and never a reason to read the whole account every 15 minutes.

Filtering by `updated_at` or id works only on accounts enrolled in API filtering; elsewhere
amoCRM silently answers the unfiltered list. An incremental run notices it on its first page
(items changed outside the range it asked for), a contact batch fetch by ids it did not ask
for. One sighting proves little (an item edited while the run read it lands past `to`), so:
- a sighting is remembered as pending; only a sighting in another run marks the account
  (`record_ignored`), and a filtered answer that holds only what was asked clears it;
- items up to TOLERANCE_SECONDS past `to` are not a sighting;
- on a marked account each incremental run first asks one narrow filtered question (`probe`,
  a one-item page of a range nothing can be in); if the answer holds nothing, filters work
  and the mark is lifted. Otherwise the run is a full run at most every FULL_SYNC_INTERVAL
  and skipped in between: blind full iteration every 15 minutes is what amoCRM blocks
  accounts for. `status` says which state the account is in.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from chalicelib import metrics
from chalicelib.amo.filters import ListFilter
from chalicelib.amo.resource import ListResource
from chalicelib.models import SyncState

log = logging.getLogger(__name__)

KEY = "filters"
FULL_SYNC_INTERVAL = 4 * 3600
TOLERANCE_SECONDS = 5  # an item this little past `to` was changed while the run read it
SIGHTING_TTL = 24 * 3600  # a first sighting older than this is forgotten, not confirmed
PROBE = ListFilter(updated_from=1, updated_to=2)  # 1970: no entity can have changed then
_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar("filters_run", default=None)


class FiltersIgnored(Exception):
    """amoCRM answered a filtered list with items outside the filter."""


@contextlib.contextmanager
def run_scope(key: str | None = None) -> Iterator[None]:
    """Sightings inside count as one run's (nested scopes keep the outer run's key)."""
    token = _RUN.set(key or _RUN.get() or uuid.uuid4().hex)
    try:
        yield
    finally:
        _RUN.reset(token)


def run_key() -> str | None:
    """The current run's key (a continuation carries it, so its sightings stay the run's)."""
    return _RUN.get()


def _state() -> SyncState | None:
    try:
        return SyncState.get(KEY, consistent_read=True)
    except SyncState.DoesNotExist:
        return None


def current() -> dict:
    """What is remembered: `{}`, a pending first sighting, or the mark (`ignored: True`)."""
    state = _state()
    return dict((state.last_result or {}) if state else {})


def ignored() -> bool:
    return bool(current().get("ignored"))


def _save(result: dict) -> None:
    state = SyncState(entity=KEY, last_result=result)
    state.touch()
    state.save()


def record_ignored(what: str, now: float | None = None) -> bool:
    """One sighting of an ignored filter (`what` noticed it). The account is marked only when
    an earlier sighting came from another run; True when it is marked now."""
    now = now or time.time()
    result = current()
    if result.get("ignored"):
        return True
    run = _RUN.get() or uuid.uuid4().hex
    pending = result.get("pending") or {}
    fresh = pending and now - float(pending.get("at") or 0) < SIGHTING_TTL
    if fresh and pending.get("run") == run:
        return False
    if not fresh:
        log.warning("amoCRM ignored a filter on %s; believed if another run sees it too", what)
        _save({"pending": {"on": what, "at": int(now), "run": run}})
        return False
    metrics.count("FiltersIgnored")
    log.warning("amoCRM ignored a filter on %s again: this account is not enrolled in API filtering", what)
    _save({"ignored": True, "noticedOn": pending.get("on"), "noticedAt": pending.get("at"), "confirmedOn": what})
    return True


def filters_work(what: str) -> None:
    """A filtered answer held only what was asked: forget a sighting, lift the mark."""
    result = current()
    if not result:
        return
    if result.get("ignored"):
        metrics.count("FiltersWorkAgain")
        log.warning("amoCRM's filters work on this account again (%s): incremental syncs resume", what)
    state = SyncState(entity=KEY)
    state.delete()


def probe(resource: ListResource) -> bool:
    """One narrow filtered request (a one-item page of a range nothing can be in): True when
    amoCRM honoured the filter, i.e. answered nothing."""
    return not resource.first_item(PROBE)


def check_page(where: ListFilter, items: list[Any]) -> None:
    """Raise FiltersIgnored when a page of an `updated_at`-filtered list holds items outside it
    (more than TOLERANCE_SECONDS past `to`: an edit during the run lands just past it)."""
    low, high = where.updated_from, where.updated_to
    if low is None:
        return
    for item in items:
        changed = item.get("updated_at") if isinstance(item, dict) else None
        if isinstance(changed, int) and (changed < low or (high is not None and changed > high + TOLERANCE_SECONDS)):
            raise FiltersIgnored(f"item updated at {changed} is outside [{low}, {high}]")


def full_run_started(now: float | None = None) -> None:
    """A full run instead of an incremental one starts (the account is marked): the next one
    waits FULL_SYNC_INTERVAL from now, whether or not this one completes."""
    result = current()
    if result.get("ignored"):
        _save({**result, "lastFullRunAt": int(now or time.time())})


def full_sync_due(last_complete_start: float | None, now: float | None = None) -> bool:
    """On an account without filters: is it time for the next full run of an entity? Counted
    from the later of the last complete run's start and the last full run started for the mark."""
    last_full = current().get("lastFullRunAt")
    starts = [float(s) for s in (last_complete_start, last_full) if s]
    return not starts or (now or time.time()) - max(starts) >= FULL_SYNC_INTERVAL


def describe() -> dict:
    """What `status` shows: nothing on an account whose filters work."""
    result = current()
    if result.get("pending"):
        pending = result["pending"]
        return {
            "filters": (
                f"ignored once (on {pending.get('on')} at {pending.get('at')}): believed only if another run sees it"
            )
        }
    if not result.get("ignored"):
        return {}
    return {
        "filters": (
            f"ignored by this account (noticed on {result.get('noticedOn')} at {result.get('noticedAt')}): "
            f"checked with one small request before each incremental run, which runs as a full sync at most "
            f"every {FULL_SYNC_INTERVAL // 3600} h while they stay ignored"
        )
    }
