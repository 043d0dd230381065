"""amoCRM tasks: mirror, create and complete for the Main Backend."""

from __future__ import annotations

from typing import Any

from chalicelib.amo.api import AmoApi
from chalicelib.amo.tasks import TaskInfo, read_task
from chalicelib.models import AmoTask, utc_now
from chalicelib.services import mirror
from chalicelib.services.checkpoints import Checkpoint
from chalicelib.services.errors import NotFound

FIELDS = (
    "text",
    "task_type_id",
    "complete_till",
    "is_completed",
    "responsible_user_id",
    "entity_id",
    "entity_type",
    "duration",
    "result_text",
    "created_by",
    "updated_by",
    "amo_created_at",
    "amo_updated_at",
    "account_id",
    "is_unlinked",
)


def to_item(info: TaskInfo) -> AmoTask:
    return AmoTask(
        id=info.id,
        text=info.text,
        task_type_id=info.task_type_id,
        complete_till=info.complete_till,
        is_completed=info.is_completed,
        responsible_user_id=info.responsible_user_id,
        entity_id=info.entity_id,
        entity_type=info.entity_type,
        duration=info.duration,
        result_text=info.result_text,
        created_by=info.created_by,
        updated_by=info.updated_by,
        amo_created_at=info.created_at,
        amo_updated_at=info.updated_at,
        account_id=info.account_id,
        is_unlinked=False,
    )


def sync_page(raw_tasks: list[Any]) -> tuple[int, list[dict]]:
    infos, errors = mirror.read_all(raw_tasks, read_task)
    items = [to_item(info) for info in infos]
    refused = mirror.upsert_changed(AmoTask, items=list(items), fields=FIELDS).errors
    return len(items) - len(refused), errors + refused


def refresh(amo: AmoApi, task_id: int) -> AmoTask:
    raw = amo.tasks.get(task_id)
    if not raw:
        raise NotFound(f"task {task_id} does not exist in amoCRM")
    sync_page([raw])
    return AmoTask.get(task_id)


def get_tasks(
    limit: int,
    *,
    cursor: str | None,
    is_completed: bool | None = None,
    entity_type: str | None = None,
    entity_id: int | None = None,
) -> dict:
    condition = None
    if is_completed is not None:
        condition = AmoTask.is_completed == is_completed
    if entity_type is not None:
        range_condition = AmoTask.entity_id == entity_id if entity_id is not None else None
        return mirror.page_of_scan(
            lambda start, n: AmoTask.by_entity.query(
                entity_type, range_condition, filter_condition=condition, limit=n, last_evaluated_key=start
            ),
            keys=mirror.key_schema(AmoTask, AmoTask.by_entity),
            limit=limit,
            cursor=cursor,
            render=lambda t: t.to_dict(),
        )
    return mirror.page_of_scan(
        lambda start, n: AmoTask.scan(condition, limit=n, last_evaluated_key=start),
        keys=mirror.key_schema(AmoTask),
        limit=limit,
        cursor=cursor,
        render=lambda t: t.to_dict(),
    )


def create_task(amo: AmoApi, data: dict, checkpoint: Checkpoint | None = None) -> dict:
    """Create in amoCRM, then store; `checkpoint` hears of the POST and of the new id
    (idempotency). The answer holds the id only: a task's text may name a guest, and an
    idempotency record keeps the answer for a day (`with_data` adds the stored task)."""
    result = (checkpoint or Checkpoint()).around(lambda: {"amoTaskId": amo.tasks.create(data)})
    refresh(amo, result["amoTaskId"])
    return result


def with_data(created: dict) -> dict:
    """A created task's answer with the task as stored (null if it could not be read back)."""
    try:
        data: dict | None = AmoTask.get(created["amoTaskId"]).to_dict()
    except AmoTask.DoesNotExist:
        data = None
    return {**created, "data": data}


def complete_task(amo: AmoApi, task_id: int, result_text: str | None = None) -> dict:
    """Complete in amoCRM, then store; a task amoCRM already holds as completed is returned as it
    is. amoCRM is read first, not the mirror: a mirror behind amoCRM would overwrite the result a
    manager has just written, or refuse a task reopened there as "already completed"."""
    task = refresh(amo, task_id)  # an unknown id: 404
    if task.is_completed:
        return {"message": "task was already completed", "status": "completed", "data": task.to_dict()}
    amo.tasks.complete(task_id, result_text)
    task = refresh(amo, task_id)
    return {"message": "task completed", "status": "completed", "data": task.to_dict()}


def unlink(task_id: int) -> bool:
    """amoCRM deleted the task: keep the record, mark it unlinked."""
    try:
        task = AmoTask.get(task_id)
    except AmoTask.DoesNotExist:
        return False
    task.update(actions=[AmoTask.is_unlinked.set(True), AmoTask.updated_at.set(utc_now())])
    return True
