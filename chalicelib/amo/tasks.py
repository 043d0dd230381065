"""amoCRM tasks (reference §7): `/api/v4/tasks`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.amo.entities import created_id, new_id, optional_int, require_int
from chalicelib.amo.resource import ListResource

ENTITY_TYPES = ("leads", "contacts", "companies")
WRITABLE_FIELDS = (
    "text",
    "complete_till",
    "entity_id",
    "entity_type",
    "task_type_id",
    "responsible_user_id",
    "duration",
)


@dataclass(frozen=True)
class TaskInfo:
    id: int
    text: str
    task_type_id: int | None
    complete_till: int | None
    is_completed: bool
    responsible_user_id: int | None
    entity_id: int | None
    entity_type: str | None
    duration: int | None
    result_text: str | None
    created_by: int | None
    updated_by: int | None
    created_at: int | None
    updated_at: int | None
    account_id: int | None


def read_task(raw: Any) -> TaskInfo:
    task_id = require_int(raw, "id", "task")
    result = raw.get("result")
    result_text = result.get("text") if isinstance(result, dict) else None
    return TaskInfo(
        id=task_id,
        text=str(raw.get("text") or ""),
        task_type_id=optional_int(raw, "task_type_id"),
        complete_till=optional_int(raw, "complete_till"),
        is_completed=bool(raw.get("is_completed")),
        responsible_user_id=optional_int(raw, "responsible_user_id"),
        entity_id=optional_int(raw, "entity_id"),
        entity_type=raw.get("entity_type") or None,
        duration=optional_int(raw, "duration"),
        result_text=result_text or None,
        created_by=optional_int(raw, "created_by"),
        updated_by=optional_int(raw, "updated_by"),
        created_at=optional_int(raw, "created_at"),
        updated_at=optional_int(raw, "updated_at"),
        account_id=optional_int(raw, "account_id"),
    )


class Tasks(ListResource):
    path = "/api/v4/tasks"
    key = "tasks"

    def create(self, data: dict) -> int:
        body = {k: data[k] for k in WRITABLE_FIELDS if data.get(k) is not None}
        return new_id(created_id(self.client.post(self.path, [{**body, "request_id": "0"}]), "tasks"), "task")

    def rewrite(self, task_id: int, *, text: str, result_text: str | None = None) -> None:
        """PATCH a task's text (and its result's, when given): only those, nothing else of it."""
        body: dict[str, Any] = {"text": text}
        if result_text is not None:
            body["result"] = {"text": result_text}
        self.client.patch(f"{self.path}/{int(task_id)}", body)

    def complete(self, task_id: int, result_text: str | None = None) -> None:
        """Mark done, with the result text when given (an unknown id answers 404)."""
        body: dict[str, Any] = {"is_completed": True}
        if result_text:
            body["result"] = {"text": result_text}
        self.client.patch(f"{self.path}/{int(task_id)}", body)
