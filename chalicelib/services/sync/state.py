"""What the scheduled sync remembers between runs (SyncState): where each entity's last complete
run started, which the next incremental run starts from and the lag alarm measures."""

from __future__ import annotations

import time

from chalicelib import metrics
from chalicelib.models import SyncState

SYNCABLE = ("leads", "contacts", "tasks")


def incremental_from(entity: str, overlap: int) -> int | None:
    """Where an incremental run of `entity` starts: the start of its last complete run minus
    `overlap` (None before the first complete run)."""
    try:
        state = SyncState.get(entity)
    except SyncState.DoesNotExist:
        return None
    return int(state.last_success_started_at - overlap) if state.last_success_started_at else None


def record_success(entity: str, started_at: float, result: dict) -> None:
    state = SyncState(
        entity=entity,
        last_success_started_at=started_at,
        last_result={"synced": result["synced"], "errors": len(result["errors"])},
    )
    state.touch()
    state.save()


def report_lag(now: float | None = None) -> float | None:
    """`SyncLag`: seconds since the start of the oldest last complete run of the scheduled
    entities (None, and nothing reported, until each has completed once)."""
    starts = [state.last_success_started_at for state in SyncState.batch_get(SYNCABLE)]
    if len(starts) < len(SYNCABLE) or not all(starts):
        return None
    lag = max(0.0, (now or time.time()) - min(float(s) for s in starts if s))
    metrics.measure("SyncLag", lag, "Seconds")
    return lag
