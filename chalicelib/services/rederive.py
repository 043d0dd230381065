"""Re-deriving lead statuses when a stage's mapping changes: every mirrored lead in the stage
gets the new mapped status at once, each change notified with `reason: mapping_changed`.

Leads are found through the lead table's stage index (stage id, pipeline id). Up to
INLINE_LIMIT leads are re-derived before the answer; more become a background job on the sync
queue (a SyncJob of entity `mapping`, followed at GET sync-jobs/{id}), which saves its place
in the index and continues in a new invocation when its time runs low. Without a sync queue
(the local run) everything runs inline.

Each lead changes in one transaction (lead_status.write): only from the status it was read
with, only while it is still in that stage and only while the stage still has that mapping;
its notification's event id names the mapping's version. So a retried, repeated or concurrent
re-derivation changes and notifies each lead once, and never applies a mapping replaced since.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from chalicelib.models import Lead, SyncJob, utc_now
from chalicelib.services import lead_status, queues
from chalicelib.services.errors import InvalidInput, NoProgress
from chalicelib.services.lead_status import StageMapping
from chalicelib.services.stage_names import LOST_STATUS_ID, WON_STATUS_ID

log = logging.getLogger(__name__)

INLINE_LIMIT = 300  # leads; more would not fit in API Gateway's 29 seconds with room to spare
CHUNK = 200  # index entries read between two looks at the clock
RESERVE_SECONDS = 20
JOB_RETENTION = timedelta(days=7)
ENTITY = "mapping"

TimeLeft = Callable[[], float]


class MappedStage(NamedTuple):
    pipeline_id: int
    stage_id: int
    mapping: StageMapping


def leads_in(pipeline_id: int, stage_id: int, limit: int | None = None) -> int:
    """How many mirrored leads sit in this stage; with a `limit`, counting stops there (and
    leads deleted in amoCRM count too: the answer bounds the work, it need not be exact)."""
    if limit is not None:
        return Lead.by_stage.count(stage_id, Lead.amo_pipeline_id == pipeline_id, limit=limit)
    return Lead.by_stage.count(
        stage_id, Lead.amo_pipeline_id == pipeline_id, filter_condition=Lead.amo_lead_id.exists()
    )


def rederive(stages: list[MappedStage]) -> dict:
    """Apply these stages' mappings to their leads: `{leadsChanged}`, or `{jobId, status}` when
    the job continues in the background."""
    stages = [s for s in stages if s.stage_id not in (WON_STATUS_ID, LOST_STATUS_ID)]  # always CLOSED
    if queues.sync_queue_configured():
        affected = 0
        for stage in stages:
            affected += leads_in(stage.pipeline_id, stage.stage_id, INLINE_LIMIT + 1 - affected)
            if affected > INLINE_LIMIT:
                return _start_job(stages)
    return {"leadsChanged": sum(_run(stage, None, None)[0] for stage in stages)}


def _run(stage: MappedStage, start: dict | None, out_of_time: Callable[[], bool] | None) -> tuple[int, dict | None]:
    """Re-derive the stage's leads from index position `start`; (changed, where to go on or None)."""
    changed = 0
    while True:
        page = Lead.by_stage.query(
            stage.stage_id, Lead.amo_pipeline_id == stage.pipeline_id, limit=CHUNK, last_evaluated_key=start
        )
        changed += sum(_rederive_lead(lead, stage) for lead in page)
        start = page.last_evaluated_key
        if start is None or (out_of_time is not None and out_of_time()):
            return changed, start


def _rederive_lead(lead: Lead, stage: MappedStage) -> int:
    """1 when this call changed the lead's status. The index may lag behind the table: on a lost
    condition the lead is read again and, if it is still in the stage, decided anew."""
    for _ in range(3):
        if lead.amo_lead_id is None:
            return 0  # deleted in amoCRM: its status stays as it was
        status = lead_status.derive(stage.stage_id, stage.mapping, lead.status)
        if status == lead.status:
            return 0
        previous, lead.status = lead.status, status
        condition = (
            (Lead.status == previous)
            & (Lead.amo_pipeline_id == stage.pipeline_id)
            & (Lead.amo_status_id == stage.stage_id)
            & Lead.amo_lead_id.exists()
        )
        change = lead_status.mapping_changed(lead, previous, stage.mapping)
        if lead_status.write(
            lead,
            condition=condition,
            change=change,
            mapping=stage.mapping,
            actions=[Lead.status.set(status), Lead.updated_at.set(utc_now())],
        ):
            return 1
        try:
            lead = Lead.get(lead.id, consistent_read=True)
        except Lead.DoesNotExist:
            return 0
        if (lead.amo_pipeline_id, lead.amo_status_id) != (stage.pipeline_id, stage.stage_id):
            return 0  # moved on in amoCRM meanwhile: that move derived its own status
    log.warning("lead %s kept changing while its status was re-derived; the next sync settles it", lead.id)
    return 0


# -- the background job ---------------------------------------------------------------------------


def _start_job(stages: list[MappedStage]) -> dict:
    job = SyncJob(
        job_id=uuid.uuid4().hex,
        entity=ENTITY,
        started_at=time.time(),
        synced=0,
        errors=[],
        params={"stages": [[s.pipeline_id, s.stage_id, *s.mapping] for s in stages], "at": 0, "key": None},
    )
    _save(job, "running")
    queues.send_sync_request({"rederive": job.job_id})
    log.info("re-deriving the leads of %d stage(s) in job %s", len(stages), job.job_id)
    return {"jobId": job.job_id, "status": "continuing"}


def _save(job: SyncJob, status: str) -> None:
    job.status = status
    job.expires_at = datetime.now(UTC) + JOB_RETENTION
    job.touch()
    job.save()


def resume(job_id: Any, time_left: TimeLeft | None = None) -> dict:
    """The sync queue's consumer for `{"rederive": <job id>}`: go on where the job stopped."""
    if not isinstance(job_id, str) or not job_id:
        raise InvalidInput("re-derivation message has no job id")
    try:
        job = SyncJob.get(job_id, consistent_read=True)
    except SyncJob.DoesNotExist:
        log.warning("re-derivation job %s not found", job_id)
        return {"jobId": job_id, "status": "unknown"}
    if job.status != "running" or job.entity != ENTITY:
        return {"jobId": job_id, "status": job.status}
    params = dict(job.params or {})
    stages = [MappedStage(p, s, StageMapping(*mapping)) for p, s, *mapping in params["stages"]]
    out_of_time = (lambda: time_left() < RESERVE_SECONDS) if time_left else None
    at, key, before = int(params.get("at") or 0), params.get("key"), (params.get("at"), params.get("key"))
    while at < len(stages):
        changed, key = _run(stages[at], key, out_of_time)
        job.synced = (job.synced or 0) + changed
        if key is None:
            at += 1
        if out_of_time is not None and out_of_time() and at < len(stages):
            break
    job.params = {**params, "at": at, "key": key}
    if at < len(stages):
        if (at, key) == before:
            raise NoProgress(f"re-derivation job {job_id} had no time to make progress")
        job.invocations = (job.invocations or 1) + 1
        _save(job, "running")
        queues.send_sync_request({"rederive": job_id})
        return {"jobId": job_id, "status": "continuing", "leadsChanged": job.synced}
    _save(job, "done")
    log.info("re-derivation job %s done: %d lead(s) changed status", job_id, job.synced)
    return {"jobId": job_id, "status": "done", "leadsChanged": job.synced}
