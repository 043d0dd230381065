"""Syncing lists from amoCRM: leads, contacts, tasks; sync-all; incremental runs; continuation.

- `limit` caps the items taken (0 = all); amoCRM is always paged with limit=250.
- Incremental runs fetch what amoCRM changed between the start of the last complete run
  (minus an overlap window, which heals webhooks that never arrived) and this run's start.
- A run that is about to exceed its time (Lambda's 15 minutes, API Gateway's 29 seconds)
  finishes the page in hand, saves where it is (a SyncJob) and continues in a fresh invocation
  through the sync queue. Pages are addressed by number and every write is an idempotent
  upsert, so a continuation neither loses nor duplicates anything.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib import logs, metrics
from chalicelib.amo.api import AmoApi
from chalicelib.amo.client import PAGE_LIMIT
from chalicelib.amo.filters import ListFilter, TaskFilter
from chalicelib.amo.pages import PageFetcher
from chalicelib.amo.resource import ListResource
from chalicelib.services import contacts, pipelines, queues, rederive, tasks
from chalicelib.services.errors import InvalidInput, NoProgress
from chalicelib.services.sync import account_filters, jobs, lease, state
from chalicelib.services.sync.lead_pages import LeadPageWriter
from chalicelib.services.sync.state import SYNCABLE, report_lag

log = logging.getLogger(__name__)

OVERLAP_SECONDS = 600
RESERVE_SECONDS = 20  # stop starting pages when less than this is left
FULL_RUN_WINDOW = 4

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
    resource: Callable[[AmoApi], ListResource]
    filter_type: type[ListFilter]
    writer: Callable[[AmoApi], PageWriter]


ENTITIES: dict[str, EntitySync] = {
    "leads": EntitySync(lambda amo: amo.leads, ListFilter, LeadPageWriter),
    "contacts": EntitySync(lambda amo: amo.contacts, ListFilter, lambda amo: SimpleWriter(contacts.sync_page)),
    "tasks": EntitySync(lambda amo: amo.tasks, TaskFilter, lambda amo: SimpleWriter(tasks.sync_page)),
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


def _run(
    amo: AmoApi,
    entity: str,
    where: ListFilter,
    limit: int,
    first_page: int,
    already: int,
    time_left: TimeLeft | None,
    progress: Progress | None,
    check: Callable[[list[Any]], None] | None = None,
    ready: Callable[[], object] | None = None,
) -> Outcome:
    spec = ENTITIES[entity]
    began = time.monotonic()
    remaining = limit - already if limit else None
    last_page = math.ceil(limit / PAGE_LIMIT) if limit else None
    fetcher = spec.resource(amo).pages(
        where, first_page=first_page, last_page=last_page, initial_window=_expected_pages(where, first_page, last_page)
    )
    writer = spec.writer(amo)
    outcome = Outcome()
    out_of_time = (lambda: time_left() < RESERVE_SECONDS) if time_left else (lambda: False)
    try:
        _consume(fetcher, writer, outcome, entity, already, remaining, out_of_time, progress, check, ready)
    finally:
        writer.close()
    outcome.synced, outcome.errors = writer.synced, writer.errors
    metrics.count("SyncItems", outcome.synced, Entity=entity)
    metrics.measure("SyncDuration", time.monotonic() - began, "Seconds", Entity=entity)
    if progress:
        progress({"entity": entity, "page": None, "synced": already + outcome.synced, "errors": len(outcome.errors)})
    return outcome


def _expected_pages(where: ListFilter, first_page: int, last_page: int | None) -> int:
    """Pages worth requesting before the first answer: a whole list (a full sync, or the rest
    of one) most likely has several, and at 400 ms waiting for the first alone costs a latency
    (at worst FULL_RUN_WINDOW - 1 requests answered 204 for a tiny account); a changes-only
    run usually has one."""
    if where.by_ids or (where.updated_from is not None and first_page == 1):
        return 1  # a continuation (first_page > 1) is known to have more
    return min(FULL_RUN_WINDOW, last_page - first_page + 1) if last_page else FULL_RUN_WINDOW


def _consume(
    fetcher: PageFetcher,
    writer: PageWriter,
    outcome: Outcome,
    entity: str,
    already: int,
    remaining: int | None,
    out_of_time: Callable[[], bool],
    progress: Progress | None,
    check: Callable[[list[Any]], None] | None = None,
    ready: Callable[[], object] | None = None,
) -> None:
    limit_reached = False
    for page in fetcher.pages(should_stop=out_of_time):
        if check is not None:
            check(page.items)
        if ready is not None:  # e.g. the pipelines a lead page is mapped with
            ready()
            ready = None
        items = page.items if remaining is None else page.items[:remaining]
        writer.add_page(items)
        if progress:
            progress(
                {"entity": entity, "page": page.number, "synced": already + writer.synced, "errors": len(writer.errors)}
            )
        if remaining is not None:
            remaining -= len(items)
            limit_reached = remaining <= 0
        if limit_reached or out_of_time():
            break
    if not (fetcher.exhausted or limit_reached):
        outcome.next_page = fetcher.next_to_yield
    if ready is not None:
        ready()
    writer.flush()


def sync_entity(
    amo: AmoApi,
    entity: str,
    limit: int = 50,
    where: ListFilter | None = None,
    incremental: bool = False,
    time_left: TimeLeft | None = None,
    progress: Progress | None = None,
) -> dict:
    """Sync one entity; `{synced, errors}` or, when it continues elsewhere, also `{status, jobId}`.
    Raises SyncRunning when another sync holds the lease."""
    if entity not in ENTITIES:
        raise InvalidInput(f"unknown entity {entity}")
    with lease.exclusive() as held:
        return _sync_entity(amo.bulk(), entity, limit, where, incremental, time_left, progress, held)


def _sync_entity(
    amo: AmoApi,
    entity: str,
    limit: int,
    where: ListFilter | None,
    incremental: bool,
    time_left: TimeLeft | None,
    progress: Progress | None,
    held: lease.Lease,
    ready: Callable[[], object] | None = None,
) -> dict:
    started_at = time.time()
    # only a complete, unfiltered run tells the next incremental run where to start
    record_state = where is None and limit == 0
    full = where or ENTITIES[entity].filter_type()
    where = full
    since = state.incremental_from(entity, OVERLAP_SECONDS) if incremental else None
    if since is not None and account_filters.ignored():  # see account_filters.py
        if not account_filters.full_sync_due(since + OVERLAP_SECONDS, started_at):
            return {"synced": 0, "errors": [], "status": "skipped", "reason": "account ignores filters"}
        since = None
    if since is not None:
        where = dataclasses.replace(where, updated_from=since, updated_to=int(started_at))
    if not queues.sync_queue_configured():
        time_left = None  # nowhere to continue: run to the end
    try:
        check = functools.partial(account_filters.check_page, where) if since is not None else None
        outcome = _run(amo, entity, where, limit, 1, 0, time_left, progress, check, ready)
    except account_filters.FiltersIgnored:
        account_filters.record_ignored(f"{entity} updated_at")
        if not account_filters.full_sync_due(since + OVERLAP_SECONDS if since else None, started_at):
            return {"synced": 0, "errors": [], "status": "skipped", "reason": "account ignores filters"}
        where = full
        outcome = _run(amo, entity, where, limit, 1, 0, time_left, progress, ready=ready)
    result = outcome.as_result()
    if outcome.next_page is not None:
        params = {"filter": dataclasses.asdict(where), "limit": limit, "record_state": record_state}
        job = jobs.new_job(entity, started_at, {**params, "lease": held.owner})
        result["jobId"] = jobs.hand_over(job, outcome.next_page, outcome.synced, outcome.errors)
        held.hand_over(job.job_id)
    elif record_state:
        state.record_success(entity, started_at, result)
    return result


def resume(amo: AmoApi, job_id: str, time_left: TimeLeft | None = None, page: int | None = None) -> dict:
    """Continue a handed-over sync (the sync queue's consumer calls this); a copy of a message
    someone else is running, or has run, does nothing (jobs.claim)."""
    claim = jobs.claim(job_id, page, time_left)
    if not isinstance(claim, jobs.Claim):
        return claim
    job = claim.job
    amo = amo.bulk()
    params = job.params or {}
    try:  # ours still, or lapsed while the message waited: take it back; another sync's: wait
        lease.take(params.get("lease") or None).hand_over(job.job_id)
    except lease.SyncRunning:
        jobs.release(claim)
        raise
    limit = int(params.get("limit") or 0)
    filter_type = ENTITIES[job.entity].filter_type
    saved: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in (params.get("filter") or {}).items()}
    try:
        outcome = _run(
            amo, job.entity, filter_type(**saved), limit, int(job.next_page), int(job.synced or 0), time_left, None
        )
        if outcome.next_page == job.next_page:  # not even one page fitted: let SQS retry, then dead-letter
            raise NoProgress(f"sync job {job_id} had no time to make progress")
    except Exception:
        jobs.release(claim)  # nothing saved: SQS's retry of this message may claim it at once
        raise
    if outcome.next_page is not None:
        job.invocations = (job.invocations or 1) + 1
        lease.renew(params.get("lease") or "")  # for the gap until the next invocation
        jobs.hand_over(job, outcome.next_page, outcome.synced, outcome.errors, claim)
        return {"jobId": job_id, "status": "continuing", "synced": job.synced}
    jobs.finish(job, outcome.synced, outcome.errors, claim)
    if params.get("record_state"):
        state.record_success(job.entity, job.started_at, {"synced": job.synced, "errors": job.errors})
    lease.release(params.get("lease") or "")
    return {"jobId": job_id, "status": "done", "synced": job.synced}


def request_incremental(amo: Callable[[], AmoApi], entities: list[str]) -> None:
    """Catch up on these entities soon: through the sync queue when there is one, else now."""
    entities = [e for e in entities if e in SYNCABLE]
    if queues.sync_queue_configured():
        queues.send_sync_request({"incremental": entities})
    else:
        run_incremental(amo(), entities)


def run_incremental(amo: AmoApi, entities: list[str], time_left: TimeLeft | None = None) -> dict:
    """An incremental run of some entities; skipped (the running sync covers them) while one runs."""
    try:
        with lease.exclusive() as held:
            return {
                entity: _next_entity(amo.bulk(), entity, True, time_left, None, held)
                for entity in entities
                if entity in SYNCABLE
            }
    except lease.SyncRunning as running:
        return {"skipped": True, "runningJobId": running.job_id}


def resume_message(amo: AmoApi, message: dict, time_left: TimeLeft | None = None) -> dict:
    """The sync queue's consumer: `{"jobId": …, "page": n}` as `jobs.hand_over` queued it,
    `{"incremental": [entity, …]}` as `request_incremental` did, or `{"rederive": <job id>}`,
    a stage mapping's re-derivation (rederive.py)."""
    if isinstance(message.get("incremental"), list):
        return run_incremental(amo, [str(e) for e in message["incremental"]], time_left)
    if "rederive" in message:
        return rederive.resume(message["rederive"], time_left)
    job_id, page = message.get("jobId"), message.get("page")
    if not isinstance(job_id, str) or not job_id:
        raise InvalidInput("sync continuation message has no jobId")
    if page is not None and (not isinstance(page, int) or isinstance(page, bool)):
        raise InvalidInput("sync continuation message has a page that is not a number")
    return resume(amo, job_id, time_left, page)


def get_job(job_id: str) -> dict:
    return jobs.describe(job_id)


# -- the service methods of SPEC §4 -----------------------------------------------------------------


def sync_leads_from_amo(
    amo: AmoApi,
    limit: int = 50,
    time_left: TimeLeft | None = None,
    progress: Progress | None = None,
    incremental: bool = False,
) -> dict:
    return sync_entity(amo, "leads", limit, incremental=incremental, time_left=time_left, progress=progress)


def sync_contacts(
    amo: AmoApi,
    limit: int = 50,
    time_left: TimeLeft | None = None,
    progress: Progress | None = None,
    incremental: bool = False,
) -> dict:
    return sync_entity(amo, "contacts", limit, incremental=incremental, time_left=time_left, progress=progress)


def sync_tasks(
    amo: AmoApi,
    limit: int = 50,
    is_completed: bool | None = None,
    entity_type: str | None = None,
    time_left: TimeLeft | None = None,
    progress: Progress | None = None,
    incremental: bool = False,
) -> dict:
    where = TaskFilter(is_completed=is_completed, entity_type=entity_type)
    return sync_entity(
        amo,
        "tasks",
        limit,
        where if where != TaskFilter() else None,
        incremental=incremental,
        time_left=time_left,
        progress=progress,
    )


def sync_all(
    amo: AmoApi,
    leads_limit: int = 0,
    full: bool = True,
    time_left: TimeLeft | None = None,
    progress: Progress | None = None,
    related: bool = False,
) -> dict:
    """Pipelines and stages, then leads (incremental unless `full`); `related` adds contacts
    and tasks (the schedule uses it to heal missed webhooks of every kind). The pipelines are
    fetched while the first lead pages are on their way; no lead is written before they are stored."""
    amo = amo.bulk()
    with lease.exclusive() as held, logs.ThreadPool(max_workers=1, thread_name_prefix="pipelines") as pool:
        # the stages are synced while the first lead pages are on their way (one latency saved)
        stages = pool.submit(pipelines.sync_pipelines, amo)
        try:
            leads = _sync_entity(amo, "leads", leads_limit, None, not full, time_left, progress, held, stages.result)
        except BaseException as failure:
            stages_failure = stages.exception()  # the leads' error is raised; a different one of the stages is not lost
            if stages_failure is not None and type(stages_failure) is not type(failure):
                log.warning("the pipelines sync failed too: %s", stages_failure)
            raise
        result: dict[str, Any] = {"pipelines": stages.result(), "leads": leads}
        if related:
            for entity in ("contacts", "tasks"):
                result[entity] = _next_entity(amo, entity, not full, time_left, progress, held)
    return result


DEFERRED = {"synced": 0, "errors": [], "status": "deferred", "reason": "an earlier entity continues in the background"}


def _next_entity(
    amo: AmoApi, entity: str, incremental: bool, time_left: TimeLeft | None, progress: Progress | None, held: Any
) -> dict:
    """One more entity of a multi-entity run, unless an earlier one already continues in the
    background: a lease carries one continuation, and the next scheduled run does the rest."""
    if held.handed_over:
        return dict(DEFERRED)
    return _sync_entity(amo, entity, 0, None, incremental, time_left, progress, held)


def scheduled_sync(amo: AmoApi, time_left: TimeLeft | None = None) -> dict:
    """The schedule's incremental run of leads, contacts and tasks; skipped while a sync runs.
    Whatever happens, it reports the lag (the alarm on it notices a sync that stopped advancing)."""
    try:
        return sync_all(amo, 0, full=False, time_left=time_left, related=True)
    except lease.SyncRunning as running:
        log.info("scheduled sync skipped: %s", running)
        return {"skipped": True, "runningJobId": running.job_id}
    finally:
        report_lag()
