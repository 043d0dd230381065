"""Pipelines and stages mirrored from amoCRM, and the mapping of stages onto our statuses.

Stages are keyed by (pipeline_id, id): amoCRM's won/lost statuses 142 and 143 exist in every
pipeline with the same id. A re-sync rewrites only what amoCRM owns (name, sort, colour,
type) with UpdateItem, so a mapping set meanwhile is never overwritten.

A mapping takes effect at once: setting one (by hand or auto-applied) records when it changed
and bumps its version, then re-derives the status of every lead in the stage (rederive.py).
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.update import Action

from chalicelib.amo.api import AmoApi
from chalicelib.amo.entities import MalformedEntity
from chalicelib.amo.pipelines import PipelineInfo, StageInfo, read_pipeline
from chalicelib.locking import wrote
from chalicelib.models import AmoPipeline, AmoStage, utc_now
from chalicelib.services import mirror, rederive, stage_names
from chalicelib.services.errors import InvalidInput, NotFound
from chalicelib.services.lead_status import StageMapping
from chalicelib.services.paging import page_of_sorted
from chalicelib.services.rederive import MappedStage
from chalicelib.services.stage_names import STATUSES

log = logging.getLogger(__name__)

DEFAULT_AUTO_APPLY_CONFIDENCE = 0.6


def sync_pipelines(amo: AmoApi) -> dict:
    """Mirror amoCRM's pipelines (≤ 50, each with its statuses); mappings are kept."""
    raw_pipelines = amo.pipelines.all()
    if not raw_pipelines:  # every account has at least one: never wipe the mirror on an odd answer
        return {
            "synced": 0,
            "stagesWritten": 0,
            "stagesRemoved": 0,
            "errors": [{"id": None, "message": "amoCRM returned no pipelines; nothing changed"}],
        }
    known_stages = {(s.pipeline_id, s.id): s for s in AmoStage.scan()}
    known_pipelines = {p.id: p for p in AmoPipeline.scan()}
    errors: list[dict] = []
    synced = stages_written = 0
    failed: set[Any] = set()
    for raw in raw_pipelines:
        try:
            info = read_pipeline(raw)
            _upsert_pipeline(info, known_pipelines.pop(info.id, None))
            for stage in info.stages:
                stages_written += _upsert_stage(stage, known_stages.pop((stage.pipeline_id, stage.id), None))
            synced += 1
        except (MalformedEntity, PynamoDBException) as error:
            failed.add(raw.get("id") if isinstance(raw, dict) else None)
            errors.append(mirror.item_error(raw, str(error)))
    # What amoCRM no longer has is removed, except what belongs to a pipeline that failed to sync.
    removed = 0
    for (pipeline_id, _), stale in known_stages.items():
        if pipeline_id not in failed:
            stale.delete()
            removed += 1
    for pipeline_id, pipeline in known_pipelines.items():
        if pipeline_id not in failed:
            pipeline.delete()
    log.info("pipelines synced: %d pipelines, %d stages written, %d removed", synced, stages_written, removed)
    return {"synced": synced, "stagesWritten": stages_written, "stagesRemoved": removed, "errors": errors}


PIPELINE_FIELDS = ("name", "sort", "is_main", "is_unsorted_on", "is_archive", "account_id")
STAGE_FIELDS = ("name", "sort", "color", "type", "account_id")


def _upsert_pipeline(info: PipelineInfo, existing: AmoPipeline | None) -> None:
    values = {k: getattr(info, k) for k in PIPELINE_FIELDS}
    if existing is not None and all(getattr(existing, k) == v for k, v in values.items()):
        return
    pipeline = existing or AmoPipeline(id=info.id)
    for key, value in values.items():
        setattr(pipeline, key, value)
    pipeline.touch()
    pipeline.save()


