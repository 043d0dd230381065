"""Pipelines and their statuses (142/143 in every pipeline, one unsorted stage each)."""

from __future__ import annotations

from typing import Any

from sandbox import entities
from sandbox.account import Account
from sandbox.errors import problem


class Pipelines(Account):
    def render_pipeline(self, pipeline: dict) -> dict:
        fields = {k: v for k, v in pipeline.items() if k != "statuses"}
        statuses = sorted(pipeline["statuses"], key=lambda s: s["sort"])
        return entities.pipeline_body(fields, self.base_url(), statuses)

    def list_pipelines(self) -> dict:
        with self.lock:
            pipelines = sorted(self.pipelines.values(), key=lambda p: p["sort"])
            rendered = [self.render_pipeline(p) for p in pipelines]
            return entities.collection("pipelines", rendered, self.base_url() + "/api/v4/leads/pipelines")

    def get_pipeline(self, pipeline_id: int) -> dict:
        with self.lock:
            if pipeline_id not in self.pipelines:
                raise problem(404, "Not Found", "Pipeline not found")
            return self.render_pipeline(self.pipelines[pipeline_id])

    def update_status(self, pipeline_id: int, status_id: int, item: Any) -> dict:
        with self.lock:
            pipeline = self.pipelines.get(pipeline_id)
            status = next((s for s in (pipeline or {}).get("statuses", []) if s["id"] == status_id), None)
            if status is None:
                raise problem(404, "Not Found", "Status not found")
            if not isinstance(item, dict):
                raise problem(400, "Bad Request", "Body must be an object")
            for key in ("name", "sort", "color"):
                if key in item:
                    status[key] = item[key]
            return entities.status_body(status, self.base_url())

    def delete_status(self, pipeline_id: int, status_id: int) -> None:
        with self.lock:
            pipeline = self.pipelines.get(pipeline_id)
            if (
                pipeline is None
                or status_id in (entities.WON_STATUS_ID, entities.LOST_STATUS_ID)
                or not any(s["id"] == status_id for s in pipeline["statuses"])
            ):
                raise problem(404, "Not Found", "Status not found or not deletable")
            pipeline["statuses"] = [s for s in pipeline["statuses"] if s["id"] != status_id]

    def stage_exists(self, pipeline_id: int, status_id: int) -> bool:
        pipeline = self.pipelines.get(pipeline_id)
        if not pipeline:
            return False
        return any(s["id"] == status_id for s in pipeline["statuses"])

    def stages_in_order(self, pipeline_id: int) -> list[int]:
        return [s["id"] for s in sorted(self.pipelines[pipeline_id]["statuses"], key=lambda s: s["sort"])]

    def default_stage(self, pipeline_id: int) -> int:
        statuses = sorted(self.pipelines[pipeline_id]["statuses"], key=lambda s: s["sort"])
        return next(s["id"] for s in statuses if s["type"] == 0)

    def main_pipeline(self) -> int:
        return next((p["id"] for p in self.pipelines.values() if p["is_main"]), next(iter(self.pipelines)))
