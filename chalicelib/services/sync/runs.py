"""The sync's entry points: one entity (leads, contacts, tasks), sync-all, the schedule's run,
incremental runs, continuation.

- Incremental runs fetch what amoCRM changed between the start of the last complete run
  (minus an overlap window, which heals webhooks that never arrived) and this run's start.
- A run that is about to exceed its time (Lambda's 15 minutes, API Gateway's 29 seconds)
  finishes the page in hand, saves where it is (a SyncJob) and continues in a fresh invocation
  through the sync queue. Pages are addressed by number (a keyset run's steps, with its cursor
  saved in the job) and every write is an idempotent upsert, so a continuation neither loses
  nor duplicates anything.
- An incremental run of leads or contacts reads its window by `updated_at` keyset, not by page
  number (amo/keyset.py): an item edited during the run never makes it skip another.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypedDict, Unpack

from chalicelib import logs, metrics
from chalicelib.amo.api import AmoApi
from chalicelib.amo.errors import AmoPaymentRequired
from chalicelib.amo.filters import ListFilter, TaskFilter
from chalicelib.amo.keyset import KeysetState, OrderIgnored
from chalicelib.services import account_payment, pipelines, queues, rederive
from chalicelib.services.errors import InvalidInput, NoProgress, NotConnected
from chalicelib.services.sync import account_filters, deletions, jobs, lease, state
from chalicelib.services.sync.entities import ENTITIES
from chalicelib.services.sync.run import Outcome, Progress, Run, TimeLeft, sync_pages
from chalicelib.services.sync.state import SYNCABLE, report_lag

log = logging.getLogger(__name__)

OVERLAP_SECONDS = 600
RECONCILE_SECONDS = 10.0  # an incremental run reads the events log only with this much time left


def sync_entity(
    amo: AmoApi,
    *,
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
    run = Run(entity, where=where, limit=limit, time_left=time_left, progress=progress)
    amo = amo.bulk()
    with lease.exclusive((amo.read_token, amo.claim_ahead)) as held:
        return _sync_entity(amo, run=run, incremental=incremental, held=held)


def _sync_entity(amo: AmoApi, *, run: Run, incremental: bool, held: lease.Lease) -> dict:
    with account_filters.run_scope():
        return _run_entity(amo, run=run, incremental=incremental, held=held)


def _run_entity(amo: AmoApi, *, run: Run, incremental: bool, held: lease.Lease) -> dict:
    started_at = time.time()
    # only a complete, unfiltered run tells the next incremental run where to start
    record_state = run.where is None and run.limit == 0
    since = state.incremental_from(run.entity, OVERLAP_SECONDS) if incremental else None
    marks = account_filters.current() if since is not None else {}
    if marks.get("ignored"):  # see account_filters.py: one small question first
        if account_filters.probe(amo.leads):
            account_filters.filters_work("a filtered probe answered nothing")
            marks = {}
        elif not account_filters.full_sync_due(state.last_started(run.entity), started_at):
            return dict(SKIPPED)
        else:
            account_filters.full_run_started(started_at)
            since = None
    if not queues.sync_queue_configured():
        run = dataclasses.replace(run, time_left=None)  # nowhere to continue: run to the end
    whole_list = record_state and since is None
    if whole_list:
        run = dataclasses.replace(run, expected_items=state.listed_last_time(run.entity))
    whole = run
    if since is not None:
        run = _changes_only(amo, run=run, since=since, to=state.window_top(since, started_at, OVERLAP_SECONDS))
    try:
        outcome = _sync_window(amo, run)
    except account_filters.FiltersIgnored:
        marked = account_filters.record_ignored(f"{run.entity} updated_at")
        if not account_filters.full_sync_due(state.last_started(run.entity) if since else None, started_at):
            return dict(SKIPPED)
        if marked:
            account_filters.full_run_started(started_at)
        run = dataclasses.replace(whole, expected_items=state.listed_last_time(whole.entity))
        whole_list = record_state
        outcome = sync_pages(amo, run)
    else:
        if since is not None and marks.get("pending") and outcome.synced:
            account_filters.filters_work(f"{run.entity} updated_at")  # a filtered page held only what was asked
    result = outcome.as_result()
    if outcome.next_page is not None:
        params = {"filter": dataclasses.asdict(run.filter), "limit": run.limit, "record_state": record_state}
        params |= {"whole_list": whole_list, "expected_items": run.expected_items}
        params["filters_run"] = account_filters.run_key()
        if outcome.keyset is not None:
            params["keyset"] = outcome.keyset
        job = jobs.new_job(run.entity, started_at, {**params, "lease": held.owner})
        result["jobId"] = jobs.hand_over(job, next_page=outcome.next_page, synced=outcome.synced, errors=outcome.errors)
        held.hand_over(job.job_id)
    elif record_state:
        cursor = state.cursor_for(started_at, run.filter.updated_to)
        state.record_run(run.entity, started_at=started_at, cursor=cursor, result=result, whole_list=whole_list)
    return result


SKIPPED = {"synced": 0, "errors": [], "status": "skipped", "reason": "account ignores filters"}


def _changes_only(amo: AmoApi, *, run: Run, since: int, to: int) -> Run:
    """The run narrowed to what changed in `[since, to]`, each page checked against it; read by
    keyset (amo/keyset.py) where amoCRM orders the list by `updated_at`, so an edit made while
    the run reads cannot make it skip an item."""
    changed = dataclasses.replace(run.filter, updated_from=since, updated_to=to)
    run = dataclasses.replace(run, where=changed, check=functools.partial(account_filters.check_page, changed))
    if ENTITIES[run.entity].resource(amo).by_updated_at:
        run = dataclasses.replace(run, keyset=KeysetState(cursor=since, to=to))
    return run


def _sync_window(amo: AmoApi, run: Run) -> Outcome:
    """sync_pages; a keyset run on an account that ignores `order` reads its window by page
    number instead (every write is an idempotent upsert, so what it wrote already is harmless)."""
    try:
        return sync_pages(amo, run)
    except OrderIgnored as error:
        log.warning("%s: %s; reading the window by page number", run.entity, error)
        return sync_pages(amo, dataclasses.replace(run, keyset=None, first_page=1))


def resume(amo: AmoApi, *, job_id: str, time_left: TimeLeft | None = None, page: int | None = None) -> dict:
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
    filter_type = ENTITIES[job.entity].filter_type
    saved: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in (params.get("filter") or {}).items()}
    where = filter_type(**saved)
    run = Run(
        job.entity,
        where=where,
        limit=int(params.get("limit") or 0),
        first_page=int(job.next_page),
        already=int(job.synced or 0),
        time_left=time_left,
        keyset=KeysetState.from_dict(params["keyset"]) if params.get("keyset") else None,
        expected_items=params.get("expected_items"),
    )
    try:
        with account_filters.run_scope(params.get("filters_run") or job.job_id):
            outcome = sync_pages(amo, run)
        if outcome.next_page == job.next_page:  # not even one page fitted: let SQS retry, then dead-letter
            raise NoProgress(f"sync job {job_id} had no time to make progress")
    except AmoPaymentRequired:  # retrying cannot help: the schedule's run catches up once it is paid
        account_payment.record_unpaid(f"sync job {job_id}")
        jobs.fail(job, "the amoCRM account is not paid (402)")
        lease.release(params.get("lease") or "")
        return {"jobId": job_id, "status": "failed", "reason": "account not paid"}
    except Exception:
        jobs.release(claim)  # nothing saved: SQS's retry of this message may claim it at once
        raise
    if outcome.next_page is not None:
        job.invocations = (job.invocations or 1) + 1
        if outcome.keyset is not None:  # saved with the job by hand_over
            job.params = {**params, "keyset": outcome.keyset}
        lease.renew(params.get("lease") or "")  # for the gap until the next invocation
        jobs.hand_over(job, next_page=outcome.next_page, synced=outcome.synced, errors=outcome.errors, claim=claim)
        return {"jobId": job_id, "status": "continuing", "synced": job.synced}
    jobs.finish(job, synced=outcome.synced, errors=outcome.errors, claim=claim)
    if params.get("record_state"):
        result = {"synced": job.synced, "errors": job.errors}
        whole_list = bool(params.get("whole_list"))
        cursor = state.cursor_for(job.started_at, where.updated_to)
        state.record_run(job.entity, started_at=job.started_at, cursor=cursor, result=result, whole_list=whole_list)
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
    """An incremental run of some entities; skipped (the running sync covers them) while one runs,
    and while amoCRM's account is not paid (the schedule's run catches up once it is)."""
    if account_payment.unpaid_since() is not None:
        return {"skipped": True, "reason": "account not paid"}
    try:
        with lease.exclusive() as held:
            return {
                entity: _next_entity(amo.bulk(), run=Run(entity, time_left=time_left), incremental=True, held=held)
                for entity in entities
                if entity in SYNCABLE
            }
    except lease.SyncRunning as running:
        return {"skipped": True, "runningJobId": running.job_id}
    except AmoPaymentRequired:
        account_payment.record_unpaid("an incremental sync")
        return {"skipped": True, "reason": "account not paid"}


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
    return resume(amo, job_id=job_id, time_left=time_left, page=page)


def get_job(job_id: str) -> dict:
    return jobs.describe(job_id)


# -- the service methods of SPEC §4: sync_entity for one entity ------------------------------------

sync_leads_from_amo = functools.partial(sync_entity, entity="leads")
sync_contacts = functools.partial(sync_entity, entity="contacts")


class ListOptions(TypedDict, total=False):
    """What sync_entity takes besides the entity and its filter."""

    limit: int
    incremental: bool
    time_left: TimeLeft | None
    progress: Progress | None


def sync_tasks(
    amo: AmoApi, *, is_completed: bool | None = None, entity_type: str | None = None, **options: Unpack[ListOptions]
) -> dict:
    """sync_entity for tasks, all of them or only those open or completed, or of one entity type."""
    where = TaskFilter(is_completed=is_completed, entity_type=entity_type)
    return sync_entity(amo, entity="tasks", where=where if where != TaskFilter() else None, **options)


def sync_all(
    amo: AmoApi,
    *,
    leads_limit: int = 0,
    full: bool = True,
    time_left: TimeLeft | None = None,
    progress: Progress | None = None,
    related: bool = False,
) -> dict:
    """Pipelines and stages, then leads (incremental unless `full`); `related` adds contacts
    and tasks (the schedule uses it to heal missed webhooks of every kind). The pipelines are
    fetched while the first lead pages are on their way; no lead is written before they are stored.
    An incremental run then applies the deletes amoCRM's events log shows (sync/deletions.py):
    lists never show what was deleted."""
    amo = amo.bulk()
    # the token is read and the first slots claimed while the lease is written (lease.exclusive)
    start_up = (amo.read_token, amo.claim_ahead)
    with lease.exclusive(start_up) as held, logs.ThreadPool(max_workers=1, thread_name_prefix="pipelines") as pool:
        # the stages are synced while the first lead pages are on their way (one latency saved)
        stages = pool.submit(pipelines.sync_pipelines, amo)
        run = Run("leads", limit=leads_limit, time_left=time_left, progress=progress, ready=stages.result)
        try:
            leads = _sync_entity(amo, run=run, incremental=not full, held=held)
        except BaseException as failure:
            stages_failure = stages.exception()  # the leads' error is raised; a different one of the stages is not lost
            if stages_failure is not None and type(stages_failure) is not type(failure):
                log.warning("the pipelines sync failed too: %s", stages_failure)
            raise
        result: dict[str, Any] = {"pipelines": stages.result(), "leads": leads}
        if related:
            for entity in ("contacts", "tasks"):
                run = Run(entity, time_left=time_left, progress=progress)
                result[entity] = _next_entity(amo, run=run, incremental=not full, held=held)
        if not full and (time_left is None or time_left() >= RECONCILE_SECONDS):
            result["deletes"] = deletions.reconcile(amo)
        elif not full:  # too little time left: the next run reads the same window, and more
            result["deletes"] = {"status": "deferred", "reason": "too little time left in this invocation"}
    return result


DEFERRED = {"synced": 0, "errors": [], "status": "deferred", "reason": "an earlier entity continues in the background"}


def _next_entity(amo: AmoApi, *, run: Run, incremental: bool, held: lease.Lease) -> dict:
    """One more entity of a multi-entity run, unless an earlier one already continues in the
    background: a lease carries one continuation, and the next scheduled run does the rest."""
    if held.handed_over:
        return dict(DEFERRED)
    return _sync_entity(amo, run=run, incremental=incremental, held=held)


def scheduled_sync(amo: AmoApi, time_left: TimeLeft | None = None) -> dict:
    """The schedule's incremental run of leads, contacts and tasks; skipped while a sync runs,
    and skipped quietly while amoCRM is not connected (a state, not an error: one `NotConnected`
    count, which the stage-not-connected alarm reads). Whatever happens, it reports the lag (the
    alarm on it notices a sync that stopped advancing). While amoCRM's account is not paid, one
    probe per run asks whether it answers again, and nothing else is sent (account_payment.py)."""
    try:
        if account_payment.unpaid_since() is not None and not account_payment.probe(amo):
            log.info("scheduled sync skipped: the amoCRM account is not paid")
            return {"skipped": True, "reason": "account not paid"}
        return sync_all(amo, leads_limit=0, full=False, time_left=time_left, related=True)
    except lease.SyncRunning as running:
        log.info("scheduled sync skipped: %s", running)
        return {"skipped": True, "runningJobId": running.job_id}
    except NotConnected as error:
        metrics.count("NotConnected")
        log.info("scheduled sync skipped: %s", error)
        return {"skipped": True, "reason": "not connected"}
    except AmoPaymentRequired:
        account_payment.record_unpaid("the scheduled sync")
        return {"skipped": True, "reason": "account not paid"}
    finally:
        report_lag()