def _upsert_stage(info: StageInfo, existing: AmoStage | None) -> int:
    values = {k: getattr(info, k) for k in STAGE_FIELDS}
    if existing is not None and all(getattr(existing, k) == v for k, v in values.items()):
        return 0
    stage = existing or AmoStage(pipeline_id=info.pipeline_id, id=info.id)
    stage.touch()
    if existing is None:
        for key, value in values.items():
            setattr(stage, key, value)
        stage.save()
    else:  # only amoCRM's fields: a mapping set concurrently survives
        stage.update(
            actions=[
                getattr(AmoStage, k).set(v) if v is not None else getattr(AmoStage, k).remove()
                for k, v in values.items()
            ]
            + [AmoStage.updated_at.set(stage.updated_at)]
        )
    return 1


def get_pipelines(limit: int, cursor: str | None) -> dict:
    pipelines = sorted(AmoPipeline.scan(), key=lambda p: (p.sort, p.id))
    return page_of_sorted(pipelines, limit=limit, cursor=cursor, render=lambda p: p.to_dict())


def get_stages(pipeline_id: int, limit: int, cursor: str | None) -> dict:
    if not _pipeline_exists(pipeline_id):
        raise NotFound(f"pipeline {pipeline_id} is not known (run sync-pipelines?)")
    stages = sorted(AmoStage.query(pipeline_id), key=lambda s: (s.sort, s.id))
    return page_of_sorted(stages, limit=limit, cursor=cursor, render=lambda s: s.to_dict())


def _pipeline_exists(pipeline_id: int) -> bool:
    try:
        AmoPipeline.get(pipeline_id)
        return True
    except AmoPipeline.DoesNotExist:
        return False


def validate_status(value: Any, field: str = "mappedStatus") -> str:
    if value not in STATUSES:
        raise InvalidInput(f"{field} must be one of {', '.join(STATUSES)}")
    return value


def update_stage_mapping(stage_id: int, mapped_status: Any, pipeline_id: int | None = None) -> dict:
    """Set a manual mapping. A stage id present in several pipelines needs `pipeline_id`,
    except 142/143, which without it are mapped in every pipeline."""
    status = validate_status(mapped_status)
    stages = list(AmoStage.by_stage_id.query(stage_id))
    if pipeline_id is not None:
        stages = [s for s in stages if s.pipeline_id == pipeline_id]
    if not stages:
        where = f" in pipeline {pipeline_id}" if pipeline_id is not None else ""
        raise NotFound(f"stage {stage_id}{where} is not known (run sync-pipelines?)")
    if len(stages) > 1 and stage_id not in (stage_names.WON_STATUS_ID, stage_names.LOST_STATUS_ID):
        pipelines = ", ".join(str(s.pipeline_id) for s in stages)
        raise InvalidInput(f"stage {stage_id} exists in pipelines {pipelines}: pass pipelineId")
    mapped = [_set_mapping(stage, status=status, source="manual") for stage in stages]
    data: Any = stages[0].to_dict() if len(stages) == 1 else [s.to_dict() for s in stages]
    return {
        "message": f"stage {stage_id} mapped to {status} in {len(stages)} pipeline(s)",
        "data": data,
        **rederive.rederive(mapped),
    }


def _set_mapping(stage: AmoStage, *, status: str, source: str, condition: Any = None) -> MappedStage:
    """Map the stage; a new status is a new version of its mapping, stamped with the time."""
    actions: list[Action] = [
        AmoStage.mapped_status.set(status),
        AmoStage.mapping_source.set(source),
        AmoStage.updated_at.set(utc_now()),
    ]
    if stage.mapped_status != status:
        actions += [AmoStage.mapped_at.set(int(time.time())), AmoStage.mapping_version.add(1)]
    stage.update(actions=actions, condition=condition)
    return MappedStage(stage.pipeline_id, stage.id, mapping_of_stage(stage))


def mapping_of_stage(stage: AmoStage) -> StageMapping:
    return StageMapping(stage.mapped_status or None, stage.mapping_version, stage.mapped_at)


def _suggestions() -> list[tuple[AmoStage, stage_names.Suggestion]]:
    by_pipeline: dict[int, list[AmoStage]] = {}
    for stage in AmoStage.scan():
        by_pipeline.setdefault(stage.pipeline_id, []).append(stage)
    result = []
    for pipeline_id in sorted(by_pipeline):
        stages = sorted(by_pipeline[pipeline_id], key=lambda s: (s.sort, s.id))
        regular = [
            s.id
            for s in stages
            if s.type != stage_names.UNSORTED_TYPE
            and s.id not in (stage_names.WON_STATUS_ID, stage_names.LOST_STATUS_ID)
        ]
        for stage in stages:
            position = regular.index(stage.id) if stage.id in regular else None
            result.append(
                (stage, stage_names.suggest(stage.id, stage_type=stage.type, name=stage.name, position=position))
            )
    return result


