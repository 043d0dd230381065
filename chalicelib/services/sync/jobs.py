"""A sync that continues across invocations (a SyncJob): handed over, claimed, finished, failed.

SQS delivers each continuation at least once, so two invocations can hold the same message
(or a late copy of an old one). Each names the page it continues from, and an invocation first
claims that page with a conditional write: only the claim's holder runs it and writes its
outcome; any other copy answers "claimed" or "stale" and does nothing, so a duplicate never
forks the chain or doubles amoCRM calls. A claim lasts as long as its invocation may run, so
the redelivery that follows a crash takes over.

A job whose message has dead-lettered would stay "running" forever: a job that has not moved
for longer than the sync queue can keep redelivering it is failed, and says why, the next time
anyone looks at it (`sync-jobs/{id}`, or a late copy of its message).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import PynamoDBException

from chalicelib.locking import wrote
from chalicelib.models import SyncJob
from chalicelib.services import queues, rederive
from chalicelib.services.errors import NotFound

log = logging.getLogger(__name__)

JOB_RETENTION = timedelta(days=7)
MAX_ERRORS = 200  # a job keeps its first errors only
INVOCATION_SECONDS = 900  # the continuation Lambda's timeout, when the caller cannot say
CLAIM_MARGIN_SECONDS = 60
# three receives of the sync queue's message, 90 minutes of visibility each, then its DLQ
STALLED_AFTER = timedelta(hours=5)


@dataclass
class Claim:
    job: SyncJob
    token: str


class ClaimLost(Exception):
    """Another invocation took the job over (this one outlived its claim): its outcome is not saved."""


def new_job(entity: str, started_at: float, params: dict) -> SyncJob:
    return SyncJob(job_id=uuid.uuid4().hex, entity=entity, started_at=started_at, synced=0, errors=[], params=params)


def hand_over(job: SyncJob, *, next_page: int, synced: int, errors: list[dict], claim: Claim | None = None) -> str:
    """Save where the job continues (its claim given back) and queue the continuation. A
    continuation that cannot be queued fails the job at once (its old message would only find
    the job moved on), so it shows as failed instead of running for hours."""
    _save(job, next_page=next_page, synced=synced, errors=errors, status="running", claim=claim)
    try:
        queues.send_sync_request({"jobId": job.job_id, "page": next_page})
    except Exception as error:
        _fail(job, f"its continuation could not be queued ({type(error).__name__}); run the sync again")
        raise
    log.info(
        "%s sync continues in a new invocation from page %s (job %s, %d so far)",
        job.entity,
        next_page,
        job.job_id,
        job.synced,
    )
    return job.job_id


def finish(job: SyncJob, *, synced: int, errors: list[dict], claim: Claim) -> None:
    _save(job, next_page=None, synced=synced, errors=errors, status="done", claim=claim)


def _save(
    job: SyncJob, *, next_page: int | None, synced: int, errors: list[dict], status: str, claim: Claim | None
) -> None:
    job.next_page = next_page
    job.synced = (job.synced or 0) + synced
    job.errors = ((job.errors or []) + errors)[:MAX_ERRORS]  # the item must stay under 400 KB
    job.status = status
    job.claim_token = None
    job.claimed_until = None
    job.expires_at = datetime.now(UTC) + JOB_RETENTION
    job.touch()
    # without a claim the save is unconditional: only a claimed save can lose its condition
    condition = (SyncJob.claim_token == claim.token) & (SyncJob.status == "running") if claim else None
    if not wrote(lambda: job.save(condition=condition)):
        raise ClaimLost(f"sync job {job.job_id} was taken over by another invocation")


def claim(job_id: str, page: int | None, time_left: Callable[[], float] | None) -> Claim | dict:
    """The job, claimed for this invocation; or, when this copy of the message must do
    nothing, the answer for it (`unknown`, `done`, `failed`, `stale`, `claimed`)."""
    try:
        job = SyncJob.get(job_id, consistent_read=True)
    except SyncJob.DoesNotExist:
        log.warning("sync job %s not found; nothing to resume", job_id)
        return {"jobId": job_id, "status": "unknown"}
    if fail_if_stalled(job) or job.status != "running":
        return {"jobId": job_id, "status": job.status}
    if page is not None and page != job.next_page:
        log.info("sync job %s: a copy of the message for page %s, the job is at %s", job_id, page, job.next_page)
        return {"jobId": job_id, "status": "stale", "nextPage": job.next_page}
    now = time.time()
    token = uuid.uuid4().hex
    until = now + (time_left() if time_left else INVOCATION_SECONDS) + CLAIM_MARGIN_SECONDS
    if (
        not wrote(
            lambda: job.update(
                actions=[SyncJob.claim_token.set(token), SyncJob.claimed_until.set(until)],
                condition=(SyncJob.status == "running")
                & (SyncJob.next_page == job.next_page)
                & (SyncJob.claimed_until.does_not_exist() | (SyncJob.claimed_until < now)),
            )
        )
        and SyncJob.get(job_id, consistent_read=True).claim_token != token
    ):  # else ours, its answer lost
        log.info("sync job %s page %s is being run by another invocation", job_id, job.next_page)
        return {"jobId": job_id, "status": "claimed", "nextPage": job.next_page}
    return Claim(job, token)


def release(claim: Claim) -> None:
    """Give a claim back without saving anything (the invocation failed before its outcome)."""
    try:  # a claim already taken over is not ours to give back: nothing to do
        wrote(
            lambda: claim.job.update(
                actions=[SyncJob.claim_token.remove(), SyncJob.claimed_until.remove()],
                condition=SyncJob.claim_token == claim.token,
            )
        )
    except PynamoDBException as error:
        log.warning("could not give back the claim on sync job %s: %s", claim.job.job_id, error)


def fail_if_stalled(job: SyncJob, now: datetime | None = None) -> bool:
    """A running job that has not moved for STALLED_AFTER lost its message: mark it failed."""
    now = now or datetime.now(UTC)
    if job.status != "running" or job.updated_at is None or now - job.updated_at < STALLED_AFTER:
        return False
    reason = f"no progress since {job.updated_at.isoformat()}: its continuation was lost"
    live_claim = SyncJob.claimed_until.exists() & (SyncJob.claimed_until >= time.time())
    if not _fail(job, reason, (SyncJob.updated_at == job.updated_at) & ~live_claim):
        job.refresh(consistent_read=True)
        return job.status != "running"
    return True


def fail(job: SyncJob, reason: str) -> bool:
    """Mark a running job failed (it cannot go on: e.g. amoCRM's account is not paid)."""
    return _fail(job, reason)


def _fail(job: SyncJob, reason: str, condition=None) -> bool:
    """Mark a running job failed with its reason; False when the condition no longer holds."""
    errors = ((job.errors or [])[: MAX_ERRORS - 1]) + [{"error": reason}]
    if not wrote(
        lambda: job.update(
            actions=[SyncJob.status.set("failed"), SyncJob.errors.set(errors)],
            condition=(SyncJob.status == "running") & condition
            if condition is not None
            else SyncJob.status == "running",
        )
    ):
        return False
    log.error("sync job %s failed: %s", job.job_id, reason)
    return True


def describe(job_id: str) -> dict:
    """What `GET sync-jobs/{id}` shows; a stalled job is failed first (see above)."""
    try:
        job = SyncJob.get(job_id)
    except SyncJob.DoesNotExist:
        raise NotFound(f"sync job {job_id} is not known") from None
    fail_if_stalled(job)
    result = {
        "jobId": job.job_id,
        "entity": job.entity,
        "status": job.status,
        "synced": job.synced,
        "errors": job.errors,
        "nextPage": job.next_page,
        "invocations": job.invocations,
    }
    if job.entity == rederive.ENTITY:  # a stage mapping's re-derivation: `synced` counts leads that changed
        result["leadsChanged"] = job.synced
    return result
