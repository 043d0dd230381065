"""Syncing lists from amoCRM: leads, contacts, tasks; sync-all; incremental runs; continuation.

- `limit` caps the items taken (0 = all); amoCRM is always paged with limit=250.
- Incremental runs fetch `filter[updated_at][from]` = the start of the last complete run minus
  an overlap window, which heals webhooks that never arrived.
- A run that is about to exceed its time (Lambda's 15 minutes, API Gateway's 29 seconds)
  finishes the page in hand, saves where it is (a SyncJob) and continues in a fresh invocation
  through the sync queue. Pages are addressed by number and every write is an idempotent
  upsert, so a continuation neither loses nor duplicates anything.
"""
from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Protocol

from chalicelib.amo.client import PAGE_LIMIT
from chalicelib.models import SyncJob, SyncState
from chalicelib.services import contacts, gateway, leads, pipelines, queues, tasks
from chalicelib.services.errors import InvalidInput, NotFound
from chalicelib.services.fetch import PageFetcher

log = logging.getLogger(__name__)

OVERLAP_SECONDS = 600
RESERVE_SECONDS = 20  # stop starting pages when less than this is left
JOB_RETENTION = timedelta(days=7)

TimeLeft = Callable[[], float]
Progress = Callable[[dict], None]


class PageWriter(Protocol):
    synced: int
    errors: list[dict]

    def add_page(self, raw_items: list[Any]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class SimpleWriter:
    """Writer for entities whose pages are stored as they come (contacts, tasks)."""

    def __init__(self, sync_page: Callable[[list[Any]], tuple[int, list[dict]]]):
        self._sync_page = sync_page
        self.synced = 0
        self.errors: list[dict] = []

    def add_page(self, raw_items: list[Any]) -> None:
        synced, errors = self._sync_page(raw_items)
        self.synced += synced
        self.errors.extend(errors)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class EntitySync:
    path: str
    key: str
    base_params: dict
    writer: Callable[[], PageWriter]


ENTITIES: dict[str, EntitySync] = {
    "leads": EntitySync("/api/v4/leads", "leads", {"with": "contacts", "order[id]": "asc"}, leads.LeadPageWriter),
    "contacts": EntitySync("/api/v4/contacts", "contacts", {"order[id]": "asc"},
                           lambda: SimpleWriter(contacts.sync_page)),
    "tasks": EntitySync("/api/v4/tasks", "tasks", {"order[id]": "asc"}, lambda: SimpleWriter(tasks.sync_page)),
}


@dataclass
class Outcome:
    synced: int = 0
    errors: list[dict] = field(default_factory=list)
    next_page: int | None = None  # None: complete

    def as_result(self) -> dict:
        result: dict[str, Any] = {"synced": self.synced, "errors": self.errors}
        if self.next_page is not None:
            result["status"] = "continuing"
        return result


def _run(entity: str, params: dict, limit: int, first_page: int, already: int,
         time_left: TimeLeft | None, progress: Progress | None) -> Outcome:
    spec = ENTITIES[entity]
    remaining = limit - already if limit else None
    last_page = math.ceil(limit / PAGE_LIMIT) if limit else None
    fetcher = PageFetcher(gateway.amo_client(), spec.path, spec.key, {**spec.base_params, **params},
                          first_page=first_page, last_page=last_page)
    writer = spec.writer()
    outcome = Outcome()
    out_of_time = (lambda: time_left() < RESERVE_SECONDS) if time_left else (lambda: False)
    try:
        _consume(fetcher, writer, outcome, entity, already, remaining, out_of_time, progress)
    finally:
        writer.close()
    outcome.synced, outcome.errors = writer.synced, writer.errors
    if progress:
        progress({"entity": entity, "page": None, "synced": already + outcome.synced, "errors": len(outcome.errors)})
    return outcome


def _consume(fetcher: PageFetcher, writer: PageWriter, outcome: Outcome, entity: str, already: int,
             remaining: int | None, out_of_time: Callable[[], bool], progress: Progress | None) -> None:
    limit_reached = False
    for page in fetcher.pages(should_stop=out_of_time):
        items = page.items if remaining is None else page.items[:remaining]
        writer.add_page(items)
        if progress:
            progress({"entity": entity, "page": page.number, "synced": already + writer.synced,
                      "errors": len(writer.errors)})
        if remaining is not None:
            remaining -= len(items)
            limit_reached = remaining <= 0
        if limit_reached or out_of_time():
            break
    if not (fetcher.exhausted or limit_reached):
        outcome.next_page = fetcher.next_to_yield
    writer.flush()


def _incremental_from(entity: str) -> int | None:
    try:
        state = SyncState.get(entity)
    except SyncState.DoesNotExist:
        return None
    return int(state.last_success_started_at - OVERLAP_SECONDS) if state.last_success_started_at else None


def _record_success(entity: str, started_at: float, result: dict) -> None:
    state = SyncState(entity=entity, last_success_started_at=started_at,
                      last_result={"synced": result["synced"], "errors": len(result["errors"])})
    state.touch()
    state.save()


def sync_entity(entity: str, limit: int = 50, filters: dict | None = None, incremental: bool = False,
                time_left: TimeLeft | None = None, progress: Progress | None = None) -> dict:
    """Sync one entity; `{synced, errors}` or, when it continues elsewhere, also `{status, jobId}`."""
    if entity not in ENTITIES:
        raise InvalidInput(f"unknown entity {entity}")
    started_at = time.time()
    params = dict(filters or {})
    if incremental:
        since = _incremental_from(entity)
        if since is not None:
            params["filter[updated_at][from]"] = since
    if not queues.sync_queue_configured():
        time_left = None  # nowhere to continue: run to the end
    # only a complete, unfiltered run tells the next incremental run where to start
    record_state = not filters and limit == 0
    outcome = _run(entity, params, limit, 1, 0, time_left, progress)
    result = outcome.as_result()
    if outcome.next_page is not None:
        job = SyncJob(job_id=uuid.uuid4().hex, entity=entity, started_at=started_at, synced=0, errors=[],
                      params={"filters": params, "limit": limit, "record_state": record_state})
        result["jobId"] = _hand_over(job, outcome)
    elif record_state:
        _record_success(entity, started_at, result)
    return result


def _add_outcome(job: SyncJob, outcome: Outcome, status: str) -> None:
    job.next_page = outcome.next_page
    job.synced = (job.synced or 0) + outcome.synced
    job.errors = (job.errors or []) + outcome.errors[:200]
    job.status = status
    job.expires_at = datetime.now(timezone.utc) + JOB_RETENTION
    job.touch()
    job.save()


def _hand_over(job: SyncJob, outcome: Outcome) -> str:
    _add_outcome(job, outcome, "running")
    queues.send_sync_continuation(job.job_id)
    log.info("%s sync continues in a new invocation from page %s (job %s, %d so far)",
             job.entity, job.next_page, job.job_id, job.synced)
    return job.job_id


def resume(job_id: str, time_left: TimeLeft | None = None) -> dict:
    """Continue a handed-over sync (the sync queue's consumer calls this)."""
    try:
        job = SyncJob.get(job_id, consistent_read=True)
    except SyncJob.DoesNotExist:
        log.warning("sync job %s not found; nothing to resume", job_id)
        return {"jobId": job_id, "status": "unknown"}
    if job.status != "running":
        return {"jobId": job_id, "status": job.status}
    params = job.params or {}
    limit = int(params.get("limit") or 0)
    outcome = _run(job.entity, params.get("filters") or {}, limit, int(job.next_page), int(job.synced or 0),
                   time_left, None)
    if outcome.next_page == job.next_page:  # not even one page fitted: let SQS retry, then dead-letter
        raise RuntimeError(f"sync job {job_id} had no time to make progress")
    if outcome.next_page is not None:
        job.invocations = (job.invocations or 1) + 1
        _hand_over(job, outcome)
        return {"jobId": job_id, "status": "continuing", "synced": job.synced}
    _add_outcome(job, outcome, "done")
    if params.get("record_state"):
        _record_success(job.entity, job.started_at, {"synced": job.synced, "errors": job.errors})
    return {"jobId": job_id, "status": "done", "synced": job.synced}


def get_job(job_id: str) -> dict:
    try:
        job = SyncJob.get(job_id)
    except SyncJob.DoesNotExist:
        raise NotFound(f"sync job {job_id} is not known") from None
    return {"jobId": job.job_id, "entity": job.entity, "status": job.status, "synced": job.synced,
            "errors": job.errors, "nextPage": job.next_page,
            "invocations": job.invocations}


# -- the service methods of SPEC §4 -----------------------------------------------------------------

def sync_leads_from_amo(limit: int = 50, time_left: TimeLeft | None = None,
                        progress: Progress | None = None, incremental: bool = False) -> dict:
    return sync_entity("leads", limit, incremental=incremental, time_left=time_left, progress=progress)


def sync_contacts(limit: int = 50, time_left: TimeLeft | None = None, progress: Progress | None = None,
                  incremental: bool = False) -> dict:
    return sync_entity("contacts", limit, incremental=incremental, time_left=time_left, progress=progress)


def sync_tasks(limit: int = 50, is_completed: bool | None = None, entity_type: str | None = None,
               time_left: TimeLeft | None = None, progress: Progress | None = None,
               incremental: bool = False) -> dict:
    filters: dict[str, Any] = {}
    if is_completed is not None:
        filters["filter[is_completed]"] = 1 if is_completed else 0
    if entity_type is not None:
        filters["filter[entity_type]"] = entity_type
    return sync_entity("tasks", limit, filters, incremental=incremental, time_left=time_left, progress=progress)


def sync_all(leads_limit: int = 0, full: bool = True, time_left: TimeLeft | None = None,
             progress: Progress | None = None, related: bool = False) -> dict:
    """Pipelines and stages, then leads (incremental unless `full`); `related` adds contacts
    and tasks (the schedule uses it to heal missed webhooks of every kind)."""
    result: dict[str, Any] = {"pipelines": pipelines.sync_pipelines()}
    result["leads"] = sync_entity("leads", leads_limit, incremental=not full, time_left=time_left,
                                  progress=progress)
    if related:
        for entity in ("contacts", "tasks"):
            result[entity] = sync_entity(entity, 0, incremental=not full, time_left=time_left, progress=progress)
    return result
