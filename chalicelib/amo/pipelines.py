"""amoCRM pipelines and their statuses (reference §4): `/api/v4/leads/pipelines`.

Statuses 142 (won) and 143 (lost) exist in every pipeline with the same id, so a stage is
identified by (pipeline_id, id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.amo.client import AmoClient
from chalicelib.amo.entities import MalformedEntity, optional_int, require_int
from chalicelib.amo.pages import embedded


@dataclass(frozen=True)
class StageInfo:
    pipeline_id: int
    id: int
    name: str
    sort: int
    color: str | None
    type: int
    account_id: int | None


@dataclass(frozen=True)
class PipelineInfo:
    id: int
    name: str
    sort: int
    is_main: bool
    is_unsorted_on: bool
    is_archive: bool
    account_id: int | None
    stages: tuple[StageInfo, ...]


def _number(raw: dict, field: str, what: str) -> int:
    value = raw.get(field)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedEntity(f"{what} has a non-numeric {field}")
    return int(value)


def read_stage(pipeline_id: int, raw: Any) -> StageInfo:
    stage_id = require_int(raw, "id", f"a status of pipeline {pipeline_id}")
    what = f"status {stage_id} of pipeline {pipeline_id}"
    color = raw.get("color")
    return StageInfo(
        pipeline_id=pipeline_id,
        id=stage_id,
        name=str(raw.get("name") or ""),
        sort=_number(raw, "sort", what),
        color=color if isinstance(color, str) else None,
        type=_number(raw, "type", what),
        account_id=optional_int(raw, "account_id"),
    )


def read_pipeline(raw: Any) -> PipelineInfo:
    pipeline_id = require_int(raw, "id", "pipeline")
    return PipelineInfo(
        id=pipeline_id,
        name=str(raw.get("name") or ""),
        sort=_number(raw, "sort", f"pipeline {pipeline_id}"),
        is_main=bool(raw.get("is_main")),
        is_unsorted_on=bool(raw.get("is_unsorted_on")),
        is_archive=bool(raw.get("is_archive")),
        account_id=optional_int(raw, "account_id"),
        stages=tuple(read_stage(pipeline_id, s) for s in embedded(raw, "statuses")),
    )


class Pipelines:
    path = "/api/v4/leads/pipelines"

    def __init__(self, client: AmoClient):
        self.client = client

    def all(self) -> list[Any]:
        """Every pipeline (an account has at most 50), each with its statuses; read with read_pipeline."""
        return embedded(self.client.get(self.path), "pipelines")
