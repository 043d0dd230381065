"""What the scheduled sync remembers between runs (SyncState): where each entity's last complete
run started, on amoCRM's clock (the cursor the next incremental run starts from: the windows
filter on amoCRM's `updated_at`) and on ours (what the lag alarm measures); and how
many items the list held when it was last read whole, so the next whole read asks no page
past its expected end (amo/pages.py)."""

from __future__ import annotations

import logging
import time

from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.update import Action

from chalicelib import metrics
from chalicelib.amo.clock import amo_clock
from chalicelib.models import SyncState, utc_now

log = logging.getLogger(__name__)

SYNCABLE = ("leads", "contacts", "tasks")


UNKNOWN_SKEW_SECONDS = 86_400  # how much earlier a start on our clock is read when amoCRM's is not known yet


def incremental_from(entity: str, overlap: int) -> int | None:
    """Where an incremental run of `entity` starts, on amoCRM's clock: its cursor (where its last
    complete run started, on that clock) minus `overlap` (None before the first complete run)."""
    try:
        state = SyncState.get(entity)
    except SyncState.DoesNotExist:
        return None
    start = amo_start(state)
    return int(start - overlap) if start else None


def amo_start(state: SyncState) -> float | None:
    """The state's cursor on amoCRM's clock. An item written before cursors were (its start on our
    clock only) is moved by amoCRM's offset, or, before one is known, read a day earlier: a window
    drawn from our clock on amoCRM's may start after changes it must read."""
    if state.cursor is not None:
        return float(state.cursor)
    if not state.last_success_started_at:
        return None
    ours = float(state.last_success_started_at)
    offset = amo_clock().offset
    return ours + offset if offset is not None else ours - UNKNOWN_SKEW_SECONDS


def last_started(entity: str) -> float | None:
    """When the last complete run of `entity` started, on our clock (for intervals of ours)."""
    try:
        return SyncState.get(entity).last_success_started_at
    except SyncState.DoesNotExist:
        return None


def window_top(since: int, started_at: float, overlap: int) -> int:
    """The top of an incremental window from `since` (amoCRM's clock): amoCRM's now, and never
    below the cursor it came from (`since + overlap`). Before a first answer tells amoCRM's clock,
    ours stands in, and an amoCRM ahead of it would otherwise turn the window upside down; the
    cursor never passes the top read, so what lies above is read next time."""
    return max(int(amo_clock().now(started_at)), since + overlap)


def cursor_for(started_at: float, to: int | None) -> float:
    """The cursor a complete run leaves: when it started (ours: `started_at`) on amoCRM's clock,
    never past the top of the window it read (`to`): nothing above it was asked for."""
    start = amo_clock().now(started_at)
    return min(start, to) if to is not None else start


def listed_last_time(entity: str) -> int | None:
    """How many items `entity`'s list held when a complete run last read it whole (None: never,
    or not readable now: it is a hint, and a sync does not fail for want of it)."""
    try:
        listed = SyncState.get(entity, attributes_to_get=["listed_items"]).listed_items
    except SyncState.DoesNotExist:
        return None
    except PynamoDBException as error:
        log.warning(
            "the %s list's last length could not be read (%s): pages are asked as for a first sync", entity, error
        )
        return None
    return int(listed) if listed is not None else None


def record_run(
    entity: str, *, started_at: float, result: dict, cursor: float | None = None, whole_list: bool = False
) -> None:
    """A complete run's end: its start becomes where the next incremental run starts (`cursor`,
    on amoCRM's clock; `started_at`, on ours, is what the lag alarm measures), unless an
    item failed for a reason that passes (`transient`, e.g. a lead that kept changing under its
    write): then the window stays, so the next run reads that item again instead of skipping
    it for good (SyncLag grows until it heals). Items that can never be stored (malformed,
    refused) are reported and do not hold the window back. A run that read the `whole_list`
    also records its length: each item listed was either synced or reported."""
    errors = result["errors"]
    summary = {"synced": result["synced"], "errors": len(errors)}
    actions: list[Action] = [SyncState.last_result.set(summary), SyncState.updated_at.set(utc_now())]
    if whole_list:
        actions.append(SyncState.listed_items.set(result["synced"] + len(errors)))
    if any(isinstance(error, dict) and error.get("transient") for error in errors):
        metrics.count("SyncWindowsHeld")
        SyncState(entity).update(actions=actions)
        return
    actions += [
        SyncState.last_success_started_at.set(started_at),
        SyncState.cursor.set(cursor) if cursor is not None else SyncState.cursor.remove(),
        SyncState.created_at.set(SyncState.created_at | utc_now()),
    ]
    SyncState(entity).update(actions=actions)


def report_lag(now: float | None = None) -> float | None:
    """`SyncLag`: seconds since the start of the oldest last complete run of the scheduled
    entities (None, and nothing reported, until each has completed once)."""
    starts = [state.last_success_started_at for state in SyncState.batch_get(SYNCABLE)]
    if len(starts) < len(SYNCABLE) or not all(starts):
        return None
    lag = max(0.0, (now or time.time()) - min(float(s) for s in starts if s))
    metrics.measure("SyncLag", lag, "Seconds")
    return lag