def get_suggested_mappings() -> dict:
    data = [
        {
            "stageId": stage.id,
            "pipelineId": stage.pipeline_id,
            "stageName": stage.name,
            "currentStatus": stage.mapped_status,
            "mappingSource": stage.mapping_source,
            "suggestedStatus": suggestion.status,
            "confidence": suggestion.confidence,
            "reason": suggestion.reason,
        }
        for stage, suggestion in _suggestions()
    ]
    return {"data": data, "count": len(data)}


def apply_auto_mapping(min_confidence: float = DEFAULT_AUTO_APPLY_CONFIDENCE) -> dict:
    """Map every unmapped stage whose suggestion is confident enough; never touch a mapped one."""
    applied: list[MappedStage] = []
    skipped, errors = 0, []

    def map_unless_mapped(stage: AmoStage, status: str) -> None:
        condition = AmoStage.mapped_status.does_not_exist()
        applied.append(_set_mapping(stage, status=status, source="auto", condition=condition))

    for stage, suggestion in _suggestions():
        if stage.mapped_status:
            continue
        if suggestion.confidence < min_confidence:
            skipped += 1
            continue
        try:  # not written: mapped by someone else meanwhile, theirs stands
            wrote(partial(map_unless_mapped, stage, suggestion.status))
        except PynamoDBException as error:
            errors.append({"stageId": stage.id, "pipelineId": stage.pipeline_id, "message": str(error)})
    return {"applied": len(applied), "skipped": skipped, "errors": errors, **rederive.rederive(applied)}


def mapping_status() -> dict:
    """Stages without a mapping (142/143 need none) and how many leads sit in each: what an
    operator still has to map. Their leads keep their status (a new lead is NEW)."""
    pipeline_order = {p.id: (p.sort, p.id, p.name) for p in AmoPipeline.scan()}
    unmapped = sorted(
        (
            s
            for s in AmoStage.scan()
            if not s.mapped_status and s.id not in (stage_names.WON_STATUS_ID, stage_names.LOST_STATUS_ID)
        ),
        key=lambda s: (pipeline_order.get(s.pipeline_id, (0, s.pipeline_id, "")), s.sort, s.id),
    )
    data = [
        {
            "pipelineId": s.pipeline_id,
            "pipelineName": pipeline_order.get(s.pipeline_id, (0, 0, ""))[2],
            "stageId": s.id,
            "stageName": s.name,
            "leads": rederive.leads_in(s.pipeline_id, s.id),
        }
        for s in unmapped
    ]
    return {"data": data, "count": len(data), "unmappedLeads": sum(item["leads"] for item in data)}


def mapping_of(pipeline_id: int | None, status_id: int | None) -> StageMapping | None:
    """The mapping of an amoCRM (pipeline, stage), read now; None for a stage we do not know."""
    if pipeline_id is None or status_id is None:
        return None
    try:
        return mapping_of_stage(AmoStage.get(pipeline_id, status_id, consistent_read=True))
    except AmoStage.DoesNotExist:
        return None


def mapped_status_of(pipeline_id: int | None, status_id: int | None) -> str | None:
    """Our status for an amoCRM (pipeline, stage): 142/143 are always CLOSED; None when unmapped."""
    if status_id in (stage_names.WON_STATUS_ID, stage_names.LOST_STATUS_ID):
        return stage_names.CLOSED
    mapping = mapping_of(pipeline_id, status_id)
    return mapping.status if mapping is not None else None


def status_map() -> dict[tuple[int, int], StageMapping]:
    """Every known (pipeline, stage) and its mapping, for mapping many leads at once."""
    return {(s.pipeline_id, s.id): mapping_of_stage(s) for s in AmoStage.scan()}
